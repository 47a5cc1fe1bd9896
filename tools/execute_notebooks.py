"""Re-execute notebooks in place in this environment, storing fresh outputs, and measure each one.

    python tools/execute_notebooks.py notebooks/01_attention_cues.ipynb [...]

Each notebook runs in its own process (so peak memory is measured per notebook), from its own folder,
with the same settings as the tests (one CPU thread, inline figures). Seconds and the kernel's peak
resident memory are printed and recorded in docs/lesson_timings.csv.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ROOT / "docs" / "lesson_timings.csv"


def execute_one(path: Path) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbmeta import set_kernelspec

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    set_kernelspec(nb)
    nbformat.write(nb, path)
    # The kernel is a child of this process and has been waited for: its peak RSS (KiB on Linux).
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"notebook": str(path.relative_to(ROOT)), "seconds": round(seconds, 1), "peak_mib": round(peak_kib / 1024)}


def record(rows: list[dict]) -> None:
    TIMINGS.parent.mkdir(exist_ok=True)
    existing: dict[str, dict] = {}
    if TIMINGS.exists():
        with TIMINGS.open() as f:
            existing = {row["notebook"]: row for row in csv.DictReader(f)}
    machine = f"{platform.machine()} {os.cpu_count()} cores"
    for row in rows:
        existing[row["notebook"]] = {**row, "machine": machine}
    with TIMINGS.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["notebook", "seconds", "peak_mib", "machine"])
        writer.writeheader()
        for name in sorted(existing):
            writer.writerow(existing[name])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--single"]:
        print(json.dumps(execute_one(Path(argv[1]).resolve())))
        return 0
    # The kernel draws with matplotlib's inline backend, so that figures are stored as images (Agg would
    # store nothing); the same setting as under `make nbval`.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0"}
    rows, failed = [], []
    for name in argv:
        path = Path(name).resolve()
        result = subprocess.run([sys.executable, __file__, "--single", str(path)], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            failed.append(name)
            print(f"FAILED {name}\n{result.stderr[-4000:]}", file=sys.stderr)
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{row['notebook']:55s} {row['seconds']:7.1f} s  {row['peak_mib']:6d} MiB peak")
    record(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
