"""The glimpse sensor of the recurrent attention model (Mnih et al. 2014, arXiv:1406.6247). Lesson 15.

A glimpse at location ``l = (x, y)`` in [-1, 1]^2 ((-1, -1) is the top-left corner, (1, 1) the bottom-right) is
a *retina* (视网膜) of ``num_scales`` square patches centred on the same pixel: the first of ``patch_size``
pixels, each next one twice as wide, every patch average-pooled down to ``patch_size`` x ``patch_size``. The
centre pixel is ``floor((l + 1) / 2 * size)``, clipped to the image; the patch of side ``s`` covers rows and
columns ``[centre - s // 2, centre - s // 2 + s)``, zero outside the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._validate import check_tensor, positive_int

__all__ = ["location_to_pixel", "glimpse_sensor"]


def location_to_pixel(loc: Tensor, size: int) -> Tensor:
    """(B, 2) locations (x, y) in [-1, 1] -> (B, 2) integer pixel (column, row) of the glimpse centre. Lesson 15."""
    check_tensor("loc", loc, dim=2, floating=True, layout="(B, 2)")
    if loc.shape[1] != 2:
        raise ValueError(f"loc must have shape (B, 2) holding (x, y), got {tuple(loc.shape)}")
    size = positive_int("size", size)
    return torch.floor((loc.detach() + 1) / 2 * size).long().clamp(0, size - 1)


def glimpse_sensor(images: Tensor, loc: Tensor, *, patch_size: int = 8, num_scales: int = 3) -> Tensor:
    """(B, 1, H, W) images, (B, 2) locations -> (B, num_scales, patch_size, patch_size) retina crops. Lesson 15.

    Scale k (0-based) crops a square of ``patch_size * 2**k`` pixels around the centre (zero padding outside
    the image) and average-pools it by ``2**k``. The crops carry no gradient to ``loc`` (the location is a
    sampled action, trained by REINFORCE, not by backpropagation through the crop).
    """
    check_tensor("images", images, dim=4, floating=True, layout="(B, 1, H, W)")
    if images.shape[1] != 1:
        raise ValueError(f"images must have one channel, shape (B, 1, H, W), got {tuple(images.shape)}")
    patch_size = positive_int("patch_size", patch_size)
    num_scales = positive_int("num_scales", num_scales)
    batch, _, height, width = images.shape
    if loc.dim() != 2 or loc.shape != (batch, 2):
        raise ValueError(f"loc must have shape (B, 2) = ({batch}, 2) to match images {tuple(images.shape)}, "
                         f"got {tuple(loc.shape)}")
    if height != width:
        raise ValueError(f"glimpse_sensor expects square images, got {tuple(images.shape)}")
    centre = location_to_pixel(loc, width)  # (B, 2): column, row
    largest = patch_size * 2 ** (num_scales - 1)
    pad = largest  # enough zeros for the largest patch anywhere
    padded = F.pad(images[:, 0], (pad, pad, pad, pad))  # (B, H + 2p, W + 2p)
    rows_b = torch.arange(batch, device=images.device)[:, None, None]  # (B, 1, 1)
    crops = []
    for k in range(num_scales):
        side = patch_size * 2 ** k
        offsets = torch.arange(side, device=images.device)  # (s,)
        top_left = centre - side // 2 + pad  # (B, 2) in padded coordinates
        cols = top_left[:, 0, None] + offsets  # (B, s)
        rows = top_left[:, 1, None] + offsets  # (B, s)
        patch = padded[rows_b, rows[:, :, None], cols[:, None, :]]  # (B, s, s)
        crops.append(F.avg_pool2d(patch[:, None], 2 ** k)[:, 0] if k else patch)  # (B, g, g)
    return torch.stack(crops, dim=1)  # (B, k, g, g)
