"""IdentityInitGate and HostCNN(gate_init="identity"): identity at init, the gate blended in by alpha (lesson 12)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.data.digits import make_cluttered_digits
from course_lib.vision import CBAM, ECA, IdentityInitGate, NonLocalBlock, SEBlock, YoloSAM
from course_lib.vision_train import HostCNN, ResidualBlock, attention_box_auc, count_parameters


@pytest.mark.parametrize("build", [lambda: SEBlock(16, reduction=4), lambda: CBAM(16, reduction=4),
                                   lambda: ECA(16), lambda: YoloSAM(16)])
def test_identity_at_init_then_the_gate(build):
    torch.manual_seed(0)
    inner = build().eval()
    wrapped = IdentityInitGate(inner).eval()
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        assert torch.equal(wrapped(x), x)  # alpha = 0: exactly the identity
        assert torch.allclose(wrapped.gate(x), torch.ones_like(inner.gate(x)))
        wrapped.alpha.fill_(1.0)
        assert torch.allclose(wrapped(x), inner(x), atol=1e-6)  # alpha = 1: the wrapped module
        wrapped.alpha.fill_(0.3)
        g = inner.gate(x)
        assert torch.allclose(wrapped(x), x * (1 + 0.3 * (g - 1)), atol=1e-6)
        assert torch.allclose(wrapped(x), x * wrapped.gate(x), atol=1e-6)
        assert (wrapped(x).abs() <= x.abs() + 1e-6).all()  # alpha in [0, 1]: still only shrinks


def test_first_backward_reaches_only_alpha():
    torch.manual_seed(0)
    wrapped = IdentityInitGate(SEBlock(8, reduction=2))
    wrapped(torch.randn(2, 8, 4, 4)).pow(2).sum().backward()
    assert wrapped.alpha.grad is not None and wrapped.alpha.grad.abs().item() > 0
    assert all(p.grad is None or p.grad.abs().max().item() == 0 for n, p in wrapped.named_parameters() if n != "alpha")


def test_rejects_modules_without_a_gate():
    with pytest.raises(TypeError, match="gate"):
        IdentityInitGate(nn.Identity())
    with pytest.raises(TypeError, match="gate"):
        IdentityInitGate(lambda x: x)


def test_host_identity_starts_as_the_baseline_and_counts_alpha():
    torch.manual_seed(0)
    base = HostCNN(None, widths=(8, 16, 32)).eval()
    torch.manual_seed(0)
    gated = HostCNN("cbam", widths=(8, 16, 32), gate_init="identity").eval()
    gated.load_state_dict(base.state_dict(), strict=False)  # same convs, BN and head
    x = torch.rand(3, 1, 40, 40)
    with torch.no_grad():
        assert torch.allclose(gated(x), base(x), atol=1e-6)
    assert count_parameters(gated) == count_parameters(HostCNN("cbam", widths=(8, 16, 32))) + 2  # one alpha per block
    assert gated.gate_scales() == [0.0, 0.0] and HostCNN("cbam").gate_scales() == []
    assert [type(m).__name__ for m in gated.attention_modules()] == ["CBAM", "CBAM"]  # the wrapped gates
    data = make_cluttered_digits(8, seed=0, split="test")
    auc = attention_box_auc(gated, data)  # the inner gate's map is still caught by the hook
    assert auc is not None and 0.0 <= auc <= 1.0


def test_gate_init_validation():
    with pytest.raises(ValueError, match="gate_init must be one of"):
        HostCNN("se", gate_init="zeros")
    with pytest.raises(TypeError, match="gate_init must be a str"):
        ResidualBlock(8, "se", gate_init=1)
    with pytest.raises(ValueError, match="already the identity"):
        ResidualBlock(8, "nonlocal", gate_init="identity")
    assert isinstance(ResidualBlock(8, None, gate_init="identity").attention, nn.Identity)  # baseline: no-op
    assert isinstance(ResidualBlock(8, "nonlocal").attention, NonLocalBlock)  # default unchanged
