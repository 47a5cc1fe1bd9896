"""The lesson-10 checkers accept the reference and reject the stub and typical wrong answers."""

from __future__ import annotations

import pytest
import torch

from course_lib.attention import masked_softmax
from course_lib.checks.core import CheckFailed
from course_lib.checks.ner import (
    ArticleNERModel,
    check_article_output_shapes,
    check_bio_to_spans,
    check_sentence_attention,
    reference_sentence_attention,
)
from course_lib.data.entities import entity_spans


def stub(*args, **kwargs):
    raise NotImplementedError()


def fails(checker, fn, match: str | None = None) -> None:
    with pytest.raises(CheckFailed, match=match):
        checker(fn)


def test_article_model_mixes_the_batch():
    model = ArticleNERModel(10, 4, 3, 5).eval()
    x = torch.randint(0, 10, (6, 3))
    assert model(x).shape == (6, 5) and model(x.T).shape == (3, 5)


def test_article_output_shapes(capsys):
    check_article_output_shapes(lambda t, b, k: ((t, k), (b, k)))
    assert "all checks passed" in capsys.readouterr().out
    fails(check_article_output_shapes, stub, "not implemented")
    fails(check_article_output_shapes, lambda t, b, k: ((t, b, k), (b, t, k)), "batch")  # expects a tagger
    fails(check_article_output_shapes, lambda t, b, k: ((b, k), (b, k)), "one row per position")
    fails(check_article_output_shapes, lambda t, b, k: ((t, k), (b, t, k)), "reads axis 0")
    fails(check_article_output_shapes, lambda t, b, k: ((t, k), (t, k)), "removes the tokens")
    fails(check_article_output_shapes, lambda t, b, k: (t, k), "shape")
    fails(check_article_output_shapes, lambda t, b, k: "(T, K)", "two shapes")


def test_sentence_attention(capsys):
    check_sentence_attention(reference_sentence_attention)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_sentence_attention, stub, "not implemented")

    def article(scores, states, mask):  # the article's axis
        w = torch.softmax(scores, dim=1)
        return w, (w * states).sum(1)

    def no_mask(scores, states, mask):
        w = torch.softmax(scores, dim=0)
        return w, (w * states).sum(0)

    def wrong_sum(scores, states, mask):
        w, _ = reference_sentence_attention(scores, states, mask)
        return w, (w * states).sum(1)

    def mean_context(scores, states, mask):
        w, _ = reference_sentence_attention(scores, states, mask)
        return w, states.mean(0)

    def transposed(scores, states, mask):
        w = masked_softmax(scores.squeeze(-1).T, mask=mask.T)  # (B, T) left in the wrong layout
        return w.unsqueeze(-1), (w.T.unsqueeze(-1) * states).sum(0)

    fails(check_sentence_attention, article, "article's bug")
    fails(check_sentence_attention, no_mask, "padding")
    fails(check_sentence_attention, wrong_sum, "dim=1")
    fails(check_sentence_attention, mean_context, "mean")
    fails(check_sentence_attention, transposed, "transposed")
    fails(check_sentence_attention, lambda s, h, m: s, "weights, context")


def test_bio_to_spans(capsys):
    check_bio_to_spans(entity_spans)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_bio_to_spans, stub, "not implemented")
    fails(check_bio_to_spans, lambda tags: [(k, a, b - 1) for k, a, b in entity_spans(tags)], "exclusive")
    fails(check_bio_to_spans, lambda tags: [s for s in entity_spans(tags) if tags[s[1]].startswith("B-")],
          "still starts one")

    def no_type_split(tags):
        spans, kind, start = [], None, 0
        for i, tag in enumerate([*tags, "O"]):
            if kind is not None and (tag == "O" or tag.startswith("B-")):
                spans.append((kind, start, i))
                kind = None
            if tag != "O" and kind is None:
                kind, start = tag[2:], i
        return spans

    def merge_b(tags):
        spans, kind, start = [], None, 0
        for i, tag in enumerate([*tags, "O"]):
            label = tag[2:] if tag != "O" else None
            if kind is not None and label != kind:
                spans.append((kind, start, i))
                kind = None
            if label is not None and kind is None:
                kind, start = label, i
        return spans

    fails(check_bio_to_spans, no_type_split, "another type")
    fails(check_bio_to_spans, merge_b, "always starts")
    fails(check_bio_to_spans, lambda tags: None, "list of")
    fails(check_bio_to_spans, lambda tags: [], "expected")


def test_article_output_shapes_hints_come_in_steps():
    from course_lib.checks.thinking import reset_hints

    reset_hints()
    for k in (1, 2, 3, 3):
        with pytest.raises(CheckFailed, match=f"batch(.|\n)*Hint {k} of 3"):
            check_article_output_shapes(lambda t, b, k: ((t, b, k), (b, t, k)))
    reset_hints()
