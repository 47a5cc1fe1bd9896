"""course_lib.attention: equivalence with torch, invariants (hypothesis), and one test per error message."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib.attention import (
    IMPLS,
    KERNELS,
    AdditiveScores,
    BilinearScores,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    causal_mask,
    dot_product_scores,
    lengths_to_mask,
    masked_softmax,
    nadaraya_watson,
    scaled_dot_product_attention,
    tiled_attention,
)

ATOL = 1e-5
CONCRETE_IMPLS = ("naive", "sdpa", "tiled", "auto")


def randn(*shape: int, seed: int = 0, device: str = "cpu", dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).to(device)


# ----------------------------------------------------------------------------- masked softmax
def test_masked_softmax_without_mask_is_softmax():
    x = randn(2, 3, 5)
    torch.testing.assert_close(masked_softmax(x), torch.softmax(x, dim=-1))


def test_masked_softmax_valid_lens_per_batch_and_per_query():
    x = randn(2, 3, 5)
    w = masked_softmax(x, valid_lens=torch.tensor([2, 4]))
    assert torch.all(w[0, :, 2:] == 0) and torch.all(w[1, :, 4:] == 0)
    torch.testing.assert_close(w[0, :, :2], torch.softmax(x[0, :, :2], dim=-1))
    w2 = masked_softmax(x, valid_lens=torch.tensor([[1, 2, 3], [5, 0, 2]]))
    assert torch.all(w2[1, 1] == 0)
    torch.testing.assert_close(w2[0, 2, :3], torch.softmax(x[0, 2, :3], dim=-1))


def test_masked_softmax_valid_lens_with_heads():
    x = randn(2, 4, 3, 6)  # (B, H, T_q, T_k)
    w = masked_softmax(x, valid_lens=torch.tensor([3, 6]))
    assert torch.all(w[0, ..., 3:] == 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 3))


def test_fully_masked_row_gives_zeros_and_finite_gradient():
    x = randn(1, 2, 4).requires_grad_()
    mask = torch.tensor([[[True, False, True, False], [False, False, False, False]]])
    w = masked_softmax(x, mask=mask)
    assert torch.all(w[0, 1] == 0)
    assert not torch.isnan(w).any()
    (w * randn(1, 2, 4, seed=1)).sum().backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), t_q=st.integers(1, 6), t_k=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_property_rows_sum_to_one_and_masked_weights_exactly_zero(b, t_q, t_k, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(b, t_q, t_k, generator=g) * 5
    mask = torch.rand(b, t_q, t_k, generator=g) > 0.4
    w = masked_softmax(scores, mask=mask)
    assert torch.all(w[~mask] == 0)
    has_key = mask.any(-1)
    torch.testing.assert_close(w.sum(-1)[has_key], torch.ones(int(has_key.sum())))
    assert torch.all(w.sum(-1)[~has_key] == 0)


# ----------------------------------------------------------------------------- masks
def test_causal_mask_matches_torch_is_causal_convention():
    m = causal_mask(3, 5)
    assert m.dtype == torch.bool and m.shape == (3, 5)
    assert torch.equal(m, torch.ones(3, 5, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(4), causal_mask(4, 4))


def test_lengths_to_mask():
    m = lengths_to_mask(torch.tensor([0, 2, 3]), 3)
    assert torch.equal(m, torch.tensor([[False] * 3, [True, True, False], [True] * 3]))


# ----------------------------------------------------------------------------- scores
def test_dot_product_scores_scale():
    q, k = randn(2, 3, 8), randn(2, 5, 8, seed=1)
    torch.testing.assert_close(dot_product_scores(q, k), q @ k.transpose(-2, -1) / math.sqrt(8))
    torch.testing.assert_close(dot_product_scores(q, k, scale=1.0), q @ k.transpose(-2, -1))


def test_additive_scores_matches_formula():
    torch.manual_seed(0)
    module = AdditiveScores(query_dim=4, key_dim=6, hidden_dim=5)
    q, k = randn(2, 3, 4), randn(2, 7, 6, seed=1)
    scores = module(q, k)
    assert scores.shape == (2, 3, 7)
    by_hand = torch.stack([
        torch.stack([module.v(torch.tanh(module.q_proj(q[b, i]) + module.k_proj(k[b, j]))).squeeze()
                     for j in range(7)]) for b in range(2) for i in range(3)]).view(2, 3, 7)
    torch.testing.assert_close(scores, by_hand)


def test_bilinear_scores_matches_formula():
    torch.manual_seed(0)
    module = BilinearScores(4, 6)
    q, k = randn(2, 3, 4), randn(2, 7, 6, seed=1)
    torch.testing.assert_close(module(q, k), torch.einsum("bqi,ij,bkj->bqk", q, module.weight, k))


# ----------------------------------------------------------------------------- SDPA
@pytest.mark.parametrize("impl", CONCRETE_IMPLS)
@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_matches_torch(impl, is_causal):
    q, k, v = randn(2, 3, 5, 8), randn(2, 3, 7, 8, seed=1), randn(2, 3, 7, 4, seed=2)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=is_causal, impl=impl), expected,
                               atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("impl", CONCRETE_IMPLS)
def test_sdpa_with_boolean_mask_matches_torch(impl):
    q, k, v = randn(2, 5, 8), randn(2, 9, 8, seed=1), randn(2, 9, 3, seed=2)
    mask = randn(2, 5, 9, seed=3) > -0.5
    mask[..., 0] = True  # every row has a key, so torch is defined
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, mask=mask, impl=impl), expected,
                               atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("impl", CONCRETE_IMPLS)
def test_sdpa_fully_masked_rows_give_zeros(impl):
    q, k, v = randn(1, 3, 4), randn(1, 5, 4, seed=1), randn(1, 5, 2, seed=2)
    mask = torch.ones(1, 3, 5, dtype=torch.bool)
    mask[0, 1] = False
    out = scaled_dot_product_attention(q, k, v, mask=mask, impl=impl)
    assert not torch.isnan(out).any()
    assert torch.all(out[0, 1] == 0)
    torch.testing.assert_close(out[0, [0, 2]], F.scaled_dot_product_attention(q, k, v)[0, [0, 2]], atol=ATOL, rtol=1e-4)


def test_sdpa_mask_and_causal_combine():
    q, k, v = randn(1, 4, 4), randn(1, 4, 4, seed=1), randn(1, 4, 4, seed=2)
    mask = torch.tensor([[True, False, True, True]]).expand(4, 4)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal_mask(4))
    for impl in CONCRETE_IMPLS:
        out = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True, impl=impl)
        torch.testing.assert_close(out, expected, atol=ATOL, rtol=1e-4)


def test_return_weights_gives_weights_that_produce_the_output():
    q, k, v = randn(2, 3, 8), randn(2, 6, 8, seed=1), randn(2, 6, 5, seed=2)
    out, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert w.shape == (2, 3, 6)
    torch.testing.assert_close(out, w @ v)


def test_dropout_is_applied_in_naive_path():
    q, k, v = randn(1, 8, 4), randn(1, 8, 4, seed=1), randn(1, 8, 4, seed=2)
    torch.manual_seed(0)
    out = scaled_dot_product_attention(q, k, v, dropout_p=0.5, impl="naive")
    assert not torch.allclose(out, scaled_dot_product_attention(q, k, v, impl="naive"))


@pytest.mark.parametrize("block_size", [1, 3, 16, 128])
@pytest.mark.parametrize("is_causal", [False, True])
def test_tiled_attention_any_block_size(block_size, is_causal):
    q, k, v = randn(2, 2, 17, 8), randn(2, 2, 17, 8, seed=1), randn(2, 2, 17, 6, seed=2)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(tiled_attention(q, k, v, block_size=block_size, is_causal=is_causal), expected,
                               atol=ATOL, rtol=1e-4)


def test_gradients_agree_between_impls():
    base = [randn(2, 5, 8, seed=s).requires_grad_() for s in range(3)]
    grads = {}
    for impl in ("naive", "sdpa", "tiled"):
        tensors = [t.detach().clone().requires_grad_() for t in base]
        scaled_dot_product_attention(*tensors, is_causal=True, impl=impl).square().sum().backward()
        grads[impl] = [t.grad for t in tensors]
    for impl in ("sdpa", "tiled"):
        for got, want in zip(grads[impl], grads["naive"], strict=True):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(t_q=st.integers(1, 9), t_k=st.integers(1, 9), d=st.sampled_from([1, 4, 8]), causal=st.booleans(),
       block=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_property_all_impls_agree(t_q, t_k, d, causal, block, seed):
    q, k, v = randn(2, t_q, d, seed=seed), randn(2, t_k, d, seed=seed + 1), randn(2, t_k, 3, seed=seed + 2)
    naive = scaled_dot_product_attention(q, k, v, is_causal=causal, impl="naive")
    assert not torch.isnan(naive).any()
    for impl in ("sdpa", "auto"):
        torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=causal, impl=impl), naive,
                                   atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(tiled_attention(q, k, v, block_size=block, is_causal=causal), naive,
                               atol=ATOL, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(2, 9), cut=st.integers(0, 8), seed=st.integers(0, 10_000))
def test_property_causal_output_is_blind_to_the_future(t, cut, seed):
    cut = cut % t
    q, k, v = randn(1, t, 4, seed=seed), randn(1, t, 4, seed=seed + 1), randn(1, t, 4, seed=seed + 2)
    k2, v2 = k.clone(), v.clone()
    k2[:, cut + 1:] += 10.0
    v2[:, cut + 1:] -= 10.0
    for impl in ("naive", "sdpa", "tiled"):
        before = scaled_dot_product_attention(q, k, v, is_causal=True, impl=impl)[:, : cut + 1]
        after = scaled_dot_product_attention(q, k2, v2, is_causal=True, impl=impl)[:, : cut + 1]
        torch.testing.assert_close(before, after, atol=ATOL, rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_property_self_attention_without_positions_is_permutation_equivariant(t, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(8, 2).eval()
    x = randn(2, t, 8, seed=seed)
    perm = torch.randperm(t)
    with torch.no_grad():
        out, _ = mha(x, x, x)
        out_perm, _ = mha(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm], atol=ATOL, rtol=1e-4)


# ----------------------------------------------------------------------------- Nadaraya-Watson
def test_nadaraya_watson_gaussian_is_softmax_of_negative_half_squared_distance():
    x_train = torch.linspace(0, 5, 20)
    y_train = torch.sin(x_train)
    queries = torch.linspace(0, 5, 7)
    est, w = nadaraya_watson(queries, x_train, y_train, bandwidth=0.5, return_weights=True)
    expected_w = torch.softmax(-0.5 * ((queries[:, None] - x_train[None, :]) / 0.5) ** 2, dim=1)
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(est, expected_w @ y_train)


@pytest.mark.parametrize("kernel", KERNELS)
def test_nadaraya_watson_kernels_are_normalised(kernel):
    keys = torch.linspace(0, 1, 11)
    _, w = nadaraya_watson(torch.tensor([0.3, 0.55, 5.0]), keys, keys, bandwidth=0.2, kernel=kernel,
                           return_weights=True)
    sums = w.sum(dim=1)
    torch.testing.assert_close(sums[:2], torch.ones(2))
    assert sums[2] == 0 if kernel in ("epanechnikov", "boxcar") else torch.isclose(sums[2], torch.tensor(1.0))


def test_nadaraya_watson_bandwidth_gets_a_gradient():
    log_h = torch.zeros((), requires_grad=True)
    x = torch.linspace(0, 3, 10)
    nadaraya_watson(x, x, torch.cos(x), bandwidth=log_h.exp()).square().sum().backward()
    assert log_h.grad is not None and torch.isfinite(log_h.grad)


# ----------------------------------------------------------------------------- MHA
@pytest.mark.parametrize("kdim,vdim", [(None, None), (6, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_mha_matches_torch_with_copied_weights(kdim, vdim, bias):
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(16, 4, batch_first=True, bias=bias, kdim=kdim, vdim=vdim).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    q = randn(2, 5, 16)
    k = randn(2, 7, kdim or 16, seed=1)
    v = randn(2, 7, vdim or 16, seed=2)
    mask = randn(2, 5, 7, seed=3) > -0.7
    mask[..., 0] = True
    want, want_w = ref(q, k, v, attn_mask=(~mask).repeat_interleave(4, dim=0), average_attn_weights=False)
    got, got_w = ours(q, k, v, mask=mask, need_weights=True)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(got_w, want_w, atol=ATOL, rtol=1e-4)
    got_fast, none = ours(q, k, v, mask=mask)
    assert none is None
    torch.testing.assert_close(got_fast, want, atol=ATOL, rtol=1e-4)


def test_mha_causal_matches_torch():
    torch.manual_seed(1)
    ref = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x = randn(3, 6, 8)
    want, _ = ref(x, x, x, attn_mask=~causal_mask(6), need_weights=False)
    got, _ = ours(x, x, x, is_causal=True)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-4)


def test_mha_parameter_count():
    assert sum(p.numel() for p in MultiHeadAttention(32, 4).parameters()) == 4 * 32 * 32 + 4 * 32
    assert sum(p.numel() for p in MultiHeadAttention(32, 4, bias=False).parameters()) == 4 * 32 * 32


def test_merge_heads_inverts_split_heads():
    mha = MultiHeadAttention(12, 3)
    x = randn(2, 5, 12)
    torch.testing.assert_close(mha.merge_heads(mha.split_heads(x)), x)


# ----------------------------------------------------------------------------- positions
def test_sinusoidal_encoding_values():
    pe = SinusoidalPositionalEncoding(6, max_len=10)
    x = torch.zeros(1, 4, 6)
    out = pe(x)
    p, i = 3, 1  # dims 2 and 3 use frequency 10000^(-2/6)
    assert math.isclose(out[0, p, 2 * i].item(), math.sin(p / 10000 ** (2 * i / 6)), rel_tol=1e-5)
    assert math.isclose(out[0, p, 2 * i + 1].item(), math.cos(p / 10000 ** (2 * i / 6)), rel_tol=1e-5)
    assert torch.all(out[0, 0, 0::2] == 0) and torch.all(out[0, 0, 1::2] == 1)


def test_sinusoidal_encoding_odd_dim():
    assert SinusoidalPositionalEncoding(5, max_len=4)(torch.zeros(1, 4, 5)).shape == (1, 4, 5)


# ----------------------------------------------------------------------------- errors, one per message
def test_error_mismatched_head_dims():
    with pytest.raises(ValueError, match=r"share their last \(head\) dimension.*\(2, 3, 8\).*\(2, 4, 6\)"):
        scaled_dot_product_attention(randn(2, 3, 8), randn(2, 4, 6), randn(2, 4, 6))


def test_error_mismatched_key_value_lengths():
    with pytest.raises(ValueError, match=r"same number of keys.*\(2, 4, 8\).*\(2, 5, 8\)"):
        scaled_dot_product_attention(randn(2, 3, 8), randn(2, 4, 8), randn(2, 5, 8))


def test_error_mismatched_batch():
    with pytest.raises(ValueError, match="leading"):
        scaled_dot_product_attention(randn(2, 3, 8), randn(3, 4, 8), randn(3, 4, 8))


def test_error_mask_does_not_broadcast():
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5\) does not broadcast.*\(2, 3, 4\)"):
        scaled_dot_product_attention(randn(2, 3, 8), randn(2, 4, 8), randn(2, 4, 8),
                                     mask=torch.ones(3, 5, dtype=torch.bool))


def test_error_float_mask_is_a_type_error():
    with pytest.raises(TypeError, match="boolean"):
        masked_softmax(randn(2, 3), mask=torch.ones(2, 3))


def test_error_unknown_impl():
    with pytest.raises(ValueError, match=r"impl must be one of .*'fast'"):
        scaled_dot_product_attention(randn(1, 2, 4), randn(1, 2, 4), randn(1, 2, 4), impl="fast")
    assert set(IMPLS) == {"auto", "naive", "sdpa", "tiled"}


def test_error_weights_from_fused_path():
    with pytest.raises(ValueError, match="never forms the attention weights"):
        scaled_dot_product_attention(randn(1, 2, 4), randn(1, 2, 4), randn(1, 2, 4), impl="sdpa", return_weights=True)


def test_error_d_model_not_divisible_by_heads():
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=4"):
        MultiHeadAttention(10, 4)


def test_error_mha_input_shapes():
    mha = MultiHeadAttention(8, 2, kdim=6)
    with pytest.raises(ValueError, match=r"key must have shape \(B, T, 6\), got \(1, 3, 8\)"):
        mha(randn(1, 3, 8), randn(1, 3, 8), randn(1, 3, 8))
    with pytest.raises(ValueError, match="key and value must share batch and length"):
        mha(randn(1, 3, 8), randn(1, 3, 6), randn(1, 4, 8))


def test_error_mha_mask_shape():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"does not broadcast to the scores' shape \(1, 2, 3, 3\)"):
        mha(randn(1, 3, 8), randn(1, 3, 8), randn(1, 3, 8), mask=torch.ones(1, 3, 4, dtype=torch.bool))


def test_error_valid_lens_shape():
    with pytest.raises(ValueError, match=r"valid_lens must have shape \(B,\) = \(2,\) or \(B, T_q\) = \(2, 3\)"):
        masked_softmax(randn(2, 3, 4), valid_lens=torch.tensor([1, 2, 3]))


def test_error_lengths_to_mask_out_of_range():
    with pytest.raises(ValueError, match=r"valid_lens must lie in \[0, max_len=3\]"):
        lengths_to_mask(torch.tensor([1, 4]), 3)


def test_error_tiled_block_size():
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        tiled_attention(randn(1, 2, 4), randn(1, 2, 4), randn(1, 2, 4), block_size=0)


def test_error_non_tensor_input():
    with pytest.raises(TypeError, match="q must be a torch.Tensor, got list"):
        dot_product_scores([[1.0]], randn(1, 1))


def test_error_positional_encoding_too_long():
    with pytest.raises(ValueError, match="sequence length 5 exceeds max_len=4"):
        SinusoidalPositionalEncoding(4, max_len=4)(torch.zeros(1, 5, 4))


def test_error_bandwidth_and_kernel():
    x = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="bandwidth must be a single positive number"):
        nadaraya_watson(x, x, x, bandwidth=0.0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        nadaraya_watson(x, x, x, kernel="cosine")


def test_error_additive_scores_dims():
    with pytest.raises(ValueError, match=r"AdditiveScores expects q \(\.\.\., T_q, 4\)"):
        AdditiveScores(4, 6, 5)(randn(1, 2, 3), randn(1, 2, 6))


def test_error_from_torch_requires_batch_first():
    with pytest.raises(ValueError, match="batch_first=True"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2))


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("impl", CONCRETE_IMPLS)
@pytest.mark.parametrize("is_causal", [False, True])
def test_cuda_sdpa_matches_torch(impl, is_causal):
    q, k, v = (randn(2, 4, 33, 64, seed=s, device="cuda") for s in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    out = scaled_dot_product_attention(q, k, v, is_causal=is_causal, impl=impl)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_half_precision_sdpa_and_tiled(dtype):
    q, k, v = (randn(1, 2, 130, 64, seed=s, device="cuda", dtype=dtype) for s in range(3))
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    for impl in ("sdpa", "tiled", "naive"):
        out = scaled_dot_product_attention(q, k, v, is_causal=True, impl=impl)
        torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)


@pytest.mark.cuda
def test_cuda_mha_matches_torch_and_masks():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(32, 4, batch_first=True, kdim=24, vdim=20).cuda().eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    assert next(ours.parameters()).device.type == "cuda"
    q = randn(2, 9, 32, device="cuda")
    k, v = randn(2, 11, 24, seed=1, device="cuda"), randn(2, 11, 20, seed=2, device="cuda")
    mask = torch.ones(2, 9, 11, dtype=torch.bool, device="cuda")
    mask[1, 3] = False  # a fully masked row
    want, _ = ref(q, k, v)
    got, w = ours(q, k, v, need_weights=True)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)
    out, _ = ours(q, k, v, mask=mask)
    assert torch.isfinite(out).all()
    out_w = masked_softmax(randn(2, 9, 11, device="cuda"), mask=mask)
    assert torch.all(out_w[1, 3] == 0)
