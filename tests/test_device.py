"""course_lib.device: device choice, seeding, the environment report."""

import random

import numpy as np
import pytest
import torch

from course_lib.device import environment_report, get_device, set_seed


def test_default_device_is_available(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    device = get_device()
    assert device.type in {"cpu", "cuda", "mps"}
    torch.zeros(1, device=device)


def test_explicit_cpu_and_env_variable(monkeypatch):
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device_is_a_value_error(monkeypatch):
    with pytest.raises(ValueError, match="prefer='cuda' is not available on this machine"):
        get_device("cuda")
    monkeypatch.setenv("COURSE_DEVICE", "cuda:0")
    with pytest.raises(ValueError, match="COURSE_DEVICE='cuda:0' is not available"):
        get_device()


def test_unknown_device_names():
    with pytest.raises(ValueError, match="not a device name"):
        get_device("gpu please")
    with pytest.raises(TypeError, match="prefer must be a str or torch.device"):
        get_device(3)


def test_set_seed_repeats_all_generators():
    set_seed(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(7)
    assert first == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(ValueError, match="seed must be >= 0"):
        set_seed(-1)


def test_environment_report_fields():
    report = environment_report("cpu")
    assert report.torch == torch.__version__
    assert report.chosen_device == "cpu"
    assert report.cpu_threads >= 1
    assert "lessons use   cpu" in str(report)


@pytest.mark.cuda
def test_cuda_is_chosen_when_present(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert get_device().type == "cuda"
    assert environment_report().gpus
