"""The explanation explorer's logic: attention row, rollout and leave-one-out importance of one query token."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import explain as ex  # noqa: E402
from course_lib import tagging as tg  # noqa: E402
from course_lib.data.entities import TAGS, Sentence  # noqa: E402
from course_lib.widgets._layout import cut_labels  # noqa: E402
from course_lib.widgets.explain import draw_explain, explain_explorer, explain_view  # noqa: E402

WORDS = "Yesterday Jordan , as expected , laughed .".split()


@pytest.fixture(scope="module")
def setup():
    vocab = tg.TokenVocab(WORDS * 3)
    models = {name: tg.build_tagger(name, len(vocab), d_model=16).eval() for name in tg.MODEL_NAMES[1:]}
    sentences = [Sentence(tuple(WORDS), ("O", "B-PER") + ("O",) * 6, "en_US", "t0", cue_entity=(1, 2),
                          cue_span=(6, 7), cue_distance=4),
                 Sentence(tuple(WORDS[:4]), ("O",) * 4, "en_US", "t1")]
    return vocab, models, sentences


def test_view_of_the_bilstm_attention_tagger(setup):
    vocab, models, sentences = setup
    model = models["BiLSTM + self-attention"]
    view = explain_view(model, sentences[0], vocab, 1)
    assert view.tokens == WORDS and view.query == 1 and view.tag in TAGS
    assert view.rollout is None  # one attention layer
    assert view.attention.shape == (8,) and torch.allclose(view.attention.sum(), torch.tensor(1.0), atol=1e-5)
    _, maps = tg.predict_tags(model, [WORDS], vocab, need_weights=True)
    assert torch.allclose(view.attention, maps[0][-1, :, 1].mean(0), atol=1e-6)
    ids, mask, _ = tg.pad_batch([vocab.encode(WORDS)])
    unk, _, _ = tg.pad_batch([vocab.unknown_ids(WORDS)])

    def probs(x):
        return model(x, mask)[0][:, 1].softmax(-1)

    assert torch.allclose(view.importance, ex.leave_one_out(probs, ids, mask, unk)[0], atol=1e-6)
    fig = draw_explain(view)
    assert "Kendall tau" in fig.axes[0].get_title()
    plt.close(fig)


def test_view_of_the_transformer_has_a_rollout(setup):
    vocab, models, sentences = setup
    view = explain_view(models["Transformer encoder"], WORDS, vocab, 0)
    assert view.rollout is not None and torch.allclose(view.rollout.sum(), torch.tensor(1.0), atol=1e-5)
    fig = draw_explain(view, title="custom")
    assert fig.axes[0].get_title() == "custom" and len(fig.axes[0].get_yticklabels()) == 3
    plt.close(fig)


def test_errors_are_clear(setup):
    vocab, models, sentences = setup
    model = models["BiLSTM + self-attention"]
    with pytest.raises(ValueError, match="query"):
        explain_view(model, WORDS, vocab, 8)
    with pytest.raises(ValueError, match="non-empty"):
        explain_view(model, [], vocab, 0)
    with pytest.raises(TypeError, match="query"):
        explain_view(model, WORDS, vocab, 1.0)
    with pytest.raises(ValueError, match="no attention"):
        explain_view(tg.build_tagger("BiLSTM", len(vocab), d_model=8).eval(), WORDS, vocab, 0)
    with pytest.raises(ValueError, match="empty"):
        explain_explorer({}, sentences, vocab)
    with pytest.raises(ValueError, match="empty"):
        explain_explorer(models, [], vocab)


def test_explorer_callbacks(setup):
    vocab, models, sentences = setup
    box = explain_explorer(models, sentences, vocab)
    controls = box.children[0].children
    choice, slider, token = controls
    assert token.value == 1  # the cue entity's first token is the default query
    assert [o[1] for o in token.options] == list(range(8))
    slider.value = 1  # a sentence without a cue: the query falls back to token 0, the menu follows
    assert token.value == 0 and len(token.options) == 4
    token.value = 3
    choice.value = "Transformer encoder"
    assert token.value == 3 and slider.value == 1  # the model menu keeps the sentence and the query
    assert not cut_labels(box)
    plt.close("all")
