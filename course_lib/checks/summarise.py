"""Checkers for lesson 11 (summarisation): the fixed attention of the article's class, the extended vocabulary,
the pointer-generator's final distribution and a copy probability worked out by hand.

References live in ``course_lib.summarise`` (See et al. 2017, https://arxiv.org/abs/1704.04368).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints
from course_lib.data.numbers import Vocab
from course_lib.summarise import extend_vocab, final_distribution, fixed_attend

__all__ = ["check_fixed_attend", "check_extend_vocab", "check_final_distribution", "check_copy_probability",
           "COPY_EXAMPLE"]


def _pair(got: Any, name: str) -> tuple[Any, Any]:
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise CheckFailed(f"{name} should return a pair (two values), got {type(got).__name__}")
    return got[0], got[1]


# --------------------------------------------------------------------------------------------------
# Exercise 1: the article's attention, fixed
# --------------------------------------------------------------------------------------------------
def check_fixed_attend(fn: Callable[[Tensor, Tensor, nn.Module], tuple[Tensor, Tensor]]) -> None:
    """``fn(hidden (1, B, H), encoder_outputs (T, B, H), attention nn.Linear(2H, 1)) -> (context (1, B, H),
    weights (T, B, 1))``, weights a softmax over the T source positions. Introduced in lesson 11."""
    require_callable(fn, "attend")
    with torch.random.fork_rng(devices=[]):  # nn.Linear's initialisation must not move the learner's RNG
        _check_fixed_attend(fn)
    passed("attend")


def _check_fixed_attend(fn: Callable[[Tensor, Tensor, nn.Module], tuple[Tensor, Tensor]]) -> None:
    gen = torch.Generator().manual_seed(11)
    for t, b, h in ((5, 3, 4), (4, 4, 2), (1, 2, 3), (7, 1, 3)):
        attention = nn.Linear(2 * h, 1)
        with torch.no_grad():
            attention.weight.copy_(torch.randn(1, 2 * h, generator=gen))
            attention.bias.copy_(torch.randn(1, generator=gen))
        hidden = torch.randn(1, b, h, generator=gen)
        outputs = torch.randn(t, b, h, generator=gen)
        case = f"hidden {tuple(hidden.shape)}, encoder_outputs {tuple(outputs.shape)}"
        try:
            got = call_learner(fn, hidden.clone(), outputs.clone(), attention, name="attend")
        except CheckFailed as exc:
            if "must match" in str(exc):
                raise CheckFailed(f"{exc}\nHint: this is the article's bug: hidden has 1 row on the time axis and "
                                  f"encoder_outputs has T = {t}; repeat the state along the source first "
                                  f"(hidden.expand(T, -1, -1)).", exc.learner_lines) from None
            raise
        context, weights = _pair(got, "attend")
        ref_context, ref_weights = fixed_attend(hidden, outputs, attention)
        with torch.no_grad():
            energy = attention(torch.cat((hidden.expand(t, -1, -1), outputs), dim=2))  # (T, B, 1)
            swapped = attention(torch.cat((outputs, hidden.expand(t, -1, -1)), dim=2))
            w_batch = torch.softmax(energy, dim=1)
            weight_mistakes = {
                "the softmax runs over axis 1, the batch: in the (T, B, 1) layout the source positions are axis 0":
                    w_batch,
                "the weights are not normalised: apply a softmax over the source positions (axis 0)": energy,
                "the concatenation order is swapped: the Linear's first H inputs read the decoder state, "
                "torch.cat((repeated_hidden, encoder_outputs), dim=2)": torch.softmax(swapped, dim=0),
                "the weights should keep their last axis of size 1, (T, B, 1)": ref_weights.squeeze(-1),
            }
            compare(weights, ref_weights, "weights", case=case, mistakes=weight_mistakes)
            context_mistakes = {
                "the context is a weighted sum over the source positions (axis 0), not a mean":
                    outputs.mean(0, keepdim=True),
                "keep the time axis of size 1: context is (1, B, H), sum(dim=0, keepdim=True)": ref_context.squeeze(0),
                "the context sums over axis 1, the batch; sum over axis 0":
                    (ref_weights * outputs).sum(1, keepdim=True),
            }
            compare(context, ref_context, "context", case=case, mistakes=context_mistakes)


# --------------------------------------------------------------------------------------------------
# Exercise 2: the extended vocabulary
# --------------------------------------------------------------------------------------------------
def _toy_vocab() -> Vocab:
    return Vocab("beat scored , . - 1 2 3 on the".split())


def check_extend_vocab(fn: Callable[[Sequence[str], Any], tuple[list[int], list[str]]]) -> None:
    """``fn(tokens, vocab) -> (ids, oovs)``: in-vocabulary tokens keep their ids, the k-th distinct OOV word
    of the source gets ``len(vocab) + k``, ``oovs`` lists them once each, in order. Introduced in lesson 11."""
    require_callable(fn, "extend_vocab")
    vocab = _toy_vocab()
    cases = [
        "rome beat milan 2 - 1 , totti scored .".split(),
        "totti scored , totti scored , rome beat rome".split(),
        "beat the 3".split(),
        "zorglub".split(),
    ]
    for tokens in cases:
        case = " ".join(tokens)
        got = call_learner(fn, list(tokens), vocab, name="extend_vocab")
        ids, oovs = _pair(got, "extend_vocab")
        ref_ids, ref_oovs = extend_vocab(tokens, vocab)
        try:
            ids, oovs = [int(i) for i in ids], list(oovs)
        except (TypeError, ValueError):
            raise CheckFailed(f"extend_vocab on '{case}' should return a list of ints and a list of words") from None
        if oovs != ref_oovs:
            repeated = [t for t in tokens if t not in vocab]
            if oovs == repeated and repeated != ref_oovs:
                raise CheckFailed(f"oovs on '{case}' lists a word each time it occurs, got {oovs}. Hint: each OOV "
                                  f"word gets one extended id, however often it occurs: list it once.")
            raise CheckFailed(f"oovs on '{case}': expected {ref_oovs}, got {oovs}")
        if ids == ref_ids:
            continue
        unk = [vocab.stoi.get(t, vocab.unk_id) for t in tokens]
        if ids == unk:
            raise CheckFailed(f"ids on '{case}' map OOV words to <unk> ({vocab.unk_id}). Hint: that is what the "
                              f"plain decoder sees; the copy mechanism needs a distinct id per OOV word, "
                              f"len(vocab) + k.")
        if ids == [i + 1 if i >= len(vocab) else i for i in ref_ids]:
            raise CheckFailed(f"ids on '{case}' are off by one: the first OOV word gets len(vocab) = {len(vocab)}.")
        each_time, seen = [], 0
        for t in tokens:
            if t in vocab:
                each_time.append(vocab.stoi[t])
            else:
                each_time.append(len(vocab) + seen)
                seen += 1
        if ids == each_time and each_time != ref_ids:
            raise CheckFailed(f"ids on '{case}': a repeated OOV word got a new id each time, {ids}. Hint: the "
                              f"same word must get the same id, else its copy probabilities do not add up.")
        raise CheckFailed(f"ids on '{case}': expected {ref_ids}, got {ids}")
    passed("extend_vocab")


# --------------------------------------------------------------------------------------------------
# Exercise 3: the final distribution of the pointer-generator
# --------------------------------------------------------------------------------------------------
def check_final_distribution(fn: Callable[..., Tensor]) -> None:
    """``fn(p_vocab (B, V), weights (B, S), p_gen (B, 1), src_ext (B, S), n_oov) -> (B, V + n_oov)`` (See et al.
    2017, eq. 9). Introduced in lesson 11."""
    require_callable(fn, "final_distribution")
    gen = torch.Generator().manual_seed(3)
    for b, v, s, n_oov in ((2, 6, 5, 2), (3, 4, 7, 3), (1, 5, 3, 0)):
        p_vocab = torch.softmax(torch.randn(b, v, generator=gen), dim=-1)
        weights = torch.softmax(torch.randn(b, s, generator=gen), dim=-1)
        p_gen = torch.rand(b, 1, generator=gen) * 0.8 + 0.1
        src_ext = torch.randint(0, v + n_oov, (b, s), generator=gen)
        src_ext[:, 1] = src_ext[:, 0]  # a repeated token in every row
        case = f"p_vocab {tuple(p_vocab.shape)}, weights {tuple(weights.shape)}, n_oov {n_oov}"
        got = call_learner(fn, p_vocab.clone(), weights.clone(), p_gen.clone(), src_ext.clone(), n_oov,
                           name="final_distribution")
        ref = final_distribution(p_vocab, weights, p_gen, src_ext, n_oov)
        gen_part = torch.cat([p_gen * p_vocab, torch.zeros(b, n_oov)], 1)
        swapped = torch.cat([(1 - p_gen) * p_vocab, torch.zeros(b, n_oov)], 1).scatter_add(1, src_ext, p_gen * weights)
        mistakes = {
            "a token that occurs twice in the source must receive both of its weights: scatter_add, not scatter":
                gen_part.scatter(1, src_ext, (1 - p_gen) * weights),
            "p_gen weighs the vocabulary distribution and 1 - p_gen the copy distribution, not the other way round":
                swapped,
            "the copy part is missing: add (1 - p_gen) * weights at each source token's extended id": gen_part,
            "the vocabulary distribution must be multiplied by p_gen":
                torch.cat([p_vocab, torch.zeros(b, n_oov)], 1).scatter_add(1, src_ext, (1 - p_gen) * weights),
            "the vocabulary must be extended by n_oov zeros before the copy mass is added": ref[:, :v],
        }
        compare(got, ref, "final_distribution", case=case, mistakes=mistakes)
    passed("final_distribution")


# --------------------------------------------------------------------------------------------------
# Exercise 4: a copy probability by hand
# --------------------------------------------------------------------------------------------------
#: The worked example of exercise 4: source tokens, attention weights, p_gen and P_vocab("beat").
COPY_EXAMPLE: dict[str, Any] = {
    "source": ["smith", "beat", "jones", ",", "smith", "scored"],
    "weights": [0.40, 0.05, 0.20, 0.05, 0.25, 0.05],
    "p_gen": 0.3,
    "p_vocab_beat": 0.5,
}


def check_copy_probability(answer: Any) -> None:
    """``answer`` is ``(P("smith"), P("beat"))`` in the final distribution of ``COPY_EXAMPLE`` ("smith" is OOV,
    "beat" is in the vocabulary), or a function returning it. Introduced in lesson 11."""
    if answer is None:
        raise CheckFailed("answer is None: define copy_probabilities in the cell above and run it")
    if callable(answer):
        answer = call_learner(answer, name="copy_probabilities")
    try:
        p_smith, p_beat = (float(x) for x in answer)
    except (TypeError, ValueError):
        raise CheckFailed(f"answer should be a pair of numbers (p_smith, p_beat), got {answer!r}") from None
    ex = COPY_EXAMPLE
    g, w = ex["p_gen"], ex["weights"]
    smith = (1 - g) * (w[0] + w[4])
    beat = g * ex["p_vocab_beat"] + (1 - g) * w[1]

    def near(x: float, y: float) -> bool:
        return abs(x - y) < 5e-4

    p_v = ex["p_vocab_beat"]
    smith_steps = StepHints("summarise-copy-smith", [
        "P(w) = p_gen P_vocab(w) + (1 - p_gen) * (sum of the attention a_i over the positions i holding w) "
        "(See et al. 2017, eq. 9). Which of the two parts can a word outside the vocabulary get?",
        "smith is out of the vocabulary, so its vocabulary part is 0; it stands at positions 0 and 4 of the source",
        f"P(smith) = (1 - {g}) x ({w[0]} + {w[4]})",
    ])
    beat_steps = StepHints("summarise-copy-beat", [
        "beat is in the vocabulary *and* in the source: both parts of eq. 9 count",
        f"the vocabulary part is p_gen x P_vocab(beat) = {g} x {p_v}; the copy part is (1 - p_gen) x the attention "
        f"on position 1",
        f"P(beat) = {g} x {p_v} + (1 - {g}) x {w[1]}",
    ])
    if not near(p_smith, smith):
        hints = {(1 - g) * w[0]: "smith occurs twice in the source: both of its attention weights count",
                 g * (w[0] + w[4]): "copying has probability 1 - p_gen, not p_gen",
                 w[0] + w[4]: "the copy distribution is weighted by 1 - p_gen",
                 g * ex["p_vocab_beat"] + (1 - g) * (w[0] + w[4]):
                     "smith is out of the vocabulary: P_vocab gives it nothing, only copying can write it"}
        for value, hint in hints.items():
            if near(p_smith, value):
                raise smith_steps.fail(f"P('smith') = {p_smith:.4f} is wrong: {hint}.")
        raise smith_steps.fail(f"P('smith') = {p_smith:.4f} is wrong: add the copy mass of every position holding it.")
    if not near(p_beat, beat):
        hints = {g * ex["p_vocab_beat"]: "beat is also in the source: add its copy mass (1 - p_gen) * a",
                 (1 - g) * w[1]: "beat is in the vocabulary: add p_gen * P_vocab(beat)",
                 (1 - g) * ex["p_vocab_beat"] + g * w[1]: "p_gen weighs the vocabulary part, 1 - p_gen the copy part",
                 ex["p_vocab_beat"] + w[1]: "weigh the two parts by p_gen and 1 - p_gen"}
        for value, hint in hints.items():
            if near(p_beat, value):
                raise beat_steps.fail(f"P('beat') = {p_beat:.4f} is wrong: {hint}.")
        raise beat_steps.fail(f"P('beat') = {p_beat:.4f} is wrong: it has a vocabulary part and a copy part.")
    passed(f"copy probability (P('smith') = {smith:.3f}, P('beat') = {beat:.3f}). Why: copying has probability "
           f"1 - p_gen = {1 - g:.1f} here and smith holds {w[0] + w[4]:.2f} of the attention; beat's vocabulary part "
           f"adds only {g} x {p_v}")
