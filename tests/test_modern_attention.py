"""Lesson 17's library: RoPE, ALiBi, grouped-query attention, the KV cache, the tiny decoder (lesson 17)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import (
    GroupedQueryAttention,
    KVCache,
    alibi_bias,
    alibi_slopes,
    apply_rotary,
    kv_cache_bytes,
    repeat_kv,
    sliding_window_mask,
)
from course_lib.data.counting import CountingCorpus
from course_lib.data.numbers import number_to_tokens
from course_lib.decoder import TinyDecoder

SETTINGS = settings(max_examples=25, deadline=None)


# ---- RoPE ----------------------------------------------------------------------------------------
def test_rotary_two_channels_is_a_plane_rotation():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # (T=3, d=2)
    out = apply_rotary(x, torch.tensor([0, 1, 2]))
    expected = torch.tensor([[1.0, 0.0], [math.cos(1), math.sin(1)], [-math.sin(2), math.cos(2)]])
    assert torch.allclose(out, expected, atol=1e-6)


def test_rotary_pairs_are_interleaved_with_the_papers_frequencies():
    d, p = 8, 3
    x = torch.zeros(1, d)
    x[0, 2] = 1.0  # channel 2: the first channel of pair 1
    out = apply_rotary(x, torch.tensor([p]))
    angle = p * 10000.0 ** (-2 / d)
    expected = torch.zeros(1, d)
    expected[0, 2], expected[0, 3] = math.cos(angle), math.sin(angle)  # it turns into channel 3, not channel 6
    assert torch.allclose(out, expected, atol=1e-6)
    turned = apply_rotary(x, torch.tensor([p]), base=100.0)
    assert torch.allclose(turned[0, 3], torch.tensor(math.sin(p * 100 ** -0.25)))


def test_rotary_default_positions_and_position_zero():
    x = torch.randn(2, 3, 5, 6)
    assert torch.allclose(apply_rotary(x), apply_rotary(x, torch.arange(5)))
    assert torch.equal(apply_rotary(x[..., :1, :]), x[..., :1, :])  # position 0 does not turn


@SETTINGS
@given(length=st.integers(1, 12), half_dim=st.integers(1, 8), offset=st.integers(0, 500), seed=st.integers(0, 99))
def test_rotary_keeps_norms(length, half_dim, offset, seed):
    x = torch.randn(2, length, 2 * half_dim, generator=torch.Generator().manual_seed(seed))
    out = apply_rotary(x, torch.arange(offset, offset + length))
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4)


@SETTINGS
@given(m=st.integers(0, 300), n=st.integers(0, 300), shift=st.integers(0, 300), seed=st.integers(0, 99))
def test_rotary_dot_product_depends_on_the_offset_only(m, n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(1, 16, generator=g, dtype=torch.float64), torch.randn(1, 16, generator=g, dtype=torch.float64)
    score = (apply_rotary(q, torch.tensor([m])) * apply_rotary(k, torch.tensor([n]))).sum()
    shifted = (apply_rotary(q, torch.tensor([m + shift])) * apply_rotary(k, torch.tensor([n + shift]))).sum()
    assert torch.allclose(score, shifted, atol=1e-9)


def test_rotary_bad_input():
    with pytest.raises(ValueError, match=r"d must be even.*\(2, 3, 5\)"):
        apply_rotary(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"positions must have shape \(T,\) = \(3,\).*got \(4,\)"):
        apply_rotary(torch.randn(3, 4), torch.arange(4))
    with pytest.raises(TypeError, match="positions must be an integer tensor"):
        apply_rotary(torch.randn(3, 4), torch.arange(3.0))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        apply_rotary([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., T, d\)"):
        apply_rotary(torch.randn(4))
    with pytest.raises(ValueError, match="base"):
        apply_rotary(torch.randn(3, 4), base=-1.0)
    with pytest.raises(TypeError):
        apply_rotary(torch.randn(3, 4), None, 100.0)  # base is keyword-only


# ---- ALiBi ---------------------------------------------------------------------------------------
def test_alibi_slopes_powers_of_two():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    assert torch.allclose(alibi_slopes(4), torch.tensor([2.0 ** -(2 * (i + 1)) for i in range(4)]))
    assert torch.allclose(alibi_slopes(1), torch.tensor([2.0 ** -8]))


def test_alibi_slopes_other_counts_follow_the_papers_recipe():
    # 6 heads: the 4 slopes of 4 heads, then slopes 0 and 2 of the 8-head sequence
    assert torch.allclose(alibi_slopes(6), torch.tensor([1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8]))
    assert torch.allclose(alibi_slopes(3), torch.tensor([2.0 ** -4, 2.0 ** -8, 2.0 ** -2]))
    s12 = alibi_slopes(12)
    assert torch.allclose(s12[:8], alibi_slopes(8)) and torch.allclose(s12[8:], alibi_slopes(16)[0::2][:4])
    assert len(set(alibi_slopes(24).tolist())) == 24


def test_alibi_bias_values_and_cache_alignment():
    bias = alibi_bias(2, 4)
    assert bias.shape == (2, 4, 4)
    slopes = alibi_slopes(2)
    assert bias[1, 3, 0] == pytest.approx(-slopes[1].item() * 3)
    assert torch.all(bias.diagonal(dim1=-2, dim2=-1) == 0)
    assert torch.allclose(alibi_bias(2, 1, 4), bias[:, -1:])  # one new query after 3 cached positions
    assert torch.allclose(alibi_bias(2, 2, 4), bias[:, -2:])


def test_alibi_bad_input():
    with pytest.raises(ValueError, match="num_heads must be >= 1"):
        alibi_slopes(0)
    with pytest.raises(TypeError, match="num_heads must be an int"):
        alibi_slopes(2.0)
    with pytest.raises(ValueError, match="t_k must be >= t_q"):
        alibi_bias(2, 5, 3)


# ---- masks and repeat_kv -------------------------------------------------------------------------
def test_sliding_window_mask():
    mask = sliding_window_mask(5, window=2)
    expected = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]],
                            dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert torch.equal(sliding_window_mask(2, 5, window=2), expected[-2:])  # queries at the end
    assert torch.equal(sliding_window_mask(6, window=6), torch.ones(6, 6, dtype=torch.bool).tril())
    with pytest.raises(ValueError, match="window must be >= 1"):
        sliding_window_mask(3, window=0)


def test_repeat_kv_order():
    kv = torch.arange(2.0).view(1, 2, 1, 1)  # kv head h holds the value h
    assert repeat_kv(kv, 6).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"num_heads=3 is not a multiple of the 2 key/value heads"):
        repeat_kv(kv, 3)
    with pytest.raises(ValueError, match=r"\(B, H_kv, T, d\)"):
        repeat_kv(torch.zeros(2, 3), 2)


# ---- GroupedQueryAttention -----------------------------------------------------------------------
def test_projection_shapes_and_parameters():
    gqa = GroupedQueryAttention(64, 8, 2)
    assert gqa.q_proj.weight.shape == (64, 64) and gqa.out_proj.weight.shape == (64, 64)
    assert gqa.k_proj.weight.shape == (16, 64) and gqa.v_proj.weight.shape == (16, 64)  # 2 kv heads of 8
    mqa = GroupedQueryAttention(64, 8, 1, bias=False)
    assert mqa.k_proj.weight.shape == (8, 64) and mqa.k_proj.bias is None


@pytest.mark.parametrize("use_mask", [False, True])
def test_equals_multi_head_attention_with_the_same_weights(use_mask):
    from course_lib.attention import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 4).eval()
    gqa = GroupedQueryAttention(24, 4, 4).eval()
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(3, 7, 24)
    mask = (torch.rand(3, 7, 7) < 0.7) | torch.eye(7, dtype=torch.bool) if use_mask else None
    with torch.no_grad():
        ours = gqa(x, mask=None if mask is None else mask[:, None], is_causal=True)
        theirs = mha(x, x, x, mask=mask, is_causal=True)[0]
    assert torch.allclose(ours, theirs, atol=1e-5)
    if mask is not None:  # a (B, T, T) mask applies to every head, as in MultiHeadAttention
        with torch.no_grad():
            assert torch.allclose(gqa(x, mask=mask, is_causal=True), theirs, atol=1e-5)


def test_query_head_reads_kv_head_h_over_group():
    torch.manual_seed(1)
    gqa = GroupedQueryAttention(16, 4, 2, bias=False).eval()
    x = torch.randn(1, 5, 16)
    with torch.no_grad():
        _, weights = gqa.attend(x, is_causal=True, need_weights=True)
        q = gqa.q_proj(x).view(1, 5, 4, 4).transpose(1, 2)
        k = gqa.k_proj(x).view(1, 5, 2, 4).transpose(1, 2)
    for h in range(4):
        scores = q[:, h] @ k[:, h // 2].transpose(-2, -1) / 2.0
        expected = torch.softmax(scores.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), -math.inf), -1)
        assert torch.allclose(weights[:, h], expected, atol=1e-6), h


@SETTINGS
@given(kv=st.sampled_from([1, 2, 4]), rotary=st.booleans(), alibi=st.booleans(), cut=st.integers(1, 8),
       seed=st.integers(0, 50))
def test_causal_outputs_are_blind_to_the_future(kv, rotary, alibi, cut, seed):
    torch.manual_seed(seed)
    gqa = GroupedQueryAttention(16, 4, kv, rotary=rotary, alibi=alibi).eval()
    x = torch.randn(2, 9, 16)
    changed = x.clone()
    changed[:, cut:] = torch.randn(2, 9 - cut, 16)
    with torch.no_grad():
        assert torch.allclose(gqa(x, is_causal=True)[:, :cut], gqa(changed, is_causal=True)[:, :cut], atol=1e-6)


@pytest.mark.parametrize("kv", [4, 2, 1])
@pytest.mark.parametrize("kind", ["plain", "rotary", "alibi", "window"])
def test_cache_in_pieces_equals_the_full_causal_forward(kv, kind):
    torch.manual_seed(2)
    window = 3 if kind == "window" else None
    gqa = GroupedQueryAttention(16, 4, kv, rotary=kind == "rotary", alibi=kind == "alibi", window=window).eval()
    x = torch.randn(2, 11, 16)
    with torch.no_grad():
        full = gqa(x, is_causal=True)
        cache = KVCache(window=window)
        pieces = [gqa(x[:, :5], is_causal=True, cache=cache)]  # a prompt
        pieces += [gqa(x[:, t:t + 1], is_causal=True, cache=cache) for t in range(5, 9)]  # one token at a time
        pieces.append(gqa(x[:, 9:], is_causal=True, cache=cache))  # a chunk of two
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)
    assert cache.seen == 11
    assert len(cache) == (3 if window else 11)
    assert cache.keys.shape == (2, kv, len(cache), 4)


def test_window_equals_an_explicit_band_mask():
    torch.manual_seed(3)
    windowed = GroupedQueryAttention(16, 4, 2, window=4).eval()
    plain = GroupedQueryAttention(16, 4, 2).eval()
    plain.load_state_dict(windowed.state_dict())
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        assert torch.allclose(windowed(x, is_causal=True), plain(x, mask=sliding_window_mask(10, window=4)), atol=1e-6)


def test_rope_with_the_cache_needs_the_offset():
    torch.manual_seed(4)
    gqa = GroupedQueryAttention(16, 2, 1, rotary=True).eval()
    x = torch.randn(1, 6, 16)
    with torch.no_grad():
        full = gqa(x, is_causal=True)
        cache = KVCache()
        gqa(x[:, :5], is_causal=True, cache=cache)
        right = gqa(x[:, 5:], is_causal=True, cache=cache)
        forgetful = KVCache()
        gqa(x[:, :5], is_causal=True, cache=forgetful)
        forgetful.offset = -5  # a cache that forgets its offset: the new token is rotated as position 0
        wrong = gqa(x[:, 5:], is_causal=True, cache=forgetful)
    assert torch.allclose(right, full[:, 5:], atol=1e-5)
    assert not torch.allclose(wrong, full[:, 5:], atol=1e-3)


def test_from_mha_copies_the_weights():
    from course_lib.attention import MultiHeadAttention

    mha = MultiHeadAttention(16, 2).eval()
    x = torch.randn(1, 5, 16)
    with torch.no_grad():
        assert torch.allclose(GroupedQueryAttention.from_mha(mha)(x), mha(x, x, x)[0], atol=1e-6)
    with pytest.raises(ValueError, match="kdim = vdim = d_model"):
        GroupedQueryAttention.from_mha(MultiHeadAttention(16, 2, kdim=8))


def test_len_and_reset_and_nbytes():
    cache = KVCache()
    assert len(cache) == 0 and cache.nbytes() == 0
    gqa = GroupedQueryAttention(8, 2, 1)
    gqa(torch.randn(3, 4, 8), is_causal=True, cache=cache)
    assert len(cache) == 4 and cache.nbytes() == kv_cache_bytes(num_layers=1, num_kv_heads=1, head_dim=4, tokens=4,
                                                                 batch=3)
    cache.reset()
    assert len(cache) == 0 and cache.seen == 0


def test_gqa_bad_input():
    with pytest.raises(ValueError, match="num_heads=4 is not divisible by num_kv_heads=3"):
        GroupedQueryAttention(16, 4, 3)
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=4"):
        GroupedQueryAttention(10, 4, 2)
    with pytest.raises(ValueError, match="even head_dim"):
        GroupedQueryAttention(12, 4, 2, rotary=True)
    with pytest.raises(TypeError):
        GroupedQueryAttention(16, 4, 2, True)  # flags are keyword-only
    gqa = GroupedQueryAttention(16, 4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 16\), got \(2, 3, 8\)"):
        gqa(torch.randn(2, 3, 8))
    with pytest.raises(TypeError):
        gqa(torch.randn(2, 3, 16), None)  # mask is keyword-only
    with pytest.raises(TypeError, match="mask must be a boolean tensor"):
        gqa(torch.randn(2, 3, 16), mask=torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast"):
        gqa(torch.randn(2, 3, 16), mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        gqa(torch.randn(2, 3, 16), cache=[])
    cache = KVCache()
    gqa(torch.randn(2, 3, 16), is_causal=True, cache=cache)
    with pytest.raises(ValueError, match=r"x has batch 1 but the cache holds keys of shape \(2, 2, 3, 4\)"):
        gqa(torch.randn(1, 1, 16), is_causal=True, cache=cache)
    with pytest.raises(ValueError, match="is_causal=True"):
        GroupedQueryAttention(16, 4, 2, window=2)(torch.randn(1, 3, 16))


def test_fully_masked_rows_give_zeros():
    gqa = GroupedQueryAttention(8, 2, 1, bias=False)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    with torch.no_grad():
        out, weights = gqa.attend(torch.randn(1, 3, 8), mask=mask, need_weights=True)
    assert not torch.isnan(out).any() and torch.all(weights[:, :, 1] == 0)


# ---- the tiny decoder and the corpus -------------------------------------------------------------
@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "alibi", "none"])
def test_generate_with_and_without_cache_gives_the_same_tokens(positions):
    torch.manual_seed(5)
    model = TinyDecoder(20, d_model=16, num_layers=2, num_heads=4, num_kv_heads=2, positions=positions,
                        max_len=32).eval()
    prompt = torch.randint(0, 20, (3, 5))
    with_cache = model.generate(prompt, 12, use_cache=True)
    assert with_cache.shape == (3, 17) and torch.equal(with_cache[:, :5], prompt)
    assert torch.equal(with_cache, model.generate(prompt, 12, use_cache=False))


def test_decoder_logits_weights_and_cache_size():
    model = TinyDecoder(10, d_model=16, num_layers=3, num_heads=4, num_kv_heads=1, positions="rope", window=4)
    tokens = torch.randint(0, 10, (2, 7))
    logits, weights = model(tokens, need_weights=True)
    assert logits.shape == (2, 7, 10) and len(weights) == 3 and weights[0].shape == (2, 4, 7, 7)
    assert torch.all(weights[0][..., ~sliding_window_mask(7, window=4)] == 0)
    caches = model.new_cache()
    model(tokens, cache=caches)
    assert sum(c.nbytes() for c in caches) == kv_cache_bytes(num_layers=3, num_kv_heads=1, head_dim=4, tokens=4,
                                                             batch=2)


def test_decoder_bad_input():
    with pytest.raises(ValueError, match="positions must be one of"):
        TinyDecoder(10, positions="absolute")
    model = TinyDecoder(10, d_model=16, num_heads=2, positions="learned", max_len=8)
    with pytest.raises(ValueError, match="exceed max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must be \(B, T\) integer ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="one KVCache per layer"):
        model(torch.zeros(1, 4, dtype=torch.long), cache=[KVCache()])


def test_kv_cache_bytes_formula():
    # Llama-2-7B-shaped attention: 32 layers, 32 kv heads of 128, fp16: 0.5 MiB per token
    assert kv_cache_bytes(num_layers=32, num_kv_heads=32, head_dim=128, tokens=1, bytes_per_value=2) == 2**19
    assert kv_cache_bytes(num_layers=2, num_kv_heads=4, head_dim=16, tokens=10, batch=3) == 2 * 2 * 4 * 16 * 10 * 3 * 4


def test_counting_corpus():
    corpus = CountingCorpus()
    assert corpus.vocab_size == 33 and "," in corpus.itos and "thousand" in corpus.itos
    batch = corpus.batch(4, 30, seed=0)
    assert batch.shape == (4, 30) and torch.equal(batch, corpus.batch(4, 30, seed=0))
    assert not torch.equal(batch, corpus.batch(4, 30, seed=1))
    # the text counts: the words between two commas are consecutive numbers
    text = " ".join(corpus.decode(corpus.batch(1, 80, seed=3)[0]))
    numbers = [chunk.strip() for chunk in text.split(",")[1:-1]]
    expected = " ".join(number_to_tokens(_parse(numbers[0]) + 1, "en"))
    assert numbers[1] == expected
    assert corpus.decode(corpus.encode(["one", ","])) == ["one", ","]
    with pytest.raises(ValueError, match="max_number"):
        CountingCorpus(max_number=10**7)


def _parse(words: str) -> int:
    """Inverse of number_to_tokens for the numbers below 10000, by search (test helper)."""
    for n in range(10_000):
        if " ".join(number_to_tokens(n, "en")) == words:
            return n
    raise AssertionError(words)


@SETTINGS
@given(kv=st.sampled_from([1, 2, 4]), seed=st.integers(0, 50))
def test_without_positions_self_attention_is_permutation_equivariant(kv, seed):
    torch.manual_seed(seed)
    plain = GroupedQueryAttention(16, 4, kv).eval()
    rotary = GroupedQueryAttention(16, 4, kv, rotary=True).eval()
    rotary.load_state_dict(plain.state_dict())
    x = torch.randn(1, 6, 16)
    perm = torch.randperm(6)
    if torch.equal(perm, torch.arange(6)):
        perm = perm.roll(1)  # a permutation that moves something
    with torch.no_grad():
        assert torch.allclose(plain(x[:, perm]), plain(x)[:, perm], atol=1e-5)
        assert not torch.allclose(rotary(x[:, perm]), rotary(x)[:, perm], atol=1e-4)  # RoPE sees the order


@SETTINGS
@given(window=st.integers(1, 8), alibi=st.booleans(), seed=st.integers(0, 50))
def test_weights_rows_sum_to_one_and_outside_the_window_are_zero(window, alibi, seed):
    torch.manual_seed(seed)
    gqa = GroupedQueryAttention(16, 4, 2, alibi=alibi, window=window).eval()
    with torch.no_grad():
        _, weights = gqa.attend(torch.randn(2, 9, 16), is_causal=True, need_weights=True)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 9), atol=1e-5)
    assert torch.all(weights[..., ~sliding_window_mask(9, window=window)] == 0)
