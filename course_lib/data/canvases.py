"""Multi-digit detection canvases and stick-figure pose images, generated offline (lesson 14).

Detection: each canvas holds 1 to ``max_digits`` real handwritten digits of scikit-learn's ``load_digits``
(the same 1,797 sources and the same train/val/test partition as ``course_lib.data.digits``, so a test
canvas only shows digits never seen in training), each upscaled by a factor drawn from ``scales``, placed
without overlapping, among fragments of other digits (clutter). Every digit has a tight box of its ink and
its class: a small version of the setting of one-stage detectors (YOLO, Redmon et al. 2016,
arXiv:1506.02640).

Keypoints: a stick figure (11 joints: head, neck, pelvis, two elbows, two hands, two knees, two feet) with
random joint angles is drawn on a canvas; left limbs are drawn bright, right limbs dim (the colour-coded
skeletons of pose papers), so left and right can be told apart. Part of the figure may be hidden under an
erased square: those joints keep their coordinates with visibility 1 (COCO's "labelled, not visible"), the
others have visibility 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from course_lib._validate import check_float, check_int
from course_lib.data.digits import SPLITS, load_source_digits, split_indices

__all__ = [
    "DetectionCanvases",
    "make_detection_canvases",
    "KEYPOINT_NAMES",
    "SKELETON",
    "StickFigures",
    "make_stick_figures",
]

_SOURCE = 8  # load_digits images are 8x8


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling (the same as ``digits.upscale``, faster for small arrays)."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def _split_id(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


# --------------------------------------------------------------------------------------------------
# Detection canvases
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectionCanvases:
    """A batch of detection canvases. Introduced in lesson 14.

    images (N, 1, S, S) float32 in [0, 1]; boxes (N, M, 4) float32 ``(x0, y0, x1, y1)`` in pixels (``x1``,
    ``y1`` exclusive: the digit's ink is ``images[n, 0, y0:y1, x0:x1]``), padded with zeros; labels (N, M)
    int64 in 0..9, padded with -1; counts (N,) int64 the number of digits on each canvas (M = max_digits).
    """

    images: Tensor
    boxes: Tensor
    labels: Tensor
    counts: Tensor
    canvas: int
    split: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int | slice | Tensor) -> DetectionCanvases:
        """A subset, e.g. ``data[:64]``."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return DetectionCanvases(self.images[index], self.boxes[index], self.labels[index], self.counts[index],
                                 self.canvas, self.split)

    def targets(self, index: int) -> tuple[Tensor, Tensor]:
        """The boxes (k, 4) and labels (k,) of canvas ``index`` without padding."""
        k = int(self.counts[index])
        return self.boxes[index, :k], self.labels[index, :k]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int], margin: int = 0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def make_detection_canvases(
    n: int,
    *,
    canvas: int = 64,
    max_digits: int = 4,
    scales: tuple[int, ...] = (2, 3, 4),
    n_clutter: int = 6,
    fragment: int = 3,
    seed: int = 0,
    split: str = "train",
    split_seed: int = 0,
) -> DetectionCanvases:
    """``n`` canvases of ``canvas`` x ``canvas`` pixels with 1..``max_digits`` digits each, boxes and classes.

    Each digit is a source image of ``split`` upscaled by a factor drawn from ``scales`` (8x8 -> 8s x 8s)
    and placed where its square does not touch an earlier one (a digit that finds no room after 50 tries is
    left out, so ``counts`` can be below the number drawn); then ``n_clutter`` fragments (``fragment`` x
    ``fragment`` source pixels of other digits of the same split, scale 2) are pasted outside every digit's
    square. Pixels combine by maximum. Deterministic given ``seed`` and ``split``. Introduced in lesson 14.
    """
    n = check_int("n", n, minimum=1)
    canvas = check_int("canvas", canvas, minimum=8)
    max_digits = check_int("max_digits", max_digits, minimum=1)
    n_clutter = check_int("n_clutter", n_clutter, minimum=0)
    fragment = check_int("fragment", fragment, minimum=1, maximum=_SOURCE)
    seed = check_int("seed", seed, minimum=0)
    if not isinstance(scales, (tuple, list)) or not scales:
        raise ValueError(f"scales must be a non-empty tuple of ints, got {scales!r}")
    scales = tuple(check_int("scales", s, minimum=1) for s in scales)
    if _SOURCE * max(scales) > canvas:
        raise ValueError(f"the largest scale {max(scales)} makes a digit of {_SOURCE * max(scales)} pixels, larger "
                         f"than canvas={canvas}")
    which = _split_id(split)
    images_src, labels_src = load_source_digits()
    pool = split_indices(split, split_seed=split_seed)
    rng = np.random.default_rng([seed, which, 14])

    images = np.zeros((n, 1, canvas, canvas), dtype=np.float32)
    boxes = np.zeros((n, max_digits, 4), dtype=np.float32)
    labels = np.full((n, max_digits), -1, dtype=np.int64)
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        page = images[i, 0]
        cells: list[tuple[int, int, int, int]] = []
        wanted = int(rng.integers(1, max_digits + 1))
        for _ in range(wanted):
            src = int(pool[rng.integers(len(pool))])
            size = _SOURCE * scales[int(rng.integers(len(scales)))]
            for _try in range(50):
                x, y = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
                cell = (x, y, x + size, y + size)
                if not any(_overlap(cell, c) for c in cells):
                    break
            else:
                continue  # no room for this digit
            digit = _upscale(images_src[src], size // _SOURCE)  # (size, size)
            region = page[y:y + size, x:x + size]
            np.maximum(region, digit, out=region)
            rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
            k = len(cells)
            boxes[i, k] = (x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1)
            labels[i, k] = labels_src[src]
            cells.append(cell)
        counts[i] = len(cells)
        frag_px = fragment * 2
        for _ in range(n_clutter):
            other = int(pool[rng.integers(len(pool))])
            cy, cx = (int(v) for v in rng.integers(0, _SOURCE - fragment + 1, size=2))
            piece = _upscale(images_src[other, cy:cy + fragment, cx:cx + fragment], 2)
            for _try in range(50):
                fx, fy = (int(v) for v in rng.integers(0, canvas - frag_px + 1, size=2))
                if not any(_overlap((fx, fy, fx + frag_px, fy + frag_px), c) for c in cells):
                    region = page[fy:fy + frag_px, fx:fx + frag_px]
                    np.maximum(region, piece, out=region)
                    break
    return DetectionCanvases(torch.from_numpy(images), torch.from_numpy(boxes), torch.from_numpy(labels),
                             torch.from_numpy(counts), canvas, split)


# --------------------------------------------------------------------------------------------------
# Stick figures
# --------------------------------------------------------------------------------------------------
KEYPOINT_NAMES = ("head", "neck", "pelvis", "l_elbow", "l_hand", "r_elbow", "r_hand",
                  "l_knee", "l_foot", "r_knee", "r_foot")
#: The bones as (joint, joint) index pairs.
SKELETON = ((0, 1), (1, 2), (1, 3), (3, 4), (1, 5), (5, 6), (2, 7), (7, 8), (2, 9), (9, 10))
_BONE_INTENSITY = (0.8, 0.8, 1.0, 1.0, 0.45, 0.45, 1.0, 1.0, 0.45, 0.45)  # left bright, right dim


@dataclass(frozen=True)
class StickFigures:
    """A batch of stick figures. Introduced in lesson 14.

    images (N, 1, S, S) float32 in [0, 1]; keypoints (N, K, 2) float32 ``(x, y)`` in pixels (pixel ``j``
    covers [j, j + 1), so its centre is j + 0.5); visibility (N, K) int64: 2 visible, 1 hidden under the
    erased square (COCO's convention); K = 11 joints named by ``KEYPOINT_NAMES``.
    """

    images: Tensor
    keypoints: Tensor
    visibility: Tensor
    canvas: int
    split: str

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int | slice | Tensor) -> StickFigures:
        """A subset, e.g. ``data[:64]``."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return StickFigures(self.images[index], self.keypoints[index], self.visibility[index], self.canvas,
                            self.split)


def _pose(rng: np.random.Generator, canvas: int) -> np.ndarray:
    """(K, 2) joint coordinates of one random pose, inside the canvas with a 1.5-pixel margin."""
    s = canvas / 32.0
    for _ in range(100):
        pts = np.zeros((len(KEYPOINT_NAMES), 2))
        pts[2] = rng.uniform(0.35, 0.65, size=2) * canvas
        up = np.deg2rad(-90 + rng.uniform(-25, 25))  # image y grows downwards: -90 degrees is up

        def step(start: np.ndarray, angle: float, length: float) -> np.ndarray:
            return start + length * s * np.array([np.cos(angle), np.sin(angle)])

        pts[1] = step(pts[2], up, 9.0)
        pts[0] = step(pts[1], up + np.deg2rad(rng.uniform(-20, 20)), 3.5)
        for elbow, hand, side in ((3, 4, 1.0), (5, 6, -1.0)):
            # left arm towards image right (a figure facing us), right arm towards image left
            shoulder = up + side * np.deg2rad(rng.uniform(40, 160))
            pts[elbow] = step(pts[1], shoulder, 5.5)
            pts[hand] = step(pts[elbow], shoulder + side * np.deg2rad(rng.uniform(-90, 90)), 5.0)
        for knee, foot, side in ((7, 8, 1.0), (9, 10, -1.0)):
            hip = np.deg2rad(90) - side * np.deg2rad(rng.uniform(5, 55))
            pts[knee] = step(pts[2], hip, 6.5)
            pts[foot] = step(pts[knee], hip + side * np.deg2rad(rng.uniform(-60, 20)), 6.0)
        if (pts >= 1.5).all() and (pts <= canvas - 1.5).all():
            return pts
    raise RuntimeError("no pose fits the canvas after 100 tries")  # pragma: no cover - canvas >= 16 always fits


def _draw_line(page: np.ndarray, a: np.ndarray, b: np.ndarray, value: float) -> None:
    length = float(np.hypot(*(b - a)))
    t = np.linspace(0.0, 1.0, max(2, int(length * 4) + 1))[:, None]
    pts = a[None] + t * (b - a)[None]  # (P, 2) points along the bone
    cols = np.clip(pts[:, 0].astype(int), 0, page.shape[1] - 1)
    rows = np.clip(pts[:, 1].astype(int), 0, page.shape[0] - 1)
    np.maximum.at(page, (rows, cols), value)


def make_stick_figures(
    n: int,
    *,
    canvas: int = 32,
    occlude: float = 0.5,
    occluder: int = 8,
    noise: float = 0.05,
    seed: int = 0,
    split: str = "train",
) -> StickFigures:
    """``n`` stick figures with random joint angles on ``canvas`` x ``canvas`` pixels, with their 11 keypoints.

    With probability ``occlude`` an ``occluder`` x ``occluder`` square centred near a random joint is
    erased (joints under it get visibility 1); then uniform noise up to ``noise`` is added. The figures are
    procedural, so train and test differ by their random streams (``split`` picks the stream), not by
    held-out sources. Introduced in lesson 14.
    """
    n = check_int("n", n, minimum=1)
    canvas = check_int("canvas", canvas, minimum=16)
    occlude = check_float("occlude", occlude, minimum=0.0, maximum=1.0)
    occluder = check_int("occluder", occluder, minimum=1, maximum=canvas)
    noise = check_float("noise", noise, minimum=0.0, maximum=1.0)
    seed = check_int("seed", seed, minimum=0)
    which = _split_id(split)
    rng = np.random.default_rng([seed, which, 1414])
    k = len(KEYPOINT_NAMES)
    images = np.zeros((n, 1, canvas, canvas), dtype=np.float32)
    keypoints = np.zeros((n, k, 2), dtype=np.float32)
    visibility = np.full((n, k), 2, dtype=np.int64)
    radius = max(1.0, canvas / 16.0)
    yy, xx = np.mgrid[0:canvas, 0:canvas] + 0.5
    for i in range(n):
        pts = _pose(rng, canvas)
        page = images[i, 0]
        for (a, b), value in zip(SKELETON, _BONE_INTENSITY, strict=True):
            _draw_line(page, pts[a], pts[b], value)
        head = (xx - pts[0, 0]) ** 2 + (yy - pts[0, 1]) ** 2 <= radius**2
        page[head] = np.maximum(page[head], 0.8)
        if rng.random() < occlude:
            centre = pts[int(rng.integers(3, k))] + rng.uniform(-2, 2, size=2)
            x0, y0 = (int(np.clip(round(c - occluder / 2), 0, canvas - occluder)) for c in centre)
            page[y0:y0 + occluder, x0:x0 + occluder] = 0.0
            hidden = ((pts[:, 0] >= x0) & (pts[:, 0] < x0 + occluder) & (pts[:, 1] >= y0)
                      & (pts[:, 1] < y0 + occluder))
            visibility[i, hidden] = 1
        if noise > 0:
            page += rng.uniform(0.0, noise, size=page.shape).astype(np.float32)
            np.clip(page, 0.0, 1.0, out=page)
        keypoints[i] = pts
    return StickFigures(torch.from_numpy(images), torch.from_numpy(keypoints), torch.from_numpy(visibility),
                        canvas, split)
