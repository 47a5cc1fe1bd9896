"""Fixed sinusoidal positional encoding (Vaswani et al. 2017, arXiv:1706.03762). Introduced in lesson 05."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib._validate import check_probability, check_tensor, positive_int

__all__ = ["SinusoidalPositionalEncoding"]


class SinusoidalPositionalEncoding(nn.Module):
    """Adds PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(...) to (B, T, D) inputs. Introduced in lesson 05.

    Args:
        d_model: model width D.
        max_len: the longest sequence the table covers.
        dropout: dropout applied after the addition.
    """

    pe: Tensor  # (max_len, d_model), a buffer

    def __init__(self, d_model: int, *, max_len: int = 1024, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = positive_int("d_model", d_model)
        self.max_len = positive_int("max_len", max_len)
        self.dropout = nn.Dropout(check_probability("dropout", dropout))
        positions = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        frequencies = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        angles = positions * frequencies  # (max_len, ceil(D/2))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(angles)
        pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, d_model) -> x + PE[:T], with dropout."""
        check_tensor("x", x)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_len={self.max_len}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))
