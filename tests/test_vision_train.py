"""Smoke tests of course_lib.vision_train: the host CNN with every module, and a tiny training run."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data.digits import make_cluttered_digits
from course_lib.vision import ATTENTION_NAMES
from course_lib.vision_train import (
    HostCNN,
    attention_box_auc,
    attention_box_mass,
    box_auc,
    count_parameters,
    evaluate_classifier,
    train_classifier,
)


@pytest.fixture(scope="module")
def tiny():
    return make_cluttered_digits(64, seed=0, split="train")


@pytest.mark.parametrize("name", [None, *ATTENTION_NAMES])
def test_host_works_with_every_module(name):
    torch.manual_seed(0)
    model = HostCNN(name, widths=(8, 16, 32))
    logits = model(torch.rand(2, 1, 40, 40))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    assert len(model.attention_modules()) == (0 if name is None else 2)
    assert model(torch.rand(1, 1, 28, 36)).shape == (1, 10)  # any canvas size


def test_host_adds_exactly_the_module_parameters():
    base = count_parameters(HostCNN(None))
    # two residual blocks (32 and 64 channels) each get one module; SE with r=16 at C: 2C²/16 + C/16 + C
    def se(c: int) -> int:
        return 2 * c * c // 16 + c // 16 + c

    assert count_parameters(HostCNN("se")) == base + se(32) + se(64)
    assert count_parameters(HostCNN("cam")) == base + 2


def test_host_rejects_unknown_module():
    with pytest.raises(ValueError, match="valid names: None, se, cbam"):
        HostCNN("glimpse")


def test_training_smoke(tiny):
    torch.manual_seed(0)
    model = HostCNN("cbam", widths=(8, 16, 32))
    history = train_classifier(model, tiny, epochs=3, batch_size=32, lr=3e-3, val_data=tiny[:32], progress=False)
    assert len(history["train_loss"]) == 3 and len(history["val_acc"]) == 3
    assert all(math.isfinite(v) for v in history["train_loss"])
    assert history["train_loss"][-1] < history["train_loss"][0]
    result = evaluate_classifier(model, tiny)
    assert 0.0 <= result["accuracy"] <= 1.0 and math.isfinite(result["loss"])
    mass = attention_box_mass(model, tiny)
    assert mass is not None and 0.0 < mass < 1.0
    assert not model.training


def test_training_is_repeatable(tiny):
    losses = []
    for _ in range(2):
        torch.manual_seed(1)
        model = HostCNN(None, widths=(8, 16, 32))
        losses.append(train_classifier(model, tiny[:32], epochs=1, batch_size=16, seed=3, progress=False)["train_loss"])
    assert losses[0] == losses[1]


def test_box_mass_is_none_without_spatial_map(tiny):
    assert attention_box_mass(HostCNN(None, widths=(8, 16, 32)), tiny[:8]) is None
    assert attention_box_mass(HostCNN("se", widths=(8, 16, 32)), tiny[:8]) is None
    assert attention_box_mass(HostCNN("eca", widths=(8, 16, 32)), tiny[:8]) is None
    pam = attention_box_mass(HostCNN("pam", widths=(8, 16, 32)), tiny[:8])
    assert pam is not None and 0.0 < pam < 1.0


def test_train_classifier_validates():
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_classifier(HostCNN(None), (torch.rand(4, 1, 40, 40), torch.zeros(4, dtype=torch.long)), epochs=0)
    with pytest.raises(TypeError, match="data must have .images and .labels"):
        train_classifier(HostCNN(None), torch.rand(4, 1, 40, 40), epochs=1)


# --------------------------------------------------------------------------------------------------
# box AUC: a rank reading that means the same for sigmoid gates and softmax maps
# --------------------------------------------------------------------------------------------------
BOXES = torch.tensor([[3, 2, 7, 5], [0, 0, 4, 10], [5, 5, 10, 10]])  # (x0, y0, x1, y1), x1/y1 exclusive


def _box_indicator(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    out = torch.zeros(len(boxes), h, w)
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        out[i, y0:y1, x0:x1] = 1.0
    return out


def _brute_force_auc(maps: torch.Tensor, boxes: torch.Tensor, canvas: int) -> torch.Tensor:
    """Every (box pixel, outside pixel) pair of the canvas, the map upsampled by repetition."""
    h = maps.shape[1]
    up = maps.double().repeat_interleave(canvas // h, 1).repeat_interleave(canvas // maps.shape[2], 2)
    inside = _box_indicator(boxes, canvas, canvas).bool()
    out = []
    for m, box in zip(up, inside, strict=True):
        a, o = m[box], m[~box]
        out.append(((a[:, None] > o[None]).double() + 0.5 * (a[:, None] == o[None]).double()).mean())
    return torch.stack(out)


def test_box_auc_perfect_reversed_and_constant():
    on_box = _box_indicator(BOXES, 10, 10)
    assert torch.allclose(box_auc(on_box, BOXES), torch.ones(3, dtype=torch.float32))
    assert torch.allclose(box_auc(-on_box, BOXES), torch.zeros(3))
    assert torch.allclose(box_auc(torch.full((3, 10, 10), 0.5), BOXES), torch.full((3,), 0.5))
    # a softmax over the map and a sigmoid gate of the same scores rank the box the same way
    scores = torch.randn(3, 10, 10, generator=torch.Generator().manual_seed(0)) + 2 * on_box
    softmax = scores.flatten(1).softmax(dim=1).view(3, 10, 10)
    assert torch.allclose(box_auc(torch.sigmoid(scores), BOXES), box_auc(softmax, BOXES))


@pytest.mark.parametrize("transform", [torch.sigmoid, torch.exp, lambda m: 3.0 * m - 7.0, lambda m: m.pow(3)],
                         ids=["sigmoid", "exp", "affine", "cube"])
def test_box_auc_ignores_monotone_transforms(transform):
    maps = torch.randn(3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    maps = maps + _box_indicator(BOXES, 10, 10).double()  # some preference for the box, not a perfect one
    reference = box_auc(maps, BOXES)
    assert ((reference > 0.5) & (reference < 1.0)).all()
    assert torch.allclose(box_auc(transform(maps), BOXES), reference, atol=1e-12)


def test_box_auc_matches_brute_force_at_lower_resolution():
    # a 5x5 map over a 40x40 canvas; boxes cut cells, whose pixels then lie on both sides and tie
    boxes = torch.tensor([[3, 2, 29, 17], [0, 0, 8, 40], [13, 21, 40, 38]])
    maps = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(2))
    maps[0, 1, 2] = maps[0, 3, 3]  # an exact tie between two cells
    got = box_auc(maps, boxes, canvas_size=40)
    assert torch.allclose(got.double(), _brute_force_auc(maps, boxes, 40), atol=1e-6)
    assert torch.allclose(box_auc(maps, boxes, canvas_size=(40, 40)), got)


def test_box_auc_rejects_bad_input():
    maps = torch.rand(3, 10, 10)
    with pytest.raises(ValueError, match=r"maps must have 3 dimensions \(B, h, w\), got shape \(10, 10\)"):
        box_auc(maps[0], BOXES)
    with pytest.raises(ValueError, match=r"boxes must have shape \(B, 4\) = \(3, 4\).*got \(2, 4\)"):
        box_auc(maps, BOXES[:2])
    with pytest.raises(ValueError, match=r"boxes must have 2 dimensions \(B, 4\), got shape \(12,\)"):
        box_auc(maps, BOXES.flatten())
    with pytest.raises(TypeError, match="maps must be a torch.Tensor, got ndarray"):
        box_auc(maps.numpy(), BOXES)
    with pytest.raises(ValueError, match=r"boxes must lie inside the canvas.*\(10, 10\).*pass canvas_size"):
        box_auc(maps, BOXES * 4)
    with pytest.raises(ValueError, match="x0 < x1"):
        box_auc(maps, torch.tensor([[3, 2, 3, 5]] * 3))
    with pytest.raises(ValueError, match="no outside pixels"):
        box_auc(maps, torch.tensor([[0, 0, 10, 10]] * 3))
    with pytest.raises(ValueError, match="maps must be finite"):
        box_auc(torch.full((3, 10, 10), float("nan")), BOXES)
    with pytest.raises(ValueError, match="canvas_size must be >= 1, got 0"):
        box_auc(maps, BOXES, canvas_size=0)


def test_attention_box_auc(tiny):
    assert attention_box_auc(HostCNN(None, widths=(8, 16, 32)), tiny[:8]) is None
    assert attention_box_auc(HostCNN("se", widths=(8, 16, 32)), tiny[:8]) is None
    for name in ("pam", "cbam", "yolo_sam"):
        torch.manual_seed(0)
        model = HostCNN(name, widths=(8, 16, 32))
        model.train()
        auc = attention_box_auc(model, tiny[:40], batch_size=16)
        assert auc is not None and 0.0 <= auc <= 1.0
        assert model.training  # restored
