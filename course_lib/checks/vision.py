"""Checkers for lessons 12-13 (vision attention): the SE gate, CBAM's spatial gate, CBAM's parameter count,
the repaired attention-pooling classifier of the "find the bug" exercise, DANet's position attention and the
multi-head self-attention of a ViT (fused qkv, head merge).

Each checker runs the learner's code on several shapes (non-square images included) against
``course_lib.vision`` / ``course_lib.attention`` and names the bug classes of
``docs/design/vision_modules.md`` when the answer matches one: gating twice, a missing sigmoid,
heads merged without the transpose, gamma initialised to 1.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import MultiHeadAttention
from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_number
from course_lib.vision import CBAM, PositionAttention, SEBlock, SpatialGate

__all__ = ["check_se_forward", "check_spatial_gate", "check_cbam_parameter_count", "check_attention_pooling",
           "AttentionPoolReference", "check_position_attention", "check_vit_msa"]

_IMAGES = ((2, 32, 5, 7), (1, 16, 6, 6), (3, 64, 4, 9))  # (B, C, H, W), non-square sizes included


M = TypeVar("M", bound=nn.Module)


def _seeded(seed: int, build: Callable[[], M]) -> M:
    """Build a module from a fixed seed without touching the learner's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# --------------------------------------------------------------------------------------------------
# Lesson 12: the SE gate
# --------------------------------------------------------------------------------------------------
def check_se_forward(se_forward: Callable[[SEBlock, Tensor], Tensor]) -> None:
    """``se_forward(block, x)``: y = x * sigmoid(fc2(relu(fc1(GAP(x))))) from ``block.fc1`` and ``block.fc2``.

    Introduced in lesson 12.
    """
    require_callable(se_forward, "se_forward")
    for seed, (b, c, h, w) in enumerate(_IMAGES):
        block = _seeded(seed, partial(SEBlock, c, reduction=4)).eval()
        x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(100 + seed)) + 0.5
        case = f"x of shape {(b, c, h, w)}, reduction 4"
        got = call_learner(se_forward, block, x.clone(), name="se_forward")
        with torch.no_grad():
            s = block.gate(x)  # (B, C, 1, 1)
            avg = x.mean(dim=(2, 3), keepdim=True)
            raw = block.fc2(F.relu(block.fc1(avg)))
            mistakes = {
                "gated twice: y = x * (x * s). If a helper already returns x * s, do not multiply by x again":
                    x * (x * s),
                "the sigmoid is missing: the gate must lie in (0, 1), torch.sigmoid(fc2(...))": x * raw,
                "you returned the gate s (B, C, 1, 1), not the gated features x * s": s,
                "the squeeze uses max pooling; SE squeezes with the global *average* x.mean(dim=(2, 3))":
                    x * torch.sigmoid(block.fc2(F.relu(block.fc1(x.amax(dim=(2, 3), keepdim=True))))),
                "the ReLU between fc1 and fc2 is missing": x * torch.sigmoid(block.fc2(block.fc1(avg))),
                "the squeeze averages over the channels (dim=1); SE averages over the pixels (dim=(2, 3))":
                    x * torch.sigmoid(x.mean(dim=1, keepdim=True)),
            }
            compare(got, x * s, "se_forward", case, mistakes=mistakes)
    passed("se_forward")


# --------------------------------------------------------------------------------------------------
# Lesson 12: CBAM's spatial gate
# --------------------------------------------------------------------------------------------------
def _trained_like_spatial(seed: int) -> SpatialGate:
    gate = SpatialGate(7)
    running_mean, running_var = gate.bn.running_mean, gate.bn.running_var
    assert running_mean is not None and running_var is not None  # BatchNorm2d tracks statistics by default
    with torch.no_grad():
        running_mean.fill_(0.3)  # statistics as after training, so a skipped BN shows
        running_var.fill_(2.0)
        gate.bn.weight.fill_(1.5)
        gate.bn.bias.fill_(-0.2)
    return gate.eval()


def check_spatial_gate(spatial_gate: Callable[[SpatialGate, Tensor], Tensor]) -> None:
    """``spatial_gate(module, x)``: the (B, 1, H, W) map sigmoid(bn(conv([max_C x, mean_C x]))) of a SpatialGate.

    Introduced in lesson 12.
    """
    require_callable(spatial_gate, "spatial_gate")
    for seed, (b, c, h, w) in enumerate(_IMAGES):
        module = _seeded(10 + seed, partial(_trained_like_spatial, seed))
        x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(200 + seed))
        case = f"x of shape {(b, c, h, w)}"
        got = call_learner(spatial_gate, module, x.clone(), name="spatial_gate")
        with torch.no_grad():
            expected = module.gate(x)
            peak, mean = x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)

            def head(pooled: Tensor, bn: bool = True, sigmoid: bool = True, module: SpatialGate = module) -> Tensor:
                out = module.conv(pooled)
                out = module.bn(out) if bn else out
                return torch.sigmoid(out) if sigmoid else out

            mistakes = {
                "the sigmoid is missing: the gate must lie in (0, 1)": head(torch.cat([peak, mean], 1), sigmoid=False),
                "the two maps are in the wrong order: the conv expects [max over C, mean over C], max first":
                    head(torch.cat([mean, peak], 1)),
                "the mean map is used twice (or the max map is missing): cat [max, mean]":
                    head(torch.cat([mean, mean], 1)),
                "the max map is used twice: cat [max, mean]": head(torch.cat([peak, peak], 1)),
                "the BatchNorm after the conv is skipped: sigmoid(bn(conv(pooled)))":
                    head(torch.cat([peak, mean], 1), bn=False),
                "you returned the gated features x * gate; this function returns the gate (B, 1, H, W)": x * expected,
            }
        compare(got, expected, "spatial_gate", case, mistakes=mistakes)
    passed("spatial_gate")


# --------------------------------------------------------------------------------------------------
# Lesson 12: predict CBAM's parameter count
# --------------------------------------------------------------------------------------------------
CBAM_EXERCISE = {"channels": 32, "reduction": 8, "kernel_size": 7}


def check_cbam_parameter_count(cbam_params: object) -> None:
    """``cbam_params``: the learner's count of ``CBAM(32, reduction=8, kernel_size=7)``'s trainable parameters.

    The truth is counted on the module itself; typical slips (two MLPs, biases or BatchNorm forgotten, a
    one-channel conv) are named. Introduced in lesson 12.
    """
    c, r, k = CBAM_EXERCISE["channels"], CBAM_EXERCISE["reduction"], CBAM_EXERCISE["kernel_size"]
    truth = sum(p.numel() for p in CBAM(c, reduction=r, kernel_size=k).parameters() if p.requires_grad)
    hidden = c // r
    mlp = c * hidden + hidden + hidden * c + c  # Linear(C, C/r) + Linear(C/r, C), with biases
    conv, bn = 2 * k * k, 2
    slips = {
        "that counts two MLPs; CBAM's average and max branches share ONE MLP": 2 * mlp + conv + bn,
        "the two Linear layers have biases too (C/r + C of them)": 2 * c * hidden + conv + bn,
        "the spatial gate's BatchNorm has a scale and a shift (2 parameters)": mlp + conv,
        "the 7x7 conv reads 2 input channels (the max and the mean map): 2 * 7 * 7 weights": mlp + k * k + bn,
        "that is the channel gate alone (an SE-like MLP); add the spatial gate's conv and BatchNorm": mlp,
        "the spatial conv has no bias in CBAM (its BatchNorm shifts instead)": mlp + conv + 1 + bn,
    }
    mistakes = {hint: float(n) for hint, n in slips.items() if n != truth}
    check_number(
        cbam_params, "cbam_params", float(truth),
        StepHints("12-cbam-params", [
            "count the two halves apart: the channel gate (an MLP C -> C/r -> C) and the spatial gate (a k x k "
            "conv, then BatchNorm); C = 32, r = 8, k = 7",
            "channel gate: Linear(32, 4) has 32 * 4 weights + 4 biases, Linear(4, 32) has 4 * 32 + 32; the average "
            "and max branches share it, so count it once",
            "spatial gate: Conv2d(2, 1, 7, bias=False) has 2 * 7 * 7 weights, BatchNorm2d(1) a scale and a shift; "
            "add everything up",
        ]),
        why=f"channel gate 2C²/r + C/r + C = {mlp} (one shared MLP), spatial gate 2k² = {conv} conv weights + "
            f"{bn} BatchNorm parameters: {truth} in all, as count_parameters(CBAM({c}, reduction={r})) says",
        mistakes=mistakes,
    )


# --------------------------------------------------------------------------------------------------
# Lesson 12: find the bug in an attention-pooling classifier
# --------------------------------------------------------------------------------------------------
class AttentionPoolReference(nn.Module):
    """Attention pooling done right: a 1x1 conv scores each position, softmax over the H*W positions of each image.

    ``features`` (two 3x3 convs with ReLU), ``score = Conv2d(C, 1, 1)``, ``classifier = Linear(C, classes)``;
    ``forward(x, need_weights=False) -> logits`` or ``(logits, weights (B, H, W))``. Introduced in lesson 12.

    Args:
        in_channels: the image's channels.
        channels: C, the feature channels.
        num_classes: number of classes.
    """

    def __init__(self, in_channels: int = 1, channels: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.score = nn.Conv2d(channels, 1, kernel_size=1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor, need_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        logits, weights = _pool_variant(self, x)
        return (logits, weights) if need_weights else logits


def _pool_variant(m: AttentionPoolReference, x: Tensor, *, weighting: str = "softmax") -> tuple[Tensor, Tensor]:
    """(logits (B, classes), weights (B, H, W)) of the reference, or of a typical mistake (``weighting``)."""
    f = m.features(x)  # (B, C, H, W)
    b, _, h, w = f.shape
    scores = m.score(f).flatten(1)  # (B, N): one score per position
    if weighting == "softmax":
        weights = torch.softmax(scores, dim=1)  # over each image's positions
    elif weighting == "batch":
        weights = torch.softmax(scores, dim=0)  # over the images of the batch
    elif weighting == "sigmoid":
        weights = torch.sigmoid(scores)
    elif weighting == "raw":
        weights = scores
    else:  # "mean": the scores ignored
        weights = torch.full_like(scores, 1.0 / scores.shape[1])
    pooled = (f.flatten(2) * weights[:, None, :]).sum(dim=-1)  # (B, C)
    return m.classifier(pooled), weights.view(b, h, w)


def _logits(out: object, name: str) -> Tensor:
    if isinstance(out, tuple):
        out = out[0]
    if not isinstance(out, Tensor):
        raise CheckFailed(f"{name} should return the logits, a tensor (B, num_classes), got {type(out).__name__}")
    return out


def check_attention_pooling(model_class: Callable[..., nn.Module]) -> None:
    """``model_class(in_channels, channels, num_classes)``: the repaired attention-pooling classifier.

    Compared with ``AttentionPoolReference`` (weights copied) on several image sizes; tests first that the model
    runs on more than one image size, that an image's logits do not depend on the other images of the batch,
    and that the weights of ``forward(x, need_weights=True)`` sum to 1 over each image's positions.
    Introduced in lesson 12.
    """
    require_callable(model_class, "your class")
    hints = StepHints("12-attention-pooling", [
        "follow one image through forward and write each tensor's shape: which axis is the batch, which the "
        "positions, which the channels?",
        "the score of a position must come from that position's C channels (a 1x1 conv, or a Linear over C), and "
        "the softmax must run over each image's H*W positions, not over the images of the batch",
        "self.score = nn.Conv2d(channels, 1, kernel_size=1); scores = self.score(f).flatten(1) is (B, H*W); "
        "weights = torch.softmax(scores, dim=1); pooled = (f.flatten(2) * weights[:, None, :]).sum(-1)",
    ])
    for seed, (c, sizes) in enumerate(((8, ((4, 32, 32), (3, 24, 40))), (12, ((2, 16, 16), (5, 20, 28))))):
        mine = _seeded(seed, partial(call_learner, model_class, 1, c, 10, name="your class (constructor)"))
        if not isinstance(mine, nn.Module):
            raise CheckFailed(f"your class should build an nn.Module, got {type(mine).__name__}")
        ref = _seeded(seed, partial(AttentionPoolReference, 1, c, 10)).eval()
        try:
            mine.load_state_dict(ref.state_dict())
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise hints.fail(
                f"could not load the reference weights into your model ({type(exc).__name__}: {first[:160]}). "
                f"Keep features and classifier as they were and make score = nn.Conv2d(channels, 1, kernel_size=1): "
                f"a Linear over the H*W positions has a weight per position, so it fits only one image size") from None
        mine.eval()
        for b, h, w in sizes:
            case = f"channels={c}, images of shape {(b, 1, h, w)}"
            x = torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(500 + seed * 10 + h))
            with torch.no_grad():
                got = _logits(call_learner(mine, x.clone(), name=f"forward on {case}"), "forward")
                alone = _logits(call_learner(mine, x[:1].clone(), name=f"forward on one image ({h}x{w})"), "forward")
            if got.shape != (b, 10):
                raise hints.fail(f"forward on {case} should give logits of shape {(b, 10)}, got {tuple(got.shape)}")
            if not torch.allclose(got[:1], alone, atol=1e-5, rtol=1e-4):
                raise hints.fail(f"on {case}, the logits of image 0 change when the other images of the batch change: "
                                 f"the softmax (or a mean) runs over the batch axis. Each image must attend over "
                                 f"its own positions only")
            with torch.no_grad():
                out = call_learner(mine, x.clone(), need_weights=True, name="forward(x, need_weights=True)")
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Tensor)):
                raise CheckFailed("forward(x, need_weights=True) should return (logits, weights), weights (B, H, W)")
            weights = out[1]
            if tuple(weights.shape) not in ((b, h, w), (b, h * w)):
                raise CheckFailed(f"the weights on {case} should have shape {(b, h, w)}, got {tuple(weights.shape)}")
            sums = weights.reshape(b, -1).sum(dim=1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
                raise hints.fail(f"on {case} each image's weights should sum to 1 over its {h * w} positions, got sums "
                                 f"{[round(v, 3) for v in sums.tolist()[:3]]}: normalise with a softmax over the "
                                 f"positions (dim=1 of the (B, H*W) scores)")
            with torch.no_grad():
                mistakes = {
                    "the softmax runs over the batch axis (dim=0); it must run over the positions": "batch",
                    "the scores pass through a sigmoid: the weights do not sum to 1, use a softmax over positions":
                        "sigmoid",
                    "the raw scores weight the features: normalise them with a softmax over the positions": "raw",
                    "the scores are ignored (a plain average over the positions)": "mean",
                }
                wrong = {hint: _pool_variant(ref, x, weighting=kind)[0] for hint, kind in mistakes.items()}
                expected = _pool_variant(ref, x)[0]
            compare(got, expected, "logits", case, mistakes=wrong)
    passed("attention pooling classifier")


# --------------------------------------------------------------------------------------------------
# Lesson 13: DANet position attention
# --------------------------------------------------------------------------------------------------
def _pam_variant(ref: PositionAttention, x: Tensor, *, softmax_dim: int = -1, transpose: bool = True,
                 scale: float = 1.0, residual: bool = True) -> Tensor:
    b, c, h, w = x.shape
    q = ref.query(x).flatten(2).transpose(1, 2)  # (B, N, C')
    k = ref.key(x).flatten(2)  # (B, C', N)
    s = torch.softmax(q @ k * scale, dim=softmax_dim)  # (B, N, N)
    v = ref.value(x).flatten(2)  # (B, C, N)
    out = (v @ (s.transpose(1, 2) if transpose else s)).view(b, c, h, w)
    return ref.gamma * out + x if residual else ref.gamma * out


def check_position_attention(module_class: Callable[..., nn.Module]) -> None:
    """``module_class(channels, reduction=8)``: DANet PAM with convs ``query``, ``key``, ``value`` and ``gamma`` = 0.

    Checks gamma's initial value, that the module is the identity at init, then loads the weights of a
    ``course_lib.vision.PositionAttention`` (gamma set to a nonzero value) and compares outputs.
    Introduced in lesson 13.
    """
    require_callable(module_class, "PositionAttention class")
    for seed, (b, c, h, w) in enumerate(((2, 16, 5, 7), (1, 32, 4, 4), (2, 24, 3, 6))):
        case = f"channels={c}, x of shape {(b, c, h, w)}"
        mine = _seeded(seed, partial(call_learner, module_class, c, reduction=8, name="your class (constructor)"))
        if not isinstance(mine, nn.Module):
            raise CheckFailed(f"your class should build an nn.Module (subclass nn.Module and call super().__init__()), "
                              f"got {type(mine).__name__}")
        names = dict(mine.named_parameters())
        missing = [n for n in ("gamma", "query.weight", "key.weight", "value.weight") if n not in names]
        if missing:
            raise CheckFailed(f"the module has no parameter(s) {missing}: store the 1x1 convs as self.query, self.key, "
                              f"self.value and gamma as an nn.Parameter (a plain tensor or a Python list is not "
                              f"registered, so it is neither trained nor moved to the GPU)")
        gamma = names["gamma"].detach()
        if gamma.numel() != 1:
            raise CheckFailed(f"gamma should be one scalar parameter (shape (1,)), got shape {tuple(gamma.shape)}")
        if gamma.item() != 0.0:
            raise CheckFailed(f"gamma starts at {gamma.item():g}; initialise it to 0 (torch.zeros(1)) so that the "
                              f"module is the identity when inserted into a trained network")
        x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(300 + seed))
        got = call_learner(mine, x.clone(), name="forward")
        if isinstance(got, tuple):
            got = got[0]
        compare(got, x, "forward at init (gamma = 0)", case, mistakes={
            "at init the output should be x itself: y = gamma * out + x, the residual + x is missing":
                torch.zeros_like(x),
        })
        ref = _seeded(seed, partial(PositionAttention, c, reduction=8)).eval()
        with torch.no_grad():
            ref.gamma.fill_(0.7)
        try:
            mine.load_state_dict(ref.state_dict())
        except Exception as exc:
            raise CheckFailed(f"could not load PositionAttention's weights into your module ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]}); use query, key: Conv2d(C, C // reduction, 1) and "
                              f"value: Conv2d(C, C, 1), all with bias, and gamma of shape (1,)") from None
        mine.eval()
        got = call_learner(mine, x.clone(), name="forward")
        if isinstance(got, tuple):
            got = got[0]
        with torch.no_grad():
            expected = ref(x)
            mistakes = {
                "softmax over the wrong axis: row i of S = softmax(QᵀK) holds pixel i's weights over all "
                "positions, so normalise over the last axis (dim=-1)": _pam_variant(ref, x, softmax_dim=1),
                "the attention is applied without the transpose: out = V Sᵀ (V (B, C, N) @ S.transpose(1, 2))":
                    _pam_variant(ref, x, transpose=False),
                "the scores are scaled: DANet's PAM uses the plain dot product QᵀK, no 1/sqrt(d)":
                    _pam_variant(ref, x, scale=(c // 8) ** -0.5),
                "the residual + x is missing: y = gamma * out + x": _pam_variant(ref, x, residual=False),
            }
        compare(got, expected, "forward with gamma = 0.7", case, mistakes=mistakes)
    passed("PositionAttention")


# --------------------------------------------------------------------------------------------------
# Lesson 13: ViT multi-head self-attention with a fused qkv projection
# --------------------------------------------------------------------------------------------------
def _msa_variant(x: Tensor, qkv: nn.Linear, proj: nn.Linear, heads: int, *, transpose: bool = True,
                 scale: float | None = None, order: str = "3hd") -> Tensor:
    b, t, d = x.shape
    hd = d // heads
    if order == "3hd":
        parts = qkv(x).reshape(b, t, 3, heads, hd).permute(2, 0, 3, 1, 4)  # (3, B, H, T, d)
    else:  # the learner split qkv per head first: (B, T, H, 3, d)
        parts = qkv(x).reshape(b, t, heads, 3, hd).permute(3, 0, 2, 1, 4)
    q, k, v = parts[0], parts[1], parts[2]
    scale = hd ** -0.5 if scale is None else scale
    out = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v  # (B, H, T, d)
    out = out.transpose(1, 2).reshape(b, t, d) if transpose else out.reshape(b, t, d)
    return proj(out)


def check_vit_msa(msa_forward: Callable[[Tensor, nn.Linear, nn.Linear, int], Tensor]) -> None:
    """``msa_forward(x, qkv, proj, num_heads)``: ViT self-attention, qkv = Linear(D, 3D) laid out [q | k | v].

    Introduced in lesson 13.
    """
    require_callable(msa_forward, "msa_forward")
    for seed, (b, t, d, heads) in enumerate(((2, 5, 8, 2), (1, 17, 24, 4), (3, 10, 12, 3))):
        qkv = _seeded(seed, partial(nn.Linear, d, 3 * d)).eval()
        proj = _seeded(50 + seed, partial(nn.Linear, d, d)).eval()
        x = torch.randn(b, t, d, generator=torch.Generator().manual_seed(400 + seed))
        case = f"x of shape {(b, t, d)}, {heads} heads"
        got = call_learner(msa_forward, x.clone(), qkv, proj, heads, name="msa_forward")
        # Reference: course_lib's MultiHeadAttention with the fused weights copied into q/k/v_proj.
        ref = MultiHeadAttention(d, heads).eval()
        with torch.no_grad():
            for i, layer in enumerate((ref.q_proj, ref.k_proj, ref.v_proj)):
                layer.weight.copy_(qkv.weight[i * d:(i + 1) * d])
                layer.bias.copy_(qkv.bias[i * d:(i + 1) * d])
            ref.out_proj.load_state_dict(proj.state_dict())
            expected = ref(x, x, x)[0]
            mistakes: dict[str, Tensor] = {
                "heads merged without the transpose: (B, H, T, d) -> transpose(1, 2) -> (B, T, H, d) -> reshape; "
                "a plain reshape mixes tokens of different positions":
                    _msa_variant(x, qkv, proj, heads, transpose=False),
                "the scores are not scaled: multiply by head_dim ** -0.5": _msa_variant(x, qkv, proj, heads, scale=1.0),
                "the scores are scaled by D ** -0.5; each head's dot product has head_dim = D / H terms":
                    _msa_variant(x, qkv, proj, heads, scale=d ** -0.5),
                "the output projection proj is missing": _msa_variant(x, qkv, nn.Identity(), heads),  # type: ignore[arg-type]
            }
            if heads > 1:
                mistakes["qkv is split in the wrong order: its 3D outputs are [all q | all k | all v], so reshape "
                         "to (B, T, 3, H, d), not (B, T, H, 3, d)"] = _msa_variant(x, qkv, proj, heads, order="h3d")
        compare(got, expected, "msa_forward", case, mistakes=mistakes)
    passed("msa_forward")
