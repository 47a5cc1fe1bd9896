"""Checkers for exercises that ask for thinking: a prediction, a derivation or a design choice, with hints in steps.

A learner answers such an exercise with a value (a number, a shape, the letter of an option), not a function.
The checker compares it with the truth that the checker *computes* (by running the lesson's code, or by the
formula the lesson derives), never with a number typed into the checker. A wrong answer gets the first hint;
each further wrong try of the same exercise reveals the next, stronger hint ("Hint 2 of 3"), the way a tutor
would. A right answer prints why it is right, so that a lucky guess still teaches something.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from course_lib.checks.core import CheckFailed, passed

__all__ = ["StepHints", "check_choice", "check_number", "check_shape", "reset_hints"]

# Wrong tries so far, per exercise key, in this kernel: what decides which hint a failure shows.
_tries: dict[str, int] = {}


def reset_hints(key: str | None = None) -> None:
    """Forget the wrong tries of one exercise (or of all): the next failure starts again at hint 1."""
    if key is None:
        _tries.clear()
    else:
        _tries.pop(key, None)


class StepHints:
    """Hints that come in steps: the k-th wrong try of exercise ``key`` shows hint k (the last one repeats)."""

    def __init__(self, key: str, steps: Sequence[str]) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string naming the exercise, got {key!r}")
        if isinstance(steps, str) or not steps or not all(isinstance(s, str) and s for s in steps):
            raise ValueError(f"steps must be a non-empty sequence of non-empty strings, got {steps!r}")
        self.key = key
        self.steps = list(steps)

    def next(self) -> str:
        """Record one more wrong try and return the hint it earns, labelled 'Hint k of n'."""
        tries = _tries.get(self.key, 0) + 1
        _tries[self.key] = tries
        k = min(tries, len(self.steps))
        more = " (try again for the next hint)" if k < len(self.steps) else ""
        return f"Hint {k} of {len(self.steps)}: {self.steps[k - 1]}{more}"

    def fail(self, message: str) -> CheckFailed:
        """A ``CheckFailed`` whose message is ``message`` followed by the next hint (raise it)."""
        return CheckFailed(f"{message}\n{self.next()}")


def _not_answered(answer: Any, name: str) -> None:
    if answer is None or answer is Ellipsis:
        raise CheckFailed(f"{name} is still {answer!r}: replace it with your answer in the cell above and run it")


def check_choice(answer: Any, name: str, options: Mapping[str, str], correct: str, hints: StepHints,
                 why: str, wrong: Mapping[str, str] | None = None) -> None:
    """Check a multiple-choice answer (the key of one of ``options``, case and spaces ignored).

    ``wrong`` maps a wrong option to what that choice overlooks; it is shown before the stepped hint.
    ``correct`` is the option the checker's caller determined (ideally by computing it).
    """
    if correct not in options:
        raise ValueError(f"correct must be one of the options {sorted(options)}, got {correct!r}")
    _not_answered(answer, name)
    if not isinstance(answer, str):
        raise CheckFailed(f"{name} should be the letter of one option as a string (one of {sorted(options)}), "
                          f"got {type(answer).__name__} {answer!r}")
    chosen = answer.strip().lower()
    keys = {k.lower(): k for k in options}
    if chosen not in keys:
        raise CheckFailed(f"{name} = {answer!r} is not one of the options {sorted(options)}")
    key = keys[chosen]
    if key != correct:
        said = (wrong or {}).get(key, "")
        raise hints.fail(f"{name} = {answer!r} ({options[key]}) is not right." + (f" {said}" if said else ""))
    passed(f"{name}: {options[key]}. Why: {why}")


def check_number(answer: Any, name: str, expected: float, hints: StepHints, why: str,
                 rel_tol: float = 1e-6, abs_tol: float = 1e-9, mistakes: Mapping[str, float] | None = None) -> None:
    """Check a number the learner predicted or derived against ``expected`` (computed by the caller).

    ``mistakes`` maps a typical mistake's description to the number it leads to; a match is named.
    """
    _not_answered(answer, name)
    value = answer.item() if isinstance(answer, torch.Tensor) and answer.numel() == 1 else answer
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CheckFailed(f"{name} should be a number, got {type(answer).__name__} {answer!r}")
    value = float(value)
    if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol):
        passed(f"{name} = {answer!r}. Why: {why}")
        return
    for said, wrong_value in (mistakes or {}).items():
        if math.isclose(value, wrong_value, rel_tol=rel_tol, abs_tol=abs_tol):
            raise hints.fail(f"{name} = {answer!r} is not right: {said}")
    raise hints.fail(f"{name} = {answer!r} is not right.")


def check_shape(answer: Any, name: str, expected: Sequence[int], hints: StepHints, why: str,
                mistakes: Mapping[str, Sequence[int]] | None = None) -> None:
    """Check a predicted shape (a tuple of ints, or a ``torch.Size``) against the shape the code really gives."""
    _not_answered(answer, name)
    if isinstance(answer, torch.Size):
        answer = tuple(answer)
    if not isinstance(answer, (tuple, list)) or not all(
            isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in answer):
        raise CheckFailed(f"{name} should be a tuple of whole numbers such as (2, 5, 8), got "
                          f"{type(answer).__name__} {answer!r}")
    got, want = tuple(int(n) for n in answer), tuple(int(n) for n in expected)
    if got == want:
        passed(f"{name} = {got}. Why: {why}")
        return
    for said, wrong_shape in (mistakes or {}).items():
        if got == tuple(wrong_shape):
            raise hints.fail(f"{name} = {got} is not right: {said}")
    detail = f" (you gave {len(got)} axes, the result has {len(want)})" if len(got) != len(want) else ""
    raise hints.fail(f"{name} = {got} is not right{detail}.")
