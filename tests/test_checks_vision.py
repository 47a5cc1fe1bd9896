"""Lesson 12-13 checkers accept the reference and reject the stub and typical mistakes, with hints."""

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
