"""local_mask: the band mask of local (windowed) attention."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import causal_mask, local_mask, masked_softmax


def test_small_band_by_hand():
    expected = torch.tensor([[1, 1, 0, 0],
                             [1, 1, 1, 0],
                             [0, 1, 1, 1],
                             [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(local_mask(4, 4, 1), expected)


def test_window_zero_is_the_diagonal_and_large_window_is_global():
    assert torch.equal(local_mask(5, 5, 0), torch.eye(5, dtype=torch.bool))
    assert local_mask(5, 7, 10).all()


@settings(max_examples=40, deadline=None)
@given(t_q=st.integers(0, 12), t_k=st.integers(0, 12), window=st.integers(0, 6))
def test_matches_definition(t_q, t_k, window):
    mask = local_mask(t_q, t_k, window)
    assert mask.shape == (t_q, t_k) and mask.dtype == torch.bool
    for i in range(t_q):
        for j in range(t_k):
            assert bool(mask[i, j]) == (abs(i - j) <= window)


def test_number_of_allowed_pairs():
    for t in (1, 3, 8, 20):
        for w in range(0, t):
            assert int(local_mask(t, t, w).sum()) == t * (2 * w + 1) - w * (w + 1)


def test_combines_with_causal_and_softmax():
    sliding = local_mask(6, 6, 2) & causal_mask(6)
    weights = masked_softmax(torch.randn(6, 6), mask=sliding)
    assert torch.allclose(weights.sum(-1), torch.ones(6))
    assert torch.all(weights[~sliding] == 0)


@pytest.mark.parametrize("bad", [(-1, 3, 1), (3, -1, 1), (3, 3, -1)])
def test_negative_sizes_are_value_errors(bad):
    with pytest.raises(ValueError, match="must be >= 0"):
        local_mask(*bad)


@pytest.mark.parametrize("bad", [(3.0, 3, 1), (3, 3, 1.5), (3, True, 1)])
def test_non_ints_are_type_errors(bad):
    with pytest.raises(TypeError, match="must be an int"):
        local_mask(*bad)


@pytest.mark.cuda
def test_device_argument_cuda():
    assert local_mask(4, 4, 1, device="cuda").device.type == "cuda"
