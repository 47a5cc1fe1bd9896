"""Checkers for lesson 15: the glimpse sensor's crops, RAM's REINFORCE loss with a baseline, and the repaired
attention pooling of the tutorial article's ``AttentionGAN``.

Each checker runs the learner's code on several cases against ``course_lib.generation`` and names the typical
mistake an answer matches: x and y swapped, the patch cornered instead of centred, strided sampling instead of
averaging, a clamped window instead of zero padding, a baseline that is not detached, a mean over time, a
``view`` where a transpose is needed. Introduced in lesson 15.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.checks.core import CheckFailed, call_learner, compare, passed, require_callable
from course_lib.checks.thinking import StepHints, check_number
from course_lib.generation.glimpse import glimpse_sensor, location_to_pixel

__all__ = ["check_glimpse_crops", "check_ram_reinforce_loss", "check_attention_pool", "CORNER_EXAMPLE",
           "largest_patch_coverage", "check_corner_coverage"]


# --------------------------------------------------------------------------------------------------
# The glimpse sensor
# --------------------------------------------------------------------------------------------------
def _glimpse_variant(images: Tensor, loc: Tensor, g: int, k: int, *, swap: bool = False, corner: bool = False,
                     subsample: bool = False, clamp: bool = False) -> Tensor:
    """The sensor with one known mistake switched on (the reference when all flags are off)."""
    size = images.shape[-1]
    centre = location_to_pixel(loc.flip(-1) if swap else loc, size)  # (B, 2): column, row
    crops = []
    for scale in range(k):
        side = g * 2 ** scale
        rows = []
        for b in range(images.shape[0]):
            c0 = int(centre[b, 0]) - (0 if corner else side // 2)
            r0 = int(centre[b, 1]) - (0 if corner else side // 2)
            if clamp:
                c0 = min(max(c0, 0), max(size - side, 0))
                r0 = min(max(r0, 0), max(size - side, 0))
            canvas = F.pad(images[b, 0], (side, side, side, side))
            rows.append(canvas[r0 + side:r0 + 2 * side, c0 + side:c0 + 2 * side])  # (s, s)
        patch = torch.stack(rows)[:, None]  # (B, 1, s, s)
        f = 2 ** scale
        crops.append((patch[:, :, ::f, ::f] if subsample else F.avg_pool2d(patch, f))[:, 0])
    return torch.stack(crops, 1)  # (B, k, g, g)


def check_glimpse_crops(glimpse: Callable[..., Any]) -> None:
    """``glimpse(images, loc, patch_size, num_scales)`` -> (B, k, g, g), as ``course_lib.generation.glimpse_sensor``.

    Introduced in lesson 15.
    """
    require_callable(glimpse, "glimpse")
    gen = torch.Generator().manual_seed(15)
    cases = (
        (3, 16, 4, 2, torch.tensor([[0.0, 0.0], [-0.6, 0.3], [0.5, -0.9]])),
        (2, 24, 4, 3, torch.tensor([[0.4, -0.2], [-1.0, 1.0]])),  # corners: zero padding matters
        (2, 20, 2, 3, torch.tensor([[0.9, 0.1], [-0.3, -0.75]])),
    )
    for batch, size, g, k, loc in cases:
        images = torch.rand(batch, 1, size, size, generator=gen)
        case = f"images {(batch, 1, size, size)}, patch_size={g}, num_scales={k}, loc={loc.tolist()}"
        got = call_learner(glimpse, images.clone(), loc.clone(), g, k, name="glimpse")
        expected = glimpse_sensor(images, loc, patch_size=g, num_scales=k)
        mistakes = {
            "x and y are swapped: loc[:, 0] is x (the column), loc[:, 1] is y (the row)":
                _glimpse_variant(images, loc, g, k, swap=True),
            "the patch starts at the centre pixel; centre it: the top-left corner is centre - side // 2":
                _glimpse_variant(images, loc, g, k, corner=True),
            "the larger patches are sampled every 2**k pixels; the retina averages them (avg_pool2d by 2**k)":
                _glimpse_variant(images, loc, g, k, subsample=True),
            "the window is pushed back inside the image at the border; the sensor pads with zeros instead, so the "
            "patch stays centred on the location": _glimpse_variant(images, loc, g, k, clamp=True),
            "the scales are in reverse order: scale 0 (the smallest, sharpest patch) comes first": expected.flip(1),
        }
        compare(got, expected, "glimpse", case, mistakes=mistakes)
    passed("glimpse")


# --------------------------------------------------------------------------------------------------
# REINFORCE with a baseline
# --------------------------------------------------------------------------------------------------
def _reinforce_reference(log_probs: Tensor, reward: Tensor, baseline: Tensor) -> Tensor:
    return -((reward[:, None] - baseline).detach() * log_probs).sum(1).mean()


def check_ram_reinforce_loss(loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``loss_fn(log_probs (B, T), reward (B,), baseline (B, T))`` -> ``-mean_b sum_t (R_b - b_bt).detach() log pi_bt``.

    Checks the value, the gradient reaching ``log_probs`` and that no gradient reaches ``baseline``.
    Introduced in lesson 15.
    """
    require_callable(loss_fn, "reinforce_loss")
    gen = torch.Generator().manual_seed(4)
    for batch, steps in ((4, 3), (6, 5), (1, 2)):
        log_probs = (torch.randn(batch, steps, generator=gen) - 1.0).requires_grad_()
        reward = (torch.rand(batch, generator=gen) > 0.5).float()
        reward[0] = 1.0
        reward[-1] = 0.0 if batch > 1 else reward[-1]
        baseline = (0.2 + 0.6 * torch.rand(batch, steps, generator=gen)).requires_grad_()
        case = f"log_probs {(batch, steps)}, reward {reward.tolist()}"
        got = call_learner(loss_fn, log_probs, reward.clone(), baseline, name="reinforce_loss")
        if not isinstance(got, Tensor):
            raise CheckFailed(f"reinforce_loss should return a scalar tensor, got {type(got).__name__}")
        if got.dim() != 0:
            raise CheckFailed(f"reinforce_loss{' on ' + case}: return one number (a scalar, shape ()), got shape "
                              f"{tuple(got.shape)}; sum over the glimpses, then average over the batch")
        lp, bl = log_probs.detach(), baseline.detach()
        advantage = reward[:, None] - bl  # (B, T)
        mistakes = {
            "the baseline is missing: the advantage is reward - baseline": -(reward[:, None] * lp).sum(1).mean(),
            "the sign is flipped (or the advantage is baseline - reward): the loss is -(reward - baseline) * "
            "log pi, so that minimising it raises the probability of better-than-expected actions":
                (advantage * lp).sum(1).mean(),
            "you averaged over the glimpses too; sum the log-probabilities of the T glimpses (the log-probability "
            "of the whole path), then average over the batch": -(advantage * lp).mean(),
        }
        compare(got.detach(), _reinforce_reference(lp, reward, bl), "reinforce_loss", case, mistakes=mistakes)
        if not got.requires_grad:
            raise CheckFailed("reinforce_loss returns the right number but no gradient reaches log_probs: do not "
                              "detach log_probs (only the reward and the baseline)")
        grad_lp, grad_bl = torch.autograd.grad(got, (log_probs, baseline), allow_unused=True)
        if grad_bl is not None and grad_bl.abs().max() > 0:
            raise CheckFailed("the baseline receives a gradient from the REINFORCE loss: detach (reward - baseline). "
                              "The baseline is trained by its own squared error; here it would learn to make the "
                              "loss small instead of predicting the reward")
        if grad_lp is None:
            raise CheckFailed("no gradient reaches log_probs: do not detach them")
        compare(grad_lp, -advantage / batch, "d reinforce_loss / d log_probs", case)
    passed("reinforce_loss")


# --------------------------------------------------------------------------------------------------
# The article's attention pooling, repaired
# --------------------------------------------------------------------------------------------------
def _pool(features: Tensor, score: nn.Linear, *, flat: Tensor | None = None, softmax_dim: int = 1,
          weighted: bool = True) -> tuple[Tensor, Tensor]:
    if flat is None:
        flat = features.flatten(2).transpose(1, 2)  # (B, N, C)
    logits = score(flat)  # (B, N, 1)
    weights = torch.softmax(logits, dim=softmax_dim).squeeze(-1)  # (B, N)
    context = (weights.unsqueeze(-1) * flat).sum(1) if weighted else flat.mean(1)
    return context, weights


def check_attention_pool(attention_pool: Callable[[Tensor, nn.Linear], Any]) -> None:
    """``attention_pool(features (B, C, H, W), score nn.Linear(C, 1))`` -> ``(context (B, C), weights (B, H*W))``.

    The weights are a softmax over the H*W positions of the score of each position's C channels. Introduced in
    lesson 15.
    """
    require_callable(attention_pool, "attention_pool")
    gen = torch.Generator().manual_seed(7)
    for batch, c, h, w in ((2, 128, 4, 4), (3, 8, 3, 5), (1, 6, 2, 2)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c + h)
            score = nn.Linear(c, 1)
            with torch.no_grad():
                score.weight.mul_(4.0)  # peaked weights, so that a wrong axis shows
        features = torch.randn(batch, c, h, w, generator=gen)
        case = f"features of shape {(batch, c, h, w)}"
        got = call_learner(attention_pool, features.clone(), score, name="attention_pool")
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(f"attention_pool should return a pair (context, weights), got {type(got).__name__}")
        with torch.no_grad():
            context, weights = _pool(features, score)
            scrambled = _pool(features, score, flat=features.reshape(batch, h * w, c))
            wrong_axis = _pool(features, score, softmax_dim=-1)
            mean_pool = _pool(features, score, weighted=False)
            compare(got[1], weights, "weights", case, mistakes={
                "features.view(B, H*W, C) / reshape without a transpose mixes channels and positions: use "
                "features.flatten(2).transpose(1, 2) to put the channels last": scrambled[1],
                "the softmax runs over the size-1 score axis (every weight is 1); take it over the positions":
                    wrong_axis[1],
                "you returned the weights with a trailing axis of 1; squeeze it: shape (B, H*W)": weights[..., None],
            })
            compare(got[0], context, "context", case, mistakes={
                "features.view(B, H*W, C) / reshape without a transpose mixes channels and positions: use "
                "features.flatten(2).transpose(1, 2)": scrambled[0],
                "the context is a plain mean of the positions; weigh each position by its attention weight":
                    mean_pool[0],
                "the softmax runs over the size-1 score axis, so the context is a plain sum": wrong_axis[0],
            })
    passed("attention_pool")


# --------------------------------------------------------------------------------------------------
# Predict how much of the largest patch lies on the image, at two corners
# --------------------------------------------------------------------------------------------------
CORNER_EXAMPLE: dict[str, Any] = {"size": 40, "patch_size": 8, "num_scales": 3,
                                  "top_left": (-1.0, -1.0), "bottom_right": (1.0, 1.0)}


def largest_patch_coverage(loc: tuple[float, float], *, size: int, patch_size: int, num_scales: int) -> float:
    """The fraction of the largest patch that reads the image (not zero padding) at ``loc`` = (x, y).

    Measured by running ``glimpse_sensor`` on an image of ones: averaging keeps the mean, so the mean of the
    largest scale's crop is the fraction of its pixels inside the image. Introduced in lesson 15.
    """
    ones = torch.ones(1, 1, size, size)
    crops = glimpse_sensor(ones, torch.tensor([loc]), patch_size=patch_size, num_scales=num_scales)  # (1, k, g, g)
    return float(crops[0, -1].mean())


def check_corner_coverage(fraction_top_left: object, fraction_bottom_right: object) -> None:
    """The fractions of the largest glimpse patch on the image at ``CORNER_EXAMPLE``'s two corners, compared with
    what ``glimpse_sensor`` measures. Introduced in lesson 15."""
    ex = CORNER_EXAMPLE
    size, g, k = ex["size"], ex["patch_size"], ex["num_scales"]
    side = g * 2 ** (k - 1)

    def cover(loc: tuple[float, float], scales: int = k) -> float:
        return largest_patch_coverage(loc, size=size, patch_size=g, num_scales=scales)

    top_left, bottom_right = cover(ex["top_left"]), cover(ex["bottom_right"])
    hints_tl = StepHints("generation-corner-top-left", [
        f"the largest scale is scale k - 1 = {k - 1}: a square of side g * 2^(k-1) = {side} pixels, centred on the "
        f"centre pixel; what lies outside the {size} x {size} image reads zeros",
        f"at (x, y) = (-1, -1) the centre pixel is floor(0 / 2 * {size}) = 0; the window starts at 0 - {side} // 2 "
        f"= {-(side // 2)}: how many of its {side} rows (and columns) are rows 0, 1, ... of the image?",
        f"{side // 2} of {side} rows and {side // 2} of {side} columns lie on the image: the fraction is an area, "
        f"({side // 2} / {side})^2",
    ])
    check_number(fraction_top_left, "fraction_top_left", top_left, hints_tl, rel_tol=1e-3, mistakes={
        "that is one axis: the patch is a square, so the rows and the columns are both cut": 0.5,
        "the sensor does not move the window back inside the image: it reads zeros outside": 1.0,
        f"the largest patch has side g * 2^(k-1) = {side}, not g * 2^k = {2 * side}": cover(ex["top_left"], k + 1),
    }, why=f"the window spans rows and columns {-(side // 2)}..{side // 2 - 1}: {side // 2} of {side} on the "
           f"image in each direction, ({side // 2}/{side})^2 = {top_left:.4f}, measured with glimpse_sensor")
    centre = size - 1
    inside = size - (centre - side // 2)
    hints_br = StepHints("generation-corner-bottom-right", [
        "do not assume the corners are symmetric: compute the centre pixel at (x, y) = (1, 1) from the formula "
        "floor((loc + 1) / 2 * S), then the clip to [0, S - 1]",
        f"the centre is floor(2 / 2 * {size}) = {size}, clipped to {centre}; the window starts at {centre} - "
        f"{side // 2} = {centre - side // 2}: how many of the image's rows {centre - side // 2}..{size - 1} is that?",
        f"{inside} of {side} rows and {inside} of {side} columns lie on the image: ({inside} / {side})^2",
    ])
    check_number(fraction_bottom_right, "fraction_bottom_right", bottom_right, hints_br, rel_tol=1e-3, mistakes={
        f"that would be the top-left corner's answer: at (1, 1) the centre is clipped to pixel {centre}, one short "
        f"of {size}, and the window starts at {centre - side // 2}, so one more row and column lie inside":
            top_left,
        f"that is one axis: the patch is a square, ({inside} / {side}) in each direction": inside / side,
        "the sensor does not move the window back inside the image: it reads zeros outside": 1.0,
        f"the largest patch has side g * 2^(k-1) = {side}, not g * 2^k = {2 * side}": cover(ex["bottom_right"], k + 1),
    }, why=f"the centre pixel is clipped to {centre}, so the window covers image rows and columns "
           f"{centre - side // 2}..{size - 1}: ({inside}/{side})^2 = {bottom_right:.4f}, a little more than at the "
           f"top-left corner, measured with glimpse_sensor")
