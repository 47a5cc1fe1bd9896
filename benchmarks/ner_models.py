"""Lesson 10's three taggers over several seeds, and the BiLSTM with four times the budget.

Usage (from the repository root):

    python benchmarks/ner_models.py                 # the full run, about 10 minutes on one free CPU core
    python benchmarks/ner_models.py --seeds 1       # a quick look

Every run builds ``course_lib.tagging.build_tagger(name, seed=s)``, trains it with ``train_tagger`` on the
corpus of lesson 10 (``make_entity_corpus(seed=0)``) with ``tagging.RECIPE`` (or ``--long`` times its steps
for the extra BiLSTM rows), and scores the held-out test split with seqeval (``evaluate_tagger``). One row per
run goes to ``benchmarks/results/ner_models.csv``: F1 overall, on plain and on cue sentences, and the share of
cue entities exactly right in each cue-distance bucket.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(ROOT))

from course_lib import tagging as tg  # noqa: E402
from course_lib.data.entities import make_entity_corpus  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "ner_models.csv"


def run(name: str, seed: int, steps: int, corpus, vocab) -> dict:
    model = tg.build_tagger(name, len(vocab), d_model=int(tg.RECIPE["d_model"]), seed=seed)
    start = time.perf_counter()
    tg.train_tagger(model, corpus.train, vocab, steps=steps, batch_size=int(tg.RECIPE["batch_size"]),
                    lr=float(tg.RECIPE["lr"]), unk_rate=float(tg.RECIPE["unk_rate"]), seed=seed, progress=False)
    seconds = time.perf_counter() - start
    r = tg.evaluate_tagger(model, corpus.test, vocab)
    row = {"model": name, "seed": seed, "steps": steps, "train_seconds": round(seconds, 1),
           "parameters": sum(p.numel() for p in model.parameters()),
           "f1": round(r["f1"], 4), "f1_plain": round(r["f1_plain"], 4), "f1_cue": round(r["f1_cue"], 4)}
    for b in r["by_distance"]:
        row[f"cue_acc_{b['bucket']}"] = round(b["cue_accuracy"], 4)
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--long", type=int, default=4, help="budget multiple for the extra BiLSTM rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = make_entity_corpus(seed=0)
    vocab = tg.TokenVocab([w for s in corpus.train for w in s.tokens])
    steps = int(tg.RECIPE["steps"])
    rows = [run(name, seed, steps, corpus, vocab) for seed in range(args.seeds) for name in tg.MODEL_NAMES]
    rows.append(run("BiLSTM", 0, args.long * steps, corpus, vocab))
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
