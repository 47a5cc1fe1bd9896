"""course_lib.widgets.heads: the logic behind the head-picker widget."""

import numpy as np
import pytest
import torch

from course_lib.widgets._layout import cut_labels
from course_lib.widgets.heads import head_explorer, head_view


def _weights(layers=2, heads=3, t=4):
    g = torch.Generator().manual_seed(0)
    return torch.softmax(torch.randn(layers, heads, t, t, generator=g), dim=-1)


def test_picks_the_right_matrix():
    w = _weights()
    view = head_view(w, layer=1, head=2, tokens=list("abcd"))
    assert np.allclose(view.weights, w[1, 2].numpy())
    assert view.title == "layer 1, head 2"
    assert view.x_tokens == view.y_tokens == list("abcd")
    assert view.top_key == w[1, 2].argmax(-1).tolist()
    assert (view.num_layers, view.num_heads) == (2, 3)


def test_three_dimensional_weights_are_one_layer():
    w = _weights(1, 2)[0]  # (H, T, T)
    view = head_view(w, 0, 1)
    assert np.allclose(view.weights, w[1].numpy())
    assert view.title == "head 1" and view.x_tokens == ["0", "1", "2", "3"]


def test_cross_attention_labels():
    w = torch.softmax(torch.randn(2, 3, 5), -1)  # (H, T_q=3, T_k=5)
    view = head_view(w, 0, 0, tokens=["x", "y", "z"], key_tokens=list("abcde"))
    assert view.y_tokens == ["x", "y", "z"] and view.x_tokens == list("abcde")
    assert head_view(w, 0, 0).x_tokens == [str(i) for i in range(5)]


def test_numpy_and_requires_grad_inputs():
    w = _weights().requires_grad_(True)
    assert np.allclose(head_view(w, 0, 0).weights, w[0, 0].detach().numpy())
    assert np.allclose(head_view(w.detach().numpy(), 1, 1).weights, w[1, 1].detach().numpy())


@pytest.mark.parametrize("layer, head", [(2, 0), (0, 3), (-1, 0)])
def test_out_of_range(layer, head):
    with pytest.raises(ValueError, match="must lie in"):
        head_view(_weights(), layer, head)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(L, H, T_q, T_k\)"):
        head_view(torch.zeros(4, 4), 0, 0)
    with pytest.raises(TypeError, match="weights"):
        head_view([[0.0]], 0, 0)
    with pytest.raises(TypeError, match="head must be an int"):
        head_view(_weights(), 0, 1.0)
    with pytest.raises(ValueError, match="tokens has 3 labels"):
        head_view(_weights(), 0, 0, tokens=list("abc"))


def test_shell_builds_and_switches():
    box = head_explorer(_weights(), tokens=list("abcd"))
    layer, head = box.children[0].children
    assert layer.options == (0, 1) and head.options == (0, 1, 2)
    assert layer.layout.display != "none" and cut_labels(box) == []
    head.value = 2
    layer.value = 1


def test_a_single_layer_hides_its_dropdown():
    box = head_explorer(_weights()[0], tokens=list("abcd"))  # (H, T, T): one layer
    layer, head = box.children[0].children
    assert layer.options == (0,) and layer.layout.display == "none"
    assert head.layout.display != "none" and head.options == (0, 1, 2)
