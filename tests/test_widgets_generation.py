"""course_lib.widgets.generation: the logic behind the glimpse explorer."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.data.digits import make_cluttered_digits  # noqa: E402
from course_lib.generation import RecurrentAttentionModel, glimpse_sensor, location_to_pixel  # noqa: E402
from course_lib.widgets._layout import cut_labels  # noqa: E402
from course_lib.widgets.generation import draw_glimpses, glimpse_explorer, glimpse_view  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = RecurrentAttentionModel(num_glimpses=4)
    data = make_cluttered_digits(5, seed=2, split="test")
    return model, data


def test_view_matches_the_model(setup):
    model, data = setup
    view = glimpse_view(model, data.images, data.labels, 2, 3)
    with torch.no_grad():
        out = model.eval()(data.images[2:3], sample=False)
    expected = location_to_pixel(out.locations[0], 40).tolist()
    assert view.centres == [tuple(c) for c in expected] and view.centres[0] == (20, 20)
    crops = glimpse_sensor(data.images[2:3], out.locations[0, 3:4], patch_size=8, num_scales=3)[0]
    assert np.allclose(view.crops, crops.numpy())
    probs = torch.softmax(out.step_logits[0, 3], -1).numpy()
    assert np.allclose(view.probabilities, probs, atol=1e-6) and view.prediction == int(probs.argmax())
    assert view.label == int(data.labels[2]) and view.sides == [8, 16, 32] and view.step == 3


def test_steps_grow_the_path_and_mode_is_restored(setup):
    model, data = setup
    model.train()
    views = [glimpse_view(model, data.images, data.labels, 0, s) for s in range(4)]
    assert [len(v.centres) for v in views] == [1, 2, 3, 4]
    assert all(v.centres == views[-1].centres[:len(v.centres)] for v in views)
    assert model.training


def test_bad_input(setup):
    model, data = setup
    with pytest.raises(ValueError, match=r"step must lie in \[0, 3\].*got 4"):
        glimpse_view(model, data.images, data.labels, 0, 4)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 4\]"):
        glimpse_view(model, data.images, data.labels, 5, 0)
    with pytest.raises(TypeError, match="RecurrentAttentionModel"):
        glimpse_view(torch.nn.Linear(2, 2), data.images, data.labels)
    with pytest.raises(ValueError, match="labels"):
        glimpse_view(model, data.images, data.labels[:2])


def test_draw_and_explorer(setup):
    model, data = setup
    fig = draw_glimpses(glimpse_view(model, data.images, data.labels, 1, 2))
    assert len(fig.axes) == 5
    matplotlib.pyplot.close(fig)
    pytest.importorskip("ipywidgets")
    box = glimpse_explorer(model, data.images, data.labels)
    index, step = box.children[0].children
    assert step.max == 3 and index.max == 4
    assert cut_labels(box) == []
    step.value = 1  # the callback runs without error
