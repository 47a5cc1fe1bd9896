"""Tests of course_lib.vision: shapes at unseen sizes, parameter counts, gate and residual invariants,
attention weights, equivariances, the paper-vs-official differences, and one named test per known bug
(docs/design/vision_modules.md, "Bugs that users of public implementations keep hitting")."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib.attention import MultiHeadAttention
from course_lib.vision import (
    ATTENTION_NAMES,
    CBAM,
    ECA,
    ChannelGate,
    ChannelSelfAttention,
    EncoderBlock,
    NonLocalBlock,
    PatchEmbedding,
    PolarizedSelfAttention,
    PositionAttention,
    SEBlock,
    SelfAttention2d,
    SpatialGate,
    ViT,
    YoloSAM,
    create_attention,
    eca_kernel_size,
    has_spatial_map,
    spatial_attention_map,
)

UNSEEN_SIZES = [(2, 7, 5), (1, 9, 12)]  # (B, H, W): non-square, odd, never given at construction
SIGMOID_1 = 1 / (1 + math.exp(-1))  # 0.7310...


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def image(batch: int, channels: int, height: int, width: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, channels, height, width, generator=g)


# --------------------------------------------------------------------------------------------------
# Parameter counts: the formulas of the sheet (official biases)
# --------------------------------------------------------------------------------------------------
def se_count(c: int, r: int) -> int:
    h = c // r
    return c * h + h + h * c + c  # = 2C²/r + C/r + C


def psa_count(c: int, layout: str, variant: str) -> int:
    h = c // 2
    if variant == "paper":
        return 4 * c * h + 3 * c  # = 2C² + 3C
    if layout == "parallel":
        return 4 * c * h + c  # = 2C² + C
    b = h // 4  # official PSA_s bottleneck C/2 -> C/8 (+bias) -> LN -> ReLU -> C (+bias)
    return 3 * c * h + c + (h * b + b) + 2 * b + (b * c + c)


# (id, factory, count, kind) with kind in {"gate", "gate2" (PSA parallel, gate in (0, 2)), "residual"}
def module_cases(c: int, r: int) -> list[tuple[str, Callable[[], nn.Module], int, str]]:
    return [
        ("se", lambda: SEBlock(c, r), se_count(c, r), "gate"),
        ("channel_gate", lambda: ChannelGate(c, r), se_count(c, r), "gate"),
        ("spatial_gate", lambda: SpatialGate(), 7 * 7 * 2 + 2, "gate"),
        ("cbam", lambda: CBAM(c, r), se_count(c, r) + 98 + 2, "gate"),
        ("yolo_sam", lambda: YoloSAM(c), c * c + 2 * c, "gate"),
        ("eca", lambda: ECA(c), eca_kernel_size(c), "gate"),
        ("psa_paper_parallel", lambda: PolarizedSelfAttention(c, layout="parallel", variant="paper"),
         psa_count(c, "parallel", "paper"), "gate2"),
        ("psa_paper_sequential", lambda: PolarizedSelfAttention(c, layout="sequential", variant="paper"),
         psa_count(c, "sequential", "paper"), "gate"),
        ("psa_official_parallel", lambda: PolarizedSelfAttention(c, layout="parallel", variant="official"),
         psa_count(c, "parallel", "official"), "gate2"),
        ("psa_official_sequential", lambda: PolarizedSelfAttention(c, layout="sequential", variant="official"),
         psa_count(c, "sequential", "official"), "gate"),
        ("nonlocal", lambda: NonLocalBlock(c), 2 * c * c + 9 * c // 2, "residual"),
        ("nonlocal_subsample", lambda: NonLocalBlock(c, sub_sample=True), 2 * c * c + 9 * c // 2, "residual"),
        ("pam", lambda: PositionAttention(c, r), 2 * (c * (c // r) + c // r) + c * c + c + 1, "residual"),
        ("sagan", lambda: SelfAttention2d(c, r), 4 * c * (c // r) + 1, "residual"),
        ("sagan_port", lambda: SelfAttention2d(c, r, variant="port"), 2 * (c * (c // r) + c // r) + c * c + c + 1,
         "residual"),
        ("cam_paper", lambda: ChannelSelfAttention(c, variant="paper"), 1, "residual"),
        ("cam_official", lambda: ChannelSelfAttention(c, variant="official"), 1, "residual"),
    ]


ALL_IDS = [case[0] for case in module_cases(16, 4)]
GATE_IDS = [case[0] for case in module_cases(16, 4) if case[3] != "residual"]
RESIDUAL_IDS = [case[0] for case in module_cases(16, 4) if case[3] == "residual"]


def build(case_id: str, c: int = 16, r: int = 4, seed: int = 0) -> tuple[nn.Module, int, str]:
    torch.manual_seed(seed)
    for name, factory, count, kind in module_cases(c, r):
        if name == case_id:
            return factory(), count, kind
    raise KeyError(case_id)


@pytest.mark.parametrize("c,r", [(16, 4), (32, 8), (64, 16), (48, 4)])
@pytest.mark.parametrize("case_id", ALL_IDS)
def test_parameter_count_matches_sheet(case_id, c, r):
    module, expected, _ = build(case_id, c, r)
    assert n_params(module) == expected


def test_sheet_headline_counts():
    c, r = 64, 16
    assert n_params(SEBlock(c, r)) == 2 * c * c // r + c // r + c == 580
    assert n_params(CBAM(c, r)) == 2 * c * c // r + c // r + c + 98 + 2 == 680
    assert n_params(YoloSAM(c)) == c * c + 2 * c
    assert eca_kernel_size(64) == 3 and n_params(ECA(64)) == 3
    assert n_params(NonLocalBlock(c)) == 2 * c * c + 4.5 * c
    assert n_params(PositionAttention(c)) == 1.25 * c * c + 1.25 * c + 1
    assert n_params(SelfAttention2d(c)) == c * c / 2 + 1  # the paper: f, g, h C -> C/8 and W_v C/8 -> C
    assert n_params(SelfAttention2d(c, variant="port")) == 1.25 * c * c + 1.25 * c + 1  # = PAM
    assert n_params(ChannelSelfAttention(c)) == 1
    assert n_params(PolarizedSelfAttention(c)) == 2 * c * c + 3 * c
    assert n_params(PolarizedSelfAttention(c, layout="sequential")) == 2 * c * c + 3 * c
    assert n_params(PolarizedSelfAttention(c, variant="official")) == 2 * c * c + c


@pytest.mark.parametrize("channels,k", [(16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_kernel_size_rule(channels, k):
    # ECA-Net Eq. 12, k = |log2(C)/2 + 1/2|_odd, as the official code rounds it: int(.) then +1 if even
    assert eca_kernel_size(channels) == k
    assert ECA(channels).kernel_size == k


def test_spectral_norm_keeps_sagan_count():
    assert n_params(SelfAttention2d(32, spectral_norm=True)) == n_params(SelfAttention2d(32))
    assert n_params(SelfAttention2d(32, variant="port", spectral_norm=True)) == n_params(
        SelfAttention2d(32, variant="port"))
    x = image(2, 32, 7, 5)
    assert SelfAttention2d(32, variant="port", spectral_norm=True)(x).shape == x.shape
    module = SelfAttention2d(32, spectral_norm=True)
    x = image(2, 32, 7, 5)
    assert module(x).shape == x.shape


# --------------------------------------------------------------------------------------------------
# Shapes at sizes never seen, and the same instance at two sizes
# --------------------------------------------------------------------------------------------------
def runs_at_unseen_sizes(module: nn.Module, channels: int) -> bool:
    for b, h, w in UNSEEN_SIZES:
        x = image(b, channels, h, w)
        y = module(x)
        if y.shape != x.shape:
            return False
    return True


@pytest.mark.parametrize("case_id", ALL_IDS)
def test_shape_kept_at_unseen_sizes(case_id):
    module, _, _ = build(case_id)
    assert runs_at_unseen_sizes(module, 16)
    module.eval()
    assert runs_at_unseen_sizes(module, 16)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_create_attention_builds_every_name(name):
    module = create_attention(name, 32)
    x = image(2, 32, 7, 5)
    assert module(x).shape == x.shape


def test_create_attention_forwards_kwargs_and_normalises_name():
    assert create_attention("CBAM", 32, reduction=8).channel.reduction == 8
    assert create_attention("yolo-sam", 8).channels == 8
    psa = create_attention("psa", 32, layout="sequential", variant="official")
    assert (psa.layout, psa.variant) == ("sequential", "official")


def test_create_attention_unknown_name_lists_names():
    with pytest.raises(ValueError, match="unknown attention module 'transformer'; valid names: se, cbam") as info:
        create_attention("transformer", 16)
    for name in ATTENTION_NAMES:
        assert name in str(info.value)
    with pytest.raises(TypeError, match="name must be a str"):
        create_attention(None, 16)


# --------------------------------------------------------------------------------------------------
# Gates: y = x * gate(x), gate in (0, 1)
# --------------------------------------------------------------------------------------------------
def gate_invariants_hold(y: torch.Tensor, x: torch.Tensor, bound: float = 1.0) -> bool:
    """|y| <= bound*|x| (strict when bound > 1) and sign(y) == sign(x) wherever x != 0."""
    size_ok = bool((y.abs() <= x.abs()).all()) if bound == 1.0 else bool((y.abs() < bound * x.abs()).all())
    nonzero = x != 0
    sign_ok = bool((torch.sign(y[nonzero]) == torch.sign(x[nonzero])).all())
    return size_ok and sign_ok


@pytest.mark.parametrize("size", UNSEEN_SIZES)
@pytest.mark.parametrize("case_id", GATE_IDS)
def test_gate_invariants(case_id, size):
    module, _, kind = build(case_id)
    b, h, w = size
    x = image(b, 16, h, w, seed=1)
    g = module.gate(x)
    y = module(x)
    assert torch.equal(y, x * g)  # forward is literally x * gate(x)
    upper = 2.0 if kind == "gate2" else 1.0
    assert bool((g > 0).all()) and bool((g < upper).all())
    assert gate_invariants_hold(y, x, bound=upper)


def test_gate_shapes():
    x = image(2, 16, 7, 5)
    assert SEBlock(16, 4).gate(x).shape == (2, 16, 1, 1)
    assert ChannelGate(16, 4).gate(x).shape == (2, 16, 1, 1)
    assert ECA(16).gate(x).shape == (2, 16, 1, 1)
    assert SpatialGate().gate(x).shape == (2, 1, 7, 5)
    assert CBAM(16, 4).gate(x).shape == (2, 16, 7, 5)
    assert YoloSAM(16).gate(x).shape == (2, 16, 7, 5)
    psa = PolarizedSelfAttention(16)
    assert psa.channel_gate(x).shape == (2, 16, 1, 1)
    assert psa.spatial_gate(x).shape == (2, 1, 7, 5)


@settings(max_examples=15, deadline=None)
@given(channels=st.sampled_from([4, 8, 16]), height=st.integers(1, 9), width=st.integers(1, 9),
       name=st.sampled_from(["se", "cbam", "yolo_sam", "eca", "psa"]), seed=st.integers(0, 10_000))
def test_gate_invariants_property(channels, height, width, name, seed):
    torch.manual_seed(seed)
    kw = {"reduction": 4} if name in ("se", "cbam") else {}
    module = create_attention(name, channels, **kw).eval()
    x = image(2, channels, height, width, seed=seed)
    y = module(x)
    assert torch.equal(y, x * module.gate(x))
    assert gate_invariants_hold(y, x, bound=2.0 if name == "psa" else 1.0)


def test_se_matches_formula():
    torch.manual_seed(0)
    module = SEBlock(16, 4)
    x = image(2, 16, 7, 5)
    w1, b1 = module.fc1.weight[:, :, 0, 0], module.fc1.bias
    w2, b2 = module.fc2.weight[:, :, 0, 0], module.fc2.bias
    s = torch.sigmoid(F.relu(x.mean((2, 3)) @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(module(x), x * s[:, :, None, None])


def test_cbam_matches_formula_channel_then_spatial():
    torch.manual_seed(0)
    module = CBAM(16, 4).eval()
    x = image(2, 16, 7, 5)
    mc = torch.sigmoid(module.channel.mlp(x.mean((2, 3))) + module.channel.mlp(x.amax((2, 3))))[:, :, None, None]
    x1 = x * mc
    pooled = torch.cat([x1.amax(1, keepdim=True), x1.mean(1, keepdim=True)], 1)  # max first, as the code
    ms = torch.sigmoid(module.spatial.bn(module.spatial.conv(pooled)))
    torch.testing.assert_close(module(x), x1 * ms)


def test_eca_matches_formula():
    torch.manual_seed(0)
    module = ECA(64)
    x = image(2, 64, 5, 3)
    k = module.conv.weight.flatten()  # (3,)
    p = F.pad(x.mean((2, 3)), (1, 1))  # (B, C + 2): zero padding at both ends of the channel axis
    z = k[0] * p[:, :-2] + k[1] * p[:, 1:-1] + k[2] * p[:, 2:]
    torch.testing.assert_close(module.gate(x)[:, :, 0, 0], torch.sigmoid(z))


# --------------------------------------------------------------------------------------------------
# Polarized self-attention: paper vs official code
# --------------------------------------------------------------------------------------------------
def psa_reference(m: PolarizedSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations (or the official forward), written out with einsum from the module's weights."""
    b, c, h, w = x.shape
    def conv(layer: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:  # 1x1 conv, no bias
        return torch.einsum("oc,bchw->bohw", layer.weight[:, :, 0, 0], t)


    def channel(t):
        v = conv(m.ch_value, t).flatten(2)  # (B, C/2, N)
        q = torch.softmax(conv(m.ch_query, t).flatten(2), dim=-1)  # (B, 1, N)
        z = torch.einsum("bin,bn->bi", v, q[:, 0])  # (B, C/2)
        if m.variant == "official" and m.layout == "sequential":
            up = m.ch_up(z[:, :, None, None]).view(b, c)
        else:
            up = z @ m.ch_up.weight[:, :, 0, 0].T  # (B, C)
        if m.variant == "paper":
            up = F.layer_norm(up, (c,), m.ch_norm.weight, m.ch_norm.bias)
        return torch.sigmoid(up)[:, :, None, None]

    def spatial(t):
        q = conv(m.sp_query, t).mean((2, 3))  # (B, C/2)
        v = conv(m.sp_value, t).flatten(2)  # (B, C/2, N)
        if m.variant == "paper":
            s = torch.einsum("bi,bin->bn", torch.softmax(q, -1), v)
        elif m.layout == "parallel":
            s = torch.softmax(torch.einsum("bi,bin->bn", q, v), -1)
        else:
            s = torch.einsum("bi,bin->bn", q, torch.softmax(v, -1))
        return torch.sigmoid(s).view(b, 1, h, w)

    if m.layout == "parallel":
        return x * channel(x) + x * spatial(x)
    y1 = x * channel(x)
    return y1 * spatial(y1)


@pytest.mark.parametrize("layout", ["parallel", "sequential"])
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_psa_matches_reference(layout, variant):
    torch.manual_seed(0)
    module = PolarizedSelfAttention(16, layout=layout, variant=variant)
    x = image(2, 16, 7, 5)
    torch.testing.assert_close(module(x), psa_reference(module, x), rtol=1e-5, atol=1e-6)


def test_psa_official_parallel_spatial_gate_is_stuck_between_half_and_sigmoid_one():
    for seed in range(3):
        torch.manual_seed(seed)
        # float64: float32 rounds 0.5 + tiny to 0.5
        module = PolarizedSelfAttention(16, layout="parallel", variant="official").double()
        x = image(2, 16, 9, 12, seed=seed, scale=2.0).double()
        gate = module.spatial_gate(x)
        assert bool((gate > 0.5).all()) and bool((gate < SIGMOID_1).all())


def test_psa_paper_spatial_gate_is_not_so_restricted():
    torch.manual_seed(0)
    module = PolarizedSelfAttention(16, layout="parallel", variant="paper")
    gate = module.spatial_gate(image(2, 16, 9, 12, scale=5.0))
    assert bool((gate < 0.5).any()) and bool((gate > SIGMOID_1).any())


def test_psa_layouts_differ_and_validate():
    torch.manual_seed(0)
    par = PolarizedSelfAttention(16, layout="parallel")
    torch.manual_seed(0)
    seq = PolarizedSelfAttention(16, layout="sequential")
    x = image(2, 16, 7, 5)
    assert not torch.allclose(par(x), seq(x))
    with pytest.raises(ValueError, match="layout must be one of"):
        PolarizedSelfAttention(16, layout="series")
    with pytest.raises(ValueError, match="variant must be one of"):
        PolarizedSelfAttention(16, variant="v2")
    with pytest.raises(ValueError, match=r"channels // 2 must be >= 1.*channels=1"):
        PolarizedSelfAttention(1)
    with pytest.raises(ValueError, match="official sequential layout needs.*channels=4"):
        PolarizedSelfAttention(4, layout="sequential", variant="official")


# --------------------------------------------------------------------------------------------------
# Residual self-attention: identity at init, only gamma learns first, rows sum to 1, equivariance
# --------------------------------------------------------------------------------------------------
def gamma_names(module: nn.Module) -> set[str]:
    """The parameters that scale the attention branch: gamma, or the last BN's scale and shift (non-local)."""
    return {"bn.weight", "bn.bias"} if isinstance(module, NonLocalBlock) else {"gamma"}


def is_identity(module: nn.Module, x: torch.Tensor) -> bool:
    return torch.equal(module(x), x)


@pytest.mark.parametrize("size", UNSEEN_SIZES)
@pytest.mark.parametrize("case_id", RESIDUAL_IDS)
def test_residual_is_identity_at_init(case_id, size):
    module, _, _ = build(case_id)
    b, h, w = size
    x = image(b, 16, h, w)
    assert is_identity(module, x)
    assert is_identity(module.eval(), x)


def only_gamma_gets_gradient(module: nn.Module, x: torch.Tensor) -> bool:
    module.zero_grad(set_to_none=True)
    y = module(x)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(7))).sum().backward()
    allowed = gamma_names(module)
    for name, p in module.named_parameters():
        nonzero = p.grad is not None and bool((p.grad != 0).any())
        if (name in allowed) != nonzero:
            return False
    return True


@pytest.mark.parametrize("case_id", RESIDUAL_IDS)
def test_first_backward_reaches_only_gamma(case_id):
    module, _, _ = build(case_id)
    assert only_gamma_gets_gradient(module, image(2, 16, 7, 5))


@pytest.mark.parametrize("case_id", RESIDUAL_IDS)
def test_attention_rows_sum_to_one(case_id):
    module, _, _ = build(case_id)
    x = image(2, 16, 7, 5)
    weights = module.attention(x)
    y, returned = module(x, need_weights=True)
    assert torch.equal(weights, returned) and torch.equal(y, module(x))
    assert bool((weights >= 0).all())
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    n = 7 * 5
    expected = {"cam_paper": (2, 16, 16), "cam_official": (2, 16, 16), "nonlocal_subsample": (2, n, 4 * 3)}
    assert weights.shape == expected.get(case_id, (2, n, n))


def permute_pixels(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Shuffle the H*W positions of every channel the same way; the image keeps its shape."""
    b, c, h, w = x.shape
    return x.flatten(2)[:, :, perm].view(b, c, h, w)


def make_nontrivial(module: nn.Module) -> nn.Module:
    """Give the attention branch a nonzero weight, so equivariance tests more than the identity."""
    with torch.no_grad():
        if isinstance(module, NonLocalBlock):
            module.bn.weight.normal_()
            module.bn.bias.normal_()
        else:
            module.get_parameter("gamma").fill_(0.7)
    return module.double().eval()


@pytest.mark.parametrize("case_id", ["nonlocal", "pam", "sagan", "sagan_port"])
def test_pixel_attention_is_permutation_equivariant(case_id):
    module = make_nontrivial(build(case_id)[0])
    x = image(2, 16, 7, 5).double()
    perm = torch.randperm(35, generator=torch.Generator().manual_seed(3))
    y = module(x)
    assert not torch.allclose(y, x)
    torch.testing.assert_close(module(permute_pixels(x, perm)), permute_pixels(y, perm))


@pytest.mark.parametrize("case_id", ["cam_paper", "cam_official"])
def test_channel_attention_is_channel_permutation_equivariant(case_id):
    module = make_nontrivial(build(case_id)[0])
    x = image(2, 16, 7, 5).double()
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    y = module(x)
    assert not torch.allclose(y, x)
    torch.testing.assert_close(module(x[:, perm]), y[:, perm])


def test_pam_matches_formula():
    torch.manual_seed(0)
    module = make_nontrivial(PositionAttention(16, 4))
    x = image(2, 16, 7, 5).double()
    q, k, v = (layer(x).flatten(2) for layer in (module.query, module.key, module.value))  # (B, ., N)
    s = torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)  # S[i, j]: pixel i attends to pixel j
    out = torch.einsum("bcj,bij->bci", v, s).view_as(x)
    torch.testing.assert_close(module(x), 0.7 * out + x)


def test_nonlocal_matches_formula_and_scale():
    torch.manual_seed(0)
    module = make_nontrivial(NonLocalBlock(16))
    x = image(2, 16, 7, 5).double()
    t, p, g = (layer(x).flatten(2) for layer in (module.theta, module.phi, module.g))  # (B, 8, N)
    a = torch.softmax(torch.einsum("bci,bcj->bij", t, p) / math.sqrt(8), dim=-1)
    y = torch.einsum("bij,bcj->bci", a, g).view(2, 8, 7, 5)
    torch.testing.assert_close(module(x), x + module.bn(module.out(y)))
    module.scale = False
    torch.testing.assert_close(module.attention(x), torch.softmax(torch.einsum("bci,bcj->bij", t, p), dim=-1))


def test_cam_variants_paper_and_official():
    torch.manual_seed(0)
    x = image(2, 8, 5, 3).double() / 4
    a = x.flatten(2)
    energy = a @ a.transpose(1, 2)
    paper = ChannelSelfAttention(8, variant="paper").double()
    official = ChannelSelfAttention(8, variant="official").double()
    torch.testing.assert_close(paper.attention(x), torch.softmax(energy, -1))
    # max(E) - E only shifts each row, so the official weights are softmax(-E): preference reversed
    torch.testing.assert_close(official.attention(x), torch.softmax(-energy, -1))
    most_similar = energy.argmax(-1)
    assert torch.equal(paper.attention(x).argmax(-1), most_similar)
    assert not torch.equal(official.attention(x).argmax(-1), most_similar)
    with pytest.raises(ValueError, match="variant must be one of"):
        ChannelSelfAttention(8, variant="v2")


# --------------------------------------------------------------------------------------------------
# Spatial maps
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,shape", [("cbam", (2, 7, 5)), ("spatial_gate", (2, 7, 5)), ("yolo_sam", (2, 7, 5)),
                                        ("psa", (2, 7, 5)), ("nonlocal", (2, 7, 5)), ("pam", (2, 7, 5)),
                                        ("sagan", (2, 7, 5))])
def test_spatial_attention_map_shapes(name, shape):
    module = create_attention(name, 16, **({"reduction": 4} if name in ("cbam", "pam", "sagan") else {}))
    x = image(2, 16, 7, 5)
    assert has_spatial_map(module)
    amap = spatial_attention_map(module, x)
    assert amap.shape == shape and bool((amap >= 0).all())


def test_spatial_attention_map_values():
    torch.manual_seed(0)
    x = image(2, 16, 7, 5)
    cbam = CBAM(16, 4).eval()
    torch.testing.assert_close(spatial_attention_map(cbam, x), cbam.spatial.gate(x * cbam.channel.gate(x))[:, 0])
    sam = YoloSAM(16)
    torch.testing.assert_close(spatial_attention_map(sam, x), sam.gate(x).mean(1))
    seq = PolarizedSelfAttention(16, layout="sequential")
    torch.testing.assert_close(spatial_attention_map(seq, x), seq.spatial_gate(x * seq.channel_gate(x))[:, 0])
    pam = PositionAttention(16, 4)
    received = spatial_attention_map(pam, x)
    torch.testing.assert_close(received.sum((1, 2)), torch.ones(2))  # mean over queries of rows summing to 1
    pooled = spatial_attention_map(NonLocalBlock(16, sub_sample=True), x)
    assert pooled.shape == (2, 4, 3)


@pytest.mark.parametrize("module", [SEBlock(16, 4), ECA(16), ChannelGate(16, 4), ChannelSelfAttention(16)],
                         ids=["se", "eca", "channel_gate", "cam"])
def test_spatial_attention_map_refuses_channel_only_modules(module):
    assert not has_spatial_map(module)
    with pytest.raises(ValueError, match="has no spatial attention map"):
        spatial_attention_map(module, image(1, 16, 4, 4))


# --------------------------------------------------------------------------------------------------
# ViT
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("c,p,d", [(3, 16, 64), (1, 4, 16), (3, 8, 32), (2, 5, 12)])
def test_patch_embedding_count_and_tokens(c, p, d):
    torch.manual_seed(0)
    embed = PatchEmbedding(c, d, p)
    assert n_params(embed) == c * p * p * d + d
    if c == 3:
        assert n_params(embed) == 3 * p * p * d + d
    x = image(2, c, 2 * p, 3 * p)
    tokens = embed(x)
    assert tokens.shape == (2, 6, d)
    # token n is the patch at row n // 3, column n % 3 (row-major), projected linearly
    patches = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, 2, 3, P, P)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 6, c * p * p)
    expected = patches @ embed.proj.weight.reshape(d, -1).T + embed.proj.bias
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-5)


def test_patch_embedding_rejects_sizes_not_multiple_of_patch():
    with pytest.raises(ValueError, match=r"multiples of patch_size=4, got H=7, W=8"):
        PatchEmbedding(1, 8, 4)(image(1, 1, 7, 8))


@pytest.mark.parametrize("d,h", [(16, 2), (64, 4), (96, 8)])
def test_msa_count(d, h):
    block = EncoderBlock(d, h, 2 * d, activation="gelu")
    assert n_params(block.self_attn) == 4 * d * d + 4 * d


def test_vit_count_shapes_and_weights():
    torch.manual_seed(0)
    c, k, p, d, depth, heads, ratio = 1, 10, 8, 32, 2, 4, 2.0
    vit = ViT(in_channels=c, num_classes=k, image_size=40, patch_size=p, d_model=d, depth=depth, num_heads=heads,
              mlp_ratio=ratio)
    n, m = (40 // p) ** 2, int(d * ratio)
    block = 2 * d + (4 * d * d + 4 * d) + 2 * d + (d * m + m + m * d + d)
    expected = (c * p * p * d + d) + d + (1 + n) * d + depth * block + 2 * d + (d * k + k)
    assert n_params(vit) == expected
    logits, weights = vit(image(2, 1, 40, 40), need_weights=True)
    assert logits.shape == (2, 10) and len(weights) == depth
    for w in weights:
        assert w.shape == (2, heads, 1 + n, 1 + n)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, heads, 1 + n))
    assert vit(image(2, 1, 24, 48)).shape == (2, 10)  # other grids interpolate the positions
    assert spatial_attention_map(vit, image(2, 1, 24, 48)).shape == (2, 3, 6)
    with pytest.raises(ValueError, match="channels=1"):
        vit(image(2, 3, 40, 40))


def test_encoder_block_is_token_permutation_equivariant():
    torch.manual_seed(0)
    block = EncoderBlock(32, 4, 64, activation="gelu").double().eval()
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(block(x[:, perm])[0], block(x)[0][:, perm])


# --------------------------------------------------------------------------------------------------
# Errors name the argument and the shapes
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SEBlock, ChannelGate, CBAM, PositionAttention, SelfAttention2d])
def test_reduction_too_large_is_rejected(cls):
    with pytest.raises(ValueError, match=r"channels // reduction must be >= 1, got channels=8 and reduction=16"):
        cls(8, 16)


def test_input_errors_name_shapes():
    with pytest.raises(ValueError, match=r"SEBlock was built for channels=16, got x of shape \(1, 8, 4, 4\)"):
        SEBlock(16, 4)(image(1, 8, 4, 4))
    with pytest.raises(ValueError, match=r"expects x of shape \(B, C, H, W\), got \(16, 4, 4\)"):
        PositionAttention(16, 4)(torch.randn(16, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        ECA(16)(torch.ones(1, 16, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        CBAM(16, 4)([[1.0]])
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ECA(16, kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SpatialGate(kernel_size=6)
    with pytest.raises(ValueError, match="channels must be a positive int, got 0"):
        YoloSAM(0)
    with pytest.raises(TypeError, match="channels must be an int"):
        SEBlock(16.0)
    with pytest.raises(ValueError, match=r"channels // 2 must be >= 1, got channels=1"):
        NonLocalBlock(1)


# --------------------------------------------------------------------------------------------------
# Bugs from the sheet: each named test shows a deliberately broken version failing the check ours passes
# --------------------------------------------------------------------------------------------------
def test_bug_head_merge_without_transpose_is_caught():
    torch.manual_seed(0)
    block = EncoderBlock(32, 4, 64, activation="gelu").double().eval()
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))

    def equivariant(b: EncoderBlock) -> bool:
        return torch.allclose(b(x[:, perm])[0], b(x)[0][:, perm], atol=1e-10)

    assert equivariant(block)

    class ReshapeOnlyMHA(MultiHeadAttention):
        def merge_heads(self, t):  # (B, H, T, d) -> (B, T, H*d) with no transpose: tokens get mixed
            batch, _, length, _ = t.shape
            return t.reshape(batch, length, self.d_model)

    broken = ReshapeOnlyMHA(32, 4).double().eval()
    broken.load_state_dict(block.self_attn.state_dict())
    block.self_attn = broken
    assert not equivariant(block)


@pytest.mark.parametrize("case_id", GATE_IDS)
def test_bug_double_gating_is_caught(case_id):
    module, _, kind = build(case_id)
    x = image(2, 16, 7, 5, scale=3.0)
    bound = 2.0 if kind == "gate2" else 1.0
    assert gate_invariants_hold(module(x), x, bound)
    double_gated = module(x) * x  # att(x) * x where att already returns x * s: x² s
    assert not gate_invariants_hold(double_gated, x, bound)


def test_bug_cbam_missing_sigmoid_is_caught():
    torch.manual_seed(0)
    x = image(2, 16, 7, 5, scale=3.0)

    class NoSigmoid(ChannelGate):
        def gate(self, t):
            return (self.mlp(t.mean((2, 3))) + self.mlp(t.amax((2, 3))))[:, :, None, None]

    ours, broken = ChannelGate(16, 4), NoSigmoid(16, 4)
    broken.load_state_dict(ours.state_dict())
    for module, ok in ((ours, True), (broken, False)):
        g = module.gate(x)
        in_range = bool((g > 0).all() and (g < 1).all())
        assert (in_range and gate_invariants_hold(module(x), x)) is ok


def test_bug_cbam_average_branch_summed_twice_is_caught():
    torch.manual_seed(0)
    x = image(2, 16, 7, 5)
    # Same channel means, different channel maxima: raise one pixel above the max, lower another to compensate.
    x2 = x.clone()
    peak = x2.flatten(2).amax(-1)  # (B, C)
    x2[:, :, 0, 0] = peak + 2.0
    x2[:, :, 1, 1] -= (x2[:, :, 0, 0] - x[:, :, 0, 0])
    torch.testing.assert_close(x2.mean((2, 3)), x.mean((2, 3)))

    class AvgTwice(ChannelGate):
        def gate(self, t):
            avg = self.mlp(t.mean((2, 3)))
            return torch.sigmoid(avg + avg)[:, :, None, None]

    ours, broken = ChannelGate(16, 4), AvgTwice(16, 4)
    broken.load_state_dict(ours.state_dict())
    assert not torch.allclose(ours.gate(x), ours.gate(x2))  # ours sees the max branch
    assert torch.allclose(broken.gate(x), broken.gate(x2))  # the bug is blind to it


def test_bug_fixed_spatial_size_is_caught():
    class FixedSizePAM(PositionAttention):
        """Stores H and W at construction, like implementations that hard-code the feature size."""

        def __init__(self, channels, height, width):
            super().__init__(channels, 4)
            self.height, self.width = height, width

        def forward(self, x, return_attention=False):
            b, c = x.shape[:2]
            v = self.value(x).view(b, c, self.height * self.width)
            out = (v @ self._weights(x).transpose(1, 2)).view(b, c, self.height, self.width)
            return self.gamma * out + x

    def works_at_unseen_sizes(module):
        try:
            return runs_at_unseen_sizes(module, 16)
        except RuntimeError:
            return False

    assert not works_at_unseen_sizes(FixedSizePAM(16, 8, 8))
    for case_id in ALL_IDS:
        module, _, _ = build(case_id)
        assert works_at_unseen_sizes(module), case_id


@pytest.mark.parametrize("case_id", RESIDUAL_IDS)
def test_bug_gamma_initialised_to_one_is_caught(case_id):
    module, _, _ = build(case_id)
    x = image(2, 16, 7, 5)
    assert is_identity(module, x) and only_gamma_gets_gradient(module, x)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name in gamma_names(module) and name != "bn.bias":
                p.fill_(1.0)
    assert not is_identity(module, x)
    if n_params(module) > 1:  # CAM's only parameter is gamma itself
        assert not only_gamma_gets_gradient(module, x)


def modules_hidden_in_containers(module: nn.Module) -> list[str]:
    """Attributes that are plain lists/tuples/dicts holding modules: torch never registers those."""
    hidden = []
    for owner_name, owner in module.named_modules():
        for attr, value in vars(owner).items():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
            if attr.startswith("_"):
                continue
            if any(isinstance(item, nn.Module) for item in items):
                hidden.append(f"{owner_name or type(owner).__name__}.{attr}")
    return hidden


def all_registered(module: nn.Module, expected_count: int, channels: int = 16) -> bool:
    if modules_hidden_in_containers(module) or n_params(module) != expected_count:
        return False
    module = module.to(torch.float64)
    if any(p.dtype != torch.float64 for p in module.parameters()):
        return False
    try:
        return module(image(2, channels, 7, 5).double()).dtype == torch.float64
    except RuntimeError:  # a conv left behind in float32
        return False


@pytest.mark.parametrize("case_id", ALL_IDS)
def test_bug_convs_in_plain_list_is_caught(case_id):
    module, count, _ = build(case_id)
    assert all_registered(module, count)

    class ListSE(nn.Module):
        def __init__(self, channels, reduction):
            super().__init__()
            self.convs = [nn.Conv2d(channels, channels // reduction, 1), nn.Conv2d(channels // reduction, channels, 1)]

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * torch.sigmoid(self.convs[1](F.relu(self.convs[0](s))))

    assert not all_registered(ListSE(16, 4), se_count(16, 4))
    assert modules_hidden_in_containers(ListSE(16, 4)) == ["ListSE.convs"]


def test_vit_and_host_blocks_register_everything():
    vit = ViT(depth=2, d_model=16, num_heads=2)
    assert modules_hidden_in_containers(vit) == []
    vit = vit.double()
    assert all(p.dtype == torch.float64 for p in vit.parameters())
    assert vit(image(1, 1, 40, 40).double()).dtype == torch.float64


# --------------------------------------------------------------------------------------------------
# CUDA: same outputs as on the CPU (skipped without a GPU)
# --------------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("case_id", ALL_IDS)
def test_cuda_matches_cpu(case_id):
    module, _, _ = build(case_id)
    module = make_nontrivial(module).float() if case_id in RESIDUAL_IDS else module.eval()
    x = image(2, 16, 7, 5)
    expected = module(x)
    got = module.to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_vit_matches_cpu():
    torch.manual_seed(0)
    vit = ViT(depth=2, d_model=32, num_heads=4).eval()
    x = image(2, 1, 40, 40)
    expected = vit(x)
    torch.testing.assert_close(vit.to("cuda")(x.to("cuda")).cpu(), expected, rtol=1e-4, atol=1e-4)


def test_sagan_paper_matches_its_equations():
    """arXiv:1805.08318 Sec. 3: s_ij = f(x_i)^T g(x_j), beta_ji = softmax_i, o_j = W_v sum_i beta_ji h(x_i).

    g is computed at the output pixel j (the module's ``query``), f at the pixels read (its ``key``)."""
    torch.manual_seed(0)
    module = SelfAttention2d(16, 4).double()
    with torch.no_grad():
        module.gamma.fill_(0.3)
    x = image(2, 16, 5, 3).double()
    w = {name: conv.weight[:, :, 0, 0] for name, conv in
         (("f", module.key), ("g", module.query), ("h", module.value), ("v", module.out))}
    assert w["h"].shape == (4, 16) and w["v"].shape == (16, 4)
    flat = x.flatten(2)  # (B, C, N)
    f, g, h = (w[k] @ flat for k in "fgh")  # (B, C/r, N) each
    beta = torch.softmax(f.transpose(1, 2) @ g, dim=1)  # (B, N_i, N_j), softmax over i
    o = w["v"] @ (h @ beta)  # (B, C, N_j)
    expected = x + 0.3 * o.view_as(x)
    y, weights = module(x, need_weights=True)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(weights, beta.transpose(1, 2))


def test_sagan_port_is_pam():
    torch.manual_seed(0)
    port, pam = SelfAttention2d(16, 4, variant="port"), PositionAttention(16, 4)
    pam.load_state_dict(port.state_dict())
    with torch.no_grad():
        port.gamma.fill_(0.5)
        pam.gamma.fill_(0.5)
    x = image(2, 16, 4, 6)
    torch.testing.assert_close(port(x), pam(x))
    assert create_attention("sagan", 16, reduction=4).variant == "port"  # what the committed ablations used
    assert create_attention("sagan", 16, reduction=4, variant="paper").variant == "paper"
    with pytest.raises(ValueError, match=r"variant must be one of \('paper', 'port'\), got 'official'"):
        SelfAttention2d(16, variant="official")
