"""Rotary position embedding, RoPE (Su et al. 2021, RoFormer, arXiv:2104.09864). Introduced in lesson 17."""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib._validate import check_tensor, shape_of

__all__ = ["apply_rotary", "rotary_angles"]


def rotary_angles(positions: Tensor, head_dim: int, *, base: float = 10000.0) -> Tensor:
    """(T,) positions -> (T, head_dim // 2) angles ``position * base**(-2i / head_dim)`` (Su et al. 2021,
    arXiv:2104.09864). Introduced in lesson 17."""
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64) / head_dim  # (d/2,)
    frequencies = base ** (-exponents)  # (d/2,): pair 0 turns fastest, the last pair slowest
    return positions.to(torch.float64)[:, None] * frequencies[None, :]  # (T, d/2)


def apply_rotary(x: Tensor, positions: Tensor | None = None, *, base: float = 10000.0) -> Tensor:
    """Rotary position embedding (RoPE, Su et al. 2021, arXiv:2104.09864) of ``x (..., T, d)``.

    Interleaved pairs, as in the paper: channels (2i, 2i+1) form pair i, which turns by the angle
    ``position * base**(-2i/d)``. ``positions`` is ``(T,)`` integers (default ``arange(T)``). Rotations
    keep each vector's norm, and the dot product of a query at position m with a key at position n
    depends on m - n only. Introduced in lesson 17.
    """
    check_tensor("x", x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., T, d), got {shape_of(x)}")
    length, dim = x.shape[-2], x.shape[-1]
    if dim % 2:
        raise ValueError(f"x's last dimension d must be even (RoPE turns pairs of channels), got x of shape "
                         f"{shape_of(x)}")
    if positions is None:
        positions = torch.arange(length, device=x.device)
    check_tensor("positions", positions)
    if positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
        raise TypeError(f"positions must be an integer tensor, got dtype {positions.dtype}")
    if positions.dim() != 1 or positions.shape[0] != length:
        raise ValueError(f"positions must have shape (T,) = ({length},) for x of shape {shape_of(x)}, "
                         f"got {shape_of(positions)}")
    if not isinstance(base, (int, float)) or isinstance(base, bool) or not base > 0:
        raise ValueError(f"base must be a number > 0, got {base!r}")
    angles = rotary_angles(positions.to(x.device), dim, base=float(base))  # (T, d/2), float64 for accuracy
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (T, d/2)
    pairs = x.unflatten(-1, (dim // 2, 2))  # (..., T, d/2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]  # (..., T, d/2) each
    turned = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)  # (..., T, d/2, 2)
    return turned.flatten(-2)  # (..., T, d)
