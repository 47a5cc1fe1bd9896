"""course_lib.viz and the scores explorer's logic."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib.viz import plot_curves, show_heatmaps  # noqa: E402
from course_lib.widgets.scores import scores_explorer, scores_view  # noqa: E402


@pytest.mark.parametrize("shape,axes", [((3, 4), 1), ((2, 3, 4), 2), ((2, 3, 3, 4), 6)])
def test_show_heatmaps_grid(shape, axes):
    fig = show_heatmaps(torch.rand(shape), xticklabels=list("abcd"), yticklabels=list("xyz"))
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == axes
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    plt.close(fig)


def test_show_heatmaps_titles_and_annotations():
    fig = show_heatmaps(torch.eye(2), titles=["identity"], annotate=True)
    ax = [a for a in fig.axes if a.images][0]
    assert ax.get_title() == "identity"
    assert {t.get_text() for t in ax.texts} == {"1.00", "0.00"}
    plt.close(fig)


def test_show_heatmaps_errors():
    with pytest.raises(ValueError, match="xticklabels has 2 labels for T_k = 4 keys"):
        show_heatmaps(torch.rand(3, 4), xticklabels=["a", "b"])
    with pytest.raises(ValueError, match="must have shape"):
        show_heatmaps(torch.rand(1, 1, 1, 2, 2))


def test_plot_curves():
    fig = plot_curves({"train": [3, 2, 1], "valid": [3, 2.5, 2]})
    assert len(fig.axes[0].lines) == 2
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_curves({})


KEYS = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [-1.0, 0.5]])
VALUES = torch.eye(4)


def test_explorer_low_temperature_is_hard_attention():
    view = scores_view(torch.tensor([1.0, 1.0]), KEYS, VALUES, temperature=0.01)
    assert view.weights.argmax() == 2 and view.weights[2] > 0.99


def test_explorer_high_temperature_is_average_pooling():
    view = scores_view(torch.tensor([1.0, 1.0]), KEYS, VALUES, temperature=1000.0)
    torch.testing.assert_close(view.weights, torch.full((4,), 0.25), atol=1e-3, rtol=0)
    torch.testing.assert_close(view.output, VALUES.mean(0), atol=1e-3, rtol=0)


def test_explorer_mask_and_empty_mask():
    view = scores_view(torch.tensor([1.0, 1.0]), KEYS, VALUES, valid_len=2)
    assert torch.all(view.weights[2:] == 0) and torch.isclose(view.weights.sum(), torch.tensor(1.0))
    empty = scores_view(torch.tensor([1.0, 1.0]), KEYS, VALUES, valid_len=0)
    assert torch.all(empty.weights == 0) and torch.all(empty.output == 0)


def test_explorer_scorings_differ_and_errors():
    q = torch.tensor([2.0, 2.0])
    dot = scores_view(q, KEYS, VALUES, scoring="dot").scores
    scaled = scores_view(q, KEYS, VALUES, scoring="scaled_dot").scores
    torch.testing.assert_close(scaled, dot / 2**0.5)
    dist = scores_view(q, KEYS, VALUES, scoring="neg_distance").scores
    assert dist.argmax() == 2
    with pytest.raises(ValueError, match="temperature must be > 0"):
        scores_view(q, KEYS, VALUES, temperature=0)
    with pytest.raises(ValueError, match="valid_len must lie in"):
        scores_view(q, KEYS, VALUES, valid_len=9)
    with pytest.raises(ValueError, match="keys must be \\(n, 2\\)"):
        scores_explorer(torch.rand(3, 3), torch.rand(3, 1))


def test_explorer_shell_builds():
    box = scores_explorer(KEYS, VALUES)
    assert len(box.children) == 3
    plt.close("all")
