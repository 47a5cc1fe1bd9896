"""Lesson 11 benchmark: the attention decoder vs the pointer-generator, several seeds and two budgets.

    OMP_NUM_THREADS=1 python benchmarks/summarise_models.py [--steps 150 600] [--seeds 0 1 2]

Same data (``make_document_corpus()``), same sizes and the same steps for both models in each row. Writes
benchmarks/results/summarise_models.csv: ROUGE-1/2/L F1 (rouge-score), the exact copy rate of test names and
numbers never seen in training, exact match, and training seconds. Lesson 11 reads the CSV.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from course_lib import summarise as sm
from course_lib.data.documents import make_document_corpus
from course_lib.device import set_seed

OUT = Path(__file__).resolve().parent / "results" / "summarise_models.csv"
SIZES = {"embed_dim": 32, "hidden_dim": 32, "batch_size": 32}
LR = 3e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[150, 600])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = make_document_corpus()
    data = sm.encode_documents([d.source for d in corpus.train], [d.summary for d in corpus.train], corpus.vocab)
    unseen = corpus.unseen_words()
    names = {w for w in unseen if w.isalpha()}
    numbers = {w for w in unseen if w.isdigit()}
    refs = [list(d.summary) for d in corpus.test]
    rows = []
    for steps in args.steps:
        for seed in args.seeds:
            for model_name, pointer in (("attention", False), ("pointer-generator", True)):
                set_seed(seed)
                model = sm.Summariser(len(corpus.vocab), SIZES["embed_dim"], SIZES["hidden_dim"], pointer=pointer)
                history = sm.train_summariser(model, data, steps=steps, batch_size=SIZES["batch_size"],
                                              lr=LR, seed=seed, progress=False)
                hyps = [s.tokens for s in sm.summarise(model, [d.source for d in corpus.test], corpus.vocab)]
                scores = sm.rouge(hyps, refs)
                row = {"model": model_name, "steps": steps, "seed": seed,
                       **{k: round(v, 4) for k, v in scores.items()},
                       "copy_unseen_names": round(sm.copy_rate(hyps, refs, names).rate, 4),
                       "copy_unseen_numbers": round(sm.copy_rate(hyps, refs, numbers).rate, 4),
                       "exact_match": round(sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs), 4),
                       "train_seconds": round(history.seconds, 1), "test_fingerprint": corpus.fingerprint()}
                print(row, flush=True)
                rows.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT.name}")


if __name__ == "__main__":
    main()
