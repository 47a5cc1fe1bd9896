"""The machinery every exercise checker shares: run the learner's code safely, compare, diagnose."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

__all__ = ["CheckFailed", "call_learner", "compare", "learner_frames", "passed", "require_callable"]

_LIBRARY = Path(__file__).resolve().parents[1]  # course_lib/
_RED, _RESET = "\x1b[0;31m", "\x1b[0m"


class CheckFailed(AssertionError):
    """Raised by a checker when the answer is wrong; the message says what and hints at why.

    In Jupyter it renders as its message alone (IPython's ``_render_traceback_`` hook): the checker's own
    frames would bury the one useful line and show the checker's source, with the other hints and the
    reference answer. When the learner's code raised, ``learner_lines`` holds the learner's own frames,
    which are shown below the message.
    """

    def __init__(self, message: str, learner_lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.learner_lines = list(learner_lines or [])

    def _render_traceback_(self) -> list[str]:
        lines = [f"{_RED}CheckFailed{_RESET}: {self}"]
        if self.learner_lines:
            lines += ["", "Where your code raised it:", *self.learner_lines]
        return lines


def _is_learner_file(filename: str) -> bool:
    """True for code the learner wrote (notebook cells, their own files), not course_lib, torch or Python."""
    if filename.startswith("<") and not filename.startswith("<ipython-input"):
        return False  # <frozen ...>, <string>: not a place the learner can open
    path = Path(filename).resolve()
    if _LIBRARY in path.parents:
        return False
    return not any(part in ("site-packages", "dist-packages") for part in path.parts) and \
        not str(path).startswith(str(Path(traceback.__file__).resolve().parent))


def _cell_label(filename: str) -> str:
    """'Cell In[7]' for a notebook cell (as IPython labels it), else the file name."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        label = shell.compile.format_code_name(filename) if shell is not None else None
    except Exception:  # outside IPython, or an IPython without the hook
        label = None
    return " ".join(label) if label else filename


def learner_frames(tb: TracebackType | None) -> list[str]:
    """The frames of a traceback that are the learner's own code, formatted as 'Cell In[n], line l, in f'."""
    lines: list[str] = []
    for frame in traceback.extract_tb(tb):
        if _is_learner_file(frame.filename):
            lines.append(f"  {_cell_label(frame.filename)}, line {frame.lineno}, in {frame.name}")
            if frame.line:
                lines.append(f"    {frame.line.strip()}")
    return lines


def passed(what: str) -> None:
    """Print the one line a learner sees when a check passes."""
    print(f"✅ {what}: all checks passed")


def require_callable(answer: object, name: str) -> None:
    if answer is None:
        raise CheckFailed(f"{name} is None: define it in the exercise cell above and run that cell first")
    if not callable(answer):
        raise CheckFailed(f"{name} must be a function or class, got {type(answer).__name__}")


def call_learner(fn: Callable[..., Any], *args: Any, name: str, **kwargs: Any) -> Any:
    """Call the learner's code; turn any exception into a ``CheckFailed`` that says what happened."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(f"{name} is not implemented yet: replace `raise NotImplementedError` with your "
                          f"code, run the cell, then run this check again") from None
    except CheckFailed:
        raise
    except Exception as exc:  # the learner's bug, reported rather than crashing the checker
        raise CheckFailed(f"{name} raised {type(exc).__name__}: {exc}",
                          learner_lines=learner_frames(exc.__traceback__)) from None


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(value)
    except Exception:
        raise CheckFailed(f"{name} should return a tensor, got {type(value).__name__}") from None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    if a.shape != b.shape:
        return False
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    return bool(torch.allclose(a64, b64, atol=atol, rtol=rtol, equal_nan=False))


def compare(
    got: Any,
    expected: torch.Tensor,
    name: str,
    case: str = "",
    mistakes: Mapping[str, torch.Tensor] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Check ``got`` against ``expected``; on failure, name a known mistake that ``got`` matches.

    ``mistakes`` maps a hint ("you forgot to divide by sqrt(d)") to what that mistake would produce on
    the same case; the first one that ``got`` matches is reported.
    """
    where = f" on {case}" if case else ""
    got_t = _as_tensor(got, name)
    expected = expected.detach()
    if got_t.shape != expected.shape:
        # A known mistake may change the shape (wrong axis, weights returned instead of outputs).
        for hint, wrong in (mistakes or {}).items():
            if _close(got_t, wrong.detach(), atol, rtol):
                raise CheckFailed(f"{name}{where} is wrong (shape {tuple(got_t.shape)}, expected "
                                  f"{tuple(expected.shape)}). Hint: {hint}")
        hint = ""
        if got_t.numel() == expected.numel():
            hint = " (same number of elements: a reshape or transpose is missing or in the wrong place?)"
        raise CheckFailed(f"{name}{where}: expected shape {tuple(expected.shape)}, got {tuple(got_t.shape)}{hint}")
    if got_t.is_floating_point() and torch.isnan(got_t).any() and not torch.isnan(expected).any():
        raise CheckFailed(f"{name}{where}: the result contains NaN (a row with nothing to attend? exp of -inf "
                          f"minus -inf?)")
    if _close(got_t, expected, atol, rtol):
        return
    for hint, wrong in (mistakes or {}).items():
        if _close(got_t, wrong.detach(), atol, rtol):
            raise CheckFailed(f"{name}{where} is wrong. Hint: {hint}")
    diff = (got_t.to(torch.float64) - expected.to(torch.float64)).abs().max().item()
    raise CheckFailed(f"{name}{where} is wrong: largest difference from the reference is {diff:.3g}.\n"
                      f"expected:\n{expected}\ngot:\n{got_t}")
