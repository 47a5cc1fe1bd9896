"""The seq2seq checkers (lessons 07-09) accept the reference and reject the stub and typical wrong answers."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import seq2seq as s2s
from course_lib.attention import causal_mask, lengths_to_mask, masked_softmax
from course_lib.checks.core import CheckFailed
from course_lib.checks.seq2seq import (
    ArticleStyleAttention,
    check_accuracy_by_length,
    check_additive_attention_step,
    check_article_predictions,
    check_bottleneck_predictions,
    check_cross_attention_mask,
    check_decoder_self_mask,
    check_fixed_article_attention,
    check_general_scores,
    check_greedy_search,
    check_last_valid_state,
    check_shift_right,
    reference_additive_attention_step,
    reference_fixed_article_attention,
    reference_general_scores,
)
from course_lib.checks.thinking import reset_hints


def stub(*args, **kwargs):
    raise NotImplementedError()


def fails(checker, fn, match: str | None = None) -> None:
    with pytest.raises(CheckFailed, match=match):
        checker(fn)


# ---------------------------------------------------------------- last_valid_state
def test_last_valid_state(capsys):
    check_last_valid_state(s2s.last_valid_state)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_last_valid_state, stub, "not implemented")
    fails(check_last_valid_state, lambda o, lens: o[:, -1], "padding")
    fails(check_last_valid_state, lambda o, lens: o[torch.arange(o.shape[0]), lens.clamp(max=o.shape[1] - 1)],
          "off by one")
    fails(check_last_valid_state, lambda o, lens: o[:, lens - 1], "index the batch")
    fails(check_last_valid_state,
          lambda o, lens: torch.stack([o[b, : int(lens[b])].mean(0) for b in range(o.shape[0])]), "mean")
    fails(check_last_valid_state, lambda o, lens: None)


# ---------------------------------------------------------------- greedy_search
def _no_pad_after_eos(step, state, batch_size, bos_id, eos_id, max_len, pad_id=0):
    prev = torch.full((batch_size,), bos_id)
    finished = torch.zeros(batch_size, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, state = step(prev, state)
        prev = logits.argmax(-1)
        out.append(prev)
        finished |= prev == eos_id
        if finished.all():
            break
    return torch.stack(out, 1)


def _stop_at_first(step, state, batch_size, bos_id, eos_id, max_len, pad_id=0):
    prev = torch.full((batch_size,), bos_id)
    out = []
    for _ in range(max_len):
        logits, state = step(prev, state)
        prev = logits.argmax(-1)
        out.append(prev)
        if (prev == eos_id).any():
            break
    return torch.stack(out, 1)


def _always_bos(step, state, batch_size, bos_id, eos_id, max_len, pad_id=0):
    prev = torch.full((batch_size,), bos_id)
    finished = torch.zeros(batch_size, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, state = step(prev, state)
        token = logits.argmax(-1).masked_fill(finished, pad_id)
        out.append(token)
        finished |= token == eos_id
        if finished.all():
            break
    return torch.stack(out, 1)


def _drop_eos(step, state, batch_size, bos_id, eos_id, max_len, pad_id=0):
    ids = s2s.greedy_search(step, state, batch_size, bos_id, eos_id, max_len, pad_id)
    return ids.masked_fill(ids == eos_id, pad_id)


def test_greedy_search(capsys):
    check_greedy_search(s2s.greedy_search)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_greedy_search, stub, "not implemented")
    fails(check_greedy_search, _no_pad_after_eos, "pad_id")
    fails(check_greedy_search, _stop_at_first, "every")
    fails(check_greedy_search, _always_bos, "argmax back")
    fails(check_greedy_search, _drop_eos, "keep the <eos>")


# ---------------------------------------------------------------- accuracy_by_length
def _reference_accuracy(lengths, correct, buckets):
    return [row["accuracy"] for row in s2s.accuracy_by_length(lengths, correct, buckets)]


def test_accuracy_by_length(capsys):
    check_accuracy_by_length(_reference_accuracy)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_accuracy_by_length, stub, "not implemented")
    fails(check_accuracy_by_length, lambda lens, c, b: [
        sum(x for n, x in zip(lens, c, strict=True) if lo <= n <= hi) for lo, hi in b], "number of sentences")
    fails(check_accuracy_by_length, lambda lens, c, b: [
        sum(x for n, x in zip(lens, c, strict=True) if lo <= n < hi) / max(1, sum(lo <= n < hi for n in lens))
        for lo, hi in b])
    fails(check_accuracy_by_length, lambda lens, c, b: [
        sum(x for n, x in zip(lens, c, strict=True) if lo <= n <= hi) / len(lens) for lo, hi in b])
    fails(check_accuracy_by_length, lambda lens, c, b: [
        sum(x for n, x in zip(lens, c, strict=True) if lo <= n <= hi) / max(1, sum(lo <= n <= hi for n in lens))
        for lo, hi in b],
        "empty bucket")


# ---------------------------------------------------------------- additive attention step
def test_additive_attention_step(capsys):
    check_additive_attention_step(reference_additive_attention_step)
    assert "all checks passed" in capsys.readouterr().out

    def no_mask(scorer, q, k, mask):
        w = torch.softmax(scorer(q[:, None], k).squeeze(1), -1)
        return (w[:, None] @ k).squeeze(1), w

    def batch_axis(scorer, q, k, mask):
        w = masked_softmax(scorer(q[:, None], k).squeeze(1).T, mask=mask.T).T
        return (w[:, None] @ k).squeeze(1), w

    def mean_context(scorer, q, k, mask):
        _, w = reference_additive_attention_step(scorer, q, k, mask)
        return k.mean(1), w

    def swapped(scorer, q, k, mask):
        return reference_additive_attention_step(scorer, q, k, mask)[::-1]

    fails(check_additive_attention_step, stub, "not implemented")
    fails(check_additive_attention_step, no_mask, "padding mask")
    fails(check_additive_attention_step, batch_axis, "batch axis")
    fails(check_additive_attention_step, mean_context, "weighs the keys")
    fails(check_additive_attention_step, swapped)
    fails(check_additive_attention_step, lambda *a: 3, "pair")


# ---------------------------------------------------------------- Luong general scores
def test_general_scores(capsys):
    check_general_scores(reference_general_scores)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_general_scores, stub, "not implemented")
    fails(check_general_scores, lambda q, k, w: reference_general_scores(q, k, w.T), "transposed")
    fails(check_general_scores, lambda q, k, w: (q[:, None] @ k.transpose(1, 2)).squeeze(1), "missing")
    fails(check_general_scores, lambda q, k, w: reference_general_scores(q, k, w) / math.sqrt(k.shape[-1]), "sqrt")
    fails(check_general_scores, lambda q, k, w: reference_general_scores(q, k, w).T)


# ---------------------------------------------------------------- decoder masks and shift_right
def test_decoder_self_mask(capsys):
    check_decoder_self_mask(s2s.decoder_self_mask)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_decoder_self_mask, stub, "not implemented")
    fails(check_decoder_self_mask, lambda lens, t: causal_mask(t)[None].expand(len(lens), -1, -1), "padding")
    fails(check_decoder_self_mask, lambda lens, t: lengths_to_mask(lens, t)[:, None].expand(-1, t, -1), "future")
    fails(check_decoder_self_mask, lambda lens, t: causal_mask(t).T[None] & lengths_to_mask(lens, t)[:, None],
          "transposed")
    fails(check_decoder_self_mask, lambda lens, t: ~s2s.decoder_self_mask(lens, t), "inverted")
    fails(check_decoder_self_mask, lambda lens, t: s2s.decoder_self_mask(lens, t).float(), "boolean")


def test_shift_right(capsys):
    check_shift_right(s2s.shift_right)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_shift_right, stub, "not implemented")
    fails(check_shift_right, lambda y, b, e: torch.cat([torch.full_like(y[:, :1], b), y[:, :-1]], 1), "<eos>")
    fails(check_shift_right, lambda y, b, e: y, "first input")
    fails(check_shift_right, lambda y, b, e: torch.cat([y[:, 1:], torch.zeros_like(y[:, :1])], 1), "shift right")


def test_cross_attention_mask(capsys):
    check_cross_attention_mask(s2s.cross_attention_mask)
    assert "all checks passed" in capsys.readouterr().out
    fails(check_cross_attention_mask, stub, "not implemented")
    fails(check_cross_attention_mask, lambda lens, t, s: s2s.cross_attention_mask(lens, t, s) & causal_mask(t, s)[None],
          "not causal")
    fails(check_cross_attention_mask, lambda lens, t, s: ~s2s.cross_attention_mask(lens, t, s), "inverted")
    fails(check_cross_attention_mask, lambda lens, t, s: torch.ones(len(lens), t, s, dtype=torch.bool), "cover")
    fails(check_cross_attention_mask, lambda lens, t, s: lengths_to_mask(lens, s), "shape")


def _ignores_max_len(step, state, batch_size, bos_id, eos_id, max_len, pad_id=0):
    """Loops until every row has emitted <eos>, whatever max_len says: never ends on a row without <eos>."""
    prev = torch.full((batch_size,), bos_id)
    rows, done = [], torch.zeros(batch_size, dtype=torch.bool)
    while not done.all():
        logits, state = step(prev, state)
        prev = logits.argmax(-1)
        rows.append(prev.masked_fill(done, pad_id))
        done |= prev == eos_id
    return torch.stack(rows, 1)


def test_greedy_search_stops_a_loop_that_ignores_max_len():
    fails(check_greedy_search, _ignores_max_len, r"called step more than max_len = 5 times.*for t in range\(max_len\)")


# ---- lesson 07, exercise 4: the bottleneck -------------------------------------------------------------------------
def test_bottleneck_predictions_accept_the_truth(capsys):
    reset_hints()
    check_bottleneck_predictions((2, 64), "c")
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("shape, remedy, message", [
    (None, None, "still None"),                # the stub
    ((2, 20, 64), "c", "output at every position"),
    ((1, 2, 64), "c", "num_layers, B, H"),
    ((20, 64), "c", "no length axis"),
    ((64,), "c", "keep the batch axis"),
    ((2, 64), "a", "the bottleneck moves"),
    ((2, 64), "b", "one fixed-size vector"),
    ((2, 64), "d", "not how many there are"),
    ((2, 64), None, "still None"),
])
def test_bottleneck_predictions_reject(shape, remedy, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_bottleneck_predictions(shape, remedy)


# ---- lesson 08, exercises 3 and 4: the article-style attention -------------------------------------------------
def test_article_style_attention_fails_as_described():
    layer = ArticleStyleAttention(4)
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        layer(torch.randn(1, 3, 4), torch.randn(5, 3, 4))
    context, weights = layer(torch.randn(1, 3, 4), torch.randn(1, 3, 4))
    assert context.shape == (1, 4) and torch.allclose(weights.sum(1), torch.ones(1, 1))  # batch summed away


def test_article_predictions_accept_the_truth(capsys):
    reset_hints()
    check_article_predictions("b", "b")
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("outcome, axis, message", [
    (None, None, "still None"),                # the stub
    ("a", "b", "never gets that far"),
    ("c", "b", "never gets to the softmax"),
    ("d", "b", "there is a softmax"),
    ("b", "a", "that would be dim=0"),
    ("b", "c", "axis 2 has size 1"),
    ("b", "d", "always sums to 1"),
])
def test_article_predictions_reject(outcome, axis, message):
    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_article_predictions(outcome, axis)


class _Fixed(ArticleStyleAttention):
    def forward(self, hidden, encoder_outputs, mask):
        return reference_fixed_article_attention(self.attn, hidden, encoder_outputs, mask)


def _energy(layer, hidden, outputs, swap=False):
    repeated = hidden.expand(outputs.shape[0], -1, -1)
    pair = (outputs, repeated) if swap else (repeated, outputs)
    return layer.attn(torch.cat(pair, dim=2)).squeeze(-1)  # (T, B)


class _FixedBy1e9(ArticleStyleAttention):  # a finite fill and (T, B, 1) arithmetic: also right
    def forward(self, hidden, encoder_outputs, mask):
        energy = self.attn(torch.cat((hidden.repeat(encoder_outputs.shape[0], 1, 1), encoder_outputs), dim=2))
        weights = torch.softmax(energy.masked_fill(~mask[..., None], -1e9), dim=0)  # (T, B, 1)
        return (weights * encoder_outputs).sum(0, keepdim=True), weights[..., 0]


def _variant(weights_fn, context_fn=None):
    class Wrong(ArticleStyleAttention):
        def forward(self, hidden, encoder_outputs, mask):
            weights = weights_fn(_energy(self, hidden, encoder_outputs), mask, self, hidden, encoder_outputs)
            if context_fn is not None:
                return context_fn(weights, encoder_outputs), weights
            return (weights[..., None] * encoder_outputs).sum(0, keepdim=True), weights
    return Wrong


def _right_weights(energy, mask, *_):
    return torch.softmax(energy.masked_fill(~mask, float("-inf")), dim=0)


class _Stub(ArticleStyleAttention):
    def forward(self, hidden, encoder_outputs, mask):
        raise NotImplementedError()


def test_fixed_article_attention_accepts_right_answers(capsys):
    check_fixed_article_attention(_Fixed)
    check_fixed_article_attention(_FixedBy1e9)
    assert capsys.readouterr().out.count("FixedAttention: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (_Stub, "not implemented yet"),
    (ArticleStyleAttention, "raised TypeError"),  # the class unchanged: no mask argument
    (_variant(lambda e, m, *_: torch.softmax(e.masked_fill(~m, float("-inf")), dim=1)), "axis 1, the batch"),
    (_variant(lambda e, m, *_: torch.softmax(e, dim=0)), "padding is not masked"),
    (_variant(lambda e, m, *_: torch.softmax(e, dim=0) * m), "without renormalising"),
    (_variant(lambda e, m, *_: torch.softmax(e.masked_fill(m, float("-inf")), dim=0)), "the mask is flipped"),
    (_variant(lambda e, m, layer, h, o: torch.softmax(_energy(layer, h, o, swap=True).masked_fill(~m, -1e9), 0)),
     "other order"),
    (_variant(lambda e, m, *_: _right_weights(e, m)[..., None], lambda w, o: (w * o).sum(0, keepdim=True)),
     "squeeze the last axis"),
    (_variant(_right_weights, lambda w, o: (w[..., None] * o).sum(1)), "axis 1, the batch"),
    (_variant(_right_weights, lambda w, o: (w[..., None] * o).sum(0)), "keep the axis"),
    (_variant(_right_weights, lambda w, o: (w[..., None] * o).mean(0, keepdim=True)), "largest difference"),
    (lambda h: object(), "should build a module"),
    (None, "is None"),
])
def test_fixed_article_attention_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_fixed_article_attention(wrong)


def test_fixed_article_attention_rejects_a_single_return():
    class OnlyContext(_Fixed):
        def forward(self, hidden, encoder_outputs, mask):
            return super().forward(hidden, encoder_outputs, mask)[0]

    with pytest.raises(CheckFailed, match=r"should return \(context, weights\)"):
        check_fixed_article_attention(OnlyContext)
