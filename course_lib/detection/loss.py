"""The loss of the grid detector: objectness, box and class terms (YOLO family). Lesson 14."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib._validate import check_float, check_tensor
from course_lib.detection.head import encode_targets

__all__ = ["yolo_loss"]


def yolo_loss(raw: Tensor, boxes: Tensor, labels: Tensor, stride: int, *, box_weight: float = 5.0,
              ) -> tuple[Tensor, dict[str, float]]:
    """Raw predictions (B, 5 + C, S, S) and padded targets -> (loss, its parts as floats).

    objectness: binary cross-entropy on every cell (responsible cells 1, the rest 0); box: on responsible
    cells only, L1 between ``sigmoid(tx), sigmoid(ty), tw, th`` and the encoded targets, times
    ``box_weight`` (YOLOv1's lambda_coord = 5, arXiv:1506.02640); class: cross-entropy on responsible
    cells. Each term is summed and divided by the batch size. Introduced in lesson 14.
    """
    check_tensor("raw", raw, dim=4, floating=True, layout="(B, 5 + C, S, S)")
    if raw.shape[2] != raw.shape[3]:
        raise ValueError(f"raw must have a square grid (B, 5 + C, S, S), got {tuple(raw.shape)}")
    box_weight = check_float("box_weight", box_weight, minimum=0.0)
    obj_t, box_t, cls_t = encode_targets(boxes, labels, raw.shape[2], stride)
    if boxes.shape[0] != raw.shape[0]:
        raise ValueError(f"boxes (B, M, 4) must have the batch size of raw {tuple(raw.shape)}, got "
                         f"{tuple(boxes.shape)}")
    batch = raw.shape[0]
    obj_loss = F.binary_cross_entropy_with_logits(raw[:, 0], obj_t, reduction="sum") / batch
    pos = obj_t > 0  # (B, S, S)
    pred_box = torch.stack([raw[:, 1].sigmoid(), raw[:, 2].sigmoid(), raw[:, 3], raw[:, 4]], dim=1)  # (B, 4, S, S)
    box_loss = box_weight * (pred_box - box_t).abs().sum(dim=1)[pos].sum() / batch
    cls_logits = raw[:, 5:].permute(0, 2, 3, 1)[pos]  # (P, C)
    cls_loss = F.cross_entropy(cls_logits, cls_t[pos], reduction="sum") / batch if pos.any() else raw.sum() * 0
    total = obj_loss + box_loss + cls_loss
    return total, {"objectness": obj_loss.item(), "box": box_loss.item(), "class": cls_loss.item()}
