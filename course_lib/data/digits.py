"""Cluttered digits: real 8x8 handwritten digits placed on a larger canvas among fragments of other digits.

The cluttered-MNIST setting of Mnih et al. 2014, "Recurrent Models of Visual Attention" (arXiv:1406.6247),
rebuilt offline from scikit-learn's ``load_digits`` (1,797 real 8x8 digits of the UCI optical
recognition data set, shipped inside scikit-learn: nothing is downloaded). A classifier must find the
digit among look-alike strokes, which is where spatial attention can help; the digit's box is returned
so that lessons can measure how much of a module's attention lands on it (``box_mass``).

Splits are disjoint at the level of the *source* images: the 1,797 images are partitioned once by a
seeded permutation into train/val/test (60/20/20), and both the digit and its clutter come from the
requested split only, so no stroke of a test image is ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from course_lib._validate import check_int, check_tensor

__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "ClutteredDigits",
    "load_source_digits",
    "split_indices",
    "upscale",
    "make_cluttered_digits",
    "box_mass",
]

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
_SOURCE_SIZE = 8  # load_digits images are 8x8 with integer intensities 0..16


@dataclass(frozen=True)
class ClutteredDigits:
    """A batch of cluttered digits.

    images (N, 1, canvas, canvas) float32 in [0, 1]; labels (N,) int64 in 0..9; boxes (N, 4) int64
    ``(x0, y0, x1, y1)``: the tight box of the digit's ink in canvas pixels, ``x1``/``y1`` exclusive, so
    the digit is ``images[n, 0, y0:y1, x0:x1]``; source_index (N,) int64 into ``load_digits()``.
    Introduced in lesson 12.
    """

    images: Tensor
    labels: Tensor
    boxes: Tensor
    source_index: Tensor
    canvas: int
    scale: int
    split: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int | slice | Tensor) -> ClutteredDigits:
        """A subset, e.g. ``data[:64]`` or ``data[mask]``."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ClutteredDigits(self.images[index], self.labels[index], self.boxes[index],
                               self.source_index[index], self.canvas, self.scale, self.split)


# --------------------------------------------------------------------------------------------------
# Sources and splits
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    images.setflags(write=False)
    targets = bunch.target.astype(np.int64)
    targets.setflags(write=False)
    return images, targets


def load_source_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 source digits: images (1797, 8, 8) float32 in [0, 1] and labels (1797,) int64 (read-only).

    Introduced in lesson 12.
    """
    return _load()


def _check_int(name: str, value: object, minimum: int) -> int:
    return check_int(name, value, minimum=minimum)


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


def split_indices(split: str, *, split_seed: int = 0) -> np.ndarray:
    """Sorted indices into ``load_digits()`` of one split; the three splits partition the 1,797 images.

    Introduced in lesson 12.
    """
    which = _check_split(split)
    _check_int("split_seed", split_seed, 0)
    n = len(_load()[1])
    order = np.random.default_rng(split_seed).permutation(n)
    n_train = round(SPLIT_FRACTIONS[0] * n)
    n_val = round(SPLIT_FRACTIONS[1] * n)
    bounds = (0, n_train, n_train + n_val, n)
    return np.sort(order[bounds[which]:bounds[which + 1]])


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of a 2-D array by an integer factor: (h, w) -> (h*scale, w*scale).

    Introduced in lesson 12.
    """
    return np.kron(image, np.ones((scale, scale), dtype=image.dtype))


# --------------------------------------------------------------------------------------------------
# Canvas generation
# --------------------------------------------------------------------------------------------------
def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def make_cluttered_digits(
    n: int,
    *,
    canvas: int = 40,
    scale: int = 2,
    n_clutter: int = 8,
    fragment: int = 4,
    seed: int = 0,
    split: str = "train",
    split_seed: int = 0,
    clutter_on_digit: bool = False,
) -> ClutteredDigits:
    """``n`` canvases, each with one upscaled digit at a random position and ``n_clutter`` fragments.

    A fragment is a ``fragment`` x ``fragment`` crop (in source pixels, with some ink) of another
    source image of the same split, upscaled like the digit and pasted at a random position; pixels
    combine by maximum, as strokes drawn on top of each other. With ``clutter_on_digit=False`` (the
    default) fragments avoid the digit's 8x8 cell (as far as 100 tries allow), so the digit stays
    readable and the task is to find it. Deterministic given ``seed`` and ``split``: the same call gives
    the same tensors, and the splits use different random streams. Introduced in lesson 12.
    """
    n = _check_int("n", n, 1)
    scale = _check_int("scale", scale, 1)
    canvas = _check_int("canvas", canvas, 1)
    n_clutter = _check_int("n_clutter", n_clutter, 0)
    fragment = _check_int("fragment", fragment, 1)
    seed = _check_int("seed", seed, 0)
    which = _check_split(split)
    digit_size = _SOURCE_SIZE * scale
    if canvas < digit_size:
        raise ValueError(f"canvas={canvas} is smaller than the upscaled digit (8 * scale = {digit_size}); "
                         f"use canvas >= {digit_size} or a smaller scale")
    if fragment > _SOURCE_SIZE:
        raise ValueError(f"fragment must lie in [1, {_SOURCE_SIZE}] source pixels, got {fragment}")

    images_src, labels_src = _load()
    pool = split_indices(split, split_seed=split_seed)
    if len(pool) < 2:
        raise ValueError(f"split {split!r} holds {len(pool)} source image(s); clutter needs at least 2")
    rng = np.random.default_rng([seed, which])
    frag_px = fragment * scale

    images = np.zeros((n, 1, canvas, canvas), dtype=np.float32)
    boxes = np.zeros((n, 4), dtype=np.int64)
    source = rng.choice(pool, size=n, replace=True)
    for i in range(n):
        digit = upscale(images_src[source[i]], scale)  # (8s, 8s)
        x, y = (int(v) for v in rng.integers(0, canvas - digit_size + 1, size=2))
        cell = (x, y, x + digit_size, y + digit_size)
        page = images[i, 0]  # (canvas, canvas) view
        for _ in range(n_clutter):
            other = int(rng.choice(pool))
            while other == source[i]:
                other = int(rng.choice(pool))
            for _try in range(20):  # a crop with some ink, so clutter looks like strokes
                cy, cx = (int(v) for v in rng.integers(0, _SOURCE_SIZE - fragment + 1, size=2))
                crop = images_src[other, cy:cy + fragment, cx:cx + fragment]
                if crop.sum() >= 0.25 * fragment:
                    break
            piece = upscale(crop, scale)  # (frag_px, frag_px)
            for _try in range(100):
                fx, fy = (int(v) for v in rng.integers(0, canvas - frag_px + 1, size=2))
                if clutter_on_digit or not _overlaps((fx, fy, fx + frag_px, fy + frag_px), cell):
                    break
            region = page[fy:fy + frag_px, fx:fx + frag_px]
            np.maximum(region, piece, out=region)
        region = page[y:y + digit_size, x:x + digit_size]
        np.maximum(region, digit, out=region)
        rows = np.flatnonzero(digit.any(axis=1))
        cols = np.flatnonzero(digit.any(axis=0))
        boxes[i] = (x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1)
    return ClutteredDigits(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels_src[source].copy()),
        boxes=torch.from_numpy(boxes),
        source_index=torch.from_numpy(source.astype(np.int64)),
        canvas=canvas,
        scale=scale,
        split=split,
    )


# --------------------------------------------------------------------------------------------------
# Attention mass inside the digit's box
# --------------------------------------------------------------------------------------------------
def _coverage(lo: Tensor, hi: Tensor, cells: int, extent: float) -> Tensor:
    """(B,), (B,) box edges in canvas pixels -> (B, cells) fraction of each map cell inside [lo, hi)."""
    step = extent / cells
    edges = torch.arange(cells + 1, dtype=torch.float64, device=lo.device) * step  # (cells + 1,)
    start, stop = edges[:-1][None, :], edges[1:][None, :]  # (1, cells)
    inside = torch.minimum(stop, hi[:, None]) - torch.maximum(start, lo[:, None])  # (B, cells)
    return inside.clamp_min(0.0) / step


def box_mass(attention_maps: Tensor, boxes: Tensor, *, canvas_size: int | tuple[int, int] | None = None) -> Tensor:
    """(B, h, w) nonnegative maps, (B, 4) boxes ``(x0, y0, x1, y1)`` -> (B,) fraction of map mass inside the box.

    ``boxes`` are in canvas pixels (``x1``, ``y1`` exclusive) and the map is taken to cover the whole
    canvas of ``canvas_size`` (an int or ``(H, W)``; default: the map's own size), each map cell an
    equal rectangle of it. A cell partly inside the box counts with the fraction of its area inside, so
    maps at a lower resolution than the canvas (feature maps after striding) are scored fairly. A
    uniform map scores the box's share of the canvas area: the chance level. Introduced in lesson 12.
    """
    check_tensor("attention_maps", attention_maps)
    check_tensor("boxes", boxes)
    if attention_maps.dim() != 3:
        raise ValueError(f"attention_maps must have shape (B, h, w), got {tuple(attention_maps.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.shape[0] != attention_maps.shape[0]:
        raise ValueError(f"boxes must have shape (B, 4) = ({attention_maps.shape[0]}, 4) to match attention_maps "
                         f"{tuple(attention_maps.shape)}, got {tuple(boxes.shape)}")
    batch, h, w = attention_maps.shape
    if canvas_size is None:
        canvas_h, canvas_w = h, w
    elif isinstance(canvas_size, int) and not isinstance(canvas_size, bool):
        canvas_h = canvas_w = canvas_size
    elif isinstance(canvas_size, (tuple, list)) and len(canvas_size) == 2:
        canvas_h, canvas_w = (int(v) for v in canvas_size)
    else:
        raise ValueError(f"canvas_size must be an int, an (H, W) pair or None, got {canvas_size!r}")
    if canvas_h <= 0 or canvas_w <= 0:
        raise ValueError(f"canvas_size must be positive, got {canvas_size!r}")
    maps = attention_maps.detach().to(torch.float64)
    if not torch.isfinite(maps).all():
        raise ValueError("attention_maps must be finite")
    if (maps < 0).any():
        raise ValueError(f"attention_maps must be nonnegative (a mass), got a minimum of {maps.min().item():.4g}")
    total = maps.sum(dim=(1, 2))  # (B,)
    if (total <= 0).any():
        raise ValueError(f"attention_maps {sorted(torch.nonzero(total <= 0).flatten().tolist())[:5]} have no "
                         f"mass (sum 0); the fraction inside the box is undefined")
    b = boxes.detach().to(device=maps.device, dtype=torch.float64)
    x0, y0, x1, y1 = b.unbind(dim=1)
    if ((x1 <= x0) | (y1 <= y0)).any():
        raise ValueError("boxes must satisfy x0 < x1 and y0 < y1 (x1, y1 exclusive)")
    if ((x0 < 0) | (y0 < 0) | (x1 > canvas_w) | (y1 > canvas_h)).any():
        raise ValueError(f"boxes must lie inside the canvas of (H, W) = ({canvas_h}, {canvas_w}); pass canvas_size "
                         f"when the maps are at a lower resolution than the canvas")
    cover_y = _coverage(y0, y1, h, float(canvas_h))  # (B, h)
    cover_x = _coverage(x0, x1, w, float(canvas_w))  # (B, w)
    cover = cover_y[:, :, None] * cover_x[:, None, :]  # (B, h, w)
    return ((maps * cover).sum(dim=(1, 2)) / total).to(attention_maps.dtype if attention_maps.is_floating_point()
                                                        else torch.float64)
