"""course_lib.widgets.detection: the logic behind the canvas/detector picker."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from course_lib.data.canvases import make_detection_canvases  # noqa: E402
from course_lib.detection import GridDetector, detect  # noqa: E402
from course_lib.vision import spatial_attention_map  # noqa: E402
from course_lib.widgets._layout import cut_labels  # noqa: E402
from course_lib.widgets.detection import detection_explorer, detection_view, draw_detection  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return make_detection_canvases(5, seed=2, split="test")


@pytest.mark.parametrize("neck", ["sagan", "cbam", "yolo_sam", "psa"])
def test_view_has_the_neck_map(data, neck):
    torch.manual_seed(0)
    model = GridDetector(neck)
    with torch.no_grad():
        model.eval()
        expected = spatial_attention_map(model.attention, model.features(data.images[2:3]))[0]
    model.train()
    view = detection_view(model, data, 2, score_threshold=0.0)
    assert view.name == neck and np.allclose(view.attention, expected.numpy(), atol=1e-6)
    assert view.attention.shape == (8, 8) and view.upsampled.shape == (64, 64)
    up = F.interpolate(expected[None, None], size=(64, 64), mode="nearest")[0, 0].numpy()
    assert np.allclose(view.upsampled, up, atol=1e-6)
    assert np.allclose(view.image, data.images[2, 0].numpy())
    assert view.gt_boxes.shape == (int(data.counts[2]), 4)
    assert model.training  # the mode is restored


def test_boxes_are_the_decoded_detections(data):
    torch.manual_seed(0)
    model = GridDetector()
    view = detection_view(model, data, 1, score_threshold=0.01)
    ref = detect(model, data.images[1:2], score_threshold=0.01)[0]
    assert np.allclose(view.boxes, ref["boxes"].numpy()) and np.allclose(view.scores, ref["scores"].numpy())
    assert view.attention is None and view.upsampled is None and view.name == "baseline"
    assert (view.scores > 0.01).all()


def test_draw_and_explorer(data):
    torch.manual_seed(0)
    model = GridDetector("cbam")
    fig = draw_detection(detection_view(model, data, 0))
    assert len(fig.axes) == 2
    fig = draw_detection(detection_view(GridDetector(), data, 0))
    assert len(fig.axes) == 1
    box = detection_explorer({"cbam": model}, data)
    pick, index = box.children[0].children
    assert list(pick.options) == ["cbam"] and index.max == len(data) - 1
    assert pick.layout.display == "none" and cut_labels(box) == []  # one model: nothing to choose
    index.value = 3  # the callback runs without error


def test_bad_arguments(data):
    with pytest.raises(TypeError):
        detection_view(torch.nn.Linear(2, 2), data, 0)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 4\]"):
        detection_view(GridDetector(), data, 5)
    with pytest.raises(TypeError):
        detection_view(GridDetector(), data.images, 0)
    with pytest.raises(ValueError):
        detection_explorer({}, data)
