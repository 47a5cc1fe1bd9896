"""Measuring attention honestly: median times over repeats, peak tensor memory, FLOPs and TFLOP/s.

The FLOP count is the one FlashAttention reports (Dao et al. 2022, arXiv:2205.14135): a forward pass of
attention is two matmuls, ``Q K^T`` and ``P V``, each ``2 * N_q * N_k * d`` FLOPs per head, so
``4 * B * H * N_q * N_k * d`` in all (softmax not counted); causal masking halves it, the backward pass
costs 2.5 times the forward.

What ``peak_memory`` measures, and how (the same quantity on both devices): the largest amount of
tensor memory the call holds at once *beyond what was allocated before it started*, i.e. the call's
intermediates and its output, not its inputs.

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the memory
  allocated before the call.
- CPU: torch's profiler records every allocation and free of torch's CPU allocator (with
  ``profile_memory=True``); the running sum of those events, in time order, peaks at the call's peak.
  This counts tensor storage (scores, weights, the buffers a fused kernel allocates through torch),
  not Python objects, not the allocator's or the OS's rounding, and not memory a library allocates
  behind torch's back. ``tracemalloc`` would see none of it (torch does not allocate through Python),
  and the process's peak RSS only ever rises, so it cannot give one call's peak inside a notebook
  (a child process per measurement could, at the price of a process start and a copy of the inputs).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from course_lib._validate import check_int

__all__ = [
    "attention_flops",
    "tflops",
    "Timing",
    "synchronize",
    "num_threads",
    "time_fn",
    "time_interleaved",
    "paired_ratio",
    "peak_memory",
    "profiled_ops",
    "PEAK_TFLOPS",
    "gpu_peak_tflops",
    "device_slug",
    "device_name",
    "MIB",
]

MIB = 2**20

# Dense (no sparsity) FP16/BF16 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets: H100 SXM 989.4
# and H100 PCIe 756 (H100 white paper), A100 312 (A100 data sheet); the H200 has the H100 SXM's tensor
# cores and clocks (its data sheet lists 1,979 TFLOP/s *with* 2:4 sparsity, half of that dense), so it
# gets the H100 SXM's figure.
# Matched in order against torch.cuda.get_device_name(); the first pattern found wins.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", math.nan),  # not in our sources: unknown rather than guessed
    ("H100", 989.4),  # "NVIDIA H100 80GB HBM3" is the SXM part
    ("A100", 312.0),
)


def attention_flops(
    batch: int,
    heads: int,
    n_q: int,
    n_k: int | None = None,
    *,
    head_dim: int = 64,
    causal: bool = False,
    mode: str = "fwd",
) -> float:
    """FLOPs of scaled dot-product attention: 4·B·H·N_q·N_k·d forward (x0.5 causal, x2.5 bwd, x3.5 both).

    Introduced in lesson 16.
    """
    n_k = n_q if n_k is None else n_k
    for name, value in (("batch", batch), ("heads", heads), ("n_q", n_q), ("n_k", n_k), ("head_dim", head_dim)):
        check_int(name, value, minimum=0)
    factors = {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}
    if mode not in factors:
        raise ValueError(f"mode must be one of {tuple(factors)}, got {mode!r}")
    flops = 4.0 * batch * heads * n_q * n_k * head_dim * factors[mode]
    return flops * 0.5 if causal else flops


def tflops(flops: float, seconds: float) -> float:
    """Achieved TFLOP/s for ``flops`` done in ``seconds``. Introduced in lesson 16."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return flops / seconds / 1e12


@dataclass
class Timing:
    """Seconds per call, one value per repeat; each repeat averages ``inner`` back-to-back calls.

    Introduced in lesson 16.
    """

    times: list[float] = field(default_factory=list)
    inner: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)


def _as_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    return torch.device(device)


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for the device's queued work (CUDA, MPS); a no-op on CPU, where calls are synchronous.

    Introduced in lesson 16.
    """
    device = _as_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the previous number.

    With one thread and ``clock="cpu"``, timings on a CPU shared with other jobs stop measuring the
    waiting (a parallel operation otherwise waits for its slowest thread to get a core). Introduced in lesson 16.
    """
    check_int("n", n, minimum=1)
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _run(fn: Callable[[], Any], device: torch.device, inner: int, clock: Callable[[], float]) -> float:
    synchronize(device)
    start = clock()
    for _ in range(inner):
        fn()
    synchronize(device)
    return (clock() - start) / inner


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    device: torch.device | str | None = None,
    *,
    repeats: int = 5,
    warmup: int = 1,
    min_seconds: float = 0.01,
    max_inner: int = 1000,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Time several functions in one run, round robin, so that a noisy machine slows them all alike.

    Each function is first called ``warmup`` times (the last warm-up call sets ``inner``, the number of
    back-to-back calls that fill ``min_seconds``: short calls are averaged, and on a GPU the Python
    overhead of one call overlaps the kernel of the previous one, as in a real model). Then each of
    ``repeats`` rounds times every function once, in the given order on even rounds and the reverse
    order on odd ones. Report ``Timing.median``; compare functions with ``paired_ratio``.

    ``clock="wall"`` (default) measures elapsed time. ``clock="cpu"`` measures the CPU seconds this
    process used (``time.process_time``): on a CPU shared with other jobs and with *one* torch thread it
    leaves out the time spent waiting for a core; with several threads it adds up their times, spin-waits
    included, so use it with ``torch.set_num_threads(1)``. It cannot see GPU time. Introduced in lesson 16.
    """
    if not fns:
        raise ValueError("fns must name at least one function")
    for name, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"fns[{name!r}] must be callable, got {type(fn).__name__}")
    check_int("repeats", repeats, minimum=1)
    if check_int("warmup", warmup) < 1:
        raise ValueError(f"warmup must be an int >= 1 (it also calibrates the inner loop), got {warmup!r}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {tuple(CLOCKS)}, got {clock!r}")
    device = _as_device(device)
    if clock == "cpu" and device.type != "cpu":
        raise ValueError(f"clock='cpu' measures CPU time and cannot time work on {device}; use clock='wall'")
    tick = CLOCKS[clock]
    inner: dict[str, int] = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            seconds = _run(fn, device, 1, tick)
        inner[name] = int(min(max_inner, max(1, math.ceil(min_seconds / max(seconds, 1e-9)))))
    timings = {name: Timing(inner=inner[name]) for name in fns}
    names = list(fns)
    for round_ in range(repeats):
        # Alternate the order, so that no function always follows the same neighbour (whose cache and
        # allocator leftovers would bias it the same way every round).
        for name in names if round_ % 2 == 0 else names[::-1]:
            timings[name].times.append(_run(fns[name], device, inner[name], tick))
    return timings


def time_fn(
    fn: Callable[[], Any],
    device: torch.device | str | None = None,
    *,
    repeats: int = 5,
    warmup: int = 1,
    min_seconds: float = 0.01,
    clock: str = "wall",
) -> Timing:
    """Median-ready timing of one function: ``warmup`` calls, then ``repeats`` timed rounds. Introduced in lesson 16."""
    return time_interleaved({"fn": fn}, device, repeats=repeats, warmup=warmup, min_seconds=min_seconds,
                            clock=clock)["fn"]


def paired_ratio(a: Timing, b: Timing) -> float:
    """Median over rounds of a's time / b's time in the same round (from one ``time_interleaved`` run).

    Pairing each round's times cancels slow drifts of a shared machine that a ratio of medians keeps.
    Introduced in lesson 16.
    """
    if len(a.times) != len(b.times) or not a.times:
        raise ValueError(f"a and b must hold the same number of rounds, got {len(a.times)} and {len(b.times)}")
    return statistics.median(x / y for x, y in zip(a.times, b.times, strict=True))


def _quiet_profiler() -> None:
    # Kineto, the profiler's engine, prints start/stop lines on stderr below level 6; they would land
    # in a notebook's output. Set before the first profile (the library reads it lazily).
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")


def profiled_ops(fn: Callable[[], Any]) -> list[str]:
    """Names of the aten operators one call of ``fn`` runs, in order of first appearance.

    Shows which kernel ran, e.g. ``aten::_scaled_dot_product_flash_attention_for_cpu``. Introduced in lesson 16.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _quiet_profiler()
    from torch.autograd.profiler import profile

    with profile(use_cpu=True) as prof:
        fn()
    events = sorted(prof.function_events, key=lambda e: e.time_range.start)
    return list(dict.fromkeys(e.name for e in events if e.name.startswith("aten::")))


def _cpu_peak_bytes(fn: Callable[[], Any]) -> int:
    _quiet_profiler()
    from torch.autograd.profiler import profile

    with profile(use_cpu=True, profile_memory=True) as prof:
        result = fn()
        del result
    results = getattr(prof, "kineto_results", None)
    if results is None:  # pragma: no cover - depends on torch internals
        raise RuntimeError("this torch build's profiler exposes no memory events; cannot measure CPU memory")
    events = [e for e in results.events() if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return int(peak)


def peak_memory(fn: Callable[[], Any], device: torch.device | str | None = None) -> int:
    """Peak bytes of tensor memory that one call of ``fn`` holds beyond what existed before it.

    CUDA: ``max_memory_allocated`` after a reset. CPU: the running sum of the profiler's allocation
    events (see the module's docstring for exactly what that counts). Run it apart from timing:
    the profiler slows the call down. Introduced in lesson 16.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    device = _as_device(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del result
        return int(peak)
    if device.type == "cpu":
        return _cpu_peak_bytes(fn)
    raise ValueError(f"peak_memory measures cpu and cuda devices, got device {device}")


def device_name(device: torch.device | str | None = None) -> str:
    """A readable name of the device: the GPU's name, or the CPU's model and thread count. Introduced in lesson 16."""
    device = _as_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{model}, {threads} thread{'' if threads == 1 else 's'}"


def device_slug(device: torch.device | str | None = None) -> str:
    """Short file-name-safe name: ``cpu``, ``mps``, or the GPU's first two words (``nvidia-h100``).

    Introduced in lesson 16.
    """
    device = _as_device(device)
    if device.type != "cuda":
        return device.type
    words = torch.cuda.get_device_name(device).split()[:2]
    return re.sub(r"[^a-z0-9]+", "-", " ".join(words).lower()).strip("-") or "cuda"


def gpu_peak_tflops(name: str, dtype: torch.dtype = torch.bfloat16) -> float | None:
    """Dense FP16/BF16 tensor-core peak of a GPU named like ``torch.cuda.get_device_name()``, or None.

    None when the GPU is not in ``PEAK_TFLOPS`` or the dtype is not fp16/bf16 (other dtypes have
    other peaks, which this table does not hold). Introduced in lesson 16.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    for pattern, peak in PEAK_TFLOPS:
        if pattern.lower() in name.lower():
            return None if math.isnan(peak) else peak
    return None
