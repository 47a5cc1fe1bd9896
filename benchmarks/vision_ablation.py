"""Ablation: a small host CNN on cluttered digits, baseline vs each vision attention module, over seeds.

Usage (from the repository root):

    python benchmarks/vision_ablation.py                      # the full run, about 20 minutes on 2 free CPU cores
    python benchmarks/vision_ablation.py --epochs 1 --seeds 1 --n-train 256 --n-test 128   # a quick look

Every run trains ``course_lib.vision_train.HostCNN(module)`` (the module on the residual branch of both
residual blocks, before the add) with the same data, schedule and seeds, then measures test accuracy,
parameters, seconds per epoch and, for modules with a spatial map, the fraction of the first
module's map (20x20) inside the digit's box (``attention_box_mass``; a uniform map scores the
``chance_mass`` column; meaningful for softmax maps, which sum to 1, not for sigmoid gates) and the
box AUC of the same map (``attention_box_auc``: the probability that a random box pixel gets a higher map value
than a random pixel outside, 0.5 = no preference; it uses only the order of the values, so it compares gates
and softmax maps on one scale). Results go to ``benchmarks/results/vision_ablation.csv``, one row per module:
means and standard deviations over seeds (sample std, ddof=1), and the per-seed accuracies.

The gate-initialisation experiment of lesson 12 (section 7) is the same run with ``--gate-init identity``: every
gate wrapped in ``course_lib.vision.IdentityInitGate`` (``x * (1 + alpha * (g - 1))``, alpha = 0 at init), so
each model starts as the baseline; the module ``half`` is a control, the baseline with its residual branches
multiplied by a constant 0.5 (what an untrained sigmoid gate does, without any content):

    python benchmarks/vision_ablation.py --gate-init identity --modules baseline,half,se,cbam,eca,yolo_sam \
        --threads 1 --out benchmarks/results/vision_gate_init.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(ROOT))

from course_lib.data.digits import make_cluttered_digits  # noqa: E402
from course_lib.device import set_seed  # noqa: E402
from course_lib.vision_train import (  # noqa: E402
    GATE_INITS,
    HostCNN,
    ResidualBlock,
    attention_box_auc,
    attention_box_mass,
    count_parameters,
    evaluate_classifier,
    train_classifier,
)

MODULES = ("baseline", "se", "cbam", "yolo_sam", "eca", "nonlocal", "pam", "cam", "psa", "sagan", "half")
GATES = ("se", "cbam", "yolo_sam", "eca", "psa")  # the modules --gate-init identity applies to
FIELDS = ["module", "gate_init", "params", "extra_params", "test_acc_mean", "test_acc_std", "acc_delta_vs_baseline",
          "test_acc_per_seed", "sec_per_epoch", "box_auc_mean", "box_auc_std", "box_mass_mean", "box_mass_std",
          "chance_mass", "seeds", "epochs",
          "n_train", "n_test", "threads"]


class HalfBranch(nn.Module):
    """The control ``half``: multiply the residual branch by 0.5, as an untrained sigmoid gate roughly does."""

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x


def build_model(name: str, widths: tuple[int, ...], gate_init: str = "default") -> HostCNN:
    """``HostCNN`` for a row of the table: ``baseline``, ``half`` (the control) or an attention module's name."""
    if name in ("baseline", "half"):
        model = HostCNN(None, widths=widths)
        if name == "half":
            for block in model.modules():
                if isinstance(block, ResidualBlock):
                    block.attention = HalfBranch()
        return model
    return HostCNN(name, widths=widths, gate_init=gate_init if name in GATES else "default")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--n-train", type=int, default=2500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--widths", default="16,32,64", help="stem and stage widths of the host CNN")
    parser.add_argument("--modules", default=",".join(MODULES), help="comma-separated subset of " + ",".join(MODULES))
    parser.add_argument("--gate-init", default="default", choices=GATE_INITS,
                        help="'identity': wrap every gate (se, cbam, yolo_sam, eca, psa) in IdentityInitGate")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vision_ablation.csv")
    args = parser.parse_args(argv)
    args.modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; valid: {', '.join(MODULES)}")
    args.widths = tuple(int(w) for w in args.widths.split(","))
    return args


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    from tqdm.auto import tqdm

    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train = make_cluttered_digits(args.n_train, seed=0, split="train")
    test = make_cluttered_digits(args.n_test, seed=0, split="test")
    x0, y0, x1, y1 = test.boxes.double().unbind(1)
    chance = float(((x1 - x0) * (y1 - y0)).mean() / test.canvas**2)

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.modules}
    bar = tqdm(total=len(args.modules) * args.seeds, desc="runs")
    for seed in range(args.seeds):  # seeds outside, so an interrupted run still covers every module
        for name in args.modules:
            set_seed(seed)
            model = build_model(name, args.widths, args.gate_init)
            history = train_classifier(model, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                       seed=seed, progress=False)
            acc = evaluate_classifier(model, test)["accuracy"]
            mass = attention_box_mass(model, test)
            auc = attention_box_auc(model, test)
            runs[name].append({"acc": acc, "mass": mass, "auc": auc, "params": count_parameters(model),
                               "sec": statistics.mean(history["epoch_seconds"])})
            bar.set_postfix(module=name, seed=seed, acc=f"{acc:.3f}")
            bar.update()
    bar.close()

    base = runs.get("baseline")
    base_acc = statistics.mean(r["acc"] for r in base) if base else None
    base_params = base[0]["params"] if base else count_parameters(HostCNN(None, widths=args.widths))
    rows = []
    for name, results in runs.items():
        accs = [r["acc"] for r in results]
        masses = [r["mass"] for r in results if r["mass"] is not None]
        aucs = [r["auc"] for r in results if r["auc"] is not None]
        rows.append({
            "module": name,
            "gate_init": args.gate_init if name in GATES else "",
            "params": results[0]["params"],
            "extra_params": results[0]["params"] - base_params,
            "test_acc_mean": round(statistics.mean(accs), 4),
            "test_acc_std": round(_std(accs), 4),
            "acc_delta_vs_baseline": "" if base_acc is None else round(statistics.mean(accs) - base_acc, 4),
            "test_acc_per_seed": ";".join(f"{a:.4f}" for a in accs),
            "sec_per_epoch": round(statistics.mean(r["sec"] for r in results), 2),
            "box_auc_mean": round(statistics.mean(aucs), 4) if aucs else "",
            "box_auc_std": round(_std(aucs), 4) if aucs else "",
            "box_mass_mean": round(statistics.mean(masses), 4) if masses else "",
            "box_mass_std": round(_std(masses), 4) if masses else "",
            "chance_mass": round(chance, 4),
            "seeds": args.seeds,
            "epochs": args.epochs,
            "n_train": args.n_train,
            "n_test": args.n_test,
            "threads": torch.get_num_threads(),
        })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

    print(f"\n{'module':<10} {'params':>7} {'extra':>6} {'test acc':>16} {'delta':>7} {'s/epoch':>8} "
          f"{'box AUC':>16} {'mass in box':>16}")
    for r in rows:
        acc_text = f"{r['test_acc_mean']:.3f} ± {r['test_acc_std']:.3f}"
        mass_text = f"{r['box_mass_mean']:.3f} ± {r['box_mass_std']:.3f}" if r["box_mass_mean"] != "" else "-"
        auc_text = f"{r['box_auc_mean']:.3f} ± {r['box_auc_std']:.3f}" if r["box_auc_mean"] != "" else "-"
        delta = f"{r['acc_delta_vs_baseline']:+.3f}" if r["acc_delta_vs_baseline"] != "" else "-"
        print(f"{r['module']:<10} {r['params']:>7} {r['extra_params']:>6} {acc_text:>16} {delta:>7} "
              f"{r['sec_per_epoch']:>8} {auc_text:>16} {mass_text:>16}")
    print(f"chance mass in box (uniform map): {chance:.3f}; wrote {args.out}; "
          f"total {time.perf_counter() - start:.0f} s with {torch.get_num_threads()} thread(s)")
    return rows


if __name__ == "__main__":
    main()
