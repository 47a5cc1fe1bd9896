"""course_lib.widgets.vision: the logic behind the image/module picker."""

import numpy as np
import pytest
import torch

from course_lib.data.digits import make_cluttered_digits
from course_lib.vision import CBAM, SEBlock, SpatialGate, ViT, spatial_attention_map
from course_lib.vision_train import HostCNN
from course_lib.widgets._layout import cut_labels
from course_lib.widgets.vision import NO_MAP_CAPTION, overlay_maps, vision_maps_explorer, vision_maps_view


@pytest.fixture(scope="module")
def data():
    return make_cluttered_digits(4, canvas=24, n_clutter=2, seed=1)


def test_module_applied_to_the_image(data):
    gate = SpatialGate().eval()
    view = vision_maps_view(gate, data.images, 2)
    expected = spatial_attention_map(gate, data.images[2:3])[0].detach().numpy()
    assert view.names == ["SpatialGate"] and len(view.maps) == 1
    assert np.allclose(view.maps[0], expected)
    assert view.image.shape == (24, 24) and np.allclose(view.image, data.images[2, 0].numpy())
    r, c = np.unravel_index(expected.argmax(), expected.shape)
    assert view.peaks == [(int(r), int(c))]


def test_host_model_maps_at_each_resolution_and_box_mass(data):
    torch.manual_seed(0)
    model = HostCNN("cbam", widths=(8, 16, 16))
    view = vision_maps_view(model, data.images, 1, boxes=data.boxes)
    assert view.names == ["CBAM", "CBAM"]
    assert [m.shape for m in view.maps] == [(12, 12), (6, 6)]
    assert all(u.shape == (24, 24) for u in view.upsampled)
    assert all(0.0 < m.min() and m.max() < 1.0 for m in view.maps)  # sigmoid gates
    assert view.box == tuple(data.boxes[1].tolist())
    assert len(view.mass_in_box) == 2 and all(0.0 <= v <= 1.0 for v in view.mass_in_box)
    assert model.training  # the mode is restored


def test_upsampling_is_nearest_and_peak_in_image_pixels(data):
    gate = SpatialGate().eval()
    with torch.no_grad():
        gate.conv.weight.zero_()
        gate.conv.weight[0, 0, 3, 3] = 5.0  # the map follows the max over channels
    images = torch.zeros(1, 1, 8, 8)
    images[0, 0, 6, 1] = 1.0
    view = vision_maps_view(gate, images, 0)
    assert view.peaks == [(6, 1)]
    assert np.allclose(view.upsampled[0], view.maps[0])


def test_channel_only_models_give_no_maps(data):
    assert vision_maps_view(HostCNN(None, widths=(8, 16)), data.images, 0).maps == []
    assert vision_maps_view(HostCNN(None, widths=(8, 16)), data.images, 0).names == []
    assert vision_maps_view(SEBlock(16, 4), torch.randn(2, 16, 5, 5), 0).maps == []


def test_vit_class_token_map(data):
    vit = ViT(image_size=24, patch_size=4, d_model=16, depth=1, num_heads=2)
    view = vision_maps_view(vit, data.images, 0)
    assert view.maps[0].shape == (6, 6) and view.names == ["ViT"]
    assert view.maps[0].min() >= 0 and view.maps[0].sum() <= 1 + 1e-5  # the class token's share of its row
    assert view.upsampled[0].shape == (24, 24)


def test_bad_arguments(data):
    with pytest.raises(TypeError, match="model_or_module"):
        vision_maps_view("cbam", data.images, 0)
    with pytest.raises(ValueError, match="index"):
        vision_maps_view(CBAM(16, 4), data.images, 9)
    with pytest.raises(TypeError, match="index"):
        vision_maps_view(CBAM(16, 4), data.images, 1.0)
    with pytest.raises(ValueError, match="images"):
        vision_maps_view(CBAM(16, 4), data.images[0], 0)
    with pytest.raises(ValueError, match="boxes"):
        vision_maps_view(SpatialGate(), data.images, 0, boxes=data.boxes[:2])


def test_a_model_without_maps_gets_a_caption(data):
    import matplotlib.pyplot as plt

    view = vision_maps_view(HostCNN(None, widths=(8, 16)), data.images, 0)
    assert view.maps == []
    fig = overlay_maps(view, title="baseline")
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == NO_MAP_CAPTION
    plt.close(fig)


def test_overlay_and_explorer_build(data):
    import matplotlib.pyplot as plt

    view = vision_maps_view(HostCNN("cbam", widths=(8, 16)), data.images, 0, boxes=data.boxes)
    fig = overlay_maps(view, title="x")
    assert len(fig.axes) == 3  # the image, one map and its colour bar
    assert fig.axes[2].get_ylabel() == "map value"
    plt.close(fig)
    assert len(overlay_maps(view, colorbar=False).axes) == 2
    plt.close("all")
    models = {"HostCNN + CBAM (trained)": HostCNN("cbam", widths=(8, 16)), "baseline (no maps)": HostCNN(None)}
    box = vision_maps_explorer(models, data.images, data.boxes)
    assert len(box.children) == 2
    assert cut_labels(box) == []  # the dropdown's text was cut off
    plt.close("all")
