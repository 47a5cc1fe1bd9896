"""Argument checks shared by all of course_lib: one wording, one exception type per kind of mistake.

A value of the wrong type raises ``TypeError``, a value of the right type that is out of range or of the
wrong shape raises ``ValueError``; every message names the argument and says what it got (shapes
included), so a learner never meets a bare shape error from deep inside torch. ``bool`` is not accepted
where an int or a float is asked for (``True`` would silently mean 1).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor

__all__ = [
    "shape_of",
    "check_int",
    "positive_int",
    "check_float",
    "check_probability",
    "check_bool",
    "check_choice",
    "check_tensor",
    "check_floating",
    "broadcasts",
    "check_bool_mask",
    "check_image",
    "reduced_channels",
]

T = TypeVar("T")


def shape_of(value: object) -> tuple[int, ...] | str:
    """The shape of a tensor or array as a tuple, else the type's name (for error messages)."""
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else type(value).__name__


def _got(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def check_int(name: str, value: object, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (numpy integers accepted, bools not), within ``[minimum, maximum]`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {_got(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1."""
    value = check_int(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_float(name: str, value: object, *, minimum: float | None = None, maximum: float | None = None,
                exclusive_minimum: bool = False, exclusive_maximum: bool = False) -> float:
    """``value`` as a float (any real number, bools not), within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_got(value)}")
    value = float(value)
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise ValueError(f"{name} must be {'>' if exclusive_minimum else '>='} {minimum}, got {value}")
    if maximum is not None and (value >= maximum if exclusive_maximum else value > maximum):
        raise ValueError(f"{name} must be {'<' if exclusive_maximum else '<='} {maximum}, got {value}")
    return value


def check_probability(name: str, value: object) -> float:
    """A dropout probability: a number in [0, 1)."""
    value = check_float(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """A flag: exactly ``True`` or ``False`` (a tensor or a number is a mistake, often a misplaced argument)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {_got(value)}")
    return value


def check_choice(name: str, value: T, options: Sequence[object]) -> T:
    """``value`` if it is one of ``options``."""
    if value not in tuple(options):
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def check_tensor(name: str, value: object, *, dim: int | None = None, min_dim: int | None = None,
                 floating: bool = False, layout: str | None = None) -> Tensor:
    """``value`` if it is a tensor with ``dim`` (or at least ``min_dim``) axes, floating-point if asked.

    ``layout`` names the axes for the message, e.g. ``"(B, T, D)"``.
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    expected = f" {layout}" if layout else ""
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimensions{expected}, got shape {tuple(value.shape)}")
    if min_dim is not None and value.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions{expected}, got shape {tuple(value.shape)}")
    if floating:
        check_floating(name, value)
    return value


def check_floating(name: str, value: Tensor) -> Tensor:
    """``value`` if its dtype is floating point."""
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def broadcasts(shape: Sequence[int], target: Sequence[int]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` (without growing ``target``)."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(tuple(shape)), reversed(tuple(target)), strict=False))


def check_bool_mask(name: str, mask: Tensor | None, target: Sequence[int]) -> Tensor | None:
    """A boolean mask (True = may attend) that broadcasts to ``target``, or None."""
    if mask is None:
        return None
    check_tensor(name, mask)
    assert isinstance(mask, Tensor)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a boolean tensor (True = may attend), got dtype {mask.dtype}; "
                        f"for an additive float mask use mask = (float_mask == 0)")
    if not broadcasts(mask.shape, target):
        raise ValueError(f"{name} of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                         f"{tuple(target)}")
    return mask


def check_image(who: str, x: object, channels: int | None = None) -> Tensor:
    """A floating (B, C, H, W) tensor, with ``channels`` channels when given; ``who`` names the module."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who} expects x of shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: x must be a floating-point tensor, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{who} was built for channels={channels}, got x of shape {tuple(x.shape)}")
    return x


def reduced_channels(who: str, channels: object, reduction: object, name: str = "reduction") -> int:
    """``channels // reduction`` for a bottleneck, which must be at least 1."""
    channels = positive_int("channels", channels)
    reduction = positive_int(name, reduction)
    hidden = channels // reduction
    if hidden < 1:
        raise ValueError(f"{who}: channels // {name} must be >= 1, got channels={channels} and {name}={reduction}; "
                         f"use {name} <= {channels}")
    return hidden
