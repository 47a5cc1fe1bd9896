"""The translation explorer's logic: digits become number words with a reference, weights have the right
shape and sum to 1, unknown words are refused (or become <unk> on request), and the picture is drawn with its labels
inside."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.data.numbers import make_number_corpus  # noqa: E402
from course_lib.seq2seq import AttentionSeq2Seq, GRUSeq2Seq  # noqa: E402
from course_lib.widgets.translate import (  # noqa: E402
    alignment_figsize,
    draw_alignment,
    translation_explorer,
    translation_view,
)  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    corpus = make_number_corpus(per_digits=30, max_digits=4)
    torch.manual_seed(0)
    model = AttentionSeq2Seq(len(corpus.src_vocab), len(corpus.tgt_vocab), 8, 16).eval()
    return corpus, model


def test_digits_give_words_and_a_reference(setup):
    corpus, model = setup
    view = translation_view(model, "97", corpus.src_vocab, corpus.tgt_vocab)
    assert view.number == 97 and view.source == ["ninety", "-", "seven"]
    assert view.reference == ["quatre", "-", "vingt", "-", "dix", "-", "sept"]
    assert view.correct == (view.output == view.reference)
    assert view.weights.shape == (min(len(view.output) + 1, 40), 4)  # + the source's <eos>
    assert view.source_labels == ["ninety", "-", "seven", "<eos>"]
    assert torch.allclose(view.weights.sum(-1), torch.ones(view.weights.shape[0]), atol=1e-5)
    assert view.output_labels[-1] == "<eos>"
    assert translation_view(model, 1984, corpus.src_vocab, corpus.tgt_vocab).number == 1984


def test_words_and_unknown_words(setup):
    corpus, model = setup
    view = translation_view(model, "Ninety-seven zorglub", corpus.src_vocab, corpus.tgt_vocab, allow_unknown=True)
    assert view.source == ["ninety", "-", "seven", "<unk>"] and view.reference is None and view.correct is None
    with pytest.raises(ValueError, match="empty"):
        translation_view(model, "  ", corpus.src_vocab, corpus.tgt_vocab)
    with pytest.raises(ValueError, match="10"):
        translation_view(model, 10**13, corpus.src_vocab, corpus.tgt_vocab)
    with pytest.raises(TypeError):
        translation_view(model, 3.5, corpus.src_vocab, corpus.tgt_vocab)


def test_model_without_attention_has_no_weights(setup):
    corpus, _ = setup
    model = GRUSeq2Seq(len(corpus.src_vocab), len(corpus.tgt_vocab), 8, 16).eval()
    view = translation_view(model, 12, corpus.src_vocab, corpus.tgt_vocab)
    assert view.weights is None
    with pytest.raises(ValueError, match="attention"):
        draw_alignment(view)


def test_drawing_and_widget_shell(setup):
    corpus, model = setup
    fig = draw_alignment(translation_view(model, 71, corpus.src_vocab, corpus.tgt_vocab))
    assert fig.axes[0].get_xlabel() == "source (keys)"
    plt.close(fig)
    box = translation_explorer(model, corpus.src_vocab, corpus.tgt_vocab, value="205")
    assert box.children[0].value == "205"
    box.children[0].value = "not a number at all"  # unknown words: a message, no crash
    plt.close("all")


def test_text_that_is_not_a_number_is_rejected_with_a_message(setup):
    corpus, model = setup
    with pytest.raises(ValueError, match="'abc' is not a number.*abc"):
        translation_view(model, "abc", corpus.src_vocab, corpus.tgt_vocab)
    with pytest.raises(ValueError, match="zorglub"):
        translation_view(model, "ninety-seven zorglub", corpus.src_vocab, corpus.tgt_vocab)
    view = translation_view(model, "abc", corpus.src_vocab, corpus.tgt_vocab, allow_unknown=True)
    assert view.source == ["<unk>"]


def test_explorer_prints_the_message_for_text_that_is_not_a_number(setup, capsys):
    corpus, model = setup
    box = translation_explorer(model, corpus.src_vocab, corpus.tgt_vocab, value="abc")
    text = capsys.readouterr().out  # outside a kernel the Output area lets prints through
    assert "'abc' is not a number" in text and "source" not in text
    assert box.children[0].style.description_width == "initial"
    plt.close("all")


@pytest.mark.parametrize("number", [5, 97, 71071])
def test_alignment_labels_stay_inside_the_figure(setup, number):
    corpus, model = setup
    view = translation_view(model, number, corpus.src_vocab, corpus.tgt_vocab)
    fig = draw_alignment(view)
    fig.canvas.draw()
    frame = fig.bbox
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title]:
        box = label.get_window_extent(renderer)
        inside = frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 <= box.y1 <= frame.y1 + 1
        assert inside, (number, label.get_text())
    width, height = alignment_figsize(view)
    assert width >= 4.0 and height >= 2.4
    plt.close(fig)
