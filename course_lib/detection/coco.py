"""COCO evaluation with pycocotools (boxes and keypoints), and the AP and OKS formulas written out. Lesson 14.

mAP@[.5:.95] and mAP@0.5 as defined by the COCO detection challenge (Lin et al. 2014, arXiv:1405.0312;
https://cocodataset.org/#detection-eval): per class, detections sorted by score are matched greedily to
unmatched ground truth at IoU >= t, precision is made monotone and read at 101 recall points, averaged over
classes (and over t = 0.50, 0.55, ..., 0.95). Keypoint AP replaces IoU by the object keypoint similarity
(OKS, https://cocodataset.org/#keypoints-eval). torchmetrics' ``MeanAveragePrecision`` would wrap the same
code but needs torchvision, which does not install beside this course's torch, so pycocotools is called
directly.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib._validate import check_float, check_tensor
from course_lib.detection.boxes import box_iou

__all__ = ["detections_to_coco", "coco_detection_map", "average_precision", "object_keypoint_similarity",
           "coco_keypoint_ap"]


def _xywh(b: Tensor) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in b)
    return [x0, y0, x1 - x0, y1 - y0]


def detections_to_coco(predictions: Sequence[dict[str, Tensor]], gt_boxes: Sequence[Tensor],
                       gt_labels: Sequence[Tensor], num_classes: int = 10) -> tuple[dict[str, Any], list[dict]]:
    """Per-image predictions and ground truth -> a COCO ground-truth dict and a COCO results list.

    Introduced in lesson 14.
    """
    if not (len(predictions) == len(gt_boxes) == len(gt_labels)):
        raise ValueError(f"predictions, gt_boxes and gt_labels must have one entry per image, got "
                         f"{len(predictions)}, {len(gt_boxes)} and {len(gt_labels)}")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i, (pred, boxes, labels) in enumerate(zip(predictions, gt_boxes, gt_labels, strict=True)):
        images.append({"id": i, "width": 0, "height": 0})
        for b, c in zip(boxes, labels, strict=True):
            xywh = _xywh(b)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c), "bbox": xywh,
                                "area": xywh[2] * xywh[3], "iscrowd": 0})
        for b, s, c in zip(pred["boxes"], pred["scores"], pred["labels"], strict=True):
            results.append({"image_id": i, "category_id": int(c), "bbox": _xywh(b), "score": float(s)})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": c, "name": str(c)} for c in range(num_classes)]}
    return gt, results


def _run_cocoeval(gt: dict[str, Any], results: list[dict], iou_type: str,
                  sigmas: np.ndarray | None = None) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def coco_detection_map(predictions: Sequence[dict[str, Tensor]], gt_boxes: Sequence[Tensor],
                       gt_labels: Sequence[Tensor], num_classes: int = 10) -> dict[str, float]:
    """COCOeval on boxes -> ``{"map": mAP@[.5:.95], "map_50": mAP@0.5, "map_75": mAP@0.75}``.

    ``predictions`` is one dict per image with ``boxes`` (k, 4) corners, ``scores`` (k,), ``labels`` (k,);
    ``gt_boxes`` / ``gt_labels`` one tensor per image. Introduced in lesson 14.
    """
    gt, results = detections_to_coco(predictions, gt_boxes, gt_labels, num_classes)
    if not results:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    stats = _run_cocoeval(gt, results, "bbox").stats
    return {"map": float(stats[0]), "map_50": float(stats[1]), "map_75": float(stats[2])}


def average_precision(scores: Tensor, pred_boxes: Sequence[Tensor], gt_boxes: Sequence[Tensor], *,
                      iou_threshold: float = 0.5, image_of: Tensor | None = None) -> float:
    """COCO's AP of one class at one IoU threshold, written out: greedy matching, 101-point interpolation.

    ``pred_boxes[i]`` (k_i, 4) and ``scores`` (sum k_i,) concatenated over images in the same order;
    ``gt_boxes[i]`` (g_i, 4). Returns -1 when there is no ground truth (COCO's convention). Introduced in
    lesson 14.
    """
    check_tensor("scores", scores, dim=1, layout="(D,)")
    thr = check_float("iou_threshold", iou_threshold, minimum=0.0, maximum=1.0)
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"pred_boxes and gt_boxes must have one entry per image, got {len(pred_boxes)} and "
                         f"{len(gt_boxes)}")
    counts = [len(p) for p in pred_boxes]
    if sum(counts) != len(scores):
        raise ValueError(f"scores must have one entry per predicted box ({sum(counts)}), got {tuple(scores.shape)}")
    n_gt = sum(len(g) for g in gt_boxes)
    if n_gt == 0:
        return -1.0
    image = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
    flat = torch.cat([p.reshape(-1, 4) for p in pred_boxes]) if counts else torch.zeros(0, 4)
    # COCO sorts each image's detections by score, then all detections by score (mergesort: stable)
    order = np.argsort(-scores.detach().cpu().numpy(), kind="mergesort")
    taken = [torch.zeros(len(g), dtype=torch.bool) for g in gt_boxes]
    tp = np.zeros(len(order))
    for rank, d in enumerate(order):
        i = int(image[d])
        gts = gt_boxes[i]
        if len(gts) == 0:
            continue
        iou = box_iou(flat[d:d + 1].double(), gts.double())[0]  # (g_i,)
        iou[taken[i]] = -1.0
        best = int(iou.argmax())
        if float(iou[best]) >= min(thr, 1 - 1e-10):
            taken[i][best] = True
            tp[rank] = 1.0
    tps, fps = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, np.spacing(1))
    for k in range(len(precision) - 1, 0, -1):  # monotone: the best precision at this recall or more
        precision[k - 1] = max(precision[k - 1], precision[k])
    points = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, points, side="left")
    sampled = np.array([precision[j] if j < len(precision) else 0.0 for j in idx])
    return float(sampled.mean())


def object_keypoint_similarity(pred: Tensor, gt: Tensor, visibility: Tensor, areas: Tensor, sigmas: Tensor
                               ) -> Tensor:
    """(N, K, 2) predicted and true keypoints, (N, K) visibility, (N,) areas, (K,) sigmas -> (N,) OKS.

    COCO's OKS: mean over labelled keypoints (visibility > 0) of ``exp(-d^2 / (2 s^2 (2 sigma)^2))`` with
    ``s^2`` the object's area. Introduced in lesson 14.
    """
    check_tensor("pred", pred, dim=3, layout="(N, K, 2)")
    check_tensor("gt", gt, dim=3, layout="(N, K, 2)")
    if pred.shape != gt.shape or pred.shape[2] != 2:
        raise ValueError(f"pred and gt must both have shape (N, K, 2), got {tuple(pred.shape)} and "
                         f"{tuple(gt.shape)}")
    if visibility.shape != gt.shape[:2] or areas.shape != gt.shape[:1] or sigmas.shape != gt.shape[1:2]:
        raise ValueError(f"visibility must be (N, K), areas (N,), sigmas (K,) for gt {tuple(gt.shape)}, got "
                         f"{tuple(visibility.shape)}, {tuple(areas.shape)} and {tuple(sigmas.shape)}")
    d2 = ((pred.double() - gt.double()) ** 2).sum(-1)  # (N, K)
    var = (2 * sigmas.double()) ** 2  # (K,)
    e = d2 / var / (areas.double()[:, None] + np.spacing(1)) / 2
    labelled = (visibility > 0).double()
    return (torch.exp(-e) * labelled).sum(-1) / labelled.sum(-1).clamp_min(1)


def coco_keypoint_ap(pred: Tensor, scores: Tensor, gt: Tensor, visibility: Tensor, areas: Tensor,
                     sigmas: Tensor) -> dict[str, float]:
    """COCOeval with iouType "keypoints", one object per image -> ``{"ap": AP@[.5:.95] OKS, "ap_50", "ap_75"}``.

    Introduced in lesson 14.
    """
    check_tensor("pred", pred, dim=3, layout="(N, K, 2)")
    check_tensor("scores", scores, dim=1, layout="(N,)")
    if pred.shape != gt.shape or scores.shape[0] != pred.shape[0]:
        raise ValueError(f"pred and gt must have the same shape (N, K, 2) and scores (N,), got {tuple(pred.shape)}, "
                         f"{tuple(gt.shape)} and {tuple(scores.shape)}")
    n, k, _ = gt.shape
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i in range(n):
        images.append({"id": i, "width": 0, "height": 0})
        g = torch.cat([gt[i].double(), visibility[i].double()[:, None]], 1).flatten().tolist()
        x0, y0 = gt[i].min(0).values.tolist()
        x1, y1 = gt[i].max(0).values.tolist()
        annotations.append({"id": i + 1, "image_id": i, "category_id": 1, "keypoints": g,
                            "num_keypoints": int((visibility[i] > 0).sum()), "area": float(areas[i]),
                            "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
        p = torch.cat([pred[i].double(), torch.ones(k, 1, dtype=torch.float64)], 1).flatten().tolist()
        results.append({"image_id": i, "category_id": 1, "keypoints": p, "score": float(scores[i])})
    coco_gt = {"images": images, "annotations": annotations,
               "categories": [{"id": 1, "name": "figure", "keypoints": [str(j) for j in range(k)], "skeleton": []}]}
    stats = _run_cocoeval(coco_gt, results, "keypoints", sigmas.double().cpu().numpy()).stats
    return {"ap": float(stats[0]), "ap_50": float(stats[1]), "ap_75": float(stats[2])}
