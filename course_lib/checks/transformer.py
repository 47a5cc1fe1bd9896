"""Checkers for lesson 09's thinking exercises: the parameter count of one encoder layer, the label-smoothing floor.

The truth is computed here, never typed in: the parameter count by building ``course_lib.attention.EncoderBlock``
and counting, the loss floor by running PyTorch's label-smoothed cross-entropy on the best possible prediction
(Vaswani et al. 2017, arXiv:1706.03762; Szegedy et al. 2016, arXiv:1512.00567). Introduced in lesson 09.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F

from course_lib._validate import check_float, positive_int
from course_lib.attention import EncoderBlock
from course_lib.checks.thinking import StepHints, check_number

__all__ = ["encoder_layer_parameters", "check_encoder_layer_parameters", "lesson_vocab_size",
           "label_smoothing_floor", "check_label_smoothing_floor"]


def encoder_layer_parameters(d_model: int, d_ff: int, num_heads: int = 8) -> int:
    """Parameters of one (pre-norm) encoder layer, counted on a real ``EncoderBlock``. Introduced in lesson 09."""
    block = EncoderBlock(positive_int("d_model", d_model), positive_int("num_heads", num_heads),
                         positive_int("d_ff", d_ff))
    return sum(p.numel() for p in block.parameters())


def check_encoder_layer_parameters(answer: Any, *, d_model: int = 512, d_ff: int = 2048, num_heads: int = 8) -> None:
    """Exercise 4: the learner's count of one encoder layer's parameters for ``d_model``, ``d_ff``."""
    expected = encoder_layer_parameters(d_model, d_ff, num_heads)
    d, f = d_model, d_ff
    attention, ffn, norms = 4 * (d * d + d), d * f + f + f * d + d, 2 * 2 * d
    mistakes = {
        "the biases are missing (every Linear(a, b) has b of them).": 4 * d * d + 2 * d * f + norms,
        "the two LayerNorms are missing (each has a gain and a bias of size d_model).": attention + ffn,
        "both the biases and the LayerNorms are missing.": 4 * d * d + 2 * d * f,
        "each LayerNorm has two vectors of size d_model, a gain and a bias, not one.": attention + ffn + 2 * d,
        "the attention's output projection W_O is missing (there are four projections: Q, K, V, O).":
            3 * (d * d + d) + ffn + norms,
        f"heads add no parameters: the {num_heads} heads split the columns of each projection, they do not "
        "each get a full d_model x d_model matrix.": num_heads * 3 * (d * d + d) + (d * d + d) + ffn + norms,
    }
    hints = StepHints("09-encoder-layer-parameters", [
        "Count the four projections of multi-head attention (Q, K, V and the output), the two Linear layers of the "
        "feed-forward network and the two LayerNorms. A Linear(a, b) has a*b weights and b biases.",
        f"Heads add no parameters: they split the {d} columns of each projection. Attention is 4 * ({d}*{d} + {d}); "
        f"a LayerNorm has a gain and a bias of size {d}.",
        f"Feed-forward: ({d}*{f} + {f}) + ({f}*{d} + {d}). Add attention 4 * ({d}*{d} + {d}) and the LayerNorms "
        f"2 * 2 * {d}.",
    ])
    why = (f"attention 4 x ({d}^2 + {d}) = {attention:,}, feed-forward 2 x {d} x {f} + {f} + {d} = {ffn:,}, two "
           f"LayerNorms 2 x 2 x {d} = {norms:,}; the feed-forward network is {ffn / expected:.0%} of the layer")
    check_number(answer, "params_per_layer", expected, hints, why, rel_tol=0.0, abs_tol=0.5, mistakes=mistakes)


@functools.cache
def lesson_vocab_size() -> int:
    """The size of lesson 09's target (French) vocabulary, rebuilt from the corpus. Introduced in lesson 09."""
    from course_lib.data.numbers import make_number_corpus

    return len(make_number_corpus(seed=0).tgt_vocab)


def label_smoothing_floor(eps: float, vocab_size: int) -> float:
    """The least label-smoothed cross-entropy (nats): PyTorch's loss when the prediction equals the smoothed target.

    Introduced in lesson 09.
    """
    eps = check_float("eps", eps, minimum=0.0, maximum=1.0)
    vocab_size = positive_int("vocab_size", vocab_size)
    q = torch.full((vocab_size,), eps / vocab_size, dtype=torch.float64)
    q[0] += 1 - eps
    logits = q.clamp_min(1e-300).log()[None]
    return float(F.cross_entropy(logits, torch.tensor([0]), label_smoothing=eps).item())


def check_label_smoothing_floor(answer: Any, *, eps: float = 0.1, vocab_size: int | None = None) -> None:
    """Exercise 5: the learner's label-smoothing loss floor, for ``eps`` and the lesson's vocabulary by default."""
    v = lesson_vocab_size() if vocab_size is None else positive_int("vocab_size", vocab_size)
    expected = label_smoothing_floor(eps, v)
    top, rest = 1 - eps + eps / v, eps / v
    mistakes = {
        "a smoothed target is not one-hot, so even a perfect model pays its entropy: the floor is above 0.": 0.0,
        "you kept only the right token's term; the other V - 1 tokens each have target eps/V and add to the loss.":
            -top * math.log(top),
        "PyTorch (and the paper's formula) spreads eps over all V tokens, the right one included, not over the "
        "V - 1 others.": -(1 - eps) * math.log(1 - eps) - eps * math.log(eps / (v - 1)),
        "that is log V, the loss of a uniform prediction, not of the best one.": math.log(v),
        "that is in bits; PyTorch's cross-entropy uses the natural log (nats).": expected / math.log(2),
        "that is the loss of a one-hot target predicted with probability 1 - eps + eps/V.": -math.log(top),
    }
    hints = StepHints("09-label-smoothing-floor", [
        "The smoothed loss is smallest when the prediction p equals the smoothed target q; then it equals the "
        "entropy H(q) = -sum_k q(k) log q(k), with the natural log.",
        f"q has one entry 1 - eps + eps/V (the right token also gets its share eps/V of the uniform part) and V - 1 "
        f"entries eps/V; here V = {v} and eps = {eps}.",
        "H(q) = -(1 - eps + eps/V) log(1 - eps + eps/V) - (V - 1) (eps/V) log(eps/V).",
    ])
    why = (f"q gives the right token {top:.4f} and each of the other {v - 1} tokens {rest:.5f}; its entropy is "
           f"{expected:.4f} nats, the value PyTorch's label_smoothing={eps} loss reaches at p = q")
    check_number(answer, "loss_floor", expected, hints, why, rel_tol=1e-3, abs_tol=1e-4, mistakes=mistakes)
