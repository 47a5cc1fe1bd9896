"""Device choice, seeding and a one-call environment report (lesson 00)."""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from course_lib._validate import check_int

__all__ = ["get_device", "set_seed", "environment_report", "EnvironmentReport", "mps_available"]

_KNOWN_TYPES = ("cpu", "cuda", "mps")


def mps_available() -> bool:
    """True when Apple's Metal backend is usable. Introduced in lesson 00."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _is_available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        return device.index is None or device.index < torch.cuda.device_count()
    if device.type == "mps":
        return mps_available()
    return False


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Pick the device a lesson runs on.

    Order: the ``prefer`` argument, then the ``COURSE_DEVICE`` environment variable, then the first of
    cuda, mps, cpu that is available. An explicit choice that is not available is a ``ValueError``
    (silently falling back would make a learner believe they are on a GPU when they are not).
    Introduced in lesson 00.
    """
    source = "prefer"
    choice = prefer
    if choice is None:
        choice = os.environ.get("COURSE_DEVICE") or None
        source = "COURSE_DEVICE"
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(choice, (str, torch.device)):
        raise TypeError(f"{source} must be a str or torch.device, got {type(choice).__name__}")
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise ValueError(f"{source}={choice!r} is not a device name; use one of {_KNOWN_TYPES}") from exc
    if device.type not in _KNOWN_TYPES:
        raise ValueError(f"{source}={choice!r}: unsupported device type {device.type!r}; use one of {_KNOWN_TYPES}")
    if not _is_available(device):
        raise ValueError(f"{source}={choice!r} is not available on this machine (cuda available: "
                         f"{torch.cuda.is_available()}, mps available: {mps_available()})")
    return device


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices) so a lesson is repeatable.

    Introduced in lesson 00.
    """
    seed = check_int("seed", seed, minimum=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class EnvironmentReport:
    """What lesson 00 shows: versions, threads and the devices this machine offers. Introduced in lesson 00."""

    python: str
    platform: str
    torch: str
    numpy: str
    cpu_threads: int
    cuda_available: bool
    mps_available: bool
    gpus: list[str] = field(default_factory=list)
    chosen_device: str = "cpu"

    def lines(self) -> list[str]:
        gpu = ", ".join(self.gpus) if self.gpus else "none"
        return [
            f"Python        {self.python}",
            f"platform      {self.platform}",
            f"torch         {self.torch}",
            f"numpy         {self.numpy}",
            f"CPU threads   {self.cpu_threads}",
            f"CUDA          {'yes' if self.cuda_available else 'no'} (GPUs: {gpu})",
            f"MPS (Apple)   {'yes' if self.mps_available else 'no'}",
            f"lessons use   {self.chosen_device}",
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def environment_report(prefer: str | torch.device | None = None) -> EnvironmentReport:
    """Collect the environment facts a learner should check before the first lesson. Introduced in lesson 00."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    gpus = [torch.cuda.get_device_name(i) for i in range(count)]
    return EnvironmentReport(
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.machine()}",
        torch=torch.__version__,
        numpy=np.__version__,
        cpu_threads=torch.get_num_threads(),
        cuda_available=torch.cuda.is_available(),
        mps_available=mps_available(),
        gpus=gpus,
        chosen_device=str(get_device(prefer)),
    )
