"""course_lib.explain: distances, permutation, uniform weights, adversarial search, leave-one-out, gradients,
rollout, Kendall summaries, and the models run with weights given from outside (lesson 18)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import explain as ex
from course_lib import seq2seq as s2s
from course_lib import tagging as tg
from course_lib.vision_train import HostCNN


def test_total_variation_and_js():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5])
    assert ex.total_variation(p, q).item() == pytest.approx(0.5)
    assert ex.total_variation(p, p).item() == 0
    assert ex.js_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(math.log(2))
    assert ex.js_divergence(p, p).item() == pytest.approx(0.0, abs=1e-7)
    a, b = torch.rand(4, 6).softmax(-1), torch.rand(4, 6).softmax(-1)
    assert torch.allclose(ex.js_divergence(a, b), ex.js_divergence(b, a))  # symmetric
    assert ex.total_variation(a[:1], b).shape == (4,)  # broadcasts
    with pytest.raises(ValueError, match="last axis"):
        ex.total_variation(torch.rand(3), torch.rand(4))
    with pytest.raises(TypeError, match="p must be a torch.Tensor"):
        ex.total_variation([0.5, 0.5], q)
    with pytest.raises(TypeError, match="floating"):
        ex.js_divergence(torch.tensor([1, 0]), torch.tensor([0, 1]))


def test_permutation_keeps_the_multiset_and_the_padding():
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(5, 3, 8).softmax(-1)
    mask = torch.ones(5, 3, 8, dtype=torch.bool)
    mask[:, :, 6:] = False
    w = w * mask
    out = ex.permute_weights(w, mask, generator=gen)
    assert out.shape == w.shape
    assert torch.allclose(out.sort(-1).values, w.sort(-1).values)  # same multiset per row
    assert torch.all(out[~mask] == 0)
    assert not torch.equal(out, w)
    rows = ex.permute_weights(torch.arange(6.0).repeat(50, 1), generator=gen)
    assert len({tuple(r.tolist()) for r in rows}) > 1  # rows are shuffled independently
    non_prefix = torch.tensor([[True, False, True, True]])
    got = ex.permute_weights(torch.tensor([[0.2, 0.0, 0.3, 0.5]]), non_prefix, generator=gen)
    assert got[0, 1] == 0 and sorted(got[0].tolist()) == pytest.approx([0.0, 0.2, 0.3, 0.5])
    with pytest.raises(TypeError, match="mask"):
        ex.permute_weights(w, mask.float())
    with pytest.raises(ValueError, match="broadcast"):
        ex.permute_weights(w, torch.ones(2, 2, dtype=torch.bool))


def test_uniform_weights():
    mask = torch.tensor([[True, True, False], [True, True, True]])
    u = ex.uniform_weights(mask)
    assert torch.allclose(u, torch.tensor([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    with pytest.raises(TypeError, match="mask"):
        ex.uniform_weights(mask.float())


def test_adversarial_weights_keep_the_output_and_move_the_weights():
    torch.manual_seed(0)
    values = torch.randn(10, 6, 3)  # (N, T, K): the output depends on the weights through a mixture

    def out(w):  # (N, T) -> (N, K)
        return (w[:, :, None] * values).sum(1).softmax(-1)

    w0 = torch.randn(10, 6).softmax(-1)
    res = ex.adversarial_weights(out, w0, epsilon=0.02, steps=80)
    assert res.weights.shape == w0.shape and res.js.shape == (10,)
    assert torch.all(res.tvd[res.feasible] <= 0.02 + 1e-6)
    assert torch.allclose(res.weights.sum(-1), torch.ones(10), atol=1e-5)
    assert res.feasible.all() and res.js.median() > 0.05
    assert torch.allclose(ex.total_variation(out(res.weights), out(w0)), res.tvd, atol=1e-5)
    # an output that ignores the weights: any weights are feasible, the JS grows large
    free = ex.adversarial_weights(lambda w: torch.full((w.shape[0], 2), 0.5), w0, steps=50)
    assert free.js.median() > 0.3
    heads = ex.adversarial_weights(lambda w: out(w.mean(1)), w0[:, None].expand(10, 2, 6).contiguous(), steps=5)
    assert heads.js.shape == (10,)  # one JS per example, averaged over its rows
    with pytest.raises(ValueError, match="epsilon"):
        ex.adversarial_weights(out, w0, epsilon=0.0)
    with pytest.raises(ValueError, match="output_fn must return"):
        ex.adversarial_weights(lambda w: w.sum(), w0)
    with pytest.raises(TypeError, match="callable"):
        ex.adversarial_weights(None, w0)


def test_leave_one_out():
    ids = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    mask = ids > 0

    def out(x):  # the output looks at token 0 only
        return torch.stack([(x[:, 0] == 1).float(), (x[:, 0] != 1).float()], dim=-1)

    imp = ex.leave_one_out(out, ids, mask, 9)
    assert imp.shape == (2, 4)
    assert imp[0].tolist() == [1.0, 0.0, 0.0, 0.0] and imp[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    per_step = ex.leave_one_out(lambda x: out(x)[:, None, :].expand(-1, 3, -1), ids, mask, torch.full_like(ids, 9))
    assert per_step.shape == (2, 4, 3) and per_step[0, 0].tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="replacement"):
        ex.leave_one_out(out, ids, mask, torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="mask"):
        ex.leave_one_out(out, ids, mask.long(), 9)


def test_gradient_importance():
    e = torch.randn(3, 5, 4)
    weights = torch.tensor([0.0, 1.0, 2.0, 0.0, 3.0])
    g = ex.gradient_importance(lambda x: (x.sum(-1) * weights).sum(-1), e)
    assert torch.allclose(g, (weights * 2.0).expand(3, 5))  # the gradient of sum_j w_j sum_e x_je is w_j per entry
    with pytest.raises(ValueError, match="one score per example"):
        ex.gradient_importance(lambda x: x.sum(), e)


def test_rollout():
    eye = torch.eye(5).expand(3, 5, 5)
    assert torch.allclose(ex.attention_rollout(eye), torch.eye(5))  # identity attention -> identity
    w = torch.randn(2, 3, 6, 6).softmax(-1)  # (B, L, T, T)
    r = ex.attention_rollout(w)
    assert r.shape == (2, 6, 6) and torch.allclose(r.sum(-1), torch.ones(2, 6), atol=1e-5)  # rows sum to 1
    a = [0.5 * w[0, i] + 0.5 * torch.eye(6) for i in range(3)]
    assert torch.allclose(r[0], a[2] @ a[1] @ a[0], atol=1e-6)  # the later layer on the left
    assert torch.allclose(ex.attention_rollout(w, residual=False)[0], w[0, 2] @ w[0, 1] @ w[0, 0], atol=1e-6)
    uniform = torch.full((2, 4, 4), 0.25)
    assert ex.attention_rollout(uniform)[0, 0].item() == pytest.approx(0.75 / 4 + 0.25)
    with pytest.raises(ValueError, match="square"):
        ex.attention_rollout(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="at least 3"):
        ex.attention_rollout(torch.rand(3, 3))


def test_kendall_summary():
    a = torch.tensor([[1.0, 2, 3, 4, 5], [5.0, 4, 3, 2, 1]])
    s = ex.kendall_summary(a, a)
    assert s["median"] == pytest.approx(1.0) and s["rows"] == 2
    s = ex.kendall_summary(a, torch.tensor([[1.0, 2, 3, 4, 5], [1.0, 2, 3, 4, 5]]))
    assert s["median"] == pytest.approx(0.0) and s["mean"] == pytest.approx(0.0)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    assert ex.kendall_summary(a, a, mask)["rows"] == 2
    with pytest.raises(ValueError, match="nothing to rank"):
        ex.kendall_summary(torch.ones(2, 5), a)
    with pytest.raises(ValueError, match="same shape"):
        ex.kendall_summary(a, a[:1])


@pytest.fixture(scope="module")
def tagger():
    torch.manual_seed(0)
    return tg.BiLSTMAttentionTagger(30, d_model=8, num_heads=2).eval()


def test_tagger_with_its_own_weights_is_the_tagger(tagger):
    ids = torch.randint(1, 30, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.no_grad():
        logits, w = tagger(ids, mask, need_weights=True)
        again = ex.tagger_logits_with_weights(tagger, ids, mask, w[:, 0])
        uniform = ex.tagger_logits_with_weights(tagger, ids, mask, ex.uniform_weights(mask[:, None, None, :]
                                                                                      .expand_as(w[:, 0])))
    assert torch.allclose(again, logits, atol=1e-6) and not torch.allclose(uniform, logits)
    with pytest.raises(ValueError, match=r"\(B, H, T, T\)"):
        ex.tagger_logits_with_weights(tagger, ids, mask, w[:, 0, :1])
    with pytest.raises(TypeError, match="BiLSTMAttentionTagger"):
        ex.tagger_logits_with_weights(nn_linear(), ids, mask, w[:, 0])


def nn_linear():
    return torch.nn.Linear(2, 2)


def test_seq2seq_with_its_own_weights_is_the_model():
    torch.manual_seed(0)
    model = s2s.AttentionSeq2Seq(12, 10, 8, 16).eval()
    src = torch.randint(3, 12, (2, 5))
    src_lens = torch.tensor([5, 3])
    src[1, 3:] = 0
    tgt_in = torch.randint(3, 10, (2, 4))
    with torch.no_grad():
        logits, w = model(src, src_lens, tgt_in, need_weights=True)
        assert torch.allclose(ex.seq2seq_logits_with_weights(model, src, src_lens, tgt_in, w), logits, atol=1e-5)
        for t in range(4):
            step = ex.seq2seq_logits_with_weights(model, src, src_lens, tgt_in, w[:, t], step=t)
            assert torch.allclose(step, logits[:, t], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        ex.seq2seq_logits_with_weights(model, src, src_lens, tgt_in, w, step=1)
    with pytest.raises(ValueError, match="step"):
        ex.seq2seq_logits_with_weights(model, src, src_lens, tgt_in, w[:, 0], step=4)


def test_cbam_with_its_own_gate_is_the_model():
    torch.manual_seed(0)
    model = HostCNN("cbam").eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ex.cbam_logits_with_gate(model, x, lambda g: g), model(x), atol=1e-6)
        half = ex.cbam_logits_with_gate(model, x, lambda g: torch.full_like(g, 0.5), which=1)
        assert not torch.allclose(half, model(x))
        assert torch.allclose(model(x), ex.cbam_logits_with_gate(model, x, lambda g: g))  # the patch is removed
    with pytest.raises(ValueError, match="gate of shape"):
        ex.cbam_logits_with_gate(model, x, lambda g: g[:, :, :2])
    assert "gate" not in vars(model.attention_modules()[0].spatial)  # removed even after an error
    with pytest.raises(TypeError, match="CBAM"):
        ex.cbam_logits_with_gate(HostCNN(None), x, lambda g: g)
