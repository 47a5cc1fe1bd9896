"""The entity explorer's logic: tokens as in the corpus, tags of the model, weights for attention models."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import tagging as tg  # noqa: E402
from course_lib.data.entities import TAGS  # noqa: E402
from course_lib.widgets._layout import cut_labels  # noqa: E402
from course_lib.widgets.ner import draw_ner, ner_explorer, ner_view  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    vocab = tg.TokenVocab("Yesterday Jordan , as expected , laughed . 王 建 加 入".split() * 3)
    models = {name: tg.build_tagger(name, len(vocab), d_model=16).eval() for name in tg.MODEL_NAMES}
    return vocab, models


def test_view_of_an_attention_model(setup):
    vocab, models = setup
    view = ner_view(models["Transformer encoder"], "Yesterday Zorglub , as expected , laughed .", vocab)
    assert view.tokens[:3] == ["Yesterday", "Zorglub", ","] and view.known[:3] == [True, False, True]
    assert len(view.tags) == 8 and set(view.tags) <= set(TAGS)
    assert view.weights.shape == (8, 8) and torch.allclose(view.weights.sum(-1), torch.ones(8), atol=1e-5)
    assert view.tags == tg.predict_tags(models["Transformer encoder"], [view.tokens], vocab)[0]
    fig = draw_ner(view)
    assert fig.axes[0].get_ylabel().startswith("queries")
    plt.close(fig)


def test_chinese_is_split_per_character_and_drawn_without_a_cjk_font(setup):
    vocab, models = setup
    view = ner_view(models["BiLSTM + self-attention"], "王建加入了公司", vocab)
    assert view.tokens == list("王建加入了公司") and view.weights.shape == (7, 7)
    fig = draw_ner(view)
    plt.close(fig)


def test_bilstm_has_no_weights_and_errors_are_clear(setup):
    vocab, models = setup
    view = ner_view(models["BiLSTM"], "Jordan laughed .", vocab)
    assert view.weights is None
    with pytest.raises(ValueError, match="attention"):
        draw_ner(view)
    with pytest.raises(ValueError, match="empty"):
        ner_view(models["BiLSTM"], "   ", vocab)
    with pytest.raises(TypeError, match="text"):
        ner_view(models["BiLSTM"], 3, vocab)


def test_entities_property():
    view = ner_view.__globals__["NerView"](["Port", "Angela", "laughed"], ["B-LOC", "I-LOC", "O"],
                                           [False, False, True], None)
    assert view.entities == [("LOC", "Port Angela")]
    zh = ner_view.__globals__["NerView"](list("王建笑"), ["B-PER", "I-PER", "O"], [True] * 3, None)
    assert zh.entities == [("PER", "王建")]


def test_explorer_builds(setup):
    vocab, models = setup
    box = ner_explorer(models, vocab, value="Jordan laughed .")
    assert len(box.children) == 3
    text, choice, _ = box.children
    assert cut_labels(box) == []
    choice.value = "BiLSTM"
    text.value = "王建"
    with pytest.raises(ValueError, match="models"):
        ner_explorer({}, vocab)


def test_layer_and_head(setup):
    vocab, models = setup
    model = models["Transformer encoder"]
    first = ner_view(model, "Jordan laughed .", vocab, layer=0, head=1)
    _, maps = tg.predict_tags(model, [first.tokens], vocab, need_weights=True)
    assert torch.allclose(first.weights, maps[0][0, 1])
    with pytest.raises(ValueError, match="layer"):
        ner_view(model, "Jordan laughed .", vocab, layer=2)
    with pytest.raises(ValueError, match="head"):
        ner_view(model, "Jordan laughed .", vocab, head=4)
    with pytest.raises(TypeError, match="layer"):
        ner_view(model, "Jordan laughed .", vocab, layer=0.5)
