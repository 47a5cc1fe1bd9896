"""Lesson 15 checkers accept the reference and reject the stub and typical mistakes, with hints."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks.core import CheckFailed
from course_lib.checks.generation import check_attention_pool, check_glimpse_crops, check_ram_reinforce_loss
from course_lib.generation import glimpse_sensor


def stub(*args, **kwargs):
    raise NotImplementedError()


# ---- glimpse sensor -------------------------------------------------------------------------------
def glimpse_ok(images, loc, g, k):
    return glimpse_sensor(images, loc, patch_size=g, num_scales=k)


def glimpse_loop(images, loc, g, k, *, swap=False, corner=False, subsample=False, clamp=False):
    size = images.shape[-1]
    where = loc.flip(-1) if swap else loc
    centre = torch.floor((where + 1) / 2 * size).long().clamp(0, size - 1)
    out = torch.zeros(images.shape[0], k, g, g)
    for b in range(images.shape[0]):
        for s in range(k):
            side = g * 2 ** s
            c0, r0 = (int(v) - (0 if corner else side // 2) for v in centre[b])
            if clamp:
                c0, r0 = (min(max(v, 0), size - side) for v in (c0, r0))
            page = F.pad(images[b, 0], (side, side, side, side))
            patch = page[r0 + side:r0 + 2 * side, c0 + side:c0 + 2 * side]
            out[b, s] = patch[::2 ** s, ::2 ** s] if subsample else F.avg_pool2d(patch[None, None], 2 ** s)[0, 0]
    return out


def test_glimpse_accepts_reference_and_a_loop(capsys):
    check_glimpse_crops(glimpse_ok)
    check_glimpse_crops(glimpse_loop)
    assert capsys.readouterr().out.count("glimpse: all checks passed") == 2


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda i, p, g, k: glimpse_loop(i, p, g, k, swap=True), "x and y are swapped"),
    (lambda i, p, g, k: glimpse_loop(i, p, g, k, corner=True), "starts at the centre pixel"),
    (lambda i, p, g, k: glimpse_loop(i, p, g, k, subsample=True), "averages them"),
    (lambda i, p, g, k: glimpse_loop(i, p, g, k, clamp=True), "pads with zeros"),
    (lambda i, p, g, k: glimpse_ok(i, p, g, k).flip(1), "reverse order"),
    (lambda i, p, g, k: glimpse_ok(i, p, g, k)[:, :1], "expected shape"),
    (lambda i, p, g, k: glimpse_ok(i, p, g, k) * 2, "largest difference"),
    (lambda i, p, g, k: 1 / 0, "raised ZeroDivisionError"),
])
def test_glimpse_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_glimpse_crops(wrong)


# ---- REINFORCE with a baseline ---------------------------------------------------------------------
def reinforce_ok(log_probs, reward, baseline):
    return -((reward[:, None] - baseline).detach() * log_probs).sum(1).mean()


def test_reinforce_accepts_reference(capsys):
    check_ram_reinforce_loss(reinforce_ok)
    assert "reinforce_loss: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (lambda lp, r, b: -(r[:, None] * lp).sum(1).mean(), "baseline is missing"),
    (lambda lp, r, b: ((r[:, None] - b).detach() * lp).sum(1).mean(), "sign is flipped"),
    (lambda lp, r, b: -((r[:, None] - b).detach() * lp).mean(), "averaged over the glimpses"),
    (lambda lp, r, b: -((b - r[:, None]).detach() * lp).sum(1).mean(), "sign is flipped"),
    (lambda lp, r, b: -((r[:, None] - b) * lp).sum(1).mean(), "baseline receives a gradient"),
    (lambda lp, r, b: -((r[:, None] - b) * lp).detach().sum(1).mean(), "no gradient reaches log_probs"),
    (lambda lp, r, b: -((r[:, None] - b).detach() * lp).sum(1), "scalar"),
    (lambda lp, r, b: 1 / 0, "raised ZeroDivisionError"),
])
def test_reinforce_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_ram_reinforce_loss(wrong)


# ---- the article's attention pooling -----------------------------------------------------------------
def pool_ok(features, score):
    flat = features.flatten(2).transpose(1, 2)
    weights = torch.softmax(score(flat).squeeze(-1), dim=1)
    return (weights.unsqueeze(-1) * flat).sum(1), weights


def pool_view(features, score):  # the tempting "repair": runs, but scrambles channels and positions
    b, c, h, w = features.shape
    flat = features.view(b, h * w, c)
    weights = torch.softmax(score(flat).squeeze(-1), dim=1)
    return (weights.unsqueeze(-1) * flat).sum(1), weights


def pool_article(features, score):  # the article as written: crashes
    flat = features.view(features.size(0), features.size(1), -1)
    weights = torch.softmax(score(flat).squeeze(-1), dim=1)
    return (weights.unsqueeze(-1) * flat).sum(1), weights


def test_pool_accepts_reference(capsys):
    check_attention_pool(pool_ok)
    assert "attention_pool: all checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (stub, "not implemented yet"),
    (pool_article, "mat1 and mat2 shapes cannot be multiplied"),
    (pool_view, "without a transpose"),
    (lambda f, s: (pool_ok(f, s)[0], torch.softmax(s(f.flatten(2).transpose(1, 2)), dim=-1).squeeze(-1)),
     "size-1 score axis"),
    (lambda f, s: (pool_ok(f, s)[0], pool_ok(f, s)[1][..., None]), "trailing axis"),
    (lambda f, s: (f.flatten(2).mean(-1), pool_ok(f, s)[1]), "plain mean"),
    (lambda f, s: pool_ok(f, s)[0], "pair"),
])
def test_pool_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_attention_pool(wrong)


# ---- predict how much of the largest patch lies on the image -------------------------------------
@pytest.fixture
def fresh_hints():
    from course_lib.checks.thinking import reset_hints

    reset_hints()
    yield
    reset_hints()


def test_largest_patch_coverage_is_measured_on_the_sensor():
    from course_lib.checks.generation import largest_patch_coverage

    assert largest_patch_coverage((-1.0, -1.0), size=40, patch_size=8, num_scales=3) == 0.25
    assert largest_patch_coverage((1.0, 1.0), size=40, patch_size=8, num_scales=3) == pytest.approx((17 / 32) ** 2)
    assert largest_patch_coverage((0.0, 0.0), size=40, patch_size=8, num_scales=3) == 1.0  # the centre: all inside


def test_corner_coverage_accepts_the_prediction(capsys, fresh_hints):
    from course_lib.checks.generation import check_corner_coverage

    check_corner_coverage(0.25, (17 / 32) ** 2)
    check_corner_coverage(0.25, 0.2822)  # four digits are enough
    assert capsys.readouterr().out.count("all checks passed") == 4


@pytest.mark.parametrize("top_left, bottom_right, message", [
    (None, None, "fraction_top_left is still None"),  # the stub: the exercise as handed out
    (0.25, None, "fraction_bottom_right is still None"),
    (0.5, 0.2822, "one axis"),
    (1.0, 0.2822, "back inside"),
    (0.25, 0.25, "clipped to pixel 39"),
    (0.25, 17 / 32, "one axis"),
    (0.25, 1.0, "back inside"),
    (0.25, (33 / 64) ** 2, "not g \\* 2\\^k"),
    (0.25, 0.3, "not right"),
    ("1/4", 0.2822, "number"),
])
def test_corner_coverage_rejects(top_left, bottom_right, message, fresh_hints):
    from course_lib.checks.generation import check_corner_coverage

    with pytest.raises(CheckFailed, match=message):
        check_corner_coverage(top_left, bottom_right)


def test_corner_coverage_hints_come_in_steps(fresh_hints):
    from course_lib.checks.generation import check_corner_coverage

    for k in (1, 2, 3, 3):
        with pytest.raises(CheckFailed, match=f"Hint {k} of 3"):
            check_corner_coverage(0.25, 0.25)
