"""Ablation: the lesson-14 grid detector with no attention and with each neck module, and SimCC keypoints with
and without self-attention among the keypoint tokens, over seeds.

Usage (from the repository root):

    python benchmarks/detection_ablation.py --threads 1          # the full run, about 20 minutes on one thread
    python benchmarks/detection_ablation.py --seeds 1 --epochs 1 --n-train 128 --n-test 64 --pose-epochs 1
                                                                  # a quick look

Detection: ``GridDetector(neck)`` for neck in baseline, yolo_sam (YOLOv4's point-wise SAM), cbam, psa
(polarized self-attention) and sagan (a SAGAN self-attention block), the module between the backbone and
the head; same data (64x64 canvases, 1-4 digits, test digits never seen in training), same schedule, seeds
0, 1, 2. Measured: COCO mAP@0.5 and mAP@[.5:.95] from pycocotools' COCOeval, parameters, and the median
forward time of a batch of 64 test canvases. Keypoints: ``SimCCPose(attention=False/True)`` on stick figures,
COCO keypoint AP (OKS, COCOeval iouType "keypoints") and the mean pixel error. One row per variant in
``benchmarks/results/detection_ablation.csv``: means, sample standard deviations over seeds (ddof=1) and the
per-seed values.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(ROOT))

from course_lib.data.canvases import make_detection_canvases, make_stick_figures  # noqa: E402
from course_lib.detection import (  # noqa: E402
    NECK_MODULES,
    GridDetector,
    SimCCPose,
    coco_detection_map,
    coco_keypoint_ap,
    detect,
    predict_keypoints,
    train_detector,
    train_pose,
)

FIELDS = ["task", "variant", "params", "extra_params", "metric1", "metric1_mean", "metric1_std", "metric1_per_seed",
          "metric2", "metric2_mean", "metric2_std", "metric2_per_seed", "forward_ms_b64", "train_sec", "seeds",
          "epochs", "n_train", "n_test", "threads"]
#: The OKS constant of every stick-figure joint (COCO's per-joint sigmas are for human joints; one value here).
KEYPOINT_SIGMA = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--pose-epochs", type=int, default=8)
    parser.add_argument("--pose-n-train", type=int, default=2000)
    parser.add_argument("--necks", default=",".join(NECK_MODULES))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detection_ablation.csv")
    args = parser.parse_args(argv)
    args.necks = [m.strip() for m in args.necks.split(",") if m.strip()]
    unknown = [m for m in args.necks if m not in NECK_MODULES]
    if unknown:
        parser.error(f"unknown neck(s) {unknown}; valid: {', '.join(NECK_MODULES)}")
    return args


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _forward_ms(model: torch.nn.Module, images: torch.Tensor, repeats: int = 15) -> float:
    model.eval()
    times = []
    with torch.no_grad():
        model(images)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def keypoint_areas(keypoints: torch.Tensor) -> torch.Tensor:
    """(N, K, 2) -> (N,) the area of each figure's keypoint box, the object scale of OKS."""
    return (keypoints.max(dim=1).values - keypoints.min(dim=1).values).prod(dim=-1)


def _row(task: str, variant: str, params: int, base_params: int, names: tuple[str, str],
         values: tuple[list[float], list[float]], forward_ms: float, train_sec: float, args: argparse.Namespace,
         epochs: int, n_train: int) -> dict[str, object]:
    row: dict[str, object] = {"task": task, "variant": variant, "params": params, "extra_params": params - base_params,
                              "forward_ms_b64": round(forward_ms, 3), "train_sec": round(train_sec, 1),
                              "seeds": args.seeds, "epochs": epochs, "n_train": n_train, "n_test": args.n_test,
                              "threads": torch.get_num_threads()}
    for i, (name, vals) in enumerate(zip(names, values, strict=True), start=1):
        row[f"metric{i}"] = name
        row[f"metric{i}_mean"] = round(statistics.mean(vals), 4)
        row[f"metric{i}_std"] = round(_std(vals), 4)
        row[f"metric{i}_per_seed"] = ";".join(f"{v:.4f}" for v in vals)
    return row


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    train = make_detection_canvases(args.n_train, seed=0, split="train")
    test = make_detection_canvases(args.n_test, seed=0, split="test")
    gt_boxes = [test.targets(i)[0] for i in range(len(test))]
    gt_labels = [test.targets(i)[1] for i in range(len(test))]
    rows: list[dict[str, object]] = []
    base_params = sum(p.numel() for p in GridDetector().parameters())
    for neck in args.necks:
        map50, map_all, secs, fwd = [], [], [], []
        params = 0
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = GridDetector(neck)
            params = sum(p.numel() for p in model.parameters())
            t0 = time.perf_counter()
            train_detector(model, train, epochs=args.epochs, seed=seed, progress=False)
            secs.append(time.perf_counter() - t0)
            scores = coco_detection_map(detect(model, test.images), gt_boxes, gt_labels)
            map50.append(scores["map_50"])
            map_all.append(scores["map"])
            fwd.append(_forward_ms(model, test.images[:64]))
            print(f"detection {neck:<9} seed {seed}: mAP@0.5 {map50[-1]:.4f}  mAP@[.5:.95] {map_all[-1]:.4f}  "
                  f"train {secs[-1]:.0f} s  ({time.perf_counter() - start:.0f} s in all)", flush=True)
        rows.append(_row("detection", neck, params, base_params, ("map_50", "map_50_95"), (map50, map_all),
                         statistics.median(fwd), statistics.mean(secs), args, args.epochs, args.n_train))

    figures = make_stick_figures(args.pose_n_train, seed=0, split="train")
    figures_test = make_stick_figures(args.n_test, seed=0, split="test")
    areas = keypoint_areas(figures_test.keypoints)
    sigmas = torch.full((figures_test.keypoints.shape[1],), KEYPOINT_SIGMA)
    pose_base = sum(p.numel() for p in SimCCPose(attention=False).parameters())
    for attention in (False, True):
        ap, err, secs, fwd = [], [], [], []
        params = 0
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            pose_model = SimCCPose(attention=attention)
            params = sum(p.numel() for p in pose_model.parameters())
            t0 = time.perf_counter()
            train_pose(pose_model, figures, epochs=args.pose_epochs, seed=seed, progress=False)
            secs.append(time.perf_counter() - t0)
            coords, conf = predict_keypoints(pose_model, figures_test.images)
            ap.append(coco_keypoint_ap(coords, conf.mean(1), figures_test.keypoints, figures_test.visibility, areas,
                                       sigmas)["ap"])
            err.append(float((coords - figures_test.keypoints).norm(dim=-1).mean()))
            fwd.append(_forward_ms(pose_model, figures_test.images[:64]))
            print(f"keypoints attention={attention} seed {seed}: OKS AP {ap[-1]:.4f}  error {err[-1]:.3f} px",
                  flush=True)
        rows.append(_row("keypoints", "self_attention" if attention else "no_attention", params, pose_base,
                         ("oks_ap", "pixel_error"), (ap, err), statistics.median(fwd), statistics.mean(secs), args,
                         args.pose_epochs, args.pose_n_train))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return rows


if __name__ == "__main__":
    main()
