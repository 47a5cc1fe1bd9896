"""A small one-stage grid detector (YOLO family, anchor-free), target encoding and box decoding. Lesson 14.

The image is cut into an S x S grid of cells (YOLO, Redmon et al. 2016, arXiv:1506.02640); the cell that
holds an object's centre is responsible for it and predicts, from one feature vector: an objectness
logit, the centre as an offset inside the cell (a sigmoid, as YOLOv2 onwards, arXiv:1612.08242) and the
width and height as ``stride * exp(t)`` (anchor-free: no prior box shapes, as YOLOX, arXiv:2107.08430,
and YOLOv8), and class logits. An attention module of ``course_lib.vision`` can sit in the neck, between
the backbone and the head, where YOLOv4's model-zoo ``yolov4-sam-mish.cfg`` puts its SAM layers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from course_lib._validate import check_float, check_int, check_tensor, positive_int
from course_lib.detection.boxes import cxcywh_to_xyxy
from course_lib.detection.nms import batched_nms
from course_lib.vision import create_attention

__all__ = ["NECK_MODULES", "GridDetector", "encode_targets", "decode_boxes", "decode_predictions"]

#: Neck variants of the lesson's ablation: ``create_attention`` names, "baseline" for none.
NECK_MODULES = ("baseline", "yolo_sam", "cbam", "psa", "sagan")
_MAX_LOG_SIZE = 4.0  # exp(4) = 55 strides: far beyond any object here, keeps exp finite early in training


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.SiLU())


class GridDetector(nn.Module):
    """A YOLO-style detector: 3 stride-2 stages, an optional attention module in the neck, a 1x1 grid head.

    Output of ``forward``: raw predictions (B, 5 + num_classes, S, S) with S = H / 8; channel 0 is the
    objectness logit, 1-4 the box (tx, ty, tw, th), the rest class logits. Introduced in lesson 14.

    Args:
        neck: a ``course_lib.vision.create_attention`` name (e.g. "yolo_sam", "cbam", "psa", "sagan"), or
            None / "baseline" for no attention.
        num_classes: number of object classes.
        widths: channels of the three backbone stages (the neck and head use the last).
        in_channels: image channels.
        prior: the objectness probability the head starts from (a bias, as RetinaNet, arXiv:1708.02002).
        **neck_kwargs: passed to ``create_attention``.
    """

    stride = 8

    def __init__(self, neck: str | None = None, *, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64),
                 in_channels: int = 1, prior: float = 0.03, **neck_kwargs: Any) -> None:
        super().__init__()
        self.num_classes = positive_int("num_classes", num_classes)
        if not isinstance(widths, (tuple, list)) or len(widths) != 3:
            raise ValueError(f"widths must be three ints (one per stage), got {widths!r}")
        w1, w2, w3 = (positive_int("widths", w) for w in widths)
        prior = check_float("prior", prior, minimum=0.0, maximum=1.0, exclusive_minimum=True, exclusive_maximum=True)
        self.neck_name = "baseline" if neck in (None, "baseline") else str(neck)
        self.backbone = nn.Sequential(
            _conv_bn(positive_int("in_channels", in_channels), w1, 2), _conv_bn(w1, w1),
            _conv_bn(w1, w2, 2), _conv_bn(w2, w2),
            _conv_bn(w2, w3, 2), _conv_bn(w3, w3),
        )
        self.attention: nn.Module = (nn.Identity() if self.neck_name == "baseline"
                                     else create_attention(self.neck_name, w3, **neck_kwargs))
        self.neck = _conv_bn(w3, w3)
        self.head = nn.Conv2d(w3, 5 + num_classes, kernel_size=1)
        bias = self.head.bias
        assert bias is not None  # Conv2d has a bias by default
        with torch.no_grad():
            bias.zero_()
            bias[0] = math.log(prior / (1 - prior))

    def attention_modules(self) -> list[nn.Module]:
        """The attention module in the neck (empty for the baseline)."""
        return [] if isinstance(self.attention, nn.Identity) else [self.attention]

    def features(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C, H/8, W/8): what the neck's attention module receives."""
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"GridDetector expects images (B, C, H, W) with H and W multiples of 8, got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.neck(self.attention(self.features(x))))


def encode_targets(boxes: Tensor, labels: Tensor, grid: int, stride: int) -> tuple[Tensor, Tensor, Tensor]:
    """Padded ground truth -> grid targets: objectness (B, S, S), box (B, 4, S, S), class (B, S, S) (-1: none).

    ``boxes`` (B, M, 4) corners in pixels and ``labels`` (B, M) with -1 for padding. The cell holding a
    box's centre gets objectness 1, the centre's offset inside the cell (in [0, 1)) and
    ``log(size / stride)``; when two centres fall in one cell, the later box wins. Introduced in lesson 14.
    """
    check_tensor("boxes", boxes, dim=3, layout="(B, M, 4)")
    check_tensor("labels", labels, dim=2, layout="(B, M)")
    if boxes.shape[2] != 4 or boxes.shape[:2] != labels.shape:
        raise ValueError(f"boxes must have shape (B, M, 4) and labels (B, M), got {tuple(boxes.shape)} and "
                         f"{tuple(labels.shape)}")
    grid, stride = positive_int("grid", grid), positive_int("stride", stride)
    batch = boxes.shape[0]
    obj = torch.zeros(batch, grid, grid, device=boxes.device)
    box = torch.zeros(batch, 4, grid, grid, device=boxes.device)
    cls = torch.full((batch, grid, grid), -1, dtype=torch.long, device=boxes.device)
    b_idx, m_idx = torch.nonzero(labels >= 0, as_tuple=True)
    if len(b_idx) == 0:
        return obj, box, cls
    x0, y0, x1, y1 = boxes[b_idx, m_idx].float().unbind(-1)
    cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride  # centre in grid units
    col = cx.floor().long().clamp(0, grid - 1)
    row = cy.floor().long().clamp(0, grid - 1)
    obj[b_idx, row, col] = 1.0
    box[b_idx, :, row, col] = torch.stack([cx - col, cy - row, ((x1 - x0) / stride).clamp_min(1e-3).log(),
                                           ((y1 - y0) / stride).clamp_min(1e-3).log()], dim=-1)
    cls[b_idx, row, col] = labels[b_idx, m_idx]
    return obj, box, cls


def decode_boxes(raw: Tensor, stride: int) -> Tensor:
    """Raw predictions (B, 5 + C, S, S) -> boxes (B, S*S, 4) as corners in pixels, cells in row-major order.

    Cell (i, j): centre ``((j + sigmoid(tx)) * stride, (i + sigmoid(ty)) * stride)``, size
    ``stride * exp(tw), stride * exp(th)``. Introduced in lesson 14.
    """
    check_tensor("raw", raw, dim=4, layout="(B, 5 + C, S, S)")
    if raw.shape[1] < 5:
        raise ValueError(f"raw must have at least 5 channels (objectness + 4 box), got {tuple(raw.shape)}")
    stride = positive_int("stride", stride)
    _, _, rows, cols = raw.shape
    gy, gx = torch.meshgrid(torch.arange(rows, device=raw.device), torch.arange(cols, device=raw.device),
                            indexing="ij")  # (S, S) each
    cx = (gx + raw[:, 1].sigmoid()) * stride
    cy = (gy + raw[:, 2].sigmoid()) * stride
    w = stride * raw[:, 3].clamp(max=_MAX_LOG_SIZE).exp()
    h = stride * raw[:, 4].clamp(max=_MAX_LOG_SIZE).exp()
    return cxcywh_to_xyxy(torch.stack([cx, cy, w, h], dim=-1)).flatten(1, 2)  # (B, S*S, 4)


def decode_predictions(raw: Tensor, stride: int, *, score_threshold: float = 0.05, iou_threshold: float = 0.5,
                       max_detections: int = 100) -> list[dict[str, Tensor]]:
    """Raw predictions -> per image a dict of ``boxes`` (k, 4), ``scores`` (k,), ``labels`` (k,) after per-class NMS.

    The score of a cell is ``sigmoid(objectness) * max softmax(class)``, its label the argmax class, as in
    YOLOv3's inference (arXiv:1804.02767). Introduced in lesson 14.
    """
    boxes = decode_boxes(raw, stride)  # (B, S*S, 4)
    score_threshold = check_float("score_threshold", score_threshold, minimum=0.0, maximum=1.0)
    max_detections = check_int("max_detections", max_detections, minimum=1)
    obj = raw[:, 0].sigmoid().flatten(1)  # (B, S*S)
    cls_prob = raw[:, 5:].softmax(dim=1).flatten(2)  # (B, C, S*S)
    best, label = cls_prob.max(dim=1)  # (B, S*S)
    scores = obj * best
    out = []
    for b in range(raw.shape[0]):
        keep = torch.nonzero(scores[b] > score_threshold).flatten()
        kept = batched_nms(boxes[b, keep], scores[b, keep], label[b, keep], iou_threshold)[:max_detections]
        idx = keep[kept]
        out.append({"boxes": boxes[b, idx], "scores": scores[b, idx], "labels": label[b, idx]})
    return out
