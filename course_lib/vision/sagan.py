"""SAGAN self-attention over pixels (Zhang et al. 2019, arXiv:1805.08318). Introduced in lesson 13.

Two variants. ``"paper"`` follows Section 3 of the paper: f, g and h map C -> C̄ = C/8 (1x1 convs, no bias in
the equations), and an output conv W_v maps C̄ -> C, so the layer has 4 C C̄ + 1 = C²/2 + 1 parameters.
``"port"`` is the widely copied PyTorch re-implementation (the official code is TensorFlow): h keeps C
channels, there is no W_v and the convs have biases, which is exactly DANet's PAM (1.25 C² + 1.25 C + 1).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from course_lib._validate import check_bool, check_choice, check_image
from course_lib.vision.danet import PositionAttention

__all__ = ["SelfAttention2d"]


class SelfAttention2d(PositionAttention):
    """SAGAN self-attention x + γ·o, γ = 0 at init; ``variant`` "paper" (h to C/8, W_v back to C) or "port" (= PAM).

    Introduced in lesson 13.

    Args:
        channels: C, the input's channels.
        reduction: r, the queries and keys (and, in "paper", the values h) have C // r channels (8 in the paper).
        variant: "paper" (arXiv:1805.08318 Sec. 3: f, g, h: C -> C/r, W_v: C/r -> C, no biases) or "port" (the
            popular PyTorch re-implementation: value conv C -> C with biases, no W_v; the same computation as PAM).
        spectral_norm: spectrally normalise every conv, as SAGAN does in G and D.
    """

    _who = "SelfAttention2d"

    def __init__(self, channels: int, reduction: int = 8, *, variant: Literal["paper", "port"] = "paper",
                 spectral_norm: bool = False) -> None:
        super().__init__(channels, reduction)
        self.variant = check_choice("variant", variant, ("paper", "port"))
        self.spectral_norm = check_bool("spectral_norm", spectral_norm)
        self.out: nn.Module | None = None
        if variant == "paper":
            reduced = channels // reduction
            self.query = nn.Conv2d(channels, reduced, kernel_size=1, bias=False)  # g, at the output pixel j
            self.key = nn.Conv2d(channels, reduced, kernel_size=1, bias=False)  # f, at the pixels i read
            self.value = nn.Conv2d(channels, reduced, kernel_size=1, bias=False)  # h: C -> C/r
            self.out = nn.Conv2d(reduced, channels, kernel_size=1, bias=False)  # W_v: C/r -> C
        if spectral_norm:  # SAGAN normalises every conv of G and D; the parameter count does not change
            sn = nn.utils.parametrizations.spectral_norm
            self.query, self.key, self.value = sn(self.query), sn(self.key), sn(self.value)
            if self.out is not None:
                self.out = sn(self.out)

    def forward(self, x: Tensor, *, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(B, C, H, W) -> y, or ``(y, weights (B, N, N))`` with ``need_weights=True``."""
        if self.out is None:  # "port": PAM's computation
            return super().forward(x, need_weights=need_weights)
        check_image(self._who, x, self.channels)
        batch, _, height, width = x.shape
        weights = self._weights(x)  # (B, N, N), row j = softmax over the pixels i that pixel j reads
        h = self.value(x).flatten(2)  # (B, C/r, N)
        mixed = (h @ weights.transpose(1, 2)).view(batch, -1, height, width)  # (B, C/r, H, W)
        o = self.out(mixed)  # (B, C, H, W), o = W_v (sum_i beta_ji h(x_i))
        y = self.gamma * o + x
        return (y, weights) if need_weights else y
