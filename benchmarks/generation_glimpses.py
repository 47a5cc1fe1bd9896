"""Longer runs for lesson 15: the small GAN with and without self-attention, and RAM against its controls.

Usage (from the repository root):

    python benchmarks/generation_glimpses.py                 # the committed run (about 20 minutes on one thread)
    python benchmarks/generation_glimpses.py --gan-steps 100 --ram-steps 100 --seeds 1   # a quick look

GAN: ``course_lib.generation.Generator`` / ``Discriminator`` (width 16, batch 32, hinge loss, spectral norm,
Adam(0, 0.9), lr 1e-4 / 4e-4 as SAGAN), with and without the SAGAN layer, for each seed; the Fréchet distance
on the features of the judge classifier (trained once: 10 epochs, seed 0; the lesson trains its own for 6)
between 700 samples and the 719 held-out (val + test) digits, and class coverage of the 700 samples.
RAM: the recurrent attention model, the same model looking at random locations, and a CNN, on 3,000 training
canvases of cluttered digits (lesson 12's defaults), batch 64 (Adam, lr 3e-3 for the RAMs, 1e-3 for the CNN),
test accuracy on 1,000 test canvases. The committed table was written by one call of the default command on
one thread (about 20 minutes). The RAM rows repeat exactly from run to run; the GAN rows do not (an earlier run
gave Fréchet distances 29.7 / 37.7 without and 40.5 / 36.4 with the self-attention layer), so read them as one
draw each.
Results: ``benchmarks/results/generation_glimpses.csv``, one row per run and metric (long format).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(ROOT))

from course_lib.data.digits import make_cluttered_digits  # noqa: E402
from course_lib.generation import (  # noqa: E402
    ClutterCNN,
    Discriminator,
    Generator,
    RecurrentAttentionModel,
    accuracy,
    class_coverage,
    frechet_distance,
    train_cnn,
    train_digit_classifier,
    train_gan,
    train_ram,
    upscaled_digits,
)

OUT = ROOT / "benchmarks" / "results" / "generation_glimpses.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--ram-steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=2, help="GAN seeds")
    parser.add_argument("--ram-seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", default="gan,ram", help="which experiments to run: gan, ram or gan,ram")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[dict[str, object]] = []

    def add(experiment: str, model: str, seed: int, steps: int, **metrics: float) -> None:
        for metric, value in metrics.items():
            rows.append({"experiment": experiment, "model": model, "seed": seed, "steps": steps, "metric": metric,
                         "value": round(float(value), 4)})
            print(f"{experiment:4s} {model:14s} seed {seed} steps {steps:5d} {metric:9s} {value:.4f}", flush=True)

    parts = set(args.parts.split(","))
    if not parts <= {"gan", "ram"}:
        parser.error(f"--parts must name gan and/or ram, got {args.parts!r}")
    x_train, y_train = upscaled_digits("train")
    held_out = torch.cat([upscaled_digits("val")[0], upscaled_digits("test")[0]])
    judge, _ = train_digit_classifier(x_train, y_train, epochs=10, seed=0)
    with torch.no_grad():
        real_features = judge.features(held_out)
    for seed in range(args.seeds if "gan" in parts else 0):
        for attention in (False, True):
            torch.manual_seed(seed)
            generator, discriminator = Generator(32, 16, attention=attention), Discriminator(16, attention=attention)
            history, _ = train_gan(generator, discriminator, x_train, steps=args.gan_steps, batch_size=32, seed=seed,
                                   progress=False)
            samples = generator.sample(700, seed=100 + seed)
            with torch.no_grad():
                fid = frechet_distance(real_features, judge.features(samples)).item()
                coverage = class_coverage(judge(samples).argmax(-1))
            add("gan", "sagan" if attention else "dcgan", seed, args.gan_steps, fid=fid, coverage=coverage,
                seconds=history.seconds)

    train = make_cluttered_digits(3000, seed=0, split="train")
    test = make_cluttered_digits(1000, seed=0, split="test")
    for seed in range(args.ram_seeds if "ram" in parts else 0):
        for name in ("ram", "random", "cnn"):
            torch.manual_seed(seed)
            if name == "cnn":
                model: torch.nn.Module = ClutterCNN()
                log = train_cnn(model, train.images, train.labels, steps=args.ram_steps, seed=seed, progress=False)
            else:
                model = RecurrentAttentionModel(random_locations=name == "random")
                log = train_ram(model, train.images, train.labels, steps=args.ram_steps, seed=seed, progress=False)
            acc = accuracy(model, test.images, test.labels, generator=torch.Generator().manual_seed(seed))
            params = sum(p.numel() for p in model.parameters())
            add("ram", name, seed, args.ram_steps, accuracy=acc, params=params, seconds=log.seconds)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["experiment", "model", "seed", "steps", "metric", "value"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
