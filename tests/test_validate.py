"""course_lib._validate and its use: a wrong type is TypeError, a wrong value ValueError, every message names
the argument and what it got; flags after q, k, v are keyword-only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib._validate import (
    broadcasts,
    check_bool,
    check_bool_mask,
    check_choice,
    check_float,
    check_int,
    check_probability,
    check_tensor,
    positive_int,
    reduced_channels,
)
from course_lib.attention import (
    AdditiveScores,
    BilinearScores,
    MultiHeadAttention,
    causal_mask,
    local_mask,
    nadaraya_watson,
    scaled_dot_product_attention,
    tiled_attention,
)
from course_lib.vision import ECA, SEBlock, ViT, create_attention


# ----------------------------------------------------------------------------- the helpers
def test_check_int_accepts_ints_and_numpy_ints_but_not_bools_or_floats():
    assert check_int("n", 3) == 3
    assert check_int("n", np.int64(3)) == 3 and type(check_int("n", np.int64(3))) is int
    with pytest.raises(TypeError, match="n must be an int, got bool True"):
        check_int("n", True)
    with pytest.raises(TypeError, match=r"n must be an int, got float 2\.0"):
        check_int("n", 2.0)


def test_check_int_bounds_name_the_argument_and_the_value():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0, minimum=1)
    with pytest.raises(ValueError, match="n must be <= 12, got 13"):
        check_int("n", 13, maximum=12)
    with pytest.raises(ValueError, match="channels must be a positive int, got -2"):
        positive_int("channels", -2)


def test_check_float_probability_bool_and_choice():
    assert check_float("h", 2) == 2.0
    with pytest.raises(TypeError, match="h must be a number, got bool False"):
        check_float("h", False)
    with pytest.raises(ValueError, match=r"h must be > 0\.0, got 0\.0"):
        check_float("h", 0.0, minimum=0.0, exclusive_minimum=True)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\), got 1\.0"):
        check_probability("dropout", 1.0)
    with pytest.raises(TypeError, match="is_causal must be a bool, got float 0.1"):
        check_bool("is_causal", 0.1)
    with pytest.raises(ValueError, match=r"mode must be one of \('a', 'b'\), got 'c'"):
        check_choice("mode", "c", ("a", "b"))


def test_check_tensor_reports_the_shape_seen():
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_tensor("x", [1.0])
    with pytest.raises(ValueError, match=r"x must have 3 dimensions \(B, T, D\), got shape \(2, 4\)"):
        check_tensor("x", torch.zeros(2, 4), dim=3, layout="(B, T, D)")
    with pytest.raises(ValueError, match=r"x must have at least 2 dimensions, got shape \(4,\)"):
        check_tensor("x", torch.zeros(4), min_dim=2)
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got dtype torch.int64"):
        check_tensor("x", torch.zeros(4, dtype=torch.long), floating=True)


def test_masks_and_broadcasting():
    assert broadcasts((1, 4), (2, 3, 4)) and not broadcasts((3, 4), (2, 4)) and not broadcasts((1, 2, 3, 4), (3, 4))
    assert check_bool_mask("mask", None, (2, 2)) is None
    with pytest.raises(TypeError, match="mask must be a boolean tensor"):
        check_bool_mask("mask", torch.zeros(2, 2), (2, 2))
    with pytest.raises(ValueError, match=r"mask of shape \(3,\) does not broadcast to the scores' shape \(2, 2\)"):
        check_bool_mask("mask", torch.ones(3, dtype=torch.bool), (2, 2))
    with pytest.raises(ValueError, match="SEBlock: channels // reduction must be >= 1, got channels=4 and reduction=8"):
        reduced_channels("SEBlock", 4, 8)


# ----------------------------------------------------------------------------- the disagreements of issue 10
@pytest.mark.parametrize("build, args, kwargs, message", [
    (MultiHeadAttention, (8, 2.0), {}, "num_heads must be an int, got float 2.0"),
    (SEBlock, (2.0,), {}, "channels must be an int, got float 2.0"),
    (AdditiveScores, (True, 4, 4), {}, "query_dim must be an int, got bool True"),
    (BilinearScores, (4, True), {}, "key_dim must be an int, got bool True"),
    (MultiHeadAttention, (True, 1), {}, "d_model must be an int, got bool True"),
    (ECA, (16,), {"kernel_size": 3.0}, "kernel_size must be an int, got float 3.0"),
    (ViT, (), {"depth": 2.0}, "depth must be an int, got float 2.0"),
    (create_attention, ("cbam", "16"), {}, "channels must be an int, got str '16'"),
    (causal_mask, (True,), {}, "t_q must be an int, got bool True"),
    (local_mask, (4, 4, 1.5), {}, "window must be an int, got float 1.5"),
])
def test_a_wrong_type_is_a_type_error_naming_the_argument(build, args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        build(*args, **kwargs)


@pytest.mark.parametrize("build, args, kwargs, message", [
    (MultiHeadAttention, (8, 0), {}, "num_heads must be a positive int, got 0"),
    (MultiHeadAttention, (8, 2), {"dropout": 1.5}, r"dropout must lie in \[0, 1\), got 1.5"),
    (SEBlock, (0,), {}, "channels must be a positive int, got 0"),
    (AdditiveScores, (4, 4, 0), {}, "hidden_dim must be a positive int, got 0"),
    (causal_mask, (-1,), {}, "t_q must be >= 0, got -1"),
])
def test_a_wrong_value_is_a_value_error_naming_the_argument(build, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(*args, **kwargs)


# ----------------------------------------------------------------------------- keyword-only flags
def test_torch_positional_order_cannot_silently_turn_on_causal_attention():
    q = k = v = torch.randn(1, 3, 4)
    with pytest.raises(TypeError, match="positional argument"):
        scaled_dot_product_attention(q, k, v, None, 0.1)  # dropout_p in torch's place: refused, not causal
    with pytest.raises(TypeError, match="is_causal must be a bool, got int 1"):
        scaled_dot_product_attention(q, k, v, is_causal=1)


X = torch.randn(1, 3, 4)


@pytest.mark.parametrize("fn, args", [
    (tiled_attention, (X, X, X, None, True)),
    (nadaraya_watson, (X[0, :, 0], X[0, :, 0], X[0, :, 0], 0.5)),
    (MultiHeadAttention, (4, 2, 0.1)),
    (MultiHeadAttention(4, 2), (X, X, X, None, True)),
])
def test_flags_are_keyword_only(fn, args):
    with pytest.raises(TypeError, match="positional argument"):
        fn(*args)
