"""KV cache benchmark (lesson 17): greedy generation with and without the cache, MHA vs GQA vs MQA.

    python benchmarks/kv_cache_bench.py --threads 1 --clock cpu   # how the committed CPU results were taken
    python benchmarks/kv_cache_bench.py --quick                   # lengths up to 128, a few seconds
    python benchmarks/kv_cache_bench.py --device cuda             # on a GPU (wall clock)

The model is lesson 17's TinyDecoder (width 64, 2 layers, 4 query heads of 16, RoPE) with 4, 2 or 1 key/value
heads, random weights (speed does not depend on them), a batch of 4 prompts of 16 tokens. For each number of
new tokens it checks that both paths give the same tokens, times both in one interleaved run (median over
rounds; the speed-up is the median of the per-round ratios, course_lib.bench.paired_ratio), and records the
cache's size by formula (2 * layers * kv heads * head dim * tokens * batch * bytes) and as measured (bytes of
the cached tensors). It writes benchmarks/results/kv_cache_<device>.csv (``_quick`` for --quick) and prints
the table and the lesson's goal: at least 3x at 256 new tokens.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from course_lib.attention import kv_cache_bytes  # noqa: E402
from course_lib.bench import device_name, device_slug, num_threads, paired_ratio, time_interleaved  # noqa: E402
from course_lib.data.counting import CountingCorpus  # noqa: E402
from course_lib.decoder import TinyDecoder  # noqa: E402
from course_lib.device import get_device, set_seed  # noqa: E402

FIELDS = ["device", "device_name", "torch", "threads", "clock", "d_model", "layers", "heads", "kv_heads", "batch",
          "prompt", "new_tokens", "median_s_without", "median_s_with", "tokens_per_s_without", "tokens_per_s_with",
          "speedup", "repeats", "same_tokens", "cache_bytes_formula", "cache_bytes_measured"]
D_MODEL, LAYERS, HEADS, BATCH, PROMPT = 64, 2, 4, 4, 16


def run(device: torch.device, lengths: list[int], kv_heads: list[int], repeats: int, clock: str) -> list[dict]:
    corpus = CountingCorpus()
    prompt = corpus.batch(BATCH, PROMPT, seed=3).to(device)  # (B, 16)
    rows = []
    for kv in kv_heads:
        set_seed(0)
        model = TinyDecoder(corpus.vocab_size, d_model=D_MODEL, num_layers=LAYERS, num_heads=HEADS, num_kv_heads=kv,
                            positions="rope").to(device).eval()
        for n in lengths:
            with torch.inference_mode():
                same = torch.equal(model.generate(prompt, n, use_cache=True),
                                   model.generate(prompt, n, use_cache=False))
                fns = {"without": lambda m=model, n=n: m.generate(prompt, n, use_cache=False),
                       "with": lambda m=model, n=n: m.generate(prompt, n, use_cache=True)}
                timings = time_interleaved(fns, device, repeats=repeats, clock=clock, min_seconds=0.0)
                caches = model.new_cache()
                model(torch.cat((prompt, prompt.new_zeros(BATCH, n)), dim=1), cache=caches)
            head_dim = D_MODEL // HEADS
            without, with_cache = timings["without"].median, timings["with"].median
            rows.append({
                "d_model": D_MODEL, "layers": LAYERS, "heads": HEADS, "kv_heads": kv, "batch": BATCH, "prompt": PROMPT,
                "new_tokens": n, "median_s_without": f"{without:.5f}", "median_s_with": f"{with_cache:.5f}",
                "tokens_per_s_without": f"{BATCH * n / without:.0f}",
                "tokens_per_s_with": f"{BATCH * n / with_cache:.0f}",
                "speedup": f"{paired_ratio(timings['without'], timings['with']):.2f}", "repeats": repeats,
                "same_tokens": same,
                "cache_bytes_formula": kv_cache_bytes(num_layers=LAYERS, num_kv_heads=kv, head_dim=head_dim,
                                                      tokens=PROMPT + n, batch=BATCH, bytes_per_value=4),
                "cache_bytes_measured": sum(c.nbytes() for c in caches),
            })
            row = rows[-1]
            print(f"kv heads {kv}  {n:4d} tokens: without {row['tokens_per_s_without']:>6} tok/s, with "
                  f"{row['tokens_per_s_with']:>6} tok/s, speed-up {row['speedup']:>6}x, same tokens {same}, "
                  f"cache {row['cache_bytes_measured']} B (formula {row['cache_bytes_formula']} B)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: course_lib.device.get_device)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (the committed CSV: 1)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default=None,
                        help="wall (default on GPUs) or cpu (process CPU time; use with --threads 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="lengths 32-128 and MHA only")
    parser.add_argument("--out", type=Path, default=None,
                        help="CSV path (default benchmarks/results/kv_cache_<device>.csv)")
    args = parser.parse_args(argv)
    device = get_device(args.device)
    clock = args.clock or "wall"
    if clock == "cpu" and device.type != "cpu":
        parser.error("--clock cpu measures CPU time only; on a GPU use --clock wall")
    lengths = [32, 64, 128] if args.quick else [32, 64, 128, 256, 512]
    kv_heads = [4] if args.quick else [4, 2, 1]
    threads = args.threads or torch.get_num_threads()
    with num_threads(threads):
        rows = run(device, lengths, kv_heads, args.repeats, clock)
    common = {"device": device.type, "device_name": device_name(device), "torch": torch.__version__,
              "threads": threads if device.type == "cpu" else "", "clock": clock}
    suffix = "_quick" if args.quick else ""
    out = args.out or ROOT / "benchmarks" / "results" / f"kv_cache_{device_slug(device)}{suffix}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**common, **row})
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({platform.machine()})")
    at_256 = [float(r["speedup"]) for r in rows if r["new_tokens"] == 256]
    if at_256:
        print(f"goal, at least 3x at 256 new tokens: {'met' if min(at_256) >= 3 else 'NOT met'} "
              f"(speed-ups {', '.join(f'{s:.1f}x' for s in at_256)})")
    if not all(r["same_tokens"] for r in rows):
        print("ERROR: the cache changed the generated tokens", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
