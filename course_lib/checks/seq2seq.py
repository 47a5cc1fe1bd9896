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
from torch import Tensor, nn

from course_lib.attention import AdditiveScores, causal_mask, lengths_to_mask, masked_softmax
from course_lib.checks.core import CheckFailed, budget, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_choice, check_shape
from course_lib.seq2seq import (
    LENGTH_BUCKETS,
    RECIPE,
    AttentionSeq2Seq,
    GRUSeq2Seq,
    accuracy_by_length,
    attention_step,
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
    "BOTTLENECK_SETTING", "BOTTLENECK_OPTIONS", "check_bottleneck_predictions",
    "ArticleStyleAttention", "ARTICLE_OUTCOME_OPTIONS", "ARTICLE_AXIS_OPTIONS", "check_article_predictions",
    "reference_fixed_article_attention", "check_fixed_article_attention",
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


# --------------------------------------------------------------------------------------------------
# Lesson 07, exercise 4: predict the size of the context, and choose the change that removes the bottleneck
# --------------------------------------------------------------------------------------------------
#: The setting of lesson 07's exercise 4: a batch of two 20-word sentences, the lesson's recipe sizes.
BOTTLENECK_SETTING: dict[str, int] = {"batch": 2, "source_length": 20, "embed_dim": int(RECIPE["embed_dim"]),
                                      "hidden_dim": int(RECIPE["hidden_dim"])}

#: The options of lesson 07's exercise 4 (ii): which change makes what the decoder reads grow with the source.
BOTTLENECK_OPTIONS: dict[str, str] = {
    "a": "double the hidden size (hidden_dim 128 instead of 64)",
    "b": "feed the source sentence reversed (Sutskever et al. 2014)",
    "c": "let every decoder step read all the encoder states, weighted by attention (lesson 08)",
    "d": "train twice as many steps",
}

_VOCAB = 40  # any vocabulary size: the shapes below do not depend on it


def _source(length: int, batch: int, seed: int = 71) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, _VOCAB, (batch, length), generator=g), torch.full((batch,), length)


def _state_size(model: Any, length: int, reverse: bool = False) -> int:
    """Numbers the decoder is handed about a batch of sources of ``length`` tokens: all of ``start``'s tensors."""
    src, lens = _source(length, BOTTLENECK_SETTING["batch"])
    with torch.no_grad():
        state = model.start(src.flip(1) if reverse else src, lens)
    return sum(int(v.numel()) for v in state.values() if isinstance(v, Tensor) and v.is_floating_point())


def _bottleneck_truth() -> tuple[tuple[int, ...], str, dict[str, tuple[int, int]]]:
    """The context's shape for the setting, and the one option whose decoder state grows with the source length."""
    s = BOTTLENECK_SETTING
    e, h = s["embed_dim"], s["hidden_dim"]
    with torch.random.fork_rng():  # building the models draws random weights: leave the learner's RNG alone
        torch.manual_seed(0)
        plain = GRUSeq2Seq(_VOCAB, _VOCAB, e, h).eval()
        models: dict[str, tuple[Any, bool]] = {"a": (GRUSeq2Seq(_VOCAB, _VOCAB, e, 2 * h).eval(), False),
                                               "b": (plain, True),
                                               "c": (AttentionSeq2Seq(_VOCAB, _VOCAB, e, h).eval(), False),
                                               "d": (plain, False)}  # training changes values, not sizes
        src, lens = _source(s["source_length"], s["batch"])
        with torch.no_grad():
            context_shape = tuple(plain.start(src, lens)["context"].shape)
        sizes = {key: (_state_size(m, 5, rev), _state_size(m, s["source_length"], rev))
                 for key, (m, rev) in models.items()}
    growing = [key for key, (short, long) in sizes.items() if long > short]
    if len(growing) != 1:
        raise RuntimeError(f"expected exactly one option whose decoder state grows with the source, got {sizes}")
    return context_shape, growing[0], sizes


def check_bottleneck_predictions(context_shape_long: object, remedy: object) -> None:
    """Check a prediction and a design choice for lesson 07: the shape of the context vector for a batch of long
    sentences, and which change (a letter of ``BOTTLENECK_OPTIONS``) makes the decoder's view of the source grow
    with its length. The truth comes from building the models and running their ``start``. Introduced in lesson 07.
    """
    context_shape, growing, sizes = _bottleneck_truth()
    s = BOTTLENECK_SETTING
    b, t, h = s["batch"], s["source_length"], s["hidden_dim"]
    check_shape(
        context_shape_long, "context_shape_long", context_shape,
        StepHints("07-context-shape", [
            "the encoder makes one state per source position, (B, S, H); which of them does lesson 07's decoder get?",
            "Cho et al.'s context is the encoder's state at the last real token: one vector of the hidden size per "
            "sentence, whatever the sentence's length",
        ]),
        why=f"the context is the encoder's last state, one vector of {h} numbers per sentence: {context_shape} for "
            f"20 words, and the same for 3 words. Everything the decoder learns about the source passes through it",
        mistakes={"that is the encoder's output at every position; the decoder of lesson 07 only gets the last "
                  "one": (b, t, h),
                  "that is nn.GRU's (num_layers, B, H) layout; course_lib's encoder returns the batch-first "
                  "(B, H)": (1, b, h),
                  "the context does not grow with the sentence: it has no length axis": (t, h),
                  "there is one context per sentence in the batch: keep the batch axis": (h,)},
    )
    check_choice(
        remedy, "remedy", BOTTLENECK_OPTIONS, growing,
        StepHints("07-remedy", [
            "for each change, ask: with a 20-word source, does the decoder get more numbers than with a 5-word "
            "source?",
            "a bigger or better-trained vector is still one vector of a fixed size; only a decoder that can read "
            "every encoder state gets more to read from a longer sentence",
        ]),
        why="with attention the decoder reads all S encoder states at every step, so what it can see grows with "
            f"the sentence (the decoder's starting state: {sizes[growing][0]:,} numbers for a batch of 5-word "
            f"sources, {sizes[growing][1]:,} for 20 words); each of the other changes keeps one fixed-size vector "
            f"({sizes['a'][0]:,} numbers for both lengths with hidden size 128). Lesson 08 measures what that does "
            f"to accuracy by length",
        wrong={"a": "a bigger vector holds more, but it is still the same size for 3 words and for 20: the "
                    "bottleneck moves, it does not go away.",
               "b": "reversing changes which words the last state remembers best (Sutskever et al. found it "
                    "helped), but the decoder still gets one fixed-size vector.",
               "d": "training changes the numbers in the context vector, not how many there are."},
    )


# --------------------------------------------------------------------------------------------------
# Lesson 08, exercises 3 and 4: an attention layer written the way the tutorial article writes its classes
# --------------------------------------------------------------------------------------------------
# The article's AttentionSeq2Seq is not available to the course. ArticleStyleAttention reconstructs the kind of
# fault its other classes show (lessons 10 and 11), in PyTorch's default (T, B, H) layout: the decoder state
# (1, B, H) is concatenated with the encoder outputs (T, B, H), which fails for T > 1; the softmax and the weighted
# sum run over axis 1, which is the batch; there is no padding mask. (The lesson prints the class's source, so its
# own docstring must not give the answers away.)
class ArticleStyleAttention(nn.Module):
    """Attention in the style of the tutorial article: the course's reconstruction, not the article's code.

    Introduced in lesson 08.

    Args:
        hidden_dim: size H of the decoder state and of each encoder output.
    """

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.attn = nn.Linear(2 * hidden_dim, 1)

    def forward(self, hidden: Tensor, encoder_outputs: Tensor) -> tuple[Tensor, Tensor]:
        # hidden (1, B, H): the decoder GRU's state; encoder_outputs (T, B, H)
        energy = self.attn(torch.cat((hidden, encoder_outputs), dim=2))  # [s; h_j] -> one score per position
        weights = torch.softmax(energy, dim=1)
        context = torch.sum(weights * encoder_outputs, dim=1)
        return context, weights


#: Lesson 08, exercise 3 (i): what ArticleStyleAttention does on T = 5 source positions and B = 3 sentences.
ARTICLE_OUTCOME_OPTIONS: dict[str, str] = {
    "a": "it runs and returns a context of shape (1, B, H), one per sentence",
    "b": "torch.cat raises a RuntimeError: (1, B, H) and (T, B, H) differ in axis 0",
    "c": "it runs and returns weights that sum to 1 over the T source positions",
    "d": "it runs, but the weights are not normalised (no softmax is taken)",
}

#: Lesson 08, exercise 3 (ii): with a one-token source (T = 1), over what do the weights sum to 1?
ARTICLE_AXIS_OPTIONS: dict[str, str] = {
    "a": "over the source positions (axis 0)",
    "b": "over the sentences of the batch (axis 1)",
    "c": "over the hidden features (axis 2)",
    "d": "over nothing: they do not sum to 1",
}


def _article_module(hidden_dim: int, cls: Callable[[int], Any] = ArticleStyleAttention, seed: int = 81) -> Any:
    with torch.random.fork_rng():  # the module's random initial weights must not move the learner's RNG
        torch.manual_seed(seed)
        module = cls(hidden_dim)
    return module.eval() if isinstance(module, nn.Module) else module


def _nan_mistake(got: Any, mistakes: Mapping[str, Tensor]) -> str | None:
    """The hint of a mistake that gives NaN in the same places as ``got`` and agrees with it elsewhere."""
    if not isinstance(got, Tensor) or not got.is_floating_point() or not bool(torch.isnan(got).any()):
        return None
    for hint, wrong in mistakes.items():
        if wrong.shape == got.shape and torch.equal(torch.isnan(wrong), torch.isnan(got)):
            keep = ~torch.isnan(got)
            if torch.allclose(got.detach()[keep].to(wrong.dtype), wrong[keep], atol=1e-5, rtol=1e-4):
                return hint
    return None


def _article_outcome() -> str:
    """Run ArticleStyleAttention on T = 5, B = 3 and say which option describes what happened."""
    g = torch.Generator().manual_seed(82)
    module = _article_module(4)
    hidden, outputs = torch.randn(1, 3, 4, generator=g), torch.randn(5, 3, 4, generator=g)
    try:
        with torch.no_grad():
            context, weights = module(hidden, outputs)
    except RuntimeError as err:
        if "Sizes of tensors must match" in str(err):
            return "b"
        raise
    if torch.allclose(weights.sum(0), torch.ones(())):
        return "c"
    return "a" if tuple(context.shape) == (1, 3, 4) else "d"


def _article_axis() -> str:
    """Run ArticleStyleAttention on a one-token source and find the axis its weights sum to 1 over."""
    g = torch.Generator().manual_seed(83)
    module = _article_module(4)
    with torch.no_grad():
        _, weights = module(torch.randn(1, 3, 4, generator=g), torch.randn(1, 3, 4, generator=g))
    axes = [axis for axis in range(3) if torch.allclose(weights.sum(axis), torch.ones(()), atol=1e-6)]
    if len(axes) != 1:
        return "d"
    return "abc"[axes[0]]


def check_article_predictions(outcome_long_source: object, one_token_sums_over: object) -> None:
    """Check two predictions about ``ArticleStyleAttention`` (letters of ``ARTICLE_OUTCOME_OPTIONS`` and
    ``ARTICLE_AXIS_OPTIONS``); the truth comes from running it. Introduced in lesson 08.
    """
    check_choice(
        outcome_long_source, "outcome_long_source", ARTICLE_OUTCOME_OPTIONS, _article_outcome(),
        StepHints("08-article-outcome", [
            "before the softmax: what are the shapes of the two tensors given to torch.cat, and along which axis "
            "does it join them?",
            "torch.cat((a, b), dim=2) needs a and b to agree on every axis except 2; hidden is (1, B, H) and "
            "encoder_outputs (T, B, H)",
        ]),
        why="torch.cat along axis 2 needs the other axes to agree, and axis 0 is 1 for the state but T for the "
            "encoder outputs: the class fails on every source longer than one token (lesson 11's "
            "TextSummarization fails the same way)",
        wrong={"a": "it never gets that far: look at the first line of forward and the shapes it joins.",
               "c": "it never gets to the softmax; and when it does (T = 1), axis 1 is not the source axis.",
               "d": "there is a softmax; the failure comes before it."},
    )
    check_choice(
        one_token_sums_over, "one_token_sums_over", ARTICLE_AXIS_OPTIONS, _article_axis(),
        StepHints("08-article-axis", [
            "in the (T, B, H) layout, what does axis 1 index?",
            "nn.GRU without batch_first=True puts the batch on axis 1: softmax(energy, dim=1) shares one unit of "
            "weight among the sentences of the batch",
        ]),
        why="in the (T, B, H) layout axis 1 is the batch: the softmax shares the weight among the sentences, so a "
            "sentence's weight depends on the other sentences in its batch, and the sum over axis 1 mixes them "
            "(the bug of lesson 10's NERModel)",
        wrong={"a": "that would be dim=0; the class normalises over dim=1, which is the batch in the (T, B, H) layout.",
               "c": "the energy has one score per position and sentence: axis 2 has size 1.",
               "d": "a softmax always sums to 1 over the axis it runs over; which axis is that here?"},
    )


def reference_fixed_article_attention(attn: nn.Linear, hidden: Tensor, encoder_outputs: Tensor, mask: Tensor
                                      ) -> tuple[Tensor, Tensor]:
    """ArticleStyleAttention fixed: (1, B, H), (T, B, H), mask (T, B) True = real -> context (1, B, H), weights (T, B).

    The state is repeated along the source, and the masked softmax and the weighted sum run over the source
    positions, by ``course_lib.seq2seq.attention_step`` (batch first inside). Introduced in lesson 08.
    """
    length = encoder_outputs.shape[0]
    energy = attn(torch.cat((hidden.expand(length, -1, -1), encoder_outputs), dim=2)).squeeze(-1)  # (T, B)
    context, weights = attention_step(energy.T, encoder_outputs.transpose(0, 1), mask.T)  # (B, H), (B, T)
    return context[None], weights.T


def _article_mistakes(attn: nn.Linear, hidden: Tensor, outputs: Tensor, mask: Tensor
                      ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(weights mistakes, context mistakes) that typical wrong fixes produce on one case."""
    length = outputs.shape[0]
    energy = attn(torch.cat((hidden.expand(length, -1, -1), outputs), dim=2)).squeeze(-1)  # (T, B)
    swapped = attn(torch.cat((outputs, hidden.expand(length, -1, -1)), dim=2)).squeeze(-1)
    neg = float("-inf")
    variants = {
        "the softmax still runs over axis 1, the batch: in the (T, B) layout the source positions are axis 0":
            torch.softmax(energy.masked_fill(~mask, neg), dim=1),
        "padding is not masked: the softmax over the source gives weight to <pad> positions; set their scores "
        "to -inf (mask False) before it": torch.softmax(energy, dim=0),
        "the mask is applied after the softmax without renormalising: the weights of a padded sentence no longer "
        "sum to 1; mask the scores before the softmax": torch.softmax(energy, dim=0) * mask,
        "the mask is flipped: True means a real token, so fill the scores where the mask is False":
            torch.softmax(energy.masked_fill(mask, neg), dim=0),
        "the state and the encoder output are concatenated in the other order; attn was made for [s; h_j], "
        "torch.cat((hidden, encoder_outputs), dim=2) with the state repeated": torch.softmax(
            swapped.masked_fill(~mask, neg), dim=0),
    }
    weights_mistakes = dict(variants)
    right = reference_fixed_article_attention(attn, hidden, outputs, mask)
    weights_mistakes["return the weights as (T, B): squeeze the last axis of the (T, B, 1) energy"] = (
        right[1][..., None])
    context_mistakes = {hint: (w[..., None] * outputs).sum(0, keepdim=True) for hint, w in variants.items()}
    context_mistakes["the weighted sum still runs over axis 1, the batch; sum over the source positions, axis 0"] = (
        right[1][..., None] * outputs).sum(1)
    context_mistakes["return the context as (1, B, H), as the decoder GRU of the article's classes takes it: "
                     "keep the axis (keepdim=True or [None])"] = right[0][0]
    return weights_mistakes, context_mistakes


def check_fixed_article_attention(cls: Callable[[int], nn.Module]) -> None:
    """``cls(hidden_dim)`` is a subclass of ``ArticleStyleAttention`` whose ``forward(hidden, encoder_outputs, mask)``
    returns ``(context (1, B, H), weights (T, B))`` as ``reference_fixed_article_attention``. Introduced in lesson 08.
    """
    require_callable(cls, "FixedAttention")
    gen = torch.Generator().manual_seed(84)
    # (T, B, H, lengths): padded batches (the first with padding in every sentence, so that a flipped mask still
    # has keys to attend and can be named), a full-length sentence, a one-token source, a batch of one
    cases = ((5, 3, 4, (4, 2, 3)), (7, 2, 6, (4, 7)), (1, 3, 4, (1, 1, 1)), (6, 1, 5, (6,)))
    for t, b, h, lengths in cases:
        module = call_learner(_article_module, h, cls, name="FixedAttention(hidden_dim)")
        if not isinstance(module, nn.Module) or not hasattr(module, "attn"):
            raise CheckFailed("FixedAttention(hidden_dim) should build a module with the `attn` layer of "
                              "ArticleStyleAttention: subclass it and keep its __init__")
        hidden, outputs = torch.randn(1, b, h, generator=gen), torch.randn(t, b, h, generator=gen)
        mask = torch.arange(t)[:, None] < torch.tensor(lengths)[None, :]  # (T, B), True = real token
        case = f"T={t}, B={b}, H={h}, source lengths {list(lengths)}"
        with torch.no_grad():
            got = call_learner(module, hidden, outputs, mask, name="FixedAttention.forward")
            attn = module.attn
            if not isinstance(attn, nn.Linear):
                raise CheckFailed("FixedAttention's `attn` should stay ArticleStyleAttention's nn.Linear(2 * H, 1)")
            expected = reference_fixed_article_attention(attn, hidden, outputs, mask)
            weights_mistakes, context_mistakes = _article_mistakes(attn, hidden, outputs, mask)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailed(f"FixedAttention.forward should return (context, weights), got {type(got).__name__}")
        context, weights = got
        for what, value, mistakes in (("the weights", weights, weights_mistakes),
                                      ("the context", context, context_mistakes)):
            hint = _nan_mistake(value, mistakes)
            if hint is not None:
                raise CheckFailed(f"{what} on {case} contain NaN, where a position has nothing to attend. Hint: {hint}")
        _compare(weights, expected[1], "the weights", case, weights_mistakes)
        _compare(context, expected[0], "the context", case, context_mistakes)
    passed("FixedAttention")
