"""course_lib.viz and the scores explorer's logic."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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


# --- blemishes seen in the browser (issue 15): ticks, large matrices, labels, legend, axes ---------------------

from course_lib.viz import block_mean, integer_ticks  # noqa: E402
from course_lib.widgets._layout import cut_labels, dropdown_width, fit_dropdown, hide_if_single  # noqa: E402
from course_lib.widgets.scores import _draw, distinct_labels  # noqa: E402


def _visible_ticks(ax, axis):
    ticks = ax.get_xticks() if axis == "x" else ax.get_yticks()
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    return [t for t in ticks if lo <= t <= hi]


@pytest.mark.parametrize("shape", [(1, 5), (3, 3), (2, 7, 12)])
def test_small_matrices_get_whole_number_ticks(shape):
    fig = show_heatmaps(torch.rand(shape))
    fig.canvas.draw()
    for ax in (a for a in fig.axes if a.images):
        for axis in "xy":
            ticks = _visible_ticks(ax, axis)
            assert ticks and all(float(t).is_integer() for t in ticks), (shape, axis, ticks)
    ax = [a for a in fig.axes if a.images][0]
    assert _visible_ticks(ax, "y") == list(range(shape[-2]))[: len(_visible_ticks(ax, "y"))]
    plt.close(fig)


def test_integer_ticks():
    assert integer_ticks(1) == [0] and integer_ticks(3) == [0, 1, 2] and integer_ticks(10) == list(range(10))
    assert integer_ticks(17) == list(range(0, 17, 2))
    assert integer_ticks(576) == [0, 100, 200, 300, 400, 500]
    with pytest.raises(ValueError, match="n and max_ticks"):
        integer_ticks(0)


def test_block_mean():
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert block_mean(m, 4)[0] is m and block_mean(m, 4)[1] == (1, 1)
    small, size = block_mean(m, 2)
    assert size == (2, 2) and small.shape == (2, 2)
    assert small[0, 0] == pytest.approx(np.mean([0, 1, 4, 5])) and small[1, 1] == pytest.approx(np.mean([10, 11]))
    with pytest.raises(ValueError, match="2-D"):
        block_mean(np.zeros(3))


def test_large_heatmap_is_drawn_as_block_means_and_says_so():
    weights = torch.softmax(torch.randn(576, 576) * 3, dim=-1)
    fig = show_heatmaps(weights)
    ax = [a for a in fig.axes if a.images][0]
    shown = ax.images[0].get_array()
    assert shown.shape == (96, 96)
    assert np.allclose(shown[0, 0], weights[:6, :6].mean().item(), atol=1e-6)
    assert ax.get_xlim() == (-0.5, 575.5)  # the axes keep pixel indices
    bar = [a for a in fig.axes if a.get_label() == "<colorbar>"][0]
    assert "6 x 6 blocks" in bar.get_ylabel()
    plt.close(fig)
    fig = show_heatmaps(weights[:50, :50])  # small enough: every cell drawn
    assert [a for a in fig.axes if a.images][0].images[0].get_array().shape == (50, 50)
    plt.close(fig)
    with pytest.raises(ValueError, match="max_cells"):
        show_heatmaps(weights, xticklabels=[str(i) for i in range(576)])


def test_distinct_labels():
    assert distinct_labels(["cup", "cup", "red cup", "cup", "book"]) == ["cup (0)", "cup (1)", "red cup", "cup (3)",
                                                                           "book"]
    assert distinct_labels(["a", "b"]) == ["a", "b"]


def test_scores_picture_has_fixed_axes_legend_outside_and_fixed_legend_markers():
    limits = (-2.0, 2.0)
    figs = []
    for q, t in (([1.0, 1.0], 0.01), ([-1.9, 1.9], 100.0)):
        view = scores_view(torch.tensor(q), KEYS, VALUES, temperature=t, valid_len=3)
        fig = _draw(view, torch.tensor(q), KEYS, ["a", "b", "c", "d"], "t", limits)
        fig.canvas.draw()
        left = fig.axes[0]
        assert left.get_xlim() == limits and left.get_ylim() == limits
        legend = left.get_legend()
        box, frame = left.get_window_extent(), legend.get_window_extent()
        assert frame.x0 >= box.x1  # beside the data, not over it
        sizes = [h.get_markersize() for h in legend.legend_handles]
        figs.append(sizes)
        plt.close(fig)
    assert figs[0] == figs[1]  # the legend's markers do not follow the weights


def test_layout_helpers():
    import ipywidgets as widgets

    assert dropdown_width(["ab", "abcdef"], "model") == f"{8 * 6 + 8 * 5 + 48}px"
    with pytest.raises(ValueError, match="empty"):
        dropdown_width([])
    narrow = widgets.Dropdown(options=["0: HostCNN + CBAM (trained)", "baseline"], description="module")
    assert cut_labels(widgets.VBox([narrow])) == ["module options"]
    assert cut_labels(widgets.VBox([fit_dropdown(narrow)])) == []
    slider = widgets.FloatLogSlider(description="temperature")
    assert cut_labels(slider) == ["temperature"]
    single = hide_if_single(widgets.Dropdown(options=[0], description="layer"))
    assert single.layout.display == "none"
    assert hide_if_single(widgets.Dropdown(options=[0, 1])).layout.display is None


def test_scores_explorer_labels_fit():
    box = scores_explorer(KEYS, VALUES, labels=["cup", "cup", "book", "cup"])
    assert cut_labels(box) == []
    plt.close("all")
