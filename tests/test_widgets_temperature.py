"""course_lib.widgets.temperature: the logic behind the lesson-04 temperature slider."""

import math

import pytest
import torch

from course_lib.widgets._layout import cut_labels
from course_lib.widgets.temperature import temperature_explorer, temperature_view


@pytest.fixture
def memory():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(5, 4, generator=g)
    values = torch.randn(5, 3, generator=g)
    query = keys[2] * 2.0
    return query, keys, values


def test_weights_are_a_softmax_of_scaled_scores(memory):
    query, keys, values = memory
    view = temperature_view(query, keys, values, 0.7)
    scores = keys @ query / 2.0
    assert torch.allclose(view.scores, scores)
    assert torch.allclose(view.weights, torch.softmax(scores / 0.7, 0))
    assert torch.allclose(view.output, view.weights @ values)
    assert view.hard_index == int(scores.argmax())


def test_near_zero_temperature_is_hard_attention(memory):
    query, keys, values = memory
    view = temperature_view(query, keys, values, 1e-3)
    assert view.weights[view.hard_index] > 0.999
    assert torch.allclose(view.output, values[view.hard_index], atol=1e-3)
    assert view.effective_keys < 1.01


def test_large_temperature_is_uniform(memory):
    query, keys, values = memory
    view = temperature_view(query, keys, values, 1e4)
    assert torch.allclose(view.weights, torch.full((5,), 0.2), atol=1e-3)
    assert torch.allclose(view.output, values.mean(0), atol=1e-3)
    assert math.isclose(view.entropy, math.log(5), rel_tol=1e-4)


def test_entropy_grows_with_temperature(memory):
    query, keys, values = memory
    entropies = [temperature_view(query, keys, values, t).entropy for t in (0.01, 0.1, 1.0, 10.0, 100.0)]
    assert entropies == sorted(entropies)


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_bad_temperature(memory, t):
    with pytest.raises(ValueError, match="temperature must be > 0.0"):
        temperature_view(*memory, t)


@pytest.mark.parametrize("t", [True, "1"])
def test_temperature_of_the_wrong_type(memory, t):
    with pytest.raises(TypeError, match=f"temperature must be a number, got {type(t).__name__}"):
        temperature_view(*memory, t)


def test_bad_shapes(memory):
    query, keys, values = memory
    with pytest.raises(ValueError, match="keys must be"):
        temperature_view(query[:3], keys, values, 1.0)
    with pytest.raises(ValueError, match="values must be"):
        temperature_view(query, keys, values[:4], 1.0)
    with pytest.raises(ValueError, match="query must have 1"):
        temperature_view(query[None], keys, values, 1.0)
    with pytest.raises(TypeError, match="keys"):
        temperature_view(query, keys.tolist(), values, 1.0)


def test_shell_builds(memory):
    box = temperature_explorer(*memory)
    slider = box.children[0]
    slider.value = 0.05  # moving the slider redraws without error
    assert slider.description == "temperature"
    assert cut_labels(box) == []  # "temperature" was shown as "temperat…"


def test_shell_needs_2d_values(memory):
    query, keys, values = memory
    with pytest.raises(ValueError, match="values must be"):
        temperature_explorer(query, keys, values[:, :1])
