"""course_lib.hard: argmax, sampling, top-k, straight-through, Gumbel-softmax, REINFORCE."""

import math

import pytest
import torch

from course_lib.hard import gumbel_softmax, hard_argmax, reinforce_loss, sample_one_hot, straight_through, top_k_weights


def test_hard_argmax_is_one_hot_of_the_largest_score():
    scores = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0]])
    assert torch.equal(hard_argmax(scores), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


def test_hard_argmax_has_no_gradient_path():
    scores = torch.randn(4, 5, requires_grad=True)
    assert not hard_argmax(scores).requires_grad


def test_sample_one_hot_follows_the_softmax():
    torch.manual_seed(0)
    scores = torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(20000, 3)
    one_hot, log_prob = sample_one_hot(scores, generator=torch.Generator().manual_seed(1))
    assert one_hot.shape == (20000, 3) and torch.all(one_hot.sum(-1) == 1)
    freq = one_hot.mean(0)
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.02)
    chosen = one_hot.argmax(-1)
    assert torch.allclose(log_prob, torch.log(torch.tensor([0.7, 0.2, 0.1]))[chosen], atol=1e-5)


def test_sample_one_hot_log_prob_carries_the_gradient():
    scores = torch.randn(3, 4, requires_grad=True)
    one_hot, log_prob = sample_one_hot(scores, generator=torch.Generator().manual_seed(0))
    assert not one_hot.requires_grad
    log_prob.sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_low_temperature_sampling_is_argmax():
    scores = torch.randn(50, 6)
    one_hot, _ = sample_one_hot(scores, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(one_hot, hard_argmax(scores))


def test_top_k_weights():
    scores = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    w = top_k_weights(scores, 2)
    expected = torch.zeros(1, 4)
    expected[0, 1:3] = torch.softmax(torch.tensor([3.0, 2.0]), dim=0)
    assert torch.allclose(w, expected)
    assert torch.allclose(top_k_weights(scores, 4), torch.softmax(scores, -1))
    assert torch.equal(top_k_weights(scores, 1), hard_argmax(scores))


def test_top_k_gradient_only_reaches_kept_scores():
    scores = torch.tensor([[1.0, 3.0, 2.0, 0.0]], requires_grad=True)
    (top_k_weights(scores, 2) @ torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert scores.grad[0, 0] == 0 and scores.grad[0, 3] == 0 and scores.grad[0, 1] != 0


def test_straight_through_value_is_hard_gradient_is_soft():
    scores = torch.randn(5, 4, requires_grad=True)
    values = torch.randn(4, 3)
    y = straight_through(scores, temperature=0.5)
    assert torch.allclose(y, hard_argmax(scores))
    (y @ values).square().sum().backward()
    g_st = scores.grad.clone()
    soft_scores = scores.detach().clone().requires_grad_(True)
    soft = torch.softmax(soft_scores / 0.5, -1)
    # the upstream gradient is evaluated at the hard value
    upstream = 2 * (hard_argmax(scores.detach()) @ values) @ values.T
    (soft * upstream).sum().backward()
    assert torch.allclose(g_st, soft_scores.grad, atol=1e-6)


def test_gumbel_softmax_soft_and_hard():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(8, 5, requires_grad=True)
    soft = gumbel_softmax(scores, temperature=0.7, generator=g)
    assert torch.allclose(soft.sum(-1), torch.ones(8)) and torch.all(soft > 0)
    hard = gumbel_softmax(scores, temperature=0.7, hard=True, generator=torch.Generator().manual_seed(0))
    # hard + soft - soft.detach() is one-hot up to rounding
    assert torch.allclose(hard.detach(), hard_argmax(hard.detach()), atol=1e-6)
    assert torch.equal(hard.detach().argmax(-1), soft.detach().argmax(-1))  # same noise, same pick
    (hard * torch.arange(5.0)).sum().backward()
    assert scores.grad.abs().sum() > 0


def test_gumbel_samples_follow_the_softmax():
    probs = torch.tensor([0.5, 0.3, 0.2])
    scores = probs.log().expand(20000, 3)
    picks = gumbel_softmax(scores, hard=True, generator=torch.Generator().manual_seed(3)).mean(0)
    assert torch.allclose(picks, probs, atol=0.02)


def test_reinforce_loss_gradient_and_baseline():
    scores = torch.zeros(1, 2, requires_grad=True)
    log_prob = torch.log_softmax(scores, -1)[:, 0]
    loss = reinforce_loss(log_prob, torch.tensor([1.0]), baseline=0.25)
    loss.backward()
    # d/ds0 of -(0.75 * log softmax_0) at s = 0 is -(0.75 * 0.5)
    assert math.isclose(scores.grad[0, 0].item(), -0.375, rel_tol=1e-6)
    assert math.isclose(loss.item(), 0.75 * math.log(2), rel_tol=1e-6)


def test_reinforce_reward_is_treated_as_a_constant():
    w = torch.tensor(1.0, requires_grad=True)
    loss = reinforce_loss(torch.zeros(3), (w * torch.ones(3)))
    assert not loss.requires_grad


@pytest.mark.parametrize("fn", [hard_argmax, lambda s: top_k_weights(s, 1), straight_through,
                                lambda s: gumbel_softmax(s), lambda s: sample_one_hot(s)[0]])
def test_bad_inputs(fn):
    with pytest.raises(TypeError, match="scores"):
        fn([1.0, 2.0])
    with pytest.raises(TypeError, match="floating"):
        fn(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="at least one key"):
        fn(torch.zeros(3, 0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must lie"):
        top_k_weights(torch.randn(2, 3), 4)
    with pytest.raises(TypeError, match="k must be an int"):
        top_k_weights(torch.randn(2, 3), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        straight_through(torch.randn(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        reinforce_loss(torch.zeros(3), torch.zeros(2))


@pytest.mark.cuda
def test_on_cuda():
    scores = torch.randn(4, 5, device="cuda", requires_grad=True)
    y = gumbel_softmax(scores, hard=True)
    assert y.device.type == "cuda"
    straight_through(scores).sum().backward()
    one_hot, log_prob = sample_one_hot(scores.detach())
    assert one_hot.device.type == "cuda" and log_prob.device.type == "cuda"
