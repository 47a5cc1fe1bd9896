"""SAGAN self-attention over pixels (Zhang et al. 2019, arXiv:1805.08318). Introduced in lesson 13."""

from __future__ import annotations

from torch import nn

from course_lib._validate import check_bool
from course_lib.vision.danet import PositionAttention

__all__ = ["SelfAttention2d"]


class SelfAttention2d(PositionAttention):
    """SAGAN self-attention: as PAM (q, k C/8, v C, γ=0), spectral norm optional. Introduced in lesson 13.

    Args:
        channels: C, the input's channels.
        reduction: r, queries and keys have C // r channels.
        spectral_norm: spectrally normalise the three convs, as SAGAN does in G and D.
    """

    _who = "SelfAttention2d"

    def __init__(self, channels: int, reduction: int = 8, *, spectral_norm: bool = False) -> None:
        super().__init__(channels, reduction)
        self.spectral_norm = check_bool("spectral_norm", spectral_norm)
        if spectral_norm:  # SAGAN normalises every conv of G and D; the parameter count does not change
            sn = nn.utils.parametrizations.spectral_norm
            self.query, self.key, self.value = sn(self.query), sn(self.key), sn(self.value)
