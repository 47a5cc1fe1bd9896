"""course_lib.widgets.modern: the logic behind lesson 17's cache and position-pattern explorers."""

import numpy as np
import pytest
import torch

from course_lib.attention import alibi_slopes
from course_lib.widgets._layout import cut_labels
from course_lib.widgets.modern import alibi_pattern, cache_explorer, cache_speed_view, pattern_explorer, pattern_view

LENGTHS, WITHOUT, WITH = [32, 64, 128], [0.2, 0.6, 2.0], [0.1, 0.2, 0.4]


def test_cache_speed_view_picks_the_measurement():
    view = cache_speed_view(LENGTHS, WITHOUT, WITH, 128)
    assert view.length == 128 and view.seconds_without == 2.0 and view.seconds_with == 0.4
    assert view.speedup == pytest.approx(5.0)
    assert view.tokens_per_second_with == pytest.approx(320.0) and view.tokens_per_second_without == pytest.approx(64.0)


def test_cache_speed_view_bad_input():
    with pytest.raises(ValueError, match="one of the measured lengths"):
        cache_speed_view(LENGTHS, WITHOUT, WITH, 100)
    with pytest.raises(ValueError, match="of one length"):
        cache_speed_view(LENGTHS, WITHOUT[:2], WITH, 32)
    with pytest.raises(ValueError, match="> 0 seconds"):
        cache_speed_view(LENGTHS, [0.0, 1.0, 1.0], WITH, 32)


def test_alibi_pattern_is_causal_and_follows_the_slopes():
    w = alibi_pattern(4, 10)
    assert w.shape == (4, 10, 10)
    assert torch.allclose(w.sum(-1), torch.ones(4, 10)) and torch.all(w.triu(1) == 0)
    # last row of head h: weights proportional to exp(-slope * distance)
    slope = alibi_slopes(4)[1].item()
    expected = torch.softmax(-slope * torch.arange(9, -1, -1.0), dim=0)
    assert torch.allclose(w[1, -1], expected, atol=1e-6)


def test_pattern_view_mean_distance():
    eye = torch.eye(5).expand(2, 5, 5)  # every query reads itself: 0 tokens back
    prev = torch.zeros(2, 5, 5)
    prev[:, 0, 0] = 1
    prev[:, torch.arange(1, 5), torch.arange(0, 4)] = 1  # every query but the first reads the previous token
    patterns = {"self": eye, "previous": prev.numpy()}
    assert pattern_view(patterns, "self", 1).mean_distance == 0.0
    view = pattern_view(patterns, "previous", 0)
    assert view.mean_distance == pytest.approx(4 / 5) and view.title == "previous, head 0" and view.num_heads == 2
    assert np.allclose(view.weights, prev[0].numpy())
    slopes_back = [pattern_view({"a": alibi_pattern(4, 32)}, "a", h).mean_distance for h in range(4)]
    assert slopes_back == sorted(slopes_back)


def test_pattern_view_bad_input():
    patterns = {"a": torch.eye(3).expand(2, 3, 3)}
    with pytest.raises(ValueError, match="kind must be one of"):
        pattern_view(patterns, "b", 0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        pattern_view(patterns, "a", 2)
    with pytest.raises(TypeError, match="head must be an int"):
        pattern_view(patterns, "a", 0.0)
    with pytest.raises(ValueError, match=r"\(H, T, T\)"):
        pattern_view({"a": torch.eye(3)}, "a", 0)


def test_explorers_build():
    pytest.importorskip("ipywidgets")
    box = cache_explorer(LENGTHS, WITHOUT, WITH)
    slider = box.children[0]
    slider.value = 32  # moving the slider redraws without error
    assert "speed-up 2.0x" in box.children[1].value
    box = pattern_explorer({"a": alibi_pattern(2, 6), "b": alibi_pattern(2, 6)})
    assert cut_labels(box) == []
    box.children[0].children[0].value = "b"
    box.children[0].children[1].value = 1
