"""course_lib.detection: IoU, NMS (against a plain reference), the grid head, loss, COCO evaluation, SimCC,
and the article's class."""

import contextlib
import io

import numpy as np
import pytest
import torch

from course_lib.detection import (
    NECK_MODULES,
    AttentionObjectDetection,
    GridDetector,
    RepairedAttentionDetection,
    SimCCPose,
    average_precision,
    batched_nms,
    box_area,
    box_iou,
    coco_detection_map,
    coco_keypoint_ap,
    cxcywh_to_xyxy,
    decode_boxes,
    decode_predictions,
    encode_targets,
    nms,
    nms_reference,
    object_keypoint_similarity,
    simcc_decode,
    simcc_loss,
    simcc_targets,
    xyxy_to_cxcywh,
    yolo_loss,
)


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 40
    return torch.cat([xy, xy + 1 + 15 * torch.rand(n, 2, generator=g)], dim=1)


# ------------------------------------------------------------------------------------------------ boxes
def test_iou_known_values_and_properties():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0], [0.5, 0.5, 1.5, 1.5]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[1 / 7, 0.0, 1.0, 0.25]]))
    x = _boxes(12, 0)
    iou = box_iou(x, x)
    assert torch.allclose(iou, iou.T) and torch.allclose(iou.diagonal(), torch.ones(12))
    assert ((iou >= 0) & (iou <= 1 + 1e-6)).all()
    assert box_iou(torch.zeros(0, 4), x).shape == (0, 12)
    assert torch.allclose(xyxy_to_cxcywh(cxcywh_to_xyxy(x)), x, atol=1e-5)
    assert torch.allclose(box_area(a), torch.tensor([4.0]))


def test_iou_bad_shapes():
    with pytest.raises(ValueError, match=r"boxes1.*\(3, 3\)"):
        box_iou(torch.zeros(3, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError):
        box_iou([[0, 0, 1, 1]], torch.zeros(2, 4))


# ------------------------------------------------------------------------------------------------ NMS
@pytest.mark.parametrize("seed", range(25))
def test_nms_matches_the_plain_reference(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(0, 50, (1,), generator=g))
    boxes, scores = _boxes(n, seed + 100), torch.rand(n, generator=g)
    thr = float(torch.rand(1, generator=g))
    assert nms(boxes, scores, thr).tolist() == nms_reference(boxes, scores, thr).tolist()


def test_nms_properties():
    boxes, scores = _boxes(40, 7), torch.rand(40, generator=torch.Generator().manual_seed(8))
    keep = nms(boxes, scores, 0.4)
    assert (scores[keep][:-1] >= scores[keep][1:]).all()  # highest score first
    assert (box_iou(boxes[keep], boxes[keep]).fill_diagonal_(0) <= 0.4).all()  # kept boxes do not overlap much
    assert int(scores.argmax()) == int(keep[0])
    assert nms(boxes, scores, 1.0).tolist() == torch.sort(scores, descending=True).indices.tolist()
    ties = torch.tensor([[0.0, 0, 4, 4], [0.0, 0, 4, 4], [10.0, 10, 12, 12]])
    assert nms(ties, torch.tensor([0.5, 0.5, 0.5])).tolist() == [0, 2]  # equal scores: lower index first
    chain = torch.tensor([[0.0, 0, 10, 10], [3.0, 0, 13, 10], [6.0, 0, 16, 10]])
    assert nms(chain, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]  # a removed box removes nothing


def test_batched_nms_keeps_classes_apart():
    same = torch.tensor([[0.0, 0, 10, 10], [1.0, 1, 11, 11], [0.0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(same, scores, torch.tensor([0, 1, 0])).tolist() == [0, 1]
    assert batched_nms(same, scores, torch.tensor([0, 0, 0])).tolist() == [0]
    boxes, sc = _boxes(30, 3), torch.rand(30, generator=torch.Generator().manual_seed(4))
    cls = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(5))
    expected = sorted((i for c in range(3) for i in torch.nonzero(cls == c).flatten()[
        nms(boxes[cls == c], sc[cls == c], 0.5)].tolist()), key=lambda i: -float(sc[i]))
    assert batched_nms(boxes, sc, cls, 0.5).tolist() == expected


def test_nms_bad_input():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2,\)"):
        nms(torch.zeros(3, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(torch.zeros(3, 4), torch.zeros(3), 1.5)
    with pytest.raises(ValueError, match="classes"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2))


# ------------------------------------------------------------------------------------------------ head
@pytest.mark.parametrize("neck", NECK_MODULES)
def test_detector_shapes_and_any_size(neck):
    torch.manual_seed(0)
    model = GridDetector(neck)
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 15, 8, 8)
    assert model(torch.rand(1, 1, 32, 48)).shape == (1, 15, 4, 6)
    assert len(model.attention_modules()) == (0 if neck == "baseline" else 1)
    with pytest.raises(ValueError, match=r"multiples of 8.*\(1, 1, 30, 30\)"):
        model(torch.rand(1, 1, 30, 30))


def test_encode_decode_round_trip():
    boxes = torch.tensor([[[3.0, 5.0, 20.0, 25.0], [40.0, 30.0, 60.0, 62.0], [0, 0, 0, 0]]])
    labels = torch.tensor([[4, 7, -1]])
    obj, box_t, cls_t = encode_targets(boxes, labels, 8, 8)
    assert int(obj.sum()) == 2 and obj[0, 1, 1] == 1 and obj[0, 5, 6] == 1
    assert cls_t[0, 1, 1] == 4 and cls_t[0, 5, 6] == 7 and (cls_t >= 0).sum() == 2
    raw = torch.zeros(1, 15, 8, 8)
    raw[:, 1:3] = torch.logit(box_t[:, :2].clamp(1e-6, 1 - 1e-6))
    raw[:, 3:5] = box_t[:, 2:]
    decoded = decode_boxes(raw, 8)[0]
    assert torch.allclose(decoded[1 * 8 + 1], boxes[0, 0], atol=1e-4)
    assert torch.allclose(decoded[5 * 8 + 6], boxes[0, 1], atol=1e-4)


def test_decode_predictions_scores_and_nms():
    raw = torch.full((1, 15, 8, 8), -10.0)
    raw[0, 0, 2, 3] = 10.0  # a confident object at cell (2, 3), class 5
    raw[0, 5 + 5, 2, 3] = 10.0
    raw[0, 0, 2, 4] = 5.0  # a weaker duplicate next to it, same box size
    raw[0, 5 + 5, 2, 4] = 10.0
    raw[0, 1, 2, 4] = -10.0  # its centre at the left edge of its cell: close to the first box
    raw[0, 3:5] = 2.0  # boxes of 59 pixels: the two overlap with IoU 0.86
    out = decode_predictions(raw, 8, score_threshold=0.5)[0]
    assert out["labels"].tolist() == [5] and len(out["boxes"]) == 1
    assert float(out["scores"][0]) > 0.99


def test_loss_zero_when_perfect_and_decreases():
    boxes = torch.tensor([[[3.0, 5.0, 20.0, 25.0]]])
    labels = torch.tensor([[2]])
    obj, box_t, _ = encode_targets(boxes, labels, 8, 8)
    raw = torch.full((1, 15, 8, 8), -30.0)
    raw[:, 0] = torch.where(obj > 0, 30.0, -30.0)
    raw[:, 1:3] = torch.logit(box_t[:, :2].clamp(1e-6, 1 - 1e-6))
    raw[:, 3:5] = box_t[:, 2:]
    raw[0, 5 + 2] = 30.0
    loss, parts = yolo_loss(raw, boxes, labels, 8)
    assert float(loss) < 1e-4 and set(parts) == {"objectness", "box", "class"}
    torch.manual_seed(0)
    model = GridDetector()
    x = torch.rand(4, 1, 64, 64)
    b = boxes.repeat(4, 1, 1)
    lab = labels.repeat(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        loss, _ = yolo_loss(model(x), b, lab, 8)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with pytest.raises(ValueError, match="raw"):
        yolo_loss(torch.zeros(1, 15, 8), boxes, labels, 8)
    with pytest.raises(ValueError, match="labels"):
        encode_targets(boxes, torch.zeros(1, 2, dtype=torch.long), 8, 8)


# ------------------------------------------------------------------------------------------------ COCO
def _coco_ap_one_class(pred_boxes, scores, gts, iou_thr):
    preds = []
    start = 0
    for p in pred_boxes:
        preds.append({"boxes": p, "scores": scores[start:start + len(p)],
                      "labels": torch.zeros(len(p), dtype=torch.long)})
        start += len(p)
    res = coco_detection_map(preds, gts, [torch.zeros(len(g), dtype=torch.long) for g in gts], num_classes=1)
    return res["map_50"] if iou_thr == 0.5 else res["map_75"]


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_equals_cocoeval(seed):
    g = torch.Generator().manual_seed(seed)
    gts, preds = [], []
    for i in range(8):
        truth = _boxes(int(torch.randint(0, 4, (1,), generator=g)), seed * 10 + i)
        noisy = truth + torch.randn(truth.shape, generator=g) * 1.5
        noisy = torch.cat([torch.minimum(noisy[:, :2], noisy[:, 2:]), torch.maximum(noisy[:, :2], noisy[:, 2:]) + 0.1],
                          dim=1)  # valid boxes (COCO ignores an unmatched box of negative area)
        extra = _boxes(int(torch.randint(0, 3, (1,), generator=g)), seed * 10 + i + 500)
        gts.append(truth)
        preds.append(torch.cat([noisy, extra]))
    scores = torch.rand(sum(len(p) for p in preds), generator=g)
    if sum(len(t) for t in gts) == 0:
        pytest.skip("no ground truth drawn")
    for thr in (0.5, 0.75):
        assert abs(average_precision(scores, preds, gts, iou_threshold=thr)
                   - _coco_ap_one_class(preds, scores, gts, thr)) < 1e-9


def test_coco_map_perfect_and_empty():
    gts = [_boxes(3, 1), _boxes(2, 2)]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([1, 1])]
    perfect = [{"boxes": b, "scores": torch.ones(len(b)), "labels": lab} for b, lab in zip(gts, labels, strict=True)]
    res = coco_detection_map(perfect, gts, labels)
    assert res["map"] > 0.999 and res["map_50"] > 0.999
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    assert coco_detection_map(empty, gts, labels)["map"] == 0.0
    wrong_class = [{**p, "labels": (p["labels"] + 1) % 3} for p in perfect]
    assert coco_detection_map(wrong_class, gts, labels)["map_50"] < 0.5
    assert average_precision(torch.zeros(0), [torch.zeros(0, 4)], [torch.zeros(0, 4)]) == -1.0
    with pytest.raises(ValueError, match="one entry per image"):
        coco_detection_map(perfect, gts[:1], labels)


def test_oks_equals_cocoeval_computeoks():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    g = torch.Generator().manual_seed(0)
    gt = torch.rand(5, 11, 2, generator=g) * 30
    pred = gt + torch.randn(5, 11, 2, generator=g)
    vis = torch.randint(1, 3, (5, 11), generator=g)
    vis[0, :3] = 0
    areas = torch.rand(5, generator=g) * 300 + 100
    sigmas = torch.rand(11, generator=g) * 0.1 + 0.02
    mine = object_keypoint_similarity(pred, gt, vis, areas, sigmas)
    anns, dts = [], []
    for i in range(5):
        anns.append({"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "area": float(areas[i]),
                     "num_keypoints": int((vis[i] > 0).sum()), "bbox": [0, 0, 30, 30],
                     "keypoints": torch.cat([gt[i], vis[i, :, None].float()], 1).flatten().tolist()})
        dts.append({"image_id": i, "category_id": 1, "score": 1.0,
                    "keypoints": torch.cat([pred[i], torch.ones(11, 1)], 1).flatten().tolist()})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": [{"id": i} for i in range(5)], "annotations": anns,
                        "categories": [{"id": 1, "name": "f", "keypoints": [str(k) for k in range(11)]}]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), "keypoints")
        ev.params.kpt_oks_sigmas = sigmas.double().numpy()
        ev.evaluate()
    for i in range(5):
        assert abs(float(ev.ious[(i, 1)][0, 0]) - float(mine[i])) < 1e-9


def test_keypoint_ap_perfect_and_bad():
    gt = torch.rand(6, 11, 2) * 20 + 5
    vis = torch.full((6, 11), 2)
    areas = torch.full((6,), 300.0)
    sigmas = torch.full((11,), 0.05)
    assert coco_keypoint_ap(gt.clone(), torch.ones(6), gt, vis, areas, sigmas)["ap"] > 0.999
    assert coco_keypoint_ap(gt + 8, torch.ones(6), gt, vis, areas, sigmas)["ap"] < 0.01
    with pytest.raises(ValueError):
        coco_keypoint_ap(gt[:3], torch.ones(6), gt, vis, areas, sigmas)


# ------------------------------------------------------------------------------------------------ SimCC
def test_simcc_targets_decode_and_loss():
    pts = torch.tensor([[[3.3, 10.0], [31.2, 0.4]]])
    tx, ty = simcc_targets(pts, 32, split_ratio=2, sigma=2.0)
    assert tx.shape == (1, 2, 64) and torch.allclose(tx.sum(-1), torch.ones(1, 2))
    coords, conf = simcc_decode(tx.log(), ty.log(), split_ratio=2)
    assert (coords - pts).abs().max() <= 0.25 + 1e-6 and conf.shape == (1, 2)
    right = simcc_loss(tx.clamp_min(1e-12).log(), ty.clamp_min(1e-12).log(), tx, ty)
    swapped = simcc_loss(ty.clamp_min(1e-12).log(), tx.clamp_min(1e-12).log(), tx, ty)
    assert float(right) < float(swapped)
    with pytest.raises(ValueError, match="keypoints"):
        simcc_targets(torch.zeros(1, 2, 3), 32)
    with pytest.raises(ValueError, match="target_x"):
        simcc_loss(tx, ty, tx[:, :1], ty)


@pytest.mark.parametrize("attention", [False, True])
def test_simcc_pose_shapes_and_weights(attention):
    torch.manual_seed(0)
    model = SimCCPose(attention=attention)
    lx, ly, w = model(torch.rand(3, 1, 32, 32), need_weights=True)
    assert lx.shape == (3, 11, 64) and ly.shape == (3, 11, 64)
    if attention:
        assert w.shape == (3, 4, 11, 11) and torch.allclose(w.sum(-1), torch.ones(3, 4, 11), atol=1e-5)
    else:
        assert w is None
    with pytest.raises(ValueError, match=r"\(2, 1, 28, 28\)"):
        model(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="multiple of 4"):
        SimCCPose(canvas=30)


def test_keypoint_attention_mixes_tokens():
    torch.manual_seed(0)
    model = SimCCPose(attention=True).eval()
    x = torch.rand(1, 1, 32, 32)
    base = model(x)[0]
    with torch.no_grad():
        model.keypoint_embedding[0] += 1.0  # change keypoint 0's token only
    changed = (model(x)[0] - base).abs().amax(-1)[0]  # (K,)
    assert (changed[1:] > 0).all()  # the other keypoints' outputs moved too: the tokens attend to each other
    plain = SimCCPose(attention=False).eval()
    base = plain(x)[0]
    with torch.no_grad():
        plain.keypoint_embedding[0] += 1.0
    assert torch.allclose(plain(x)[0][0, 1:], base[0, 1:])  # without attention each token stays alone


# ------------------------------------------------------------------------------------------------ article
def test_article_class_crashes_except_at_64_positions():
    model = AttentionObjectDetection()
    box, logits = model(torch.rand(2, 1, 10, 10))
    assert box.shape == (2, 4) and logits.shape == (2, 10)
    for size in (8, 12, 32):
        with pytest.raises(RuntimeError):
            model(torch.rand(1, 1, size, size))


def test_repaired_class_any_size_one_box():
    torch.manual_seed(0)
    model = RepairedAttentionDetection()
    for h, w in ((10, 10), (32, 32), (64, 48)):
        box, logits, weights = model(torch.rand(2, 1, h, w))
        assert box.shape == (2, 4) and logits.shape == (2, 10)
        assert weights.shape == (2, (h + 3) // 4, (w + 3) // 4)
        assert torch.allclose(weights.flatten(1).sum(1), torch.ones(2), atol=1e-5)
        assert ((box >= 0) & (box <= torch.tensor([w, h, w, h]))).all()
    with pytest.raises(ValueError):
        model(torch.rand(2, 3, 10, 10))


def test_no_numpy_leak():
    assert isinstance(average_precision(torch.tensor([0.5]), [torch.tensor([[0., 0, 1, 1]])],
                                        [torch.tensor([[0., 0, 1, 1]])]), float)
    assert np.isclose(average_precision(torch.tensor([0.5]), [torch.tensor([[0., 0, 1, 1]])],
                                        [torch.tensor([[0., 0, 1, 1]])]), 1.0)
