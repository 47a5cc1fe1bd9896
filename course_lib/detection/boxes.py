"""Boxes as ``(x0, y0, x1, y1)`` corners, conversions and intersection over union. Lesson 14.

IoU (Jaccard index) as used by every detection benchmark since PASCAL VOC (Everingham et al. 2010,
doi:10.1007/s11263-009-0275-4): area of the intersection over area of the union.
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib._validate import check_tensor

__all__ = ["box_area", "box_iou", "cxcywh_to_xyxy", "xyxy_to_cxcywh"]


def _boxes(name: str, boxes: object) -> Tensor:
    t = check_tensor(name, boxes)
    if t.dim() < 1 or t.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4) (x0, y0, x1, y1), got {tuple(t.shape)}")
    return t


def box_area(boxes: Tensor) -> Tensor:
    """(..., 4) corners -> (...,) areas (0 for empty boxes). Introduced in lesson 14."""
    b = _boxes("boxes", boxes)
    return (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """(N, 4), (M, 4) corners -> (N, M) intersection over union (0 where the union is empty).

    Introduced in lesson 14.
    """
    a, b = _boxes("boxes1", boxes1), _boxes("boxes2", boxes2)
    if a.dim() != 2 or b.dim() != 2:
        raise ValueError(f"boxes1 and boxes2 must have shape (N, 4) and (M, 4), got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = (bottom_right - top_left).clamp_min(0)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1e-12), torch.zeros_like(inter))


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(..., 4) centre and size -> (..., 4) corners. Introduced in lesson 14."""
    b = _boxes("boxes", boxes)
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(..., 4) corners -> (..., 4) centre and size. Introduced in lesson 14."""
    b = _boxes("boxes", boxes)
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)
