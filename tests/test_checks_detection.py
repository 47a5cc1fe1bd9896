"""course_lib.checks.detection: each checker rejects the stub and typical wrong answers, and passes the reference."""

import pytest
import torch

from course_lib.checks.core import CheckFailed
from course_lib.checks.detection import check_attention_pool, check_box_iou, check_decode_boxes, check_nms
from course_lib.detection import box_iou, cxcywh_to_xyxy, decode_boxes, nms


def stub(*args, **kwargs):
    raise NotImplementedError


def _inter(a, b, clamp=True, plus=0.0):
    tl = torch.maximum(a[:, None, :2], b[None, :, :2])
    br = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = br - tl + plus
    wh = wh.clamp_min(0) if clamp else wh
    return wh[..., 0] * wh[..., 1]


def _area(x, plus=0.0):
    return (x[:, 2] - x[:, 0] + plus) * (x[:, 3] - x[:, 1] + plus)


# ------------------------------------------------------------------------------------------------ IoU
def test_iou_reference_passes(capsys):
    check_box_iou(box_iou)
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (stub, "not implemented"),
    (lambda a, b: _inter(a, b) / (_area(a)[:, None] + _area(b)[None, :]), "subtract the intersection"),
    (lambda a, b: _inter(a, b, clamp=False) / (_area(a)[:, None] + _area(b)[None, :] - _inter(a, b, clamp=False)),
     "clamp"),
    (lambda a, b: _inter(a, b), "intersection area"),
    (lambda a, b: _inter(a, b, plus=1) / (_area(a, 1)[:, None] + _area(b, 1)[None, :] - _inter(a, b, plus=1)), r"\+ 1"),
    (lambda a, b: box_iou(b, a), "(M, N)"),
    (lambda a, b: _inter(a, b) / torch.minimum(_area(a)[:, None], _area(b)[None, :]), "IoMin"),
])
def test_iou_rejects(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_box_iou(wrong)


# ------------------------------------------------------------------------------------------------ NMS
def nms_unsorted(boxes, scores, thr):
    iou = box_iou(boxes, boxes)
    keep = torch.ones(len(boxes), dtype=torch.bool)
    for i in range(len(boxes)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] <= thr
    return torch.nonzero(keep).flatten()


def nms_all_higher(boxes, scores, thr):
    order = torch.argsort(scores, descending=True)
    iou = box_iou(boxes[order], boxes[order])
    return order[[i for i in range(len(order)) if not (iou[i, :i] > thr).any()]]


def nms_sorted_positions(boxes, scores, thr):
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    return torch.tensor([order.index(k) for k in nms(boxes, scores, thr).tolist()])


def nms_ge(boxes, scores, thr):
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= iou[i, i + 1:] < thr
    return order[keep]


def test_nms_reference_passes(capsys):
    check_nms(nms)
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (stub, "not implemented"),
    (nms_unsorted, "sort by score|wrong order"),
    (nms_all_higher, "kept"),
    (nms_sorted_positions, "original boxes"),
    (lambda b, s, t: torch.isin(torch.arange(len(b)), nms(b, s, t)), "boolean mask"),
    (lambda b, s, t: torch.sort(nms(b, s, t)).values, "wrong order|sort by score"),
    (nms_ge, "strictly"),
])
def test_nms_rejects(wrong, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_nms(wrong)


# ------------------------------------------------------------------------------------------------ decoding
def _decode(raw, stride, sig=True, swap=False, exp=True, corners=True, centre_stride=True, size_stride=True):
    _, _, s, _ = raw.shape
    gy, gx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    if swap:
        gx, gy = gy, gx
    ox, oy = (raw[:, 1].sigmoid(), raw[:, 2].sigmoid()) if sig else (raw[:, 1], raw[:, 2])
    cs = stride if centre_stride else 1
    ss = stride if size_stride else 1
    w, h = (raw[:, 3].exp(), raw[:, 4].exp()) if exp else (raw[:, 3], raw[:, 4])
    out = torch.stack([(gx + ox) * cs, (gy + oy) * cs, w * ss, h * ss], dim=-1)
    return (cxcywh_to_xyxy(out) if corners else out).flatten(1, 2)


def test_decode_reference_passes(capsys):
    check_decode_boxes(decode_boxes)
    check_decode_boxes(_decode)
    assert capsys.readouterr().out.count("all checks passed") == 2


@pytest.mark.parametrize("kwargs, hint", [
    ({"sig": False}, "sigmoid"),
    ({"swap": True}, "swapped"),
    ({"exp": False}, "exp is missing"),
    ({"corners": False}, "corners"),
    ({"centre_stride": False}, "centre is in grid units"),
    ({"size_stride": False}, "width and height are in strides"),
])
def test_decode_rejects(kwargs, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_decode_boxes(lambda raw, stride: _decode(raw, stride, **kwargs))


def test_decode_rejects_stub_and_shape():
    with pytest.raises(CheckFailed, match="not implemented"):
        check_decode_boxes(stub)
    with pytest.raises(CheckFailed, match="shape"):
        check_decode_boxes(lambda raw, stride: decode_boxes(raw, stride).reshape(raw.shape[0], -1))


# ------------------------------------------------------------------------------------------------ article
def pool(features, score, softmax_dim=-1, gate="softmax", reduce="weighted"):
    tokens = features.flatten(2).transpose(1, 2)
    s = score(tokens).squeeze(-1)
    if gate == "sigmoid":
        w = s.sigmoid()
    elif softmax_dim == "channels":
        w = s[..., None].softmax(-1).squeeze(-1)
    else:
        w = s.softmax(-1)
    if reduce == "mean":
        pooled = tokens.mean(1)
    elif reduce == "raw":
        pooled = (s[..., None] * tokens).sum(1)
    elif reduce == "channels":
        pooled = (w[..., None] * tokens).sum(2)
    else:
        pooled = (w[..., None] * tokens).sum(1)
    return pooled, w


def test_attention_pool_reference_passes(capsys):
    check_attention_pool(pool, 1)
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, answer, hint", [
    (stub, 1, "not implemented"),
    (lambda f, s: pool(f, s, gate="sigmoid"), 1, "softmax, not sigmoid"),
    (lambda f, s: pool(f, s, softmax_dim="channels"), 1, "over the positions"),
    (lambda f, s: pool(f, s, reduce="mean"), 1, "plain mean"),
    (lambda f, s: pool(f, s, reduce="raw"), 1, "raw scores"),
    (lambda f, s: pool(f, s, reduce="channels"), 1, "sum over N"),
    (lambda f, s: pool(f, s)[0], 1, "pair"),
    (pool, 3, "one vector per image"),
    (pool, None, "must be an int"),
    (pool, True, "must be an int"),
])
def test_attention_pool_rejects(wrong, answer, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_attention_pool(wrong, answer)


def test_none_answers_rejected():
    for checker in (check_box_iou, check_nms, check_decode_boxes):
        with pytest.raises(CheckFailed, match="None"):
            checker(None)


# ---- predict what greedy NMS keeps ---------------------------------------------------------------
@pytest.fixture
def fresh_hints():
    from course_lib.checks.thinking import reset_hints

    reset_hints()
    yield
    reset_hints()


def test_nms_example_is_what_the_library_keeps():
    from course_lib.checks.detection import NMS_EXAMPLE

    kept = nms(torch.tensor(NMS_EXAMPLE["boxes"]), torch.tensor(NMS_EXAMPLE["scores"]), NMS_EXAMPLE["iou_threshold"])
    assert "".join(NMS_EXAMPLE["names"][i] for i in kept.tolist()) == "BAE"


@pytest.mark.parametrize("answer", ["BAE", "bae", "B, A, E", ["B", "A", "E"]])
def test_nms_prediction_accepts(answer, capsys, fresh_hints):
    from course_lib.checks.detection import check_nms_prediction

    check_nms_prediction(answer)
    assert "all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("answer, message", [
    (None, "still None"),  # the stub: the exercise as handed out
    ("BE", "deleted still deleted"),  # a deleted box suppressed the chain
    ("ABD", "order of the letters"),  # boxes taken in the order listed, not by score
    ("ABCDE", "Nothing was suppressed"),
    ("EDCBA", "Nothing was suppressed"),
    ("ABE", "highest score first"),
    ("BAED", "D is deleted"),
    ("BA", "E survives"),
    ("BZ", "letters A, B, C, D, E"),
    ("BBE", "at most once"),
    (3, "letters of the kept boxes"),
])
def test_nms_prediction_rejects(answer, message, fresh_hints):
    from course_lib.checks.detection import check_nms_prediction

    with pytest.raises(CheckFailed, match=message):
        check_nms_prediction(answer)


def test_nms_prediction_hints_come_in_steps(fresh_hints):
    from course_lib.checks.detection import check_nms_prediction

    for k in (1, 2, 3, 3):
        with pytest.raises(CheckFailed, match=f"Hint {k} of 3"):
            check_nms_prediction("BE")
