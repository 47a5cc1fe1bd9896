"""Checkers for lesson 13 (self-attention on feature maps) that ask for thinking: the size of a non-local block's
attention weights on a feature map, predicted on paper and measured by running ``course_lib.vision.NonLocalBlock``.

(Lesson 13's code exercises are checked by ``course_lib.checks.vision``.) Non-local block: Wang et al. 2018,
arXiv:1711.07971. Introduced in lesson 13.
"""

from __future__ import annotations

from typing import Any

import torch

from course_lib.checks.thinking import StepHints, check_number
from course_lib.vision import NonLocalBlock

__all__ = ["NONLOCAL_EXAMPLE", "nonlocal_weight_bytes", "check_nonlocal_weight_bytes"]


NONLOCAL_EXAMPLE: dict[str, Any] = {"batch": 2, "channels": 64, "height": 32, "width": 32, "dtype": torch.float32}


def nonlocal_weight_bytes(*, batch: int, channels: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Bytes of the attention weights ``course_lib.vision.NonLocalBlock`` forms on a (B, C, H, W) input.

    The size is read off the weights the block returns. Introduced in lesson 13.
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # the block's initialisation leaves the learner's RNG
        block = NonLocalBlock(channels).to(dtype=dtype).eval()
        weights = block.attention(torch.zeros(batch, channels, height, width, dtype=dtype))  # (B, N, N)
    return weights.numel() * weights.element_size()


def check_nonlocal_weight_bytes(predicted_bytes: object, growth_when_doubled: object) -> None:
    """``predicted_bytes``: the bytes of the non-local block's weights for ``NONLOCAL_EXAMPLE``;
    ``growth_when_doubled``: by what factor they grow when H and W both double. Both measured by running
    ``NonLocalBlock``. Introduced in lesson 13."""
    ex = NONLOCAL_EXAMPLE
    b, c, h, w = ex["batch"], ex["channels"], ex["height"], ex["width"]
    size = torch.empty((), dtype=ex["dtype"]).element_size()
    truth = nonlocal_weight_bytes(**ex)
    n = h * w
    hints = StepHints("feature-maps-nonlocal-bytes", [
        "every pixel is a token. The weights hold one number for every pair (query pixel, key pixel): what is their "
        "shape for one image?",
        f"N = H x W = {n} pixels, so one image's weights are N x N = {n} x {n}; the batch has {b} images, and the "
        f"weights are shared by all channels (one map per pair of pixels, not per channel)",
        f"{b} x {n} x {n} numbers, {size} bytes each in float32: {b} * {n}**2 * {size}",
    ])
    check_number(predicted_bytes, "predicted_bytes", truth, hints, rel_tol=1e-9, mistakes={
        "that is N = H x W numbers per image, one per pixel; the weights have one per pair of pixels, N x N":
            b * n * size,
        f"you left out the batch: each of the {b} images has its own N x N weights": truth / b,
        f"that is the number of weights, not bytes: float32 takes {size} bytes each": truth / size,
        "that is bits: 8 bits make a byte": truth * 8,
        f"the weights are one number per pair of pixels, shared by the channels: do not multiply by C' = {c // 2}":
            truth * (c // 2),
        f"the weights are one number per pair of pixels, shared by the channels: do not multiply by C = {c}":
            truth * c,
        "that is MiB; the question asks for bytes": truth / 2**20,
    }, why=f"the weights are (B, N, N) = ({b}, {n}, {n}) float32: {truth:,} bytes = {truth / 2**20:.0f} MiB, for "
           f"one block on a {h} x {w} map (while the softmax runs, its input, the scores, takes as much again)")
    # The growth does not depend on the batch or the channels: measure it on one image of two channels (cheaper).
    small = {**ex, "batch": 1, "channels": 2}
    growth = nonlocal_weight_bytes(**{**small, "height": 2 * h, "width": 2 * w}) / nonlocal_weight_bytes(**small)
    doubled = truth * growth
    growth_hints = StepHints("feature-maps-nonlocal-growth", [
        "doubling H and W multiplies the number of pixels N by how much?",
        "N grows 4x, and the weights hold N x N numbers",
    ])
    check_number(growth_when_doubled, "growth_when_doubled", growth, growth_hints, mistakes={
        "that is how the number of pixels N grows; the weights grow like N squared": 4,
        "each side doubles, but the map has two sides, and the weights pair every pixel with every pixel": 2,
        "the weights grow as N squared and N = H x W grows 4x: square that 4": 8,
    }, why=f"N = H x W grows 4x and the weights grow as N^2: {growth:.0f}x, {doubled / 2**20:.0f} MiB on a "
           f"{2 * h} x {2 * w} map. This is why non-local blocks sit on small, late feature maps")
