"""Greedy non-maximum suppression, a plain reference, and the per-class ("batched") version. Lesson 14.

Greedy NMS as in the R-CNN line of detectors (Girshick et al. 2014, arXiv:1311.2524) and YOLO: keep the
highest-scoring box, drop every remaining box whose IoU with it exceeds the threshold, repeat.
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib._validate import check_float, check_tensor
from course_lib.detection.boxes import box_iou

__all__ = ["nms", "nms_reference", "batched_nms"]


def _check(boxes: object, scores: object, iou_threshold: object) -> tuple[Tensor, Tensor, float]:
    b = check_tensor("boxes", boxes, dim=2, layout="(N, 4)")
    s = check_tensor("scores", scores, dim=1, layout="(N,)")
    if b.shape[1] != 4 or b.shape[0] != s.shape[0]:
        raise ValueError(f"boxes must have shape (N, 4) and scores (N,) with the same N, got {tuple(b.shape)} "
                         f"and {tuple(s.shape)}")
    return b, s, check_float("iou_threshold", iou_threshold, minimum=0.0, maximum=1.0)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """(N, 4) boxes, (N,) scores -> indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box is strictly above ``iou_threshold``;
    ties in score keep the lower index first (a stable sort). Introduced in lesson 14.
    """
    b, s, thr = _check(boxes, scores, iou_threshold)
    if b.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=b.device)
    order = torch.sort(s, descending=True, stable=True).indices
    iou = box_iou(b[order], b[order])  # (N, N) in score order
    keep = torch.ones(len(order), dtype=torch.bool, device=b.device)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] <= thr  # suppress the lower-scoring overlaps of a kept box
    return order[keep]


def nms_reference(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """The same result as ``nms`` with plain Python lists and floats (for tests). Introduced in lesson 14."""
    b, s, thr = _check(boxes, scores, iou_threshold)
    items = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
    kept: list[int] = []

    def iou(i: int, j: int) -> float:
        x0, y0 = max(float(b[i, 0]), float(b[j, 0])), max(float(b[i, 1]), float(b[j, 1]))
        x1, y1 = min(float(b[i, 2]), float(b[j, 2])), min(float(b[i, 3]), float(b[j, 3]))
        inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
        area_i = max(0.0, float(b[i, 2] - b[i, 0])) * max(0.0, float(b[i, 3] - b[i, 1]))
        area_j = max(0.0, float(b[j, 2] - b[j, 0])) * max(0.0, float(b[j, 3] - b[j, 1]))
        union = area_i + area_j - inter
        return inter / union if union > 0 else 0.0

    for i in items:
        if all(iou(i, k) <= thr for k in kept):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.long)


def batched_nms(boxes: Tensor, scores: Tensor, classes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """NMS within each class: boxes of different classes never suppress each other. Introduced in lesson 14."""
    b, s, thr = _check(boxes, scores, iou_threshold)
    c = check_tensor("classes", classes, dim=1, layout="(N,)")
    if c.shape[0] != b.shape[0]:
        raise ValueError(f"classes must have shape (N,) = ({b.shape[0]},), got {tuple(c.shape)}")
    if b.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=b.device)
    # The usual trick: shift each class's boxes far apart, so one NMS call never mixes classes.
    offset = c.to(b.dtype)[:, None] * (b.max() - b.min() + 1)
    return nms(b + offset, s, thr)
