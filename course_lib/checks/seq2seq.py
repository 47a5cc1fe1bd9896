"""Checkers for lessons 07-09 (sequence to sequence): encoder padding, greedy decoding, accuracy by length,
the attention step of the decoder, Luong scores, decoder masks and teacher-forcing inputs.

References live in ``course_lib.seq2seq`` (Cho et al. 2014, https://arxiv.org/abs/1406.1078; Bahdanau et
al. 2015, https://arxiv.org/abs/1409.0473; Luong et al. 2015, https://arxiv.org/abs/1508.04025; Vaswani et
al. 2017, https://arxiv.org/abs/1706.03762).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from course_lib.attention import AdditiveScores, causal_mask, lengths_to_mask, masked_softmax
from course_lib.checks.core import CheckFailed, budget, call_learner, compare, passed, require_callable
from course_lib.seq2seq import (
    LENGTH_BUCKETS,
    accuracy_by_length,
    cross_attention_mask,
    decoder_self_mask,
    last_valid_state,
    shift_right,
)

__all__ = [
    "check_last_valid_state", "check_greedy_search", "check_accuracy_by_length",
    "reference_additive_attention_step", "check_additive_attention_step",
    "reference_general_scores", "check_general_scores",
    "check_decoder_self_mask", "check_shift_right", "check_cross_attention_mask",
]


def _compare(got: Any, expected: Tensor, name: str, case: str, mistakes: Mapping[str, Tensor] | None = None,
             exact: bool = False) -> None:
    """``compare`` that also names a known mistake when it changes the shape, and compares exactly when asked."""
    mistakes = mistakes or {}
    if isinstance(got, Tensor) and got.shape != expected.shape:
        for hint, wrong in mistakes.items():
            if wrong.shape == got.shape and torch.equal(got.detach().to(wrong.dtype), wrong):
                raise CheckFailed(f"{name} on {case} is wrong (shape {tuple(got.shape)}, expected "
                                  f"{tuple(expected.shape)}). Hint: {hint}")
    if exact:
        if not isinstance(got, Tensor):
            raise CheckFailed(f"{name} should return a tensor, got {type(got).__name__}")
        if got.shape != expected.shape:
            raise CheckFailed(f"{name} on {case}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
        if got.dtype != expected.dtype:
            raise CheckFailed(f"{name} on {case}: expected dtype {expected.dtype}, got {got.dtype}")
        if torch.equal(got, expected):
            return
        for hint, wrong in mistakes.items():
            if wrong.shape == got.shape and torch.equal(got, wrong.to(got.dtype)):
                raise CheckFailed(f"{name} on {case} is wrong. Hint: {hint}")
        raise CheckFailed(f"{name} on {case} is wrong.\nexpected:\n{expected}\ngot:\n{got}")
    compare(got, expected, name, case=case, mistakes=mistakes)


# --------------------------------------------------------------------------------------------------
# Lesson 07: the encoder's final state under padding, greedy decoding, accuracy by length
# --------------------------------------------------------------------------------------------------
def check_last_valid_state(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(outputs (B, S, H), lens (B,)) -> (B, H)``: each row's output at its last real token.

    Introduced in lesson 07.
    """
    require_callable(fn, "last_valid_state")
    gen = torch.Generator().manual_seed(7)
    for batch, s, h in ((4, 6, 3), (5, 9, 8), (1, 4, 2)):
        outputs = torch.randn(batch, s, h, generator=gen)
        lens = torch.randint(1, s + 1, (batch,), generator=gen)
        lens[0] = s  # one full-length row, one length-1 row
        if batch > 1:
            lens[-1] = 1
        case = f"outputs {tuple(outputs.shape)}, lens {lens.tolist()}"
        got = call_learner(fn, outputs.clone(), lens.clone(), name="last_valid_state")
        mistakes = {
            "outputs[:, -1] is the state after the padding too: take position lens[b] - 1 of each row":
                outputs[:, -1],
            "off by one: the last real token of a row of length L sits at index L - 1":
                outputs[torch.arange(batch), lens.clamp(max=s - 1)],
            "that is the mean over the real tokens; the decoder needs the final state": torch.stack(
                [outputs[b, : int(lens[b])].mean(0) for b in range(batch)]),
            "outputs[:, lens - 1] picks every row's index for every sentence: index the batch too, "
            "outputs[torch.arange(B), lens - 1]": outputs[:, lens - 1],
        }
        _compare(got, last_valid_state(outputs, lens), "last_valid_state", case, mistakes)
    passed("last_valid_state")


class _ScriptedStep:
    """A fake decoder: row b emits script[b][t] at its t-th step, whatever it is fed, and records its inputs."""

    def __init__(self, script: Sequence[Sequence[int]], vocab: int, feed_check: bool) -> None:
        self.script = [list(r) for r in script]
        self.vocab = vocab
        self.fed: list[list[int]] = []
        self.feed_check = feed_check

    def __call__(self, prev: Tensor, state: Any) -> tuple[Tensor, Any]:
        if not isinstance(prev, Tensor) or prev.dim() != 1 or prev.shape[0] != len(self.script):
            raise CheckFailed(f"step must be called with the previous tokens as a (B,) = ({len(self.script)},) "
                              f"tensor, got {prev!r}")
        t = int(state)
        self.fed.append(prev.tolist())
        logits = torch.zeros(len(self.script), self.vocab)
        for b, row in enumerate(self.script):
            token = row[t] if t < len(row) else row[-1]
            if self.feed_check and t > 0:
                # The right token only wins if the previous argmax was fed back in.
                token = token if int(prev[b]) == (row[t - 1] if t - 1 < len(row) else row[-1]) else 3
            logits[b, token] = 5.0
        return logits, t + 1


def _expected_greedy(script: Sequence[Sequence[int]], eos: int, pad: int, max_len: int) -> Tensor:
    rows = []
    for row in script:
        out = []
        for t in range(max_len):
            token = row[t] if t < len(row) else row[-1]
            out.append(token)
            if token == eos:
                break
        rows.append(out)
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def check_greedy_search(fn: Callable[..., Tensor]) -> None:
    """``fn(step, state, batch_size, bos_id, eos_id, max_len, pad_id)``: argmax fed back; stop at <eos>.

    Introduced in lesson 07.
    """
    require_callable(fn, "greedy_search")
    bos, eos, pad, vocab = 1, 2, 0, 10
    cases = [
        ("rows that end at different steps", [[5, 6, 2], [7, 2], [4, 4, 8, 9, 2]], 10),
        ("a row that never emits <eos> (stop at max_len)", [[5, 6, 7, 8, 9, 5, 6, 7], [4, 2]], 5),
        ("one row", [[9, 8, 2]], 6),
    ]
    for label, script, max_len in cases:
        expected = _expected_greedy(script, eos, pad, max_len)
        step = _ScriptedStep(script, vocab, feed_check=True)
        bounded = budget(step, max_len, f"greedy_search on {label} called step more than max_len = {max_len} "
                         f"times, so the check stopped it. Hint: the loop must end after max_len steps even when "
                         f"a row never emits <eos> (for t in range(max_len), not while not finished.all())")
        got = call_learner(fn, bounded, 0, len(script), bos, eos, max_len, pad, name="greedy_search")
        if not step.fed or step.fed[0] != [bos] * len(script):
            raise CheckFailed(f"greedy_search on {label}: the first call to step must be fed <bos> (id {bos}) "
                              f"for every row, got {step.fed[0] if step.fed else 'no call at all'}")
        # What typical mistakes produce on the same case.
        out_lens = [int((r != pad).sum()) for r in expected]
        beyond = torch.arange(expected.shape[1])[None, :] >= torch.tensor(out_lens)[:, None]
        always_bos = torch.full((len(script), max_len), 3)
        always_bos[:, 0] = torch.tensor([r[0] for r in script])
        mistakes = {
            "after a row has emitted <eos>, fill it with pad_id (masked_fill with the finished rows)":
                expected.masked_fill(beyond, eos),
            "keep the <eos> token itself in the output": expected.masked_fill(expected == eos, pad),
            "stop only when *every* row has finished, not the first one": expected[:, : min(out_lens)],
            "feed each step's argmax back in as the next input (not <bos> again)": always_bos,
        }
        _compare(got, expected, "greedy_search", label, mistakes, exact=False)
        if isinstance(got, Tensor) and got.dtype not in (torch.int64, torch.int32):
            raise CheckFailed(f"greedy_search should return token ids (a long tensor), got dtype {got.dtype}")
    passed("greedy_search")


def check_accuracy_by_length(fn: Callable[..., Sequence[float]]) -> None:
    """``fn(lengths, correct, buckets) -> [accuracy per bucket]`` (nan for an empty bucket). Introduced in lesson 07."""
    require_callable(fn, "accuracy_by_length")
    gen = torch.Generator().manual_seed(3)
    for n, buckets in ((40, LENGTH_BUCKETS), (25, ((1, 2), (3, 5), (6, 30))), (6, ((1, 3), (4, 6), (50, 60)))):
        lengths = torch.randint(1, 21, (n,), generator=gen).tolist()
        correct = (torch.rand(n, generator=gen) < 0.6).tolist()
        case = f"{n} sentences, buckets {list(buckets)}"
        expected = torch.tensor([r["accuracy"] for r in accuracy_by_length(lengths, correct, buckets)],
                                dtype=torch.float64)
        got = call_learner(fn, list(lengths), list(correct), tuple(buckets), name="accuracy_by_length")
        try:
            got_t = torch.tensor([float(x) for x in got], dtype=torch.float64)
        except Exception:
            raise CheckFailed(f"accuracy_by_length should return a list of floats, got {got!r}") from None
        if got_t.shape != expected.shape:
            raise CheckFailed(f"accuracy_by_length on {case}: expected {len(expected)} accuracies (one per "
                              f"bucket), got {len(got_t)}")
        empty = torch.isnan(expected)
        if not torch.equal(torch.isnan(got_t), empty):
            raise CheckFailed(f"accuracy_by_length on {case}: an empty bucket has no accuracy: return "
                              f"float('nan') for it, and a number for the others (got {got_t.tolist()})")
        pairs = list(zip(lengths, correct, strict=True))
        exclusive = torch.tensor([sum(c for n, c in pairs if lo <= n < hi) / max(1, sum(lo <= n < hi for n in lengths))
                                  for lo, hi in buckets], dtype=torch.float64)
        counts = torch.tensor([sum(c for n, c in pairs if lo <= n <= hi) for lo, hi in buckets], dtype=torch.float64)
        mistakes = {
            "a bucket (low, high) includes both ends: low <= length <= high": exclusive,
            "divide the number correct by the number of sentences in the bucket": counts,
            "divide by the size of the bucket, not by the whole test set": counts / n,
        }
        filled = torch.where(empty, 0.0, expected)
        _compare(torch.where(empty, 0.0, got_t), filled, "accuracy_by_length", case,
                 {k: torch.where(empty, 0.0, v) for k, v in mistakes.items()})
    passed("accuracy_by_length")


# --------------------------------------------------------------------------------------------------
# Lesson 08: the additive attention step of the decoder, Luong's "general" scores
# --------------------------------------------------------------------------------------------------
def reference_additive_attention_step(scorer: AdditiveScores, query: Tensor, keys: Tensor, mask: Tensor
                                      ) -> tuple[Tensor, Tensor]:
    """query (B, H), keys (B, S, H), mask (B, S) -> context (B, H), weights (B, S). Introduced in lesson 08."""
    scores = scorer(query[:, None, :], keys).squeeze(1)  # (B, S)
    weights = masked_softmax(scores, mask=mask)  # (B, S)
    return (weights[:, None, :] @ keys).squeeze(1), weights  # (B, H), (B, S)


def check_additive_attention_step(fn: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """``fn(scorer, query, keys, mask) -> (context, weights)`` for one decoder step. Introduced in lesson 08."""
    require_callable(fn, "attention_step")
    torch.manual_seed(11)
    for batch, s, h in ((3, 5, 4), (2, 7, 6), (4, 3, 8), (1, 4, 5)):  # the last: a batch of one
        scorer = AdditiveScores(h, h, 5)
        query, keys = torch.randn(batch, h), torch.randn(batch, s, h)
        lens = torch.randint(1, s + 1, (batch,))
        lens[0] = s
        lens[-1] = 1
        mask = lengths_to_mask(lens, s)
        case = f"query {tuple(query.shape)}, keys {tuple(keys.shape)}, lengths {lens.tolist()}"
        with torch.no_grad():
            context, weights = reference_additive_attention_step(scorer, query, keys, mask)
            got = call_learner(fn, scorer, query.clone(), keys.clone(), mask.clone(), name="attention_step")
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                raise CheckFailed("attention_step must return a pair (context, weights)")
            scores = scorer(query[:, None, :], keys).squeeze(1)
            unmasked = torch.softmax(scores, dim=-1)
            wrong_axis = masked_softmax(scores.T, mask=mask.T).T if batch > 1 else weights * 0
            weight_mistakes = {
                "the padding mask is ignored: padded positions get weight (use masked_softmax(scores, mask=mask))":
                    unmasked,
                "softmax over the batch axis: normalise over the source positions (the last axis)": wrong_axis,
                "those are the raw scores: normalise them with a masked softmax": scores.masked_fill(~mask, 0.0),
            }
            _compare(got[1], weights, "weights", case, weight_mistakes)
            context_mistakes = {
                "the context weighs the keys (encoder states) by the weights: (weights[:, None, :] @ keys)":
                    keys.mean(dim=1),
                "the context must use the masked weights": (unmasked[:, None, :] @ keys).squeeze(1),
            }
            _compare(got[0], context, "context", case, context_mistakes)
    passed("attention_step")


def reference_general_scores(query: Tensor, keys: Tensor, weight: Tensor) -> Tensor:
    """Luong's "general" score: query (B, H_q), keys (B, S, H_k), weight (H_q, H_k) -> (B, S) = q W k^T.

    Introduced in lesson 08.
    """
    return ((query @ weight)[:, None, :] @ keys.transpose(1, 2)).squeeze(1)


def check_general_scores(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``fn(query (B, H_q), keys (B, S, H_k), weight (H_q, H_k)) -> (B, S)``. Introduced in lesson 08."""
    require_callable(fn, "general_scores")
    gen = torch.Generator().manual_seed(5)
    for batch, s, hq, hk in ((3, 5, 4, 4), (2, 6, 3, 5), (4, 2, 6, 2), (1, 4, 3, 5)):  # the last: a batch of one
        query, keys = torch.randn(batch, hq, generator=gen), torch.randn(batch, s, hk, generator=gen)
        weight = torch.randn(hq, hk, generator=gen)
        case = f"query {tuple(query.shape)}, keys {tuple(keys.shape)}, weight {tuple(weight.shape)}"
        got = call_learner(fn, query.clone(), keys.clone(), weight.clone(), name="general_scores")
        expected = reference_general_scores(query, keys, weight)
        mistakes = {"divide by sqrt(d) only for scaled dot product; Luong's general score is q W k^T":
                    expected / math.sqrt(hk)}
        if hq == hk:
            mistakes["W is used transposed: the score is q W k^T with W of shape (H_q, H_k)"] = \
                reference_general_scores(query, keys, weight.T)
            mistakes["the weight matrix is missing: that is the plain dot score q k^T"] = \
                (query[:, None, :] @ keys.transpose(1, 2)).squeeze(1)
        _compare(got, expected, "general_scores", case, mistakes)
    passed("general_scores")


# --------------------------------------------------------------------------------------------------
# Lesson 09: decoder masks and teacher-forcing inputs
# --------------------------------------------------------------------------------------------------
def check_decoder_self_mask(fn: Callable[[Tensor, int], Tensor]) -> None:
    """``fn(tgt_lens (B,), t) -> (B, t, t)`` bool: causal and not attending to padding. Introduced in lesson 09."""
    require_callable(fn, "decoder_self_mask")
    for lens, t in (([3, 5, 1], 5), ([2, 2], 4), ([6], 6)):
        lens_t = torch.tensor(lens)
        case = f"tgt_lens {lens}, t = {t}"
        got = call_learner(fn, lens_t.clone(), t, name="decoder_self_mask")
        expected = decoder_self_mask(lens_t, t)
        causal = causal_mask(t)[None].expand(len(lens), -1, -1)
        padding = lengths_to_mask(lens_t, t)[:, None, :].expand(-1, t, -1)
        mistakes = {
            "the padding is not masked: combine the causal mask with the key-padding mask (&)": causal,
            "the future is not masked: combine with causal_mask(t) (True on and below the diagonal)": padding,
            "the causal part is transposed: query i may see keys j <= i (lower triangle, tril)":
                causal.transpose(1, 2) & padding,
            "True means 'may attend' in this course: the mask is inverted": ~expected,
        }
        if isinstance(got, Tensor) and got.dtype != torch.bool:
            raise CheckFailed(f"decoder_self_mask must return a boolean mask (True = may attend), got {got.dtype}")
        _compare(got, expected, "decoder_self_mask", case, mistakes, exact=True)
    passed("decoder_self_mask")


def check_shift_right(fn: Callable[[Tensor, int, int], Tensor]) -> None:
    """``fn(tgt_out (B, T), bos_id, eos_id) -> tgt_in (B, T)``: the decoder's input under teacher forcing.

    Introduced in lesson 09.
    """
    require_callable(fn, "shift_right")
    bos, eos = 1, 2
    for rows in ([[5, 6, 7, 2], [8, 2, 0, 0]], [[4, 2, 0], [9, 9, 2], [3, 2, 0]], [[7, 5, 2]]):
        tgt_out = torch.tensor(rows)
        case = f"tgt_out {rows}"
        got = call_learner(fn, tgt_out.clone(), bos, eos, name="shift_right")
        expected = shift_right(tgt_out, bos, eos)
        keep_eos = torch.cat([torch.full_like(tgt_out[:, :1], bos), tgt_out[:, :-1]], dim=1)
        mistakes = {
            "<eos> is never an input: it is the last thing the decoder predicts, so turn it into padding":
                keep_eos,
            "the first input is <bos>; shift the targets one step to the right": tgt_out,
            "the decoder may not be fed the token it must predict: shift right (prepend <bos>, drop the last)":
                torch.cat([tgt_out[:, 1:], torch.zeros_like(tgt_out[:, :1])], dim=1),
        }
        _compare(got, expected, "shift_right", case, mistakes, exact=True)
    passed("shift_right")


def check_cross_attention_mask(fn: Callable[[Tensor, int, int], Tensor]) -> None:
    """``fn(src_lens (B,), t_q, s) -> (B, t_q, s)`` bool: every decoder position sees the real source tokens.

    Introduced in lesson 09.
    """
    require_callable(fn, "cross_attention_mask")
    for lens, t_q, s in (([3, 5, 1], 4, 5), ([2, 6], 6, 6), ([4], 2, 7)):
        lens_t = torch.tensor(lens)
        case = f"src_lens {lens}, t_q = {t_q}, s = {s}"
        got = call_learner(fn, lens_t.clone(), t_q, s, name="cross_attention_mask")
        expected = cross_attention_mask(lens_t, t_q, s)
        mistakes = {
            "cross-attention is not causal: a target position may look at every real source token":
                expected & causal_mask(t_q, s)[None],
            "True means 'may attend' in this course: the mask is inverted": ~expected,
            "the mask must cover the source positions (keys), one row per target position (query)":
                torch.ones_like(expected),
        }
        if isinstance(got, Tensor) and got.dtype != torch.bool:
            raise CheckFailed(f"cross_attention_mask must return a boolean mask, got {got.dtype}")
        _compare(got, expected, "cross_attention_mask", case, mistakes, exact=True)
    passed("cross_attention_mask")
