"""scikit-learn's 8x8 digits upscaled for the small GAN and its judge classifier. Introduced in lesson 15.

The 1,797 real digits of ``load_digits`` (shipped with scikit-learn, nothing is downloaded), split once into
train/val/test exactly as ``course_lib.data.digits.split_indices`` does, upscaled bilinearly and mapped to
[-1, 1] (a generator ending in ``tanh`` draws in that range).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._validate import check_int
from course_lib.data.digits import load_source_digits, split_indices

__all__ = ["upscaled_digits"]


def upscaled_digits(split: str = "train", *, size: int = 16, split_seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images (N, 1, size, size) in [-1, 1] and labels (N,) of one split, upscaled bilinearly from 8x8.

    Introduced in lesson 15.
    """
    size = check_int("size", size, minimum=8)
    images, labels = load_source_digits()
    index = split_indices(split, split_seed=split_seed)  # raises ValueError for an unknown split
    x = torch.from_numpy(images[index].copy())[:, None]  # (N, 1, 8, 8) in [0, 1]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)  # (N, 1, size, size)
    return (2 * x - 1).clamp(-1, 1), torch.from_numpy(labels[index].copy())
