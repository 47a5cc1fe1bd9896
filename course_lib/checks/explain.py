"""Checkers for lesson 18 (what attention maps tell you): attention rollout, the permutation of weight rows, a
rollout value derived by hand, and a prediction about uniform attention checked against the lesson's measurement.

References: ``course_lib.explain.attention_rollout`` (Abnar & Zuidema 2020,
https://aclanthology.org/2020.acl-main.385/) and ``course_lib.explain.permute_weights`` (Jain & Wallace 2019,
https://aclanthology.org/N19-1357/); the uniform-attention baseline of Wiegreffe & Pinter 2019,
https://aclanthology.org/D19-1002/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_choice, check_number
from course_lib.explain import attention_rollout

__all__ = ["check_rollout", "check_permute_rows", "check_uniform_rollout_value", "uniform_prediction_truth",
           "check_uniform_prediction", "UNIFORM_OPTIONS"]


def _random_layers(gen: torch.Generator, layers: int, t: int) -> Tensor:
    """(L, T, T) row-stochastic weights, peaked enough that the mistakes give clearly different results."""
    return (3.0 * torch.randn(layers, t, t, generator=gen, dtype=torch.float64)).softmax(-1)


def check_rollout(fn: Callable[[Tensor], Any]) -> None:
    """``fn(weights (L, T, T)) -> (T, T)``: attention rollout with the residual identity. Introduced in lesson 18."""
    require_callable(fn, "rollout")
    gen = torch.Generator().manual_seed(18)
    for layers, t in ((2, 4), (3, 5), (1, 3), (4, 6)):
        weights = _random_layers(gen, layers, t)
        case = f"weights of shape {tuple(weights.shape)} (L={layers} layers, T={t})"
        got = call_learner(fn, weights.clone(), name="rollout")
        expected = attention_rollout(weights)
        eye = torch.eye(t, dtype=weights.dtype)
        plain = attention_rollout(weights, residual=False)
        unnormalised = eye.clone()
        reversed_order = eye.clone()
        for a in weights:
            unnormalised = (a + eye) @ unnormalised
            reversed_order = reversed_order @ (0.5 * a + 0.5 * eye)
        mistakes = {
            "this is the product of the attention matrices alone: add the residual connection, "
            "A' = 0.5 W + 0.5 I, before multiplying": plain,
            "the rows are not renormalised: W + I has rows summing to 2, so the product grows as 2^L; use "
            "0.5 W + 0.5 I (or divide each row by its sum)": unnormalised,
            "the layers are multiplied in the wrong order: the later layer goes on the LEFT, "
            "R = A'_L ... A'_2 A'_1": reversed_order,
            "only the last layer is used: the rollout multiplies all layers": 0.5 * weights[-1] + 0.5 * eye,
            "the layers are averaged, not multiplied": (0.5 * weights + 0.5 * eye).mean(0),
        }
        if layers == 1:  # one layer: order and product do not matter, only the residual and the normalisation
            mistakes = {k: v for k, v in mistakes.items() if "order" not in k and "averaged" not in k
                        and "last layer" not in k}
        compare(got, expected, "rollout", case=case, mistakes=mistakes, atol=1e-6)
    passed("rollout")


def check_permute_rows(fn: Callable[[Tensor, Tensor, torch.Generator], Any]) -> None:
    """``fn(weights (N, T), mask (N, T), generator) -> (N, T)``: each row shuffled among its real keys.

    Introduced in lesson 18.
    """
    require_callable(fn, "permute_rows")
    base = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05, 0.0, 0.0])
    weights = base.repeat(6, 1)  # six identical rows: independent shuffles make them differ
    mask = base > 0
    mask = mask.repeat(6, 1)
    mask[1, 3:] = False
    weights[1] = torch.tensor([0.5, 0.3, 0.2, 0.0, 0.0, 0.0, 0.0])
    case = f"weights {tuple(weights.shape)}, rows with 5 and 3 real keys"
    changed, rows_differ = False, False
    for trial in range(20):
        gen = torch.Generator().manual_seed(trial)
        got = call_learner(fn, weights.clone(), mask.clone(), gen, name="permute_rows")
        if not isinstance(got, Tensor) or got.shape != weights.shape:
            raise CheckFailed(f"permute_rows must return a tensor of the shape of weights {tuple(weights.shape)}, got "
                              f"{type(got).__name__} {tuple(getattr(got, 'shape', ()))}")
        got = got.detach().to(weights.dtype)
        if torch.any(got[~mask] != 0):
            raise CheckFailed(f"for {case}, a padded key received weight: shuffle each row among its REAL keys only "
                              f"(mask True), padding keeps weight 0")
        for r in range(len(weights)):
            if not torch.allclose(got[r][mask[r]].sort().values, weights[r][mask[r]].sort().values, atol=1e-7):
                raise CheckFailed(f"for {case}, row {r} does not hold the same weights as before: a permutation moves "
                                  f"the weights to other keys and changes none of them (no new random weights, no "
                                  f"renormalising)")
        changed |= not torch.equal(got, weights)
        rows_differ |= not torch.equal(got[0], got[2])
    if not changed:
        raise CheckFailed("in 20 calls no row was shuffled: the weights came back in their original order")
    if not rows_differ:
        raise CheckFailed("rows 0 and 2 held the same weights and always came back in the same order: shuffle every "
                          "row on its own (one random permutation per row, not one for the whole batch)")
    passed("permute_rows")


_ROLLOUT_HINTS = StepHints("ex3-rollout-value", [
    "With uniform W = U (every entry 1/T), one layer with the residual is A' = 0.5 U + 0.5 I; its rows already "
    "sum to 1.",
    "Multiply two such layers: A'A' = 0.25 U U + 0.25 U + 0.25 U + 0.25 I, and U U = U (averaging twice is "
    "averaging once).",
    "So R = 0.75 U + 0.25 I; its diagonal entry is 0.75 / T + 0.25 with T = 4.",
])


def check_uniform_rollout_value(answer: Any) -> None:
    """The diagonal entry of the rollout of 2 layers of uniform attention over T = 4 tokens. Introduced in lesson 18."""
    t, layers = 4, 2
    expected = float(attention_rollout(torch.full((layers, t, t), 1.0 / t, dtype=torch.float64))[0, 0])
    check_number(answer, "rollout_diagonal", expected, _ROLLOUT_HINTS,
                 why="R = (0.5 U + 0.5 I)^2 = 0.75 U + 0.25 I, so R_00 = 0.75 / 4 + 0.25: the residual keeps a "
                     "quarter of every token's own state after two layers, attention alone would keep 1/T.",
                 rel_tol=1e-3, mistakes={
                     "that is 1/T, the rollout without the residual (U U = U)": 1.0 / t,
                     "that is one layer, 0.5 / 4 + 0.5; the rollout multiplies both layers": 0.5 / t + 0.5,
                     "that is (U + I)^2 without renormalising, 3 U + I: the rows must sum to 1": 3.0 / t + 1.0,
                     "that is 0.25 U + 0.25 I's diagonal, (0.5 U)(0.5 I) terms dropped: expand (0.5 U + 0.5 I)^2 "
                     "fully": 0.25 / t + 0.25,
                 })


UNIFORM_OPTIONS = {
    "a": "accuracy drops by more than 0.05 both over all tokens and on the cue entities' first tokens",
    "b": "it drops by more than 0.05 on the cue entities' first tokens only; over all tokens by less",
    "c": "it drops by more than 0.05 over all tokens only; on the cue entities by less",
    "d": "it drops by less than 0.05 on both",
}


def uniform_prediction_truth(record: dict | None = None) -> str:
    """The option that lesson 18's measured table makes true (from ``load_result('attention_explanations')``)."""
    if record is None:
        from course_lib.results import load_result

        record = load_result("attention_explanations")
    rows = {r["model"]: r for r in record["table"]}
    all_drop = rows["tagger (10), all tokens"]["accuracy"] - rows["tagger (10), all tokens"]["uniform"]
    cue_drop = rows["tagger (10), cue entities"]["accuracy"] - rows["tagger (10), cue entities"]["uniform"]
    return {(True, True): "a", (False, True): "b", (True, False): "c", (False, False): "d"}[
        (all_drop > 0.05, cue_drop > 0.05)]


_UNIFORM_HINTS = StepHints("ex4-uniform", [
    "Most tokens of a sentence are tagged from their own word and its neighbours: does the BiLSTM state alone "
    "suffice for them?",
    "A cue entity's type is decided by a word far away; uniform attention still averages the cue's state in, but "
    "diluted over the whole sentence.",
    "Lesson 18, section 6, prints both accuracies with learned and with uniform attention.",
])


def check_uniform_prediction(answer: Any) -> None:
    """What freezing the tagger's attention to uniform does, checked against the lesson's measurement.

    Introduced in lesson 18.
    """
    try:
        correct = uniform_prediction_truth()
    except FileNotFoundError:
        raise CheckFailed("lesson 18's measured result is missing: run notebooks/18_attention_explanations.ipynb "
                          "once (its section 11 saves it), then run this check again") from None
    check_choice(answer, "answer", UNIFORM_OPTIONS, correct, _UNIFORM_HINTS,
                 why="most tags come from the token's own BiLSTM state (the residual path), so uniform attention "
                     "costs little overall; a cue entity's type must be read from the cue, and uniform attention "
                     "dilutes it. A task (or an output) that does not need attention cannot be explained by it "
                     "(Wiegreffe & Pinter 2019).",
                 wrong={"a": "over all tokens the drop is small: most tags do not depend on the attention",
                        "c": "it is the other way round: the cue entities are the tokens that need attention",
                        "d": "the cue entities do need their attention: their type is read from a far cue"})
