"""course_lib.data.canvases: multi-digit detection canvases and stick figures."""

import pytest
import torch

from course_lib.data.canvases import KEYPOINT_NAMES, SKELETON, make_detection_canvases, make_stick_figures
from course_lib.detection import box_iou


@pytest.fixture(scope="module")
def canvases():
    return make_detection_canvases(60, seed=3)


def test_shapes_padding_and_counts(canvases):
    assert canvases.images.shape == (60, 1, 64, 64) and canvases.images.dtype == torch.float32
    assert canvases.boxes.shape == (60, 4, 4) and canvases.labels.shape == (60, 4)
    assert ((canvases.counts >= 1) & (canvases.counts <= 4)).all()
    for i in range(60):
        k = int(canvases.counts[i])
        assert (canvases.labels[i, :k] >= 0).all() and (canvases.labels[i, k:] == -1).all()
        assert (canvases.boxes[i, k:] == 0).all()


def test_boxes_are_tight_inside_and_disjoint(canvases):
    for i in range(60):
        boxes, labels = canvases.targets(i)
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes >= 0).all() and (boxes <= 64).all()
        assert float(box_iou(boxes, boxes).fill_diagonal_(0).max()) == 0.0
        for x0, y0, x1, y1 in boxes.long().tolist():
            ink = canvases.images[i, 0, y0:y1, x0:x1]
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()


def test_deterministic_and_splits_differ():
    a, b = make_detection_canvases(5, seed=1), make_detection_canvases(5, seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, make_detection_canvases(5, seed=1, split="test").images)
    assert len(a[1:3]) == 2 and len(a[0]) == 1


def test_scales_and_sizes():
    one = make_detection_canvases(30, max_digits=1, scales=(3,), n_clutter=0, seed=2)
    wh = one.boxes[:, 0, 2:] - one.boxes[:, 0, :2]
    assert (wh <= 24).all() and (wh.amax(1) >= 9).all()  # ink inside a 24-pixel cell
    assert (one.counts == 1).all()


@pytest.mark.parametrize("kwargs, error", [
    ({"n": 0}, ValueError), ({"n": 2.5}, TypeError), ({"scales": (5,), "canvas": 32}, ValueError),
    ({"scales": ()}, ValueError), ({"split": "dev"}, ValueError), ({"max_digits": 0}, ValueError),
])
def test_bad_arguments(kwargs, error):
    args = {"n": 2, **kwargs}
    with pytest.raises(error):
        make_detection_canvases(args.pop("n"), **args)


def test_stick_figures():
    figs = make_stick_figures(40, seed=0)
    assert figs.images.shape == (40, 1, 32, 32) and figs.keypoints.shape == (40, len(KEYPOINT_NAMES), 2)
    assert (figs.keypoints >= 1.5).all() and (figs.keypoints <= 30.5).all()
    assert set(torch.unique(figs.visibility).tolist()) <= {1, 2} and (figs.visibility == 1).any()
    assert all(0 <= a < 11 and 0 <= b < 11 for a, b in SKELETON) and len(SKELETON) == 10
    bones = torch.tensor(SKELETON)
    lengths = (figs.keypoints[:, bones[:, 0]] - figs.keypoints[:, bones[:, 1]]).norm(dim=-1)
    assert torch.allclose(lengths[:, 1], torch.full((40,), 9.0), atol=1e-4)  # the torso has a fixed length
    clean = make_stick_figures(5, occlude=0.0, noise=0.0, seed=0)
    assert (clean.visibility == 2).all()
    for i in range(5):  # every joint sits on drawn ink
        cols, rows = clean.keypoints[i].long().unbind(-1)
        assert (clean.images[i, 0, rows, cols] > 0).all()
    assert torch.equal(make_stick_figures(3, seed=4).images, make_stick_figures(3, seed=4).images)
    with pytest.raises(ValueError):
        make_stick_figures(3, canvas=8)
    with pytest.raises(TypeError):
        make_stick_figures(3, occlude=True)
