"""Checkers for lesson 14 (detection): IoU, greedy NMS, the grid head's box decoding, and the repaired
attention pooling of the tutorial article's ``AttentionObjectDetection``.

Each checker runs the learner's code on several cases against ``course_lib.detection`` and names the usual
mistake when the answer matches one: the union without subtracting the intersection, negative overlaps not
clamped, NMS without sorting by score, offsets without the sigmoid, rows and columns swapped, the softmax
over channels instead of positions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints
from course_lib.detection.boxes import box_area, box_iou, cxcywh_to_xyxy
from course_lib.detection.head import decode_boxes
from course_lib.detection.nms import nms

__all__ = ["check_box_iou", "check_nms", "check_decode_boxes", "check_attention_pool", "NMS_EXAMPLE",
           "check_nms_prediction"]


def _random_boxes(n: int, seed: int, size: float = 20.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    wh = 2 + torch.rand(n, 2, generator=g) * size
    return torch.cat([xy, xy + wh], dim=1)


# --------------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------------
def check_box_iou(iou_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``iou_fn(boxes1 (N, 4), boxes2 (M, 4)) -> (N, M)`` intersection over union of corner boxes.

    Introduced in lesson 14.
    """
    require_callable(iou_fn, "box_iou")
    cases = [
        (torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0]]),
         "two 2x2 boxes overlapping in a 1x1 square, and a box far away"),
        (_random_boxes(5, 1), _random_boxes(7, 2), "5 x 7 random boxes"),
        (torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.tensor([[1.0, 1.0, 2.0, 2.0], [6.0, 6.0, 8.0, 7.0]]),
         "a box inside another, and one beyond both corners"),
    ]
    for a, b, case in cases:
        got = call_learner(iou_fn, a.clone(), b.clone(), name="box_iou")
        tl = torch.maximum(a[:, None, :2], b[None, :, :2])
        br = torch.minimum(a[:, None, 2:], b[None, :, 2:])
        raw_wh = br - tl
        inter = raw_wh.clamp_min(0).prod(-1)
        area_a, area_b = box_area(a)[:, None], box_area(b)[None, :]
        plus_one = (br - tl + 1).clamp_min(0).prod(-1)
        area_a1 = ((a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1))[:, None]
        area_b1 = ((b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1))[None, :]
        mistakes = {
            "the union must subtract the intersection once: area1 + area2 - intersection": inter / (area_a + area_b),
            "clamp the overlap's width and height at 0 before multiplying (two negative sides make a positive "
            "'intersection' for boxes apart)": (raw_wh[..., 0] * raw_wh[..., 1]) / (area_a + area_b - raw_wh.prod(-1)),
            "you returned the intersection area, not intersection over union": inter,
            "that is the intersection over the smaller box (IoMin), not over the union":
                inter / torch.minimum(area_a, area_b),
            "these boxes are continuous corners (x1 exclusive): no '+ 1' on widths and heights":
                plus_one / (area_a1 + area_b1 - plus_one),
            "the result is (M, N): boxes1 indexes the rows, boxes2 the columns": (inter / (area_a + area_b - inter)).T,
        }
        compare(got, box_iou(a, b), "box_iou", case, mistakes=mistakes)
    passed("box_iou")


# --------------------------------------------------------------------------------------------------
# NMS
# --------------------------------------------------------------------------------------------------
def _nms_unsorted(boxes: Tensor, scores: Tensor, thr: float) -> Tensor:
    iou = box_iou(boxes, boxes)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] <= thr
    return torch.nonzero(keep).flatten()


def _nms_all_higher(boxes: Tensor, scores: Tensor, thr: float) -> Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    keep = [i for i in range(len(order)) if not (iou[i, :i] > thr).any()]
    return order[keep]


def check_nms(nms_fn: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """``nms_fn(boxes (N, 4), scores (N,), iou_threshold) -> kept indices``, highest score first.

    Introduced in lesson 14.
    """
    require_callable(nms_fn, "nms")
    chain = torch.tensor([[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 13.0, 10.0], [6.0, 0.0, 16.0, 10.0],
                          [30.0, 30.0, 40.0, 40.0]])
    cases = [
        (chain, torch.tensor([0.9, 0.8, 0.7, 0.6]), 0.5,
         "a chain A-B-C (A overlaps B, B overlaps C, A barely C) and a lone box"),
        (chain[[2, 0, 3, 1]], torch.tensor([0.7, 0.9, 0.6, 0.8]), 0.5, "the same boxes, not sorted by score"),
        (_random_boxes(30, 5), torch.rand(30, generator=torch.Generator().manual_seed(6)), 0.3,
         "30 random boxes at IoU threshold 0.3"),
        (torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0]]), torch.tensor([0.9, 0.8]),
         1.0, "two identical boxes at threshold 1.0 (IoU 1 is not above 1: both stay)"),
    ]
    for boxes, scores, thr, case in cases:
        got = call_learner(nms_fn, boxes.clone(), scores.clone(), thr, name="nms")
        if isinstance(got, Tensor) and got.dtype == torch.bool:
            raise CheckFailed(f"nms on {case}: return the kept *indices* (torch.nonzero of your mask, in score "
                              f"order), not a boolean mask")
        if isinstance(got, (list, tuple)):
            got = torch.tensor(list(got), dtype=torch.long)
        expected = nms(boxes, scores, thr)
        order = torch.sort(scores, descending=True, stable=True).indices.tolist()
        mistakes = {
            "sort by score first: the highest-scoring box is kept first (torch.argsort(scores, descending=True))":
                _nms_unsorted(boxes, scores, thr),
            "a box suppressed earlier must not suppress others: compare only with the boxes you *kept*":
                _nms_all_higher(boxes, scores, thr),
            "the indices must be into the original boxes, not positions in the sorted order":
                torch.tensor([order.index(int(k)) for k in expected], dtype=torch.long),
        }
        if not isinstance(got, Tensor) or got.shape != expected.shape or not torch.equal(got.long(), expected):
            if isinstance(got, Tensor) and got.dim() == 1 and torch.equal(torch.sort(got.long()).values,
                                                                          torch.sort(expected).values):
                raise CheckFailed(f"nms on {case}: the right boxes, in the wrong order; return them highest score "
                                  f"first")
            if thr == 1.0 and isinstance(got, Tensor) and len(got) == 1:
                raise CheckFailed(f"nms on {case}: suppress only when IoU > threshold (strictly), not >=")
            compare(got, expected, "nms", case, mistakes=mistakes, atol=0, rtol=0)
    passed("nms")


# --------------------------------------------------------------------------------------------------
# Box decoding
# --------------------------------------------------------------------------------------------------
def check_decode_boxes(decode_fn: Callable[[Tensor, int], Tensor]) -> None:
    """``decode_fn(raw (B, 5 + C, S, S), stride) -> (B, S*S, 4)`` corner boxes in pixels, cells row-major.

    Introduced in lesson 14.
    """
    require_callable(decode_fn, "decode_boxes")
    for seed, (b, c, s, stride) in enumerate(((1, 3, 2, 8), (2, 10, 4, 8), (1, 2, 3, 16))):
        raw = torch.randn(b, 5 + c, s, s, generator=torch.Generator().manual_seed(40 + seed))
        case = f"raw of shape {(b, 5 + c, s, s)}, stride {stride}"
        got = call_learner(decode_fn, raw.clone(), stride, name="decode_boxes")
        gy, gx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")

        def corners(cx: Tensor, cy: Tensor, w: Tensor, h: Tensor) -> Tensor:
            return cxcywh_to_xyxy(torch.stack([cx, cy, w, h], dim=-1)).flatten(1, 2)

        sx, sy = raw[:, 1].sigmoid(), raw[:, 2].sigmoid()
        w, h = stride * raw[:, 3].exp(), stride * raw[:, 4].exp()
        mistakes = {
            "the offsets inside the cell need a sigmoid: cx = (col + sigmoid(tx)) * stride":
                corners((gx + raw[:, 1]) * stride, (gy + raw[:, 2]) * stride, w, h),
            "rows and columns are swapped: x grows along the last axis (columns), y along the rows":
                corners((gy + sx) * stride, (gx + sy) * stride, w, h),
            "the size is stride * exp(tw): the exp is missing": corners((gx + sx) * stride, (gy + sy) * stride,
                                                                     stride * raw[:, 3], stride * raw[:, 4]),
            "return corners (x0, y0, x1, y1), not centre and size":
                torch.stack([(gx + sx) * stride, (gy + sy) * stride, w, h], dim=-1).flatten(1, 2),
            "the centre is in grid units: multiply (col + sigmoid(tx)) by the stride":
                corners(gx + sx, gy + sy, w, h),
            "the width and height are in strides: multiply exp(tw) by the stride":
                corners((gx + sx) * stride, (gy + sy) * stride, raw[:, 3].exp(), raw[:, 4].exp()),
        }
        compare(got, decode_boxes(raw, stride), "decode_boxes", case, mistakes=mistakes)
    passed("decode_boxes")


# --------------------------------------------------------------------------------------------------
# The article's class: find the bug
# --------------------------------------------------------------------------------------------------
def check_attention_pool(pool_fn: Callable[[Tensor, nn.Linear], tuple[Tensor, Tensor]], boxes_per_image: object
                         ) -> None:
    """``pool_fn(features (B, C, h, w), score (Linear(C, 1))) -> (pooled (B, C), weights (B, h*w))``, and the
    number of boxes the repaired class predicts per image.

    Introduced in lesson 14.
    """
    require_callable(pool_fn, "attention_pool")
    for seed, (b, c, h, w) in enumerate(((2, 8, 3, 5), (1, 16, 4, 4), (3, 6, 2, 7))):
        g = torch.Generator().manual_seed(70 + seed)
        feats = torch.randn(b, c, h, w, generator=g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(80 + seed)
            score = nn.Linear(c, 1)
        case = f"features of shape {(b, c, h, w)}"
        got = call_learner(pool_fn, feats.clone(), score, name="attention_pool")
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(f"attention_pool on {case} must return a pair (pooled (B, C), weights (B, h*w)), got "
                              f"{type(got).__name__}")
        pooled, weights = got
        with torch.no_grad():
            tokens = feats.flatten(2).transpose(1, 2)  # (B, N, C)
            s = score(tokens).squeeze(-1)  # (B, N)
            a = s.softmax(dim=-1)
            expected_pooled = (a[..., None] * tokens).sum(1)
            sig = s.sigmoid()
            compare(weights, a, "attention_pool weights", case, mistakes={
                "the weights must sum to 1 over the positions: softmax, not sigmoid": sig,
                "the softmax runs over the positions (the h*w axis), so one position wins, not one channel":
                    s[..., None].softmax(dim=-1).squeeze(-1),
            })
            compare(pooled, expected_pooled, "attention_pool pooled", case, mistakes={
                "pool with the weights: sum over positions of weight * feature, not the plain mean":
                    tokens.mean(1),
                "use the softmax weights, not the raw scores, when pooling": (s[..., None] * tokens).sum(1),
                "pool over the positions (sum over N), keeping the C channels": (a[..., None] * tokens).sum(2),
            })
    if isinstance(boxes_per_image, bool) or not isinstance(boxes_per_image, int):
        raise CheckFailed(f"boxes_per_image must be an int, got {type(boxes_per_image).__name__} {boxes_per_image!r}")
    if boxes_per_image != 1:
        raise CheckFailed(f"boxes_per_image = {boxes_per_image}: the pooled vector is one vector per image, and the "
                          f"box layer maps it to one box; how many digits are on the canvas does not change that")
    passed("attention_pool")


# --------------------------------------------------------------------------------------------------
# Predict what greedy NMS keeps
# --------------------------------------------------------------------------------------------------
NMS_EXAMPLE: dict[str, Any] = {
    "names": "ABCDE",
    "boxes": [[4.0, 0.0, 14.0, 10.0], [0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0],
              [21.0, 20.0, 31.0, 30.0], [20.0, 20.0, 30.0, 30.0]],
    "scores": [0.7, 0.9, 0.8, 0.5, 0.6],
    "iou_threshold": 0.5,
}


def _letters(answer: Any, name: str, names: str) -> str:
    if answer is None or answer is Ellipsis:
        raise CheckFailed(f"{name} is still {answer!r}: replace it with your answer in the cell above and run it")
    if isinstance(answer, str):
        letters = [ch for ch in answer.upper() if not ch.isspace() and ch not in ",;-[]()'\""]
    elif isinstance(answer, list | tuple) and all(isinstance(a, str) for a in answer):
        letters = [a.strip().upper() for a in answer]
    else:
        raise CheckFailed(f"{name} should be the letters of the kept boxes as a string such as \"ACD\", got "
                          f"{type(answer).__name__} {answer!r}")
    unknown = [ch for ch in letters if ch not in names]
    if unknown or len(set(letters)) != len(letters):
        raise CheckFailed(f"{name} = {answer!r}: use each of the letters {', '.join(names)} at most once")
    return "".join(letters)


def check_nms_prediction(predicted_kept: object) -> None:
    """``predicted_kept``: the letters of the boxes greedy NMS keeps for ``NMS_EXAMPLE``, in the order it returns
    them (highest score first); the truth is what ``course_lib.detection.nms`` returns. Introduced in lesson 14."""
    ex = NMS_EXAMPLE
    names, thr = ex["names"], ex["iou_threshold"]
    boxes, scores = torch.tensor(ex["boxes"]), torch.tensor(ex["scores"])
    got = _letters(predicted_kept, "predicted_kept", names)
    truth = "".join(names[i] for i in nms(boxes, scores, thr).tolist())
    iou = box_iou(boxes, boxes)
    by_score = "".join(names[i] for i in torch.argsort(scores, descending=True).tolist())
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names)) if iou[i, j] > 0]
    overlaps = ", ".join(f"IoU({names[i]}, {names[j]}) = {iou[i, j]:.2f}" for i, j in pairs)
    hints = StepHints("detection-nms-prediction", [
        f"first put the boxes in score order ({', '.join(by_score)}), then compute the IoU of every pair that "
        f"overlaps (intersection / union of two 10 x 10 boxes)",
        f"the overlapping pairs: {overlaps}. Only an IoU strictly above {thr} suppresses",
        f"walk it: keep the best remaining box, delete the remaining boxes whose IoU with it is above {thr}, repeat "
        f"with the best box still remaining. A box that was deleted never deletes another",
    ])
    if got == truth:
        passed(f"predicted_kept = {got!r}. Why: in score order {by_score}, each kept box deletes only the remaining "
               f"boxes it overlaps by more than {thr} ({overlaps}); a deleted box deletes nothing, so a box two "
               f"steps along a chain can survive. This is what course_lib.detection.nms returns")
        return

    def greedy(order: list[int], dropped_suppress: bool = False) -> str:
        keep, alive = [], list(order)
        while alive:
            best = alive.pop(0)
            keep.append(best)
            now = [j for j in alive if iou[best, j] > thr]
            while dropped_suppress and now:  # the mistake: a deleted box deletes what it overlaps, and so on
                alive = [j for j in alive if j not in now]
                now = [j for j in alive if any(iou[k, j] > thr for k in now)]
            alive = [j for j in alive if j not in now]
        return "".join(names[i] for i in keep)

    def by_letters(letters: str) -> str:
        return "".join(sorted(letters))

    order = torch.argsort(scores, descending=True).tolist()
    mistakes = {
        greedy(order, dropped_suppress=True): "a box that was deleted still deleted another: once NMS removes a "
                                              "box, that box suppresses nothing",
        greedy(list(range(len(names)))): "that is NMS in the order of the letters: it takes the boxes by score, "
                                         "highest first",
        names: "nothing was suppressed: some pairs overlap by more than the threshold",
    }
    said = mistakes.get(got, "")
    if not said and by_letters(got) == by_letters(truth):
        said = "these are the right boxes, but NMS returns them highest score first"
    if not said and by_letters(got) == by_letters(names):
        said = mistakes[names]
    if not said:
        extra = [names.index(ch) for ch in got if ch not in truth]
        missing = [names.index(ch) for ch in truth if ch not in got]
        if extra:
            j = extra[0]
            killer = next(i for i in order if names[i] in truth and iou[i, j] > thr)
            said = (f"{names[j]} is deleted: {names[killer]} is kept before it and IoU({names[killer]}, {names[j]}) = "
                    f"{iou[killer, j]:.2f} > {thr}")
        elif missing:
            said = (f"{names[missing[0]]} survives: no box that is kept before it overlaps it by more than {thr}")
    raise hints.fail(f"predicted_kept = {got!r} is not right." + (f" {said[0].upper()}{said[1:]}" if said else ""))
