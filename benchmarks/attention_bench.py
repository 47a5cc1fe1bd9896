"""Attention benchmark: the course's naive, tiled and auto paths against torch's SDPA, on this machine's device.

    python benchmarks/attention_bench.py                    # the full grid on the default device (make bench)
    python benchmarks/attention_bench.py --quick            # a small grid, a minute or so on a laptop CPU
    python benchmarks/attention_bench.py --threads 1 --clock cpu   # how the committed CPU results were taken
    python benchmarks/attention_bench.py --device cuda --dtype float16

For each head dim d and sequence length N it times every path in one interleaved run (rounds in
alternating order; the median over rounds), measures each path's peak tensor memory
(course_lib.bench.peak_memory), checks every output against torch's SDPA, and reports TFLOP/s
(4·B·H·N²·d forward FLOPs / median time) and the ratio to SDPA (the median over rounds of the two times
measured in the same round). It writes benchmarks/results/attention_<device>.csv and .png (suffixes name a
non-default dtype, --causal or --quick; every row records the device, torch version, threads and clock)
and prints the table and the two goals: "auto" within 1.1x of SDPA at every size, and "tiled" peak memory
at most 1/8 of naive at the largest N.

On a CPU shared with other jobs, elapsed times mostly measure the waiting: use --threads 1 --clock cpu,
which times the CPU seconds this process used. On CUDA the grid follows FlashAttention's benchmarks (16k
tokens per batch, model width 2048: B = 16384/N, H = 2048/d) and also times each SDPA backend on its own
(flash, efficient, cuDNN, math) where it can run.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from course_lib.attention import scaled_dot_product_attention, tiled_attention  # noqa: E402
from course_lib.bench import (  # noqa: E402
    MIB,
    attention_flops,
    device_name,
    device_slug,
    gpu_peak_tflops,
    paired_ratio,
    peak_memory,
    tflops,
    time_interleaved,
)
from course_lib.device import get_device, set_seed  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
COURSE_IMPLS = ("naive", "tiled", "auto")
FIELDS = ["device", "device_name", "torch", "threads", "clock", "dtype", "causal", "batch", "heads", "head_dim", "n",
          "impl",
          "sdpa_backend", "status", "median_ms", "min_ms", "max_ms", "repeats", "inner", "peak_mib", "tflops",
          "pct_of_peak", "ratio_to_sdpa", "mem_ratio_to_naive", "max_abs_err"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:1, ... (default: course_lib.device.get_device())")
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                        help="default: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--quick", action="store_true", help="a small grid and fewer repeats (a smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="sequence lengths N")
    parser.add_argument("--head-dims", type=int, nargs="+", default=None, help="head dims d (default: 64 128)")
    parser.add_argument("--batch", type=int, default=None, help="fixed batch size (default: 1 on CPU, 16384/N on CUDA)")
    parser.add_argument("--heads", type=int, default=None,
                        help="fixed number of heads (default: 1 on CPU, 2048/d on CUDA)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per size (default 15 on CPU, 11 on CUDA, --quick 3)")
    parser.add_argument("--causal", action="store_true", help="causal attention (FLOPs halved)")
    parser.add_argument("--block-size", type=int, default=128, help="key/value block of the tiled path")
    parser.add_argument("--backends", action=argparse.BooleanOptionalAction, default=None,
                        help="also time each SDPA backend on its own (default: on for CUDA, off for CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's, i.e. OMP_NUM_THREADS; `make` sets 2). "
                             "On a machine shared with other jobs, 1 avoids threads waiting for each other")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time (default); cpu: CPU seconds of this process, which on a CPU "
                             "shared with other jobs leaves out the waiting (use it with --threads 1)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--no-plot", action="store_true", help="write the CSV only")
    parser.add_argument("--replot", type=Path, default=None, metavar="CSV",
                        help="measure nothing: redraw the plot of an existing results CSV next to it")
    return parser.parse_args(argv)


def grid(args: argparse.Namespace, device: torch.device) -> tuple[list[int], list[int]]:
    if args.sizes:
        sizes = args.sizes
    elif device.type == "cuda":
        sizes = [512, 1024, 2048] if args.quick else [512, 1024, 2048, 4096, 8192, 16384]
    else:
        sizes = [256, 512, 1024] if args.quick else [512, 1024, 2048, 4096, 8192]
    head_dims = args.head_dims or ([64] if args.quick else [64, 128])
    for name, values in (("--sizes", sizes), ("--head-dims", head_dims)):
        if any(v <= 0 for v in values):
            raise SystemExit(f"{name} must be positive, got {values}")
    return sorted(sizes), head_dims


def batch_heads(args: argparse.Namespace, device: torch.device, n: int, d: int) -> tuple[int, int]:
    if device.type == "cuda":
        return args.batch or max(1, 16384 // n), args.heads or max(1, 2048 // d)
    return args.batch or 1, args.heads or 1


def available_bytes(device: torch.device) -> float:
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return math.inf


def sdpa_backend_name(q: torch.Tensor, is_causal: bool) -> str:
    """The backend torch's dispatcher picks for these inputs (private API: 'unknown' if it moves)."""
    try:
        from torch.nn.attention import SDPBackend

        return SDPBackend(torch._fused_sdp_choice(q, q, q, is_causal=is_causal)).name.lower()
    except Exception:  # noqa: BLE001 - a private function; never let it stop the benchmark
        return "unknown"


def backend_fns(q, k, v, is_causal: bool, skip: set[str]) -> dict:
    """One function per SDPA backend that can run these inputs (sdpa_kernel restricts the dispatcher)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fns = {}
    for label, backend in (("sdpa[flash]", "FLASH_ATTENTION"), ("sdpa[efficient]", "EFFICIENT_ATTENTION"),
                           ("sdpa[cudnn]", "CUDNN_ATTENTION"), ("sdpa[math]", "MATH")):
        member = getattr(SDPBackend, backend, None)
        if member is None or label in skip:
            continue

        def fn(member=member):
            with sdpa_kernel([member]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
        except RuntimeError:  # this backend cannot run these inputs here (or ran out of memory trying)
            if q.device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        fns[label] = fn
    return fns


def impl_fns(q: Tensor, k: Tensor, v: Tensor, causal: bool, block_size: int) -> dict[str, Callable[[], Tensor]]:
    """The course's implementations and torch's SDPA on the same inputs, by name."""
    # "auto" next to "sdpa" in the rounds, so the pair meets the same machine state.
    return {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        "auto": lambda: scaled_dot_product_attention(q, k, v, is_causal=causal, impl="auto"),
        "naive": lambda: scaled_dot_product_attention(q, k, v, is_causal=causal, impl="naive"),
        "tiled": lambda: tiled_attention(q, k, v, block_size=block_size, is_causal=causal),
    }


def run_size(args, device, dtype, n: int, d: int, use_backends: bool) -> list[dict]:
    batch, heads = batch_heads(args, device, n, d)
    gen = torch.Generator(device="cpu").manual_seed(n * 1000 + d)
    q, k, v = (torch.randn(batch, heads, n, d, generator=gen).to(device=device, dtype=dtype) for _ in range(3))
    causal = args.causal
    fns = impl_fns(q, k, v, causal, args.block_size)
    # The naive path holds two or three (B, H, N, N) matrices at once; the math backend as many, in fp32 on
    # CUDA for fp16/bf16 inputs. Skip them where that cannot fit.
    free = available_bytes(device)
    matrix = batch * heads * n * n
    skipped = set()
    if 3 * matrix * q.element_size() > 0.7 * free:
        skipped.add("naive")
    if use_backends and 3 * matrix * max(4, q.element_size()) > 0.7 * free:
        skipped.add("sdpa[math]")
    if "naive" in skipped:
        fns.pop("naive")
    if use_backends:
        fns.update(backend_fns(q, k, v, causal, skip=skipped))

    with torch.inference_mode():
        reference = fns["sdpa"]().float()
        errors = {}
        for name, fn in list(fns.items()):
            try:
                errors[name] = (fn().float() - reference).abs().max().item()
            except torch.OutOfMemoryError:  # the estimate above was too hopeful: record it and go on
                fns.pop(name)
                skipped.add(name)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        # Many rounds of at least 0.1 s each: a shared machine's hiccups then move single rounds, not the median.
        repeats = args.repeats or (3 if args.quick else 11 if device.type == "cuda" else 15)
        min_seconds = 0.02 if args.quick else 0.1
        timings = time_interleaved(fns, device, repeats=repeats, warmup=2 if device.type == "cuda" else 1,
                                   min_seconds=min_seconds, clock=args.clock)
        memory = {}
        for name, fn in fns.items():
            try:
                memory[name] = peak_memory(fn, device) / MIB
            except ValueError:  # a device peak_memory does not measure (e.g. mps)
                memory[name] = math.nan
            if device.type == "cuda":
                torch.cuda.empty_cache()

    flops = attention_flops(batch, heads, n, n, head_dim=d, causal=causal)
    peak = gpu_peak_tflops(device_name(device), dtype) if device.type == "cuda" else None
    backend = sdpa_backend_name(q, causal)
    base = {"device": device.type, "device_name": device_name(device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "clock": args.clock, "dtype": str(dtype).replace("torch.", ""),
            "causal": causal,
            "batch": batch, "heads": heads, "head_dim": d, "n": n, "sdpa_backend": backend}
    rows = []
    naive_mem = memory.get("naive", math.nan)
    for name in [*fns, *sorted(skipped)]:
        if name in skipped:
            rows.append({**base, "impl": name, "status": "skipped (memory)"})
            continue
        t = timings[name]
        achieved = tflops(flops, t.median)
        rows.append({
            **base, "impl": name, "status": "ok",
            "median_ms": round(t.median * 1e3, 4), "min_ms": round(t.min * 1e3, 4), "max_ms": round(t.max * 1e3, 4),
            "repeats": len(t.times), "inner": t.inner, "peak_mib": round(memory[name], 3),
            "tflops": float(f"{achieved:.4g}"), "pct_of_peak": round(100 * achieved / peak, 2) if peak else "",
            "ratio_to_sdpa": round(paired_ratio(t, timings["sdpa"]), 3),
            "mem_ratio_to_naive": round(memory[name] / naive_mem, 4) if naive_mem and naive_mem == naive_mem else "",
            "max_abs_err": f"{errors[name]:.2e}",
        })
    fns.clear()  # the closures hold the inputs: free them before the next size
    del q, k, v, reference
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def python_overhead_us(device: torch.device, dtype: torch.dtype, clock: str) -> float:
    """Extra time per call of impl='auto' over torch's SDPA at a tiny size: the course's argument checks."""
    q = torch.randn(1, 1, 16, 64).to(device=device, dtype=dtype)
    t = time_interleaved({"auto": lambda: scaled_dot_product_attention(q, q, q),
                          "sdpa": lambda: F.scaled_dot_product_attention(q, q, q)},
                         device, repeats=7, warmup=3, min_seconds=0.02, clock=clock)
    return (t["auto"].median - t["sdpa"].median) * 1e6


def print_table(rows: list[dict]) -> None:
    ok = [r for r in rows if r["status"] == "ok"]
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    print("\nmedian time (ms) / ratio to torch SDPA / peak MiB / TFLOP/s")
    for d in sorted({r["head_dim"] for r in rows}):
        print(f"\nhead dim {d}")
        print(f"{'N':>6} {'B':>3} {'H':>3}  " + "  ".join(f"{name:>26}" for name in impls))
        for n in sorted({r["n"] for r in rows if r["head_dim"] == d}):
            cells = []
            first = next(r for r in rows if r["head_dim"] == d and r["n"] == n)
            for name in impls:
                r = next((r for r in ok if r["head_dim"] == d and r["n"] == n and r["impl"] == name), None)
                cells.append("skipped".rjust(26) if r is None else
                             f"{r['median_ms']:9.3f} {r['ratio_to_sdpa']:5.2f}x {r['peak_mib']:7.1f} {r['tflops']:6.3f}"
                             .rjust(26))
            print(f"{n:>6} {first['batch']:>3} {first['heads']:>3}  " + "  ".join(cells))


def goals(rows: list[dict], device: torch.device) -> list[str]:
    ok = [r for r in rows if r["status"] == "ok"]
    lines = []
    auto = [r for r in ok if r["impl"] == "auto"]
    if auto:
        worst = max(auto, key=lambda r: r["ratio_to_sdpa"])
        verdict = "met" if worst["ratio_to_sdpa"] <= 1.1 else "MISSED"
        lines.append(f"goal auto <= 1.1x SDPA at every size: {verdict} (worst {worst['ratio_to_sdpa']:.3f}x at "
                     f"N={worst['n']}, d={worst['head_dim']})")
    for d in sorted({r["head_dim"] for r in ok}):
        both = [n for n in sorted({r["n"] for r in ok if r["head_dim"] == d})
                if {"naive", "tiled"} <= {r["impl"] for r in ok if r["head_dim"] == d and r["n"] == n}]
        if not both:
            continue
        n = both[-1]
        tiled = next(r for r in ok if r["head_dim"] == d and r["n"] == n and r["impl"] == "tiled")
        naive = next(r for r in ok if r["head_dim"] == d and r["n"] == n and r["impl"] == "naive")
        ratio = tiled["peak_mib"] / naive["peak_mib"]
        verdict = "met" if ratio <= 1 / 8 else "MISSED"
        lines.append(f"goal tiled peak memory <= 1/8 of naive at the largest N: {verdict} (d={d}, N={n}: "
                     f"{tiled['peak_mib']:.1f} MiB vs {naive['peak_mib']:.1f} MiB, ratio 1/{1 / ratio:.1f})")
    return lines


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    ok = [r for r in rows if r["status"] == "ok"]
    head_dims = sorted({r["head_dim"] for r in ok})
    impls = list(dict.fromkeys(r["impl"] for r in ok))
    fig, axes = plt.subplots(4, len(head_dims), figsize=(5.2 * len(head_dims), 13), squeeze=False,
                             constrained_layout=True)
    for col, d in enumerate(head_dims):
        for name in impls:
            pts = sorted((r["n"], r) for r in ok if r["head_dim"] == d and r["impl"] == name)
            if not pts:
                continue
            ns = [n for n, _ in pts]
            style = "--" if name.startswith("sdpa[") else "-"
            axes[0][col].plot(ns, [r["median_ms"] for _, r in pts], style, marker="o", label=name)
            axes[1][col].plot(ns, [r["ratio_to_sdpa"] for _, r in pts], style, marker="o", label=name)
            axes[2][col].plot(ns, [max(r["peak_mib"], 1e-3) for _, r in pts], style, marker="o", label=name)
            axes[3][col].plot(ns, [r["tflops"] for _, r in pts], style, marker="o", label=name)
        all_n = sorted({r["n"] for r in ok if r["head_dim"] == d})
        if len(all_n) > 1:
            for impl, row, key, power in (("naive", 0, "median_ms", 2), ("naive", 2, "peak_mib", 2),
                                          ("tiled", 2, "peak_mib", 1)):
                ref = {r["n"]: r for r in ok if r["head_dim"] == d and r["impl"] == impl}
                if ref:
                    n0 = max(ref)
                    y0 = ref[n0][key]
                    axes[row][col].plot(all_n, [y0 * (n / n0) ** power for n in all_n], ":" if power == 2 else "--",
                                        color="grey", label="∝ N²" if power == 2 else "∝ N")
        axes[1][col].axhline(1.1, color="black", linewidth=0.8, linestyle=":")
        batch_heads = {(r["batch"], r["heads"]) for r in ok if r["head_dim"] == d}
        bh = ", ".join(f"B={b} H={h}" for b, h in sorted(batch_heads)) if len(batch_heads) <= 2 else "B·N = 16k tokens"
        axes[0][col].set_title(f"d = {d} ({bh})")
        labels = ("median time (ms)", "time / torch SDPA (paired median)", "peak tensor memory (MiB)",
                  "TFLOP/s (4·B·H·N²·d / time)")
        for row, label in enumerate(labels):
            ax = axes[row][col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("linear" if row == 3 else "log")
            ax.set_xlabel("sequence length N")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3, which="both")
        axes[1][col].yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        axes[1][col].yaxis.set_minor_formatter(FormatStrFormatter("%.2g"))
        axes[0][col].legend(fontsize=8)
        axes[2][col].legend(fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_rows(path: Path) -> list[dict]:
    """Rows of a results CSV with the numbers turned back into numbers."""
    integers = {"threads", "batch", "heads", "head_dim", "n", "repeats", "inner"}
    floats = {"median_ms", "min_ms", "max_ms", "peak_mib", "tflops", "ratio_to_sdpa"}
    rows = []
    with path.open() as f:
        for row in csv.DictReader(f):
            rows.append({k: (int(v) if k in integers else float(v)) if v != "" and k in integers | floats else v
                         for k, v in row.items()})
    return rows


def replot(path: Path) -> int:
    rows = read_rows(path)
    if not rows:
        raise SystemExit(f"{path} holds no rows")
    first = rows[0]
    clock = "CPU-time clock" if first.get("clock") == "cpu" else "wall clock"
    causal = ", causal" if first.get("causal") == "True" else ""
    plot(rows, path.with_suffix(".png"), f"Attention forward on {first['device_name']} ({first['dtype']}{causal}), "
                                         f"torch {first['torch']}, {clock}")
    print(f"wrote {path.with_suffix('.png')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot is not None:
        return replot(args.replot)
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    default_dtype = "bfloat16" if device.type == "cuda" else "float32"
    dtype_name = args.dtype or default_dtype
    dtype = DTYPES[dtype_name]
    use_backends = device.type == "cuda" if args.backends is None else args.backends
    sizes, head_dims = grid(args, device)
    set_seed(0)
    stem = f"attention_{device_slug(device)}"
    if dtype_name != default_dtype:
        stem += f"_{dtype_name}"
    if args.causal:
        stem += "_causal"
    if args.quick:
        stem += "_quick"
    name = device_name(device)
    if args.clock == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu measures CPU time and cannot time a GPU; use --clock wall")
    print(f"device {device} ({name}), torch {torch.__version__}, dtype {dtype_name}, threads {torch.get_num_threads()}"
          f", OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, clock {args.clock}")
    if device.type == "cuda":
        peak = gpu_peak_tflops(name, dtype)
        print(f"dense fp16/bf16 peak of this GPU: {peak if peak else 'not in course_lib.bench.PEAK_TFLOPS'} TFLOP/s")

    rows: list[dict] = []
    for d in head_dims:
        for n in sizes:
            new = run_size(args, device, dtype, n, d, use_backends)
            rows += new
            summary = ", ".join(f"{r['impl']} {r['median_ms']:.2f} ms" if r["status"] == "ok"
                                else f"{r['impl']} skipped" for r in new)
            print(f"d={d:4d} N={n:6d}: {summary}", flush=True)

    overhead = python_overhead_us(device, dtype, args.clock)
    print_table(rows)
    print(f"\nPython overhead of impl='auto' over torch's SDPA at N=16 (argument checks): {overhead:.1f} µs per call")
    tolerance = 1e-4 if dtype in (torch.float32, torch.float64) else 5e-2
    bad = [r for r in rows if r["status"] == "ok" and float(r["max_abs_err"]) > tolerance]
    for r in bad:
        print(f"WARNING: {r['impl']} differs from SDPA by {r['max_abs_err']} at N={r['n']}, d={r['head_dim']}")
    print()
    for line in goals(rows, device):
        print(line)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = args.out_dir / f"{stem}.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in FIELDS})
    print(f"\nwrote {csv_path.relative_to(ROOT) if csv_path.is_relative_to(ROOT) else csv_path}")
    if not args.no_plot:
        png_path = args.out_dir / f"{stem}.png"
        clock = "CPU-time clock" if args.clock == "cpu" else "wall clock"
        plot(rows, png_path, f"Attention forward on {name} ({dtype_name}{', causal' if args.causal else ''}), "
                             f"torch {torch.__version__}, {clock}")
        print(f"wrote {png_path.relative_to(ROOT) if png_path.is_relative_to(ROOT) else png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
