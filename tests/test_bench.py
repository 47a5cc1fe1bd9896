"""course_lib.bench (FLOPs, timing, peak memory, GPU peaks) and the attention benchmark script."""

from __future__ import annotations

import csv
import importlib.util
import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib.bench import (
    MIB,
    Timing,
    attention_flops,
    device_name,
    device_slug,
    gpu_peak_tflops,
    num_threads,
    paired_ratio,
    peak_memory,
    profiled_ops,
    tflops,
    time_fn,
    time_interleaved,
)

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- FLOPs
def test_attention_flops_formula():
    assert attention_flops(2, 3, 5, head_dim=7) == 4 * 2 * 3 * 5 * 5 * 7
    assert attention_flops(1, 1, 4, 6, head_dim=8) == 4 * 4 * 6 * 8  # N_q != N_k
    assert attention_flops(1, 1, 4, head_dim=8, causal=True) == 0.5 * 4 * 16 * 8
    assert attention_flops(1, 1, 4, head_dim=8, mode="bwd") == 2.5 * 4 * 16 * 8
    assert attention_flops(1, 1, 4, head_dim=8, mode="fwd_bwd") == 3.5 * 4 * 16 * 8


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch": -1}, ValueError, "batch must be >= 0, got -1"),
    ({"head_dim": 1.5}, TypeError, "head_dim must be an int, got float 1.5"),
    ({"mode": "train"}, ValueError, "mode"),
])
def test_attention_flops_rejects_bad_input(kwargs, error, match):
    args = {"batch": 1, "heads": 1, "n_q": 4, "head_dim": 8, **kwargs}
    with pytest.raises(error, match=match):
        attention_flops(**args)


def test_tflops():
    assert tflops(2e12, 0.5) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="seconds"):
        tflops(1.0, 0.0)


# ------------------------------------------------------------------------------------------- timing
def test_time_interleaved_medians_rounds_and_inner_loop():
    calls = {"slow": 0, "fast": 0}

    def slow():
        calls["slow"] += 1
        time.sleep(0.004)

    def fast():
        calls["fast"] += 1

    timings = time_interleaved({"slow": slow, "fast": fast}, "cpu", repeats=4, warmup=1, min_seconds=0.002)
    assert len(timings["slow"].times) == len(timings["fast"].times) == 4
    assert timings["slow"].inner == 1 and timings["fast"].inner > 1  # short calls are averaged
    assert calls["slow"] == 1 + 4  # warm-up + one call per round
    assert calls["fast"] == 1 + 4 * timings["fast"].inner
    assert 0.003 < timings["slow"].median < 0.1
    assert timings["fast"].median < timings["slow"].median
    assert timings["slow"].min <= timings["slow"].median <= timings["slow"].max


def test_time_fn_and_validation():
    t = time_fn(lambda: None, repeats=3, min_seconds=0.0)
    assert isinstance(t, Timing) and len(t.times) == 3
    with pytest.raises(ValueError, match="repeats"):
        time_interleaved({"f": lambda: None}, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        time_interleaved({"f": lambda: None}, warmup=0)
    with pytest.raises(ValueError, match="at least one"):
        time_interleaved({})
    with pytest.raises(TypeError, match="callable"):
        time_interleaved({"f": 3})
    with pytest.raises(TypeError, match="device"):
        time_fn(lambda: None, device=3)


def test_cpu_clock_leaves_out_waiting():
    def wait():
        time.sleep(0.01)

    assert time_fn(wait, repeats=2, clock="wall").median >= 0.009
    assert time_fn(wait, repeats=2, clock="cpu").median < 0.005  # sleeping uses no CPU time
    with pytest.raises(ValueError, match="clock"):
        time_fn(wait, clock="gpu")
    with pytest.raises(ValueError, match="clock='cpu'"):
        time_fn(wait, device="cuda", clock="cpu")


def test_num_threads_restores():
    before = torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be"):
        with num_threads(0):
            pass


def test_rounds_alternate_their_order():
    order = []
    time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, min_seconds=0.0)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-ups, then a-b, b-a, a-b


def test_paired_ratio_is_the_median_of_round_ratios():
    a, b = Timing([2.0, 4.0, 30.0]), Timing([1.0, 2.0, 3.0])
    assert paired_ratio(a, b) == 2.0  # rounds 2, 2, 10
    with pytest.raises(ValueError, match="same number"):
        paired_ratio(Timing([1.0]), Timing([1.0, 2.0]))


# ------------------------------------------------------------------------------------------- memory
def test_peak_memory_counts_one_allocation():
    peak = peak_memory(lambda: torch.empty(8 * MIB, dtype=torch.uint8), "cpu")
    assert 8 * MIB <= peak < 8 * MIB + 64 * 1024


def test_peak_memory_is_a_peak_not_a_sum():
    def two_in_turn():
        for _ in range(2):
            a = torch.ones(4 * MIB, dtype=torch.uint8)
            del a

    def two_at_once():
        a = torch.ones(4 * MIB, dtype=torch.uint8)
        b = torch.ones(4 * MIB, dtype=torch.uint8)
        return a, b

    assert peak_memory(two_in_turn) < 5 * MIB
    assert peak_memory(two_at_once) >= 8 * MIB


def test_peak_memory_ignores_what_existed_before():
    big = torch.ones(4 * MIB)  # 16 MiB of float32, allocated before the call
    assert peak_memory(lambda: big.sum()) < MIB


def test_peak_memory_sees_the_naive_matrices_and_not_the_fused_kernel():
    from course_lib.attention import scaled_dot_product_attention

    n = 1024
    q = torch.randn(1, 1, n, 64)
    naive = peak_memory(lambda: scaled_dot_product_attention(q, q, q, impl="naive"))
    fused = peak_memory(lambda: scaled_dot_product_attention(q, q, q, impl="sdpa"))
    tiled = peak_memory(lambda: scaled_dot_product_attention(q, q, q, impl="tiled"))
    assert naive >= 2 * n * n * 4  # scores and weights, fp32
    assert fused < naive / 4 and tiled < naive / 2


def test_peak_memory_validates():
    with pytest.raises(TypeError, match="callable"):
        peak_memory(3)
    with pytest.raises(ValueError, match="cpu and cuda"):
        peak_memory(lambda: None, "meta")


def test_profiled_ops_names_the_cpu_flash_kernel():
    q = torch.randn(1, 1, 32, 16)
    ops = profiled_ops(lambda: F.scaled_dot_product_attention(q, q, q))
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ops
    ops = profiled_ops(lambda: F.scaled_dot_product_attention(q, q, q, dropout_p=0.5))
    assert "aten::_scaled_dot_product_attention_math" in ops
    with pytest.raises(TypeError):
        profiled_ops(None)


# ------------------------------------------------------------------------------------------- names, peaks
def test_device_names_and_slug_on_cpu():
    assert device_slug("cpu") == "cpu"
    assert "thread" in device_name("cpu")


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA H100 NVL", None),
                                        ("NVIDIA GeForce RTX 4090", None)])
def test_gpu_peak_lookup(name, peak):
    assert gpu_peak_tflops(name, torch.bfloat16) == peak
    assert gpu_peak_tflops(name, torch.float16) == peak


def test_gpu_peak_is_for_half_precision_only():
    assert gpu_peak_tflops("NVIDIA H100 80GB HBM3", torch.float32) is None
    with pytest.raises(TypeError):
        gpu_peak_tflops(None)


# ------------------------------------------------------------------------------------------- the script
def _bench_module():
    spec = importlib.util.spec_from_file_location("attention_bench", ROOT / "benchmarks" / "attention_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_script_writes_csv_and_plot(tmp_path, capsys):
    bench = _bench_module()
    assert bench.main(["--device", "cpu", "--sizes", "64", "128", "--head-dims", "16", "--repeats", "2",
                       "--block-size", "32", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "goal auto <= 1.1x SDPA" in out and "goal tiled peak memory" in out
    rows = list(csv.DictReader((tmp_path / "attention_cpu.csv").open()))
    assert {r["impl"] for r in rows} == {"naive", "tiled", "auto", "sdpa"}
    assert {int(r["n"]) for r in rows} == {64, 128}
    for r in rows:
        assert r["status"] == "ok" and float(r["median_ms"]) > 0 and float(r["max_abs_err"]) < 1e-4
        assert float(r["tflops"]) > 0 and r["sdpa_backend"] == "flash_attention"
    sdpa = [r for r in rows if r["impl"] == "sdpa"]
    assert all(float(r["ratio_to_sdpa"]) == 1.0 for r in sdpa)
    naive = {r["n"]: float(r["peak_mib"]) for r in rows if r["impl"] == "naive"}
    assert naive["128"] > 3 * naive["64"]  # quadratic
    assert (tmp_path / "attention_cpu.png").stat().st_size > 10_000
    (tmp_path / "attention_cpu.png").unlink()
    assert bench.main(["--replot", str(tmp_path / "attention_cpu.csv")]) == 0  # redraw without measuring
    assert (tmp_path / "attention_cpu.png").stat().st_size > 10_000
    assert bench.read_rows(tmp_path / "attention_cpu.csv")[0]["n"] == 64


def test_benchmark_file_names_and_goals(tmp_path, capsys):
    bench = _bench_module()
    bench.main(["--device", "cpu", "--quick", "--sizes", "32", "--dtype", "float64", "--causal", "--no-plot",
                "--backends", "--clock", "cpu", "--out-dir", str(tmp_path)])
    path = tmp_path / "attention_cpu_float64_causal_quick.csv"
    rows = list(csv.DictReader(path.open()))
    impls = {r["impl"] for r in rows}
    assert {"sdpa[flash]", "sdpa[math]"} <= impls and "sdpa[efficient]" not in impls  # CPU has two backends
    assert all(r["causal"] == "True" and r["dtype"] == "float64" and r["clock"] == "cpu" for r in rows)
    lines = bench.goals([{"status": "ok", "impl": "auto", "ratio_to_sdpa": 1.3, "n": 8, "head_dim": 4}],
                        torch.device("cpu"))
    assert "MISSED" in lines[0]


def test_benchmark_skips_what_cannot_fit(tmp_path, monkeypatch, capsys):
    bench = _bench_module()
    monkeypatch.setattr(bench, "available_bytes", lambda device: 1000.0)  # pretend memory is almost full
    bench.main(["--device", "cpu", "--sizes", "32", "--head-dims", "8", "--repeats", "1", "--backends", "--no-plot",
                "--out-dir", str(tmp_path)])
    rows = {r["impl"]: r for r in csv.DictReader((tmp_path / "attention_cpu.csv").open())}
    assert rows["naive"]["status"] == rows["sdpa[math]"]["status"] == "skipped (memory)"
    assert rows["tiled"]["status"] == rows["sdpa[flash]"]["status"] == "ok"
    assert "skipped" in capsys.readouterr().out


def test_committed_cpu_results_meet_the_goals():
    """The CPU results in the repository meet the issue's goals (they were measured, not asserted here)."""
    path = ROOT / "benchmarks" / "results" / "attention_cpu.csv"
    if not path.exists():
        pytest.skip("no committed CPU results")
    rows = [r for r in csv.DictReader(path.open()) if r["status"] == "ok"]
    largest = max(int(r["n"]) for r in rows)
    for d in {r["head_dim"] for r in rows}:
        mem = {r["impl"]: float(r["peak_mib"]) for r in rows if r["head_dim"] == d and int(r["n"]) == largest}
        assert mem["tiled"] <= mem["naive"] / 8
    assert all(float(r["max_abs_err"]) < 1e-4 for r in rows)



def test_committed_explanation_counter_tests():
    """Lesson 18 reads benchmarks/results/explanation_counter_tests.csv: the rows it needs are there and sane."""
    path = ROOT / "benchmarks" / "results" / "explanation_counter_tests.csv"
    rows = list(csv.DictReader(path.open()))
    assert rows and set(rows[0]) == {"test", "model", "reference", "metric", "value", "n"}
    got = {(r["test"], r["model"], r["reference"], r["metric"]): float(r["value"]) for r in rows}
    assert len(got) == len(rows)  # one number per key
    for seed in range(4):
        for metric in ("f1", "token_accuracy", "cue_accuracy"):
            assert 0 <= got[("seeds", f"seed {seed}", "", metric)] <= 1
        assert 0 <= got[("seeds", f"seed {seed}", "its rows permuted", "js_median")] <= math.log(2)
    assert sum(1 for k in got if k[0] == "seeds" and k[2].startswith("seed ") and k[3] == "js_median") == 6
    for lam in ("0", "0.1", "0.5"):
        for metric in ("js_median", "tvd_mean", "tvd_mean_cue", "same_prediction"):
            assert 0 <= got[("adversarial", f"adversary lambda {lam}", "seed 0", metric)] <= 1
    assert got[("run", "all", "", "threads")] == 1

# ------------------------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
def test_cuda_peak_memory_and_timing():
    peak = peak_memory(lambda: torch.empty(8 * MIB, dtype=torch.uint8, device="cuda"), "cuda")
    assert 8 * MIB <= peak <= 10 * MIB
    q = torch.randn(2, 4, 256, 64, device="cuda", dtype=torch.float16)
    t = time_fn(lambda: F.scaled_dot_product_attention(q, q, q), "cuda", repeats=3)
    assert t.median > 0 and math.isfinite(t.median)
    assert device_slug("cuda").startswith("nvidia") or device_slug("cuda")


@pytest.mark.cuda
def test_benchmark_script_on_cuda(tmp_path):
    bench = _bench_module()
    assert bench.main(["--device", "cuda", "--quick", "--sizes", "256", "512", "--out-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("attention_*_quick.csv")
    rows = list(csv.DictReader(path.open()))
    assert {"naive", "tiled", "auto", "sdpa"} <= {r["impl"] for r in rows}
    assert any(r["impl"].startswith("sdpa[") for r in rows)
