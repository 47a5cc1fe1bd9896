"""Smoke tests of course_lib.vision_train: the host CNN with every module, and a tiny training run."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data.digits import make_cluttered_digits
from course_lib.vision import ATTENTION_NAMES
from course_lib.vision_train import HostCNN, attention_box_mass, count_parameters, evaluate_classifier, train_classifier


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
