"""Lesson 12-13 checkers accept the reference and reject the stub and typical mistakes, with hints."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks.core import CheckFailed
from course_lib.checks.vision import check_position_attention, check_se_forward, check_spatial_gate, check_vit_msa


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- SE ------------------------------------------------------------------------------------------
def se_ok(block, x):
    s = torch.sigmoid(block.fc2(F.relu(block.fc1(x.mean(dim=(2, 3), keepdim=True)))))
    return x * s


def test_se_accepts_reference(capsys):
    check_se_forward(se_ok)
    assert "se_forward: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda block, x: x * se_ok(block, x), "gated twice"),
    (lambda block, x: x * block.fc2(F.relu(block.fc1(x.mean(dim=(2, 3), keepdim=True)))), "sigmoid is missing"),
    (lambda block, x: block.gate(x), "returned the gate"),
    (lambda block, x: x * torch.sigmoid(block.fc2(F.relu(block.fc1(x.amax(dim=(2, 3), keepdim=True))))), "max pooling"),
    (lambda block, x: x * torch.sigmoid(block.fc2(block.fc1(x.mean(dim=(2, 3), keepdim=True)))), "ReLU"),
    (lambda block, x: x * 0.5, "largest difference"),
    (lambda block, x: 1 / 0, "raised ZeroDivisionError"),
])
def test_se_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_se_forward(wrong)


# ---- CBAM spatial gate ----------------------------------------------------------------------------
def spatial_ok(module, x):
    pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
    return torch.sigmoid(module.bn(module.conv(pooled)))


def test_spatial_accepts_reference(capsys):
    check_spatial_gate(spatial_ok)
    assert "spatial_gate: all checks passed" in capsys.readouterr().out


def _pool(x, first, second):
    return torch.cat([first(x), second(x)], dim=1)


_max = lambda x: x.amax(dim=1, keepdim=True)  # noqa: E731
_mean = lambda x: x.mean(dim=1, keepdim=True)  # noqa: E731


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda m, x: m.bn(m.conv(_pool(x, _max, _mean))), "sigmoid is missing"),
    (lambda m, x: torch.sigmoid(m.bn(m.conv(_pool(x, _mean, _max)))), "wrong order"),
    (lambda m, x: torch.sigmoid(m.bn(m.conv(_pool(x, _mean, _mean)))), "mean map is used twice"),
    (lambda m, x: torch.sigmoid(m.conv(_pool(x, _max, _mean))), "BatchNorm"),
    (lambda m, x: x * spatial_ok(m, x), "gated features"),
    (lambda m, x: torch.sigmoid(m.bn(m.conv(x[:, :2]))), "largest difference"),
])
def test_spatial_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_spatial_gate(wrong)


# ---- DANet position attention ---------------------------------------------------------------------
class PamOk(nn.Module):
    def __init__(self, channels, reduction=8, gamma=0.0, softmax_dim=-1, transpose=True, residual=True):
        super().__init__()
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1,), gamma))
        self.softmax_dim, self.transpose, self.residual = softmax_dim, transpose, residual

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        s = torch.softmax(q @ self.key(x).flatten(2), dim=self.softmax_dim)
        v = self.value(x).flatten(2)
        out = (v @ (s.transpose(1, 2) if self.transpose else s)).view(b, c, h, w)
        return self.gamma * out + x if self.residual else self.gamma * out


class PamStub(nn.Module):
    def __init__(self, channels, reduction=8):
        super().__init__()
        raise NotImplementedError()


class PamUnregistered(PamOk):
    def __init__(self, channels, reduction=8):
        super().__init__(channels, reduction)
        del self.gamma
        self.gamma = torch.zeros(1)


def test_pam_accepts_reference(capsys):
    check_position_attention(PamOk)
    assert "PositionAttention: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (PamStub, "not implemented yet"),
    (lambda c, reduction=8: PamOk(c, reduction, gamma=1.0), "gamma starts at 1"),
    (lambda c, reduction=8: PamOk(c, reduction, softmax_dim=1), "softmax over the wrong axis"),
    (lambda c, reduction=8: PamOk(c, reduction, transpose=False), "without the transpose"),
    (lambda c, reduction=8: PamOk(c, reduction, residual=False), "residual"),
    (PamUnregistered, "no parameter"),
    (lambda c, reduction=8: "not a module", "nn.Module"),
])
def test_pam_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_position_attention(wrong)


# ---- ViT multi-head self-attention ---------------------------------------------------------------
def msa_ok(x, qkv, proj, num_heads, transpose=True, scale=None, order="3hd"):
    b, t, d = x.shape
    hd = d // num_heads
    if order == "3hd":
        q, k, v = qkv(x).reshape(b, t, 3, num_heads, hd).permute(2, 0, 3, 1, 4)
    else:
        q, k, v = qkv(x).reshape(b, t, num_heads, 3, hd).permute(3, 0, 2, 1, 4)
    w = torch.softmax(q @ k.transpose(-2, -1) * (hd ** -0.5 if scale is None else scale), dim=-1)
    out = w @ v
    out = out.transpose(1, 2).reshape(b, t, d) if transpose else out.reshape(b, t, d)
    return proj(out)


def test_msa_accepts_reference(capsys):
    check_vit_msa(msa_ok)
    assert "msa_forward: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda x, qkv, proj, h: msa_ok(x, qkv, proj, h, transpose=False), "merged without the transpose"),
    (lambda x, qkv, proj, h: msa_ok(x, qkv, proj, h, scale=1.0), "not scaled"),
    (lambda x, qkv, proj, h: msa_ok(x, qkv, proj, h, scale=x.shape[-1] ** -0.5), r"D \*\* -0.5"),
    (lambda x, qkv, proj, h: msa_ok(x, qkv, nn.Identity(), h), "output projection"),
    (lambda x, qkv, proj, h: msa_ok(x, qkv, proj, h, order="h3d"), "wrong order"),
    (lambda x, qkv, proj, h: x, "largest difference"),
])
def test_msa_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_vit_msa(wrong)


def test_checkers_leave_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    check_se_forward(se_ok)
    check_position_attention(PamOk)
    assert torch.equal(torch.rand(3), before)


# ---- CBAM parameter count (a derivation, checked against the module) -------------------------------
def test_cbam_count_accepts_the_truth(capsys):
    from course_lib.checks.thinking import reset_hints
    from course_lib.checks.vision import check_cbam_parameter_count
    from course_lib.vision import CBAM

    reset_hints()
    truth = sum(p.numel() for p in CBAM(32, reduction=8, kernel_size=7).parameters())
    assert truth == (2 * 32 * 4 + 4 + 32) + 2 * 7 * 7 + 2 == 392
    check_cbam_parameter_count(truth)
    assert "cbam_params = 392" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (None, "still None"),
    ("392", "should be a number"),
    (2 * 292 + 100, "two MLPs"),
    (256 + 100, "biases"),
    (292 + 98, "BatchNorm"),
    (292 + 49 + 2, "2 input channels"),
    (292, "channel gate alone"),
    (393, "no bias"),
    (580, "not right"),
])
def test_cbam_count_rejects(wrong, message):
    from course_lib.checks.thinking import reset_hints
    from course_lib.checks.vision import check_cbam_parameter_count

    reset_hints()
    with pytest.raises(CheckFailed, match=message):
        check_cbam_parameter_count(wrong)


def test_cbam_count_hints_come_in_steps():
    from course_lib.checks.thinking import reset_hints
    from course_lib.checks.vision import check_cbam_parameter_count

    reset_hints()
    for k in (1, 2, 3, 3):
        with pytest.raises(CheckFailed, match=f"Hint {k} of 3"):
            check_cbam_parameter_count(1000)


# ---- find the bug: the attention-pooling classifier --------------------------------------------------
class ArticlePattern(nn.Module):
    """The exercise's faulty class: a Linear over the positions (one image size only), softmax over the batch."""

    def __init__(self, in_channels=1, channels=16, num_classes=10, image_size=32):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.score = nn.Linear(image_size * image_size, image_size * image_size)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x, need_weights=False):
        f = self.features(x).flatten(2)
        weights = torch.softmax(self.score(f.mean(dim=1)), dim=0)
        logits = self.classifier((f * weights[:, None, :]).sum(dim=-1))
        return (logits, weights) if need_weights else logits


class Pool(nn.Module):
    """The repaired class, with a switch for each typical half-repair."""

    def __init__(self, in_channels=1, channels=16, num_classes=10, *, dim=1, weighting="softmax", weights_out=True):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
        self.score = nn.Conv2d(channels, 1, kernel_size=1)
        self.classifier = nn.Linear(channels, num_classes)
        self.dim, self.weighting, self.weights_out = dim, weighting, weights_out

    def forward(self, x, need_weights=False):
        f = self.features(x)
        b, _, h, w = f.shape
        scores = self.score(f).flatten(1)
        if self.weighting in ("softmax", "max"):
            weights = torch.softmax(scores, dim=self.dim)
        elif self.weighting == "sigmoid":
            weights = torch.sigmoid(scores)
        elif self.weighting == "mean":
            weights = torch.full_like(scores, 1 / scores.shape[1])
        else:
            weights = scores
        logits = self.classifier((f.flatten(2) * weights[:, None, :]).sum(dim=-1))
        if self.weighting == "max":  # ignores the weights: global max pooling
            logits = self.classifier(f.amax(dim=(2, 3)))
        if need_weights:
            return (logits, weights.view(b, h, w)) if self.weights_out else logits
        return logits


def test_attention_pooling_accepts_the_repair_and_the_reference(capsys):
    from course_lib.checks.vision import AttentionPoolReference, check_attention_pooling

    check_attention_pooling(Pool)
    check_attention_pooling(AttentionPoolReference)
    assert capsys.readouterr().out.count("attention pooling classifier: all checks passed") == 2


def test_the_article_pattern_runs_on_its_one_size_only():
    model = ArticlePattern()
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(RuntimeError):
        model(torch.rand(2, 1, 24, 40))


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (ArticlePattern, "one image size"),
    (partial(Pool, dim=0), "over the batch axis"),
    (partial(Pool, weighting="sigmoid"), "sum to 1"),
    (partial(Pool, weighting="raw"), "sum to 1"),
    (partial(Pool, weights_out=False), "need_weights=True"),
    (partial(Pool, weighting="max"), "largest difference"),
    (lambda *a: "not a module", "nn.Module"),
])
def test_attention_pooling_rejects(wrong, message):
    from course_lib.checks.vision import check_attention_pooling

    with pytest.raises(CheckFailed, match=message):
        check_attention_pooling(wrong)
