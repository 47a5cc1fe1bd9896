"""Checkers for lesson 10 (named entities): the shapes of the article's NERModel, its attention pooling with
the axis fixed, and reading entities out of BIO tags.

References: ``course_lib.data.entities.entity_spans`` (the conlleval reading of BIO, Tjong Kim Sang & De Meulder
2003, https://aclanthology.org/W03-0419/) and ``course_lib.attention.masked_softmax``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from course_lib.attention import masked_softmax
from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints
from course_lib.data.entities import entity_spans

__all__ = [
    "ArticleNERModel", "check_article_output_shapes", "reference_sentence_attention", "check_sentence_attention",
    "check_bio_to_spans",
]


class ArticleNERModel(nn.Module):
    """The tutorial article's NERModel as the issue describes it: softmax and weighted sum over axis 1.

    With nn.LSTM's default (T, B) layout axis 1 is the batch. Introduced in lesson 10.

    Args:
        vocab_size: number of token ids.
        embed_dim: embedding size.
        hidden_dim: LSTM units per direction.
        num_tags: number of tags K.
    """

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, num_tags: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, bidirectional=True)
        self.attention = nn.Linear(2 * hidden_dim, 1)
        self.fc = nn.Linear(2 * hidden_dim, num_tags)

    def forward(self, x: Tensor) -> Tensor:
        lstm_out, _ = self.lstm(self.embedding(x))  # (T, B, 2H) for (T, B) input
        weights = torch.softmax(self.attention(lstm_out), dim=1)  # (T, B, 1): normalised over axis 1
        context = torch.sum(weights * lstm_out, dim=1)  # (T, 2H): axis 1 summed away
        return self.fc(context)


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise CheckFailed(f"{name} must be a shape, a tuple of ints such as (3, 4), got {value!r}")


def check_article_output_shapes(fn: Callable[[int, int, int], Any]) -> None:
    """``fn(T, B, K) -> (shape for (T, B) input, shape for (B, T) input)`` of the article's NERModel output.

    Introduced in lesson 10.
    """
    require_callable(fn, "article_output_shapes")
    steps = StepHints("ner-article-shapes", [
        "write the shape under every line of forward: the embedding, the LSTM, the attention scores, the softmax "
        "(it keeps the shape), the weighted sum over dim=1, then fc",
        "nn.LSTM without batch_first reads axis 0 as time and axis 1 as the batch, whatever the tensor holds, and "
        "returns (axis 0, axis 1, 2H); torch.sum(..., dim=1) then removes axis 1",
        "(T, B) input: (T, B, 2H) -> the sum removes B -> (T, 2H) -> fc -> (T, K). (B, T) input: (B, T, 2H) -> the "
        "sum removes T -> (B, 2H) -> fc -> (B, K)",
    ])
    torch.manual_seed(0)
    for t, b, k in ((9, 4, 9), (5, 7, 3), (12, 2, 5)):
        model = ArticleNERModel(20, 6, 5, k).eval()
        ids = torch.randint(0, 20, (t, b))
        with torch.no_grad():
            tb, bt = tuple(model(ids).shape), tuple(model(ids.T).shape)
        got = call_learner(fn, t, b, k, name="article_output_shapes")
        if not isinstance(got, Sequence) or isinstance(got, str) or len(got) != 2:
            raise CheckFailed(f"article_output_shapes({t}, {b}, {k}) must return two shapes, got {got!r}")
        got_tb, got_bt = _shape(got[0], "the first shape"), _shape(got[1], "the second shape")
        case = f"T={t}, B={b}, K={k}"
        if got_tb != tb:
            hint = {
                (t, b, k): "that is what a tagger should return; here torch.sum(..., dim=1) removes axis 1, "
                           "which in the (T, B) layout is the batch",
                (b, t, k): "nn.LSTM without batch_first keeps (T, B); and the sum over dim 1 removes an axis",
                (b, k): "with (T, B) input axis 1 is the batch: summing it leaves one row per position, not "
                        "per sentence",
            }.get(got_tb, "run the shapes through by hand: embedding, LSTM (T, B, 2H), softmax, sum over dim=1")
            raise steps.fail(f"for (T, B) input on {case}, the output is not {got_tb}: {hint}.")
        if got_bt != bt:
            hint = {
                (b, t, k): "the LSTM does not know the layout changed: it reads axis 0 (the B sentences) as "
                           "time, and the sum over dim=1 then removes the T tokens",
                (t, k): "with (B, T) input the sum over dim=1 removes the tokens, so one row per sentence "
                        "is left",
            }.get(got_bt, "nn.LSTM treats axis 0 as time whatever it holds; then follow the sum over dim=1")
            raise steps.fail(f"for (B, T) input on {case}, the output is not {got_bt}: {hint}.")
    passed("article_output_shapes. Why: the sum over dim=1 removes axis 1, which in nn.LSTM's (T, B) layout is the "
           "batch: the article's model mixes the sentences of a batch and returns one vector per position")


def reference_sentence_attention(scores: Tensor, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The article's pooling with the axis fixed: softmax over time (axis 0), padding at exactly 0.

    ``scores`` (T, B, 1), ``states`` (T, B, D), ``mask`` (T, B) True on real tokens -> weights (T, B, 1),
    context (B, D). Introduced in lesson 10.
    """
    weights = masked_softmax(scores.squeeze(-1).T, mask=mask.T).T.unsqueeze(-1)  # (B, T) softmax -> (T, B, 1)
    return weights, (weights * states).sum(0)  # (B, D)


def check_sentence_attention(fn: Callable[[Tensor, Tensor, Tensor], Any]) -> None:
    """``fn(scores (T, B, 1), states (T, B, D), mask (T, B)) -> (weights (T, B, 1), context (B, D))``.

    Introduced in lesson 10.
    """
    require_callable(fn, "sentence_attention")
    gen = torch.Generator().manual_seed(3)
    for t, b, d in ((6, 3, 4), (5, 5, 2), (8, 2, 6)):
        scores, states = torch.randn(t, b, 1, generator=gen), torch.randn(t, b, d, generator=gen)
        lengths = torch.randint(1, t + 1, (b,), generator=gen)
        lengths[0] = t
        lengths[-1] = max(1, t // 2)
        mask = torch.arange(t)[:, None] < lengths[None, :]  # (T, B)
        case = f"scores {tuple(scores.shape)}, states {tuple(states.shape)}, lengths {lengths.tolist()}"
        got = call_learner(fn, scores.clone(), states.clone(), mask.clone(), name="sentence_attention")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailed(f"sentence_attention must return (weights, context), got {type(got).__name__}")
        weights, context = reference_sentence_attention(scores, states, mask)
        article = torch.softmax(scores, dim=1)
        unmasked = torch.softmax(scores, dim=0)
        w_mistakes = {
            "that is the article's bug: softmax over dim=1, the batch axis of the (T, B) layout; each "
            "sentence's weights must sum to 1 over its own tokens (dim=0)": article,
            "the padding mask is ignored: padded positions must get weight exactly 0": unmasked,
            "the weights are transposed: keep the (T, B, 1) layout of the scores": weights.transpose(0, 1),
        }
        compare(got[0], weights, "weights", case=case, mistakes=w_mistakes)
        c_mistakes = {
            "the context sums over dim=1 (the batch); sum over the tokens, dim=0": (weights * states).sum(1),
            "the context is a plain mean over the tokens: weight the states by the attention weights":
                states.mean(0),
        }
        compare(got[1], context, "context", case=case, mistakes=c_mistakes)
    passed("sentence_attention")


_BIO_CASES: list[list[str]] = [
    ["B-PER", "I-PER", "O", "B-LOC"],
    ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-DATE", "I-DATE"],
    ["B-PER", "B-PER", "I-PER", "O"],
    ["I-LOC", "I-LOC", "O", "B-PER"],
    ["B-PER", "I-LOC", "I-LOC", "O"],
    ["O", "O", "O"],
    ["B-DATE"],
    ["B-ORG", "I-ORG", "B-ORG", "O", "I-PER"],
]


def _spans_inclusive(tags: list[str]) -> list[tuple[str, int, int]]:
    return [(k, a, b - 1) for k, a, b in entity_spans(tags)]


def _spans_strict(tags: list[str]) -> list[tuple[str, int, int]]:
    """A reading that drops entities not opened by B- (IOB2 strict)."""
    return [(k, a, b) for k, a, b in entity_spans(tags) if tags[a].startswith("B-")]


def _spans_no_type_split(tags: list[str]) -> list[tuple[str, int, int]]:
    """A reading that lets I-X continue an entity of another type."""
    spans, kind, start = [], None, 0
    for i, tag in enumerate([*tags, "O"]):
        if kind is not None and (tag == "O" or tag.startswith("B-")):
            spans.append((kind, start, i))
            kind = None
        if tag != "O" and kind is None:
            kind, start = tag[2:], i
    return spans


def _spans_merge_b(tags: list[str]) -> list[tuple[str, int, int]]:
    """A reading where B- after an entity of the same type continues it."""
    spans, kind, start = [], None, 0
    for i, tag in enumerate([*tags, "O"]):
        label = tag[2:] if tag != "O" else None
        if kind is not None and label != kind:
            spans.append((kind, start, i))
            kind = None
        if label is not None and kind is None:
            kind, start = label, i
    return spans


def check_bio_to_spans(fn: Callable[[list[str]], Any]) -> None:
    """``fn(tags) -> [(type, start, end), ...]``, ``end`` exclusive, as seqeval's default mode reads BIO.

    Introduced in lesson 10.
    """
    require_callable(fn, "bio_to_spans")
    wrong = {
        "the end must be exclusive (one past the last token), as in Python slices": _spans_inclusive,
        "an I- tag that does not follow its entity still starts one (seqeval's default, conlleval)": _spans_strict,
        "an I- tag of another type ends the entity and starts a new one": _spans_no_type_split,
        "a B- tag always starts a new entity, even right after one of the same type": _spans_merge_b,
    }
    for tags in _BIO_CASES:
        got = call_learner(fn, list(tags), name="bio_to_spans")
        try:
            got_list = [(str(k), int(a), int(b)) for k, a, b in got]
        except (TypeError, ValueError):
            raise CheckFailed(f"bio_to_spans({tags}) must return a list of (type, start, end) tuples, "
                              f"got {got!r}") from None
        expected = entity_spans(tags)
        if got_list == expected:
            continue
        for hint, mistake in wrong.items():
            if got_list == mistake(list(tags)):
                raise CheckFailed(f"bio_to_spans({tags}) gave {got_list}, expected {expected}. Hint: {hint}")
        raise CheckFailed(f"bio_to_spans({tags}) gave {got_list}, expected {expected}")
    passed("bio_to_spans")
