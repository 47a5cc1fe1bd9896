"""course_lib.widgets.pooling: the bandwidth explorer's logic and its shell."""

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib.attention import nadaraya_watson
from course_lib.widgets._layout import cut_labels
from course_lib.widgets.pooling import PoolingView, _draw, pooling_explorer, pooling_view

X = torch.linspace(0, 5, 20)
Y = torch.sin(X)
Q = torch.linspace(0, 5, 11)
TRUTH = torch.sin(Q)


def test_view_matches_nadaraya_watson_and_rows_sum_to_one():
    view = pooling_view(X, Y, Q, 0.4, y_true=TRUTH)
    assert isinstance(view, PoolingView)
    assert view.weights.shape == (11, 20) and view.estimate.shape == (11,)
    assert torch.allclose(view.estimate, nadaraya_watson(Q, X, Y, bandwidth=0.4))
    assert torch.allclose(view.weights.sum(-1), torch.ones(11))
    assert view.mse == pytest.approx(float(((view.estimate - TRUTH) ** 2).mean()))
    assert pooling_view(X, Y, Q, 0.4).mse is None


def test_tiny_bandwidth_copies_the_nearest_key_and_huge_is_average_pooling():
    tiny = pooling_view(X, Y, X, 0.01)
    assert torch.allclose(tiny.weights, torch.eye(20), atol=1e-4)
    huge = pooling_view(X, Y, Q, 1000.0)
    assert torch.allclose(huge.estimate, Y.mean().expand(11), atol=1e-4)


def test_mse_has_a_sweet_spot():
    mses = [pooling_view(X, Y + 0.3 * torch.randn(20, generator=torch.Generator().manual_seed(0)), Q, h,
                         y_true=TRUTH).mse for h in (0.02, 0.4, 10.0)]
    assert mses[1] < mses[0] and mses[1] < mses[2]


@pytest.mark.parametrize("kernel", ["laplacian", "epanechnikov", "boxcar"])
def test_other_kernels(kernel):
    view = pooling_view(X, Y, Q, 0.5, kernel=kernel)
    assert torch.allclose(view.estimate, nadaraya_watson(Q, X, Y, bandwidth=0.5, kernel=kernel))
    assert view.kernel == kernel and view.bandwidth == 0.5
    if kernel != "laplacian":  # compact kernels: keys further than h get exactly zero weight
        far = (Q[:, None] - X[None, :]).abs() > 0.5
        assert torch.all(view.weights[far] == 0)


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="bandwidth"):
        pooling_view(X, Y, Q, 0.0)
    with pytest.raises(ValueError, match="kernel"):
        pooling_view(X, Y, Q, 0.5, kernel="cosine")
    with pytest.raises(ValueError, match="y_train"):
        pooling_view(X, Y[:5], Q, 0.5)
    with pytest.raises(ValueError, match="y_true"):
        pooling_view(X, Y, Q, 0.5, y_true=TRUTH[:3])
    with pytest.raises(ValueError, match="x_query"):
        pooling_view(X, Y, Q[:, None], 0.5)
    with pytest.raises(TypeError, match="x_train"):
        pooling_view([0.0, 1.0], Y, Q, 0.5)


def test_draw_and_shell():
    fig = _draw(pooling_view(X, Y, Q, 0.4, y_true=TRUTH), X, Y, Q, TRUTH)
    assert len(fig.axes) == 3  # estimate, heatmap, colour bar
    plt.close(fig)
    pytest.importorskip("ipywidgets")
    box = pooling_explorer(X, Y, Q, TRUTH, bandwidth=0.3)
    slider, dropdown = box.children[0].children
    assert cut_labels(box) == []  # "bandwidth h" was shown as "bandwidt…"
    assert slider.value == pytest.approx(0.3)
    dropdown.value = "boxcar"  # triggers an update without error
    slider.value = 1.0
    with pytest.raises(ValueError, match="bandwidth"):
        pooling_explorer(X, Y, Q, bandwidth=-1.0)
    plt.close("all")
