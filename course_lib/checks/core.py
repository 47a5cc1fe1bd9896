"""The machinery every exercise checker shares: run the learner's code safely, compare, diagnose."""

from __future__ import annotations

import contextlib
import inspect
import numbers
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch

__all__ = [
    "CheckFailed",
    "as_number",
    "assert_unchanged",
    "budget",
    "call_learner",
    "compare",
    "learner_backward",
    "learner_frames",
    "passed",
    "require_callable",
    "snapshot_inputs",
]


#: Seconds a checker lets one call into learner code run before it reports a loop that never ends.
DEFAULT_TIME_LIMIT = 60.0

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


class _OutOfBudget(BaseException):
    """Raised inside learner code when it exceeds a step or time budget.

    A BaseException, so that a learner's ``except Exception`` cannot swallow it; ``call_learner`` turns it
    into a ``CheckFailed`` carrying ``message``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_alarm_active = False


@contextlib.contextmanager
def _time_limit(seconds: float | None, name: str) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (main thread on POSIX only; elsewhere the block runs unbounded)."""
    global _alarm_active
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer") and not _alarm_active
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    assert seconds is not None

    def _on_alarm(signum: int, frame: FrameType | None) -> None:
        raise _OutOfBudget(f"{name} did not finish within {seconds:g} s, so the check stopped it. Hint: a loop "
                           f"that never ends? (a while loop whose exit condition never becomes true, or one that "
                           f"ignores its length limit)")

    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    _alarm_active = True
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _alarm_active = False


def budget(fn: Callable[..., Any], max_calls: int, message: str) -> Callable[..., Any]:
    """Wrap ``fn`` (something the checker hands to learner code) so that call ``max_calls + 1`` stops the check.

    ``message`` says what the learner's code did wrong (e.g. "greedy_search called step more than max_len
    times"); it becomes the ``CheckFailed`` that ``call_learner`` raises.
    """
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > max_calls:
            raise _OutOfBudget(message)
        return fn(*args, **kwargs)

    return wrapped


def _argument_names(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) for each argument of a call: the parameter's name where the signature says it."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        pairs: list[tuple[str, Any]] = []
        for key, value in bound.arguments.items():
            kind = inspect.signature(fn).parameters[key].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                pairs += [(f"{key}[{i}]", v) for i, v in enumerate(value)]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                pairs += list(value.items())
            else:
                pairs.append((key, value))
        return pairs
    except (TypeError, ValueError):  # no signature (a builtin), or one that does not bind
        return [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())


def snapshot_inputs(pairs: list[tuple[str, Any]]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, the tensor itself, a copy) for every tensor among the arguments (and inside lists, tuples, dicts)."""
    found: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def visit(label: str, value: Any, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            found.append((label, value, value.detach().clone()))
        elif depth < 2 and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(f"{label}[{i}]", item, depth + 1)
        elif depth < 2 and isinstance(value, dict):
            for key, item in value.items():
                visit(f"{label}[{key!r}]", item, depth + 1)

    for label, value in pairs:
        visit(label, value, 0)
    return found


def assert_unchanged(snapshot: list[tuple[str, torch.Tensor, torch.Tensor]], name: str) -> None:
    """Raise ``CheckFailed`` if learner code wrote into a tensor it was given (compare with ``snapshot_inputs``)."""
    for label, tensor, copy in snapshot:
        now = tensor.detach()
        if now.shape == copy.shape and now.dtype == copy.dtype:
            same = (now == copy)
            if now.is_floating_point() or now.is_complex():
                same |= torch.isnan(now) & torch.isnan(copy)
            if bool(same.all()):
                continue
            changed = int((~same).sum())
            first = tuple(int(i) for i in (~same).nonzero()[0].tolist())
            where = f"{changed} of {now.numel()} entries changed, the first at index {first}"
        else:
            where = f"it was {tuple(copy.shape)} {copy.dtype}, now {tuple(now.shape)} {now.dtype}"
        raise CheckFailed(f"{name} wrote into its input `{label}` ({where}). The caller's tensors must not be "
                          f"changed in place. Hint: an in-place operation (x += ..., x[...] = ..., masked_fill_, "
                          f"an op ending in _) on an argument; work on a copy (x.clone()) or use the "
                          f"out-of-place form (x = x + ..., masked_fill)")


def _inplace_hint(exc: BaseException) -> str:
    text = str(exc)
    if "modified by an inplace operation" in text:
        return (" Hint: your code changed in place a tensor that autograd saved for the backward pass; use the "
                "out-of-place form (x = x * y, not x *= y; masked_fill, not masked_fill_)")
    if "a leaf Variable that requires grad is being used in an in-place operation" in text:
        return " Hint: an in-place operation on a tensor that requires grad; use the out-of-place form"
    return ""


def call_learner(fn: Callable[..., Any], *args: Any, name: str, time_limit: float | None = DEFAULT_TIME_LIMIT,
                 check_inputs: bool = True, **kwargs: Any) -> Any:
    """Call the learner's code; turn any exception into a ``CheckFailed`` that says what happened.

    The call is bounded: after ``time_limit`` seconds (``None``: no limit) it is stopped with a message,
    as is a callable wrapped in ``budget`` that is called too often. With ``check_inputs`` the tensors among
    the arguments are compared before and after, and a call that wrote into one is rejected.
    """
    snapshot = snapshot_inputs(_argument_names(fn, args, kwargs)) if check_inputs else []
    try:
        with _time_limit(time_limit, name):
            result = fn(*args, **kwargs)
    except _OutOfBudget as exc:
        raise CheckFailed(exc.message, learner_lines=learner_frames(exc.__traceback__)) from None
    except NotImplementedError:
        raise CheckFailed(f"{name} is not implemented yet: replace `raise NotImplementedError` with your "
                          f"code, run the cell, then run this check again") from None
    except CheckFailed:
        raise
    except Exception as exc:  # the learner's bug, reported rather than crashing the checker
        raise CheckFailed(f"{name} raised {type(exc).__name__}: {exc}{_inplace_hint(exc)}",
                          learner_lines=learner_frames(exc.__traceback__)) from None
    assert_unchanged(snapshot, name)
    return result


def learner_backward(output: torch.Tensor, name: str, upstream: torch.Tensor | None = None) -> None:
    """Run the backward pass through the learner's graph inside the guard (its errors become ``CheckFailed``)."""
    def run() -> None:
        loss = output.sum() if upstream is None else (output * upstream).sum()
        loss.backward()

    call_learner(run, name=f"the backward pass through {name}", check_inputs=False)


def as_number(value: Any, name: str, case: str = "", integer: bool = False, what: str = "") -> float | int:
    """The learner's scalar answer as a Python number: accepts int, float, numpy scalars and one-element tensors.

    With ``integer`` the value must be a whole number (3.0 and numpy.int64(3) are accepted as 3). A bool, a
    string or a tensor with several elements is a ``CheckFailed`` that says what came back.
    """
    where = f" on {case}" if case else ""
    got = value
    if isinstance(got, torch.Tensor) or (hasattr(got, "shape") and hasattr(got, "item")):  # tensor or numpy array
        size = got.numel() if isinstance(got, torch.Tensor) else int(getattr(got, "size", 2))
        if size != 1:
            raise CheckFailed(f"{name}{where} should return one number, got an array of shape {tuple(got.shape)}")
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        kind = what or ("an int (a whole number)" if integer else "a float")
        raise CheckFailed(f"{name}{where} should return {kind} (it must return a number), got "
                          f"{type(value).__name__} {value!r}")
    if integer:
        if isinstance(got, numbers.Integral):
            return int(got)
        if float(got).is_integer():
            return int(float(got))
        raise CheckFailed(f"{name}{where} should return an int (a whole number), got {got!r}")
    return float(got)


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
        if got_t.numel() == expected.numel() and 1 in expected.shape and got_t.shape == expected.squeeze().shape:
            hint = (". Hint: the axes of size 1 are gone (a batch of one, one query?): .squeeze() without an axis "
                    "removes every axis of size 1; name the axis, e.g. .squeeze(-1)")
        elif got_t.numel() == expected.numel():
            hint = " (same number of elements: a reshape or transpose is missing or in the wrong place?)"
        raise CheckFailed(f"{name}{where}: expected shape {tuple(expected.shape)}, got {tuple(got_t.shape)}{hint}")
    if got_t.is_floating_point() and torch.isnan(got_t).any() and not torch.isnan(expected).any():
        raise CheckFailed(f"{name}{where}: the result contains NaN (a row with nothing to attend? exp of -inf "
                          f"minus -inf?)")
    if _close(got_t, expected, atol, rtol):
        return
    matched = [hint for hint, wrong in (mistakes or {}).items() if _close(got_t, wrong.detach(), atol, rtol)]
    if len(matched) == 1:
        raise CheckFailed(f"{name}{where} is wrong. Hint: {matched[0]}")
    if matched:  # two mistakes give the same result here: name both rather than guess
        listed = "; or ".join(f"({i + 1}) {hint}" for i, hint in enumerate(matched))
        raise CheckFailed(f"{name}{where} is wrong, and on this case it matches more than one known mistake. "
                          f"Hint: {listed}")
    gap = (got_t.to(torch.float64) - expected.to(torch.float64)).abs()
    if torch.isnan(gap).any():  # NaN where the reference has a number: that is the place to show
        flat = int(torch.isnan(gap).flatten().nonzero()[0])
        diff = float("nan")
    else:
        flat = int(gap.flatten().argmax())
        diff = gap.flatten()[flat].item()
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), gap.shape)) if gap.dim() else ()
    n_wrong = int((~torch.isclose(got_t.to(torch.float64), expected.to(torch.float64), atol=atol, rtol=rtol)).sum())
    detail = (f"expected:\n{expected}\ngot:\n{got_t}" if expected.numel() <= 64 else
              "(the tensors are too large to print; compare them at that index)")
    got_at, expected_at = got_t.flatten()[flat].item(), expected.flatten()[flat].item()
    raise CheckFailed(f"{name}{where} is wrong: largest difference from the reference is {diff:.3g}, at index "
                      f"{index} (got {got_at:.4g}, expected {expected_at:.4g}); {n_wrong} of {expected.numel()} "
                      f"entries differ. No known mistake matches this result.\n{detail}")
