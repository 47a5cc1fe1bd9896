"""The summary explorer's logic: text becomes tokens, the view has the right shapes, OOV words are listed,
the picture is drawn (with a p_gen strip for a pointer-generator) and the widget shell reacts to edits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.data.documents import make_document_corpus  # noqa: E402
from course_lib.summarise import Summariser  # noqa: E402
from course_lib.widgets._layout import cut_labels  # noqa: E402
from course_lib.widgets.summarise import (  # noqa: E402
    describe_summary,
    draw_summary,
    summary_explorer,
    summary_view,
)


@pytest.fixture(scope="module")
def setup():
    corpus = make_document_corpus(n_train=200, n_test=10, min_freq=3)
    torch.manual_seed(0)
    models = {"attention": Summariser(len(corpus.vocab), 8, 8).eval(),
              "pointer-generator": Summariser(len(corpus.vocab), 8, 8, pointer=True).eval()}
    return corpus, models


def test_view_from_text_and_tokens(setup):
    corpus, models = setup
    text = "Zorglub beat Milan 2-1 on Sunday."
    view = summary_view(models["pointer-generator"], text, corpus.vocab, max_len=6)
    assert view.source == ["zorglub", "beat", "milan", "2", "-", "1", "on", "sunday", "."]
    assert view.weights.shape == (min(len(view.tokens) + 1, 6), len(view.source) + 1)
    assert view.p_gen is not None and view.p_gen.shape == (view.weights.shape[0],)
    same = summary_view(models["pointer-generator"], view.source, corpus.vocab, max_len=6)
    assert same.tokens == view.tokens
    lines = describe_summary(view, corpus.vocab)
    assert "zorglub" in lines.splitlines()[1] and "p_gen" in lines
    plain = summary_view(models["attention"], text, corpus.vocab, max_len=4)
    assert plain.p_gen is None and "only write vocabulary words" in describe_summary(plain, corpus.vocab)


def test_bad_text(setup):
    corpus, models = setup
    with pytest.raises(ValueError, match="empty"):
        summary_view(models["attention"], "   ", corpus.vocab)
    with pytest.raises(ValueError, match="200"):
        summary_view(models["attention"], "word " * 201, corpus.vocab)


def test_drawing_and_widget_shell(setup):
    corpus, models = setup
    view = summary_view(models["pointer-generator"], corpus.test[0].text, corpus.vocab, max_len=5)
    fig = draw_summary(view)
    assert fig.axes[0].get_xlabel() == "source (keys)"
    strips = fig.axes[0].child_axes
    assert len(strips) == 1 and strips[0].get_xticklabels()[0].get_text() == "p_gen"
    plt.close(fig)
    fig = draw_summary(summary_view(models["attention"], corpus.test[0].text, corpus.vocab, max_len=5))
    assert not fig.axes[0].child_axes  # no p_gen for the plain decoder
    plt.close(fig)
    examples = {"first": corpus.test[0].text, "second": corpus.test[1].text}
    ui = summary_explorer(models, corpus.vocab, examples)
    which, picker, box, out = ui.children
    assert cut_labels(ui) == []
    assert box.value == corpus.test[0].text and which.value == "pointer-generator"
    picker.value = "second"
    assert box.value == corpus.test[1].text
    which.value = "attention"
    box.value = "   "  # prints the error, no crash
    ui.update()
    with pytest.raises(ValueError):
        summary_explorer({}, corpus.vocab, examples)
    plt.close("all")
