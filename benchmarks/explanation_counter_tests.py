"""Wiegreffe & Pinter 2019's two counter-tests that lesson 18 does not run: attention across seeds, adversarial model.

Usage (from the repository root):

    python benchmarks/explanation_counter_tests.py --threads 1              # the full run, a few minutes on one core
    python benchmarks/explanation_counter_tests.py --seeds 2 --lambdas 1    # a quick look

The model is lesson 18's: lesson 10's BiLSTM + self-attention tagger (``tagging.build_tagger``), trained with
``tagging.train_tagger`` and ``tagging.RECIPE`` for 250 steps (lesson 18's reduced budget, ``--steps``) on
``make_entity_corpus(seed=0)``. Attention is compared on the cue entities' first tokens of the test split (the
tokens whose tag depends on a far cue word, lesson 18 section 3), as the entity's weight row averaged over the
4 heads (heads are not matched between trainings, their mean is); distances are JS divergences in nats
(``explain.js_divergence``, at most ln 2 = 0.693).

(a) Seeds: one model per seed 0..N-1 (the seed of ``build_tagger`` and of ``train_tagger``); per seed its entity
F1, token accuracy and cue-entity accuracy, and the median JS between its attention rows and the same rows
shuffled among the sentence's real tokens (``explain.permute_weights``, the median of 5 shuffles per token);
per pair of seeds the median JS between their rows. If two seeds differ as much as a model and its shuffled
rows, one training's map is not "the" explanation.

(b) Adversarial model (Wiegreffe & Pinter section 5): a new model of the same architecture, trained from scratch
(initialised with ``build_tagger(seed=0)``, the base's initial weights, and the same batches and word dropout),
with loss = mean KL(base || adversary) of the tag distributions of the frozen seed-0 base and the adversary, over
all real tokens, minus lambda times the mean JS of its attention rows (each head against the base's same head) on
the training batch's cue entities' first tokens (``--fit tvd`` uses the TVD instead of the KL, as the paper does;
trained from scratch here it stays at "O" for every token, even with lambda = 0, so the default is the KL;
``--init base`` starts from the base's weights instead). lambda = 0 is the control: a second model distilled from
the base with no push on its attention. One row per lambda: F1 and accuracies, the mean TVD of its tag
distributions from the base's (all tokens and cue entities) and the median JS of its attention from the base's
(head-averaged rows, as in (a), and per head). Results: ``benchmarks/results/explanation_counter_tests.csv``,
long format (one number per row).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(ROOT))

from course_lib import explain as ex  # noqa: E402
from course_lib import tagging as tg  # noqa: E402
from course_lib.data.entities import Sentence, make_entity_corpus  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "explanation_counter_tests.csv"
NAME = "BiLSTM + self-attention"
FIELDS = ["test", "model", "reference", "metric", "value", "n"]


def build(vocab: tg.TokenVocab, seed: int) -> nn.Module:
    return tg.build_tagger(NAME, len(vocab), d_model=int(tg.RECIPE["d_model"]), seed=seed)


def recipe() -> dict:
    return {"batch_size": int(tg.RECIPE["batch_size"]), "lr": float(tg.RECIPE["lr"]),
            "unk_rate": float(tg.RECIPE["unk_rate"])}


class TestBatch:
    """The whole test split padded, and where its cue entities' first tokens are (as in lesson 18, section 2)."""

    def __init__(self, test: list[Sentence], vocab: tg.TokenVocab) -> None:
        self.ids, self.mask, y = tg.pad_batch([vocab.encode(s.tokens) for s in test],
                                              [[tg.TAG_TO_ID[t] for t in s.tags] for s in test])
        assert y is not None
        self.y = y
        self.cue = torch.zeros_like(self.mask)
        for b, s in enumerate(test):
            if s.cue_entity is not None:
                self.cue[b, s.cue_entity[0]] = True
        self.keys = self.mask[:, None, :].expand(-1, self.mask.shape[1], -1)  # (B, T, T) real keys per query

    @torch.no_grad()
    def run(self, model: nn.Module) -> tuple[Tensor, Tensor]:
        """(B, T, K) tag distributions and (B, H, T, T) attention weights of the one attention layer."""
        model.eval()
        logits, w = model(self.ids, self.mask, need_weights=True)
        return logits.softmax(-1), w[:, 0]

    def accuracies(self, p: Tensor) -> dict[str, float]:
        right = p.argmax(-1) == self.y
        return {"token_accuracy": right[self.mask].float().mean().item(),
                "cue_accuracy": right[self.cue].float().mean().item()}


def cue_rows(w: Tensor, batch: TestBatch) -> Tensor:
    """(N, T) the cue entities' head-averaged attention rows."""
    return w.mean(1)[batch.cue]


def permuted_js(rows: Tensor, keys: Tensor, repeats: int = 5, seed: int = 0) -> Tensor:
    """(N,) per row the median over ``repeats`` shuffles of the JS between the row and its shuffled copy."""
    gen = torch.Generator().manual_seed(seed)
    runs = [ex.js_divergence(ex.permute_weights(rows, keys, generator=gen), rows) for _ in range(repeats)]
    return torch.stack(runs).median(0).values


def train_adversary(base: nn.Module, sentences: list[Sentence], vocab: tg.TokenVocab, *, lam: float, steps: int,
                    batch_size: int, lr: float, unk_rate: float, seed: int = 0, fit: str = "kl",
                    init: str = "scratch") -> tuple[nn.Module, list[float]]:
    """``train_tagger``'s loop (same batches, word dropout, schedule) with the adversarial loss of the docstring."""
    model = build(vocab, seed)
    if init == "base":
        model.load_state_dict(base.state_dict())
    base.eval()
    ids = [vocab.encode(s.tokens) for s in sentences]
    unknown = [vocab.unknown_ids(s.tokens) for s in sentences]
    cue_at = [s.cue_entity[0] if s.cue_entity is not None else -1 for s in sentences]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order, pos, losses = torch.randperm(len(ids), generator=gen).tolist(), 0, []
    model.train()
    for _ in tqdm(range(steps), desc=f"adversary, lambda {lam:g}", leave=False):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(ids), generator=gen).tolist(), 0
        chosen = order[pos: pos + batch_size]
        pos += batch_size
        x, mask, _ = tg.pad_batch([ids[i] for i in chosen])
        if unk_rate > 0:
            unk, _, _ = tg.pad_batch([unknown[i] for i in chosen])
            drop = (torch.rand(x.shape, generator=gen) < unk_rate) & mask
            x = torch.where(drop, unk, x)
        with torch.no_grad():
            p_base, w_base = base(x, mask, need_weights=True)
            p_base, w_base = p_base.softmax(-1), w_base[:, 0]
        logits, w = model(x, mask, need_weights=True)
        w = w[:, 0]  # (B, H, T, T)
        if fit == "tvd":
            tvd = ex.total_variation(logits.softmax(-1), p_base)[mask].mean()
        else:  # KL(base || model), the cross-entropy to the base's distribution up to a constant
            tvd = (p_base * (p_base.clamp_min(1e-12).log() - logits.log_softmax(-1))).sum(-1)[mask].mean()
        rows = torch.tensor([[b, cue_at[i]] for b, i in enumerate(chosen) if cue_at[i] >= 0], dtype=torch.long)
        js = ex.js_divergence(w[rows[:, 0], :, rows[:, 1]], w_base[rows[:, 0], :, rows[:, 1]]).mean()
        loss = tvd - lam * js
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return model, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="models with seeds 0..N-1 (at least 2)")
    parser.add_argument("--steps", type=int, default=250, help="training steps (lesson 18: 250, lesson 10: 400)")
    parser.add_argument("--lambdas", default="0,0.1,0.5", help="comma-separated weights of the JS term")
    parser.add_argument("--fit", choices=("kl", "tvd"), default="kl", help="adversary-to-base distance")
    parser.add_argument("--init", choices=("scratch", "base"), default="scratch", help="adversary initial weights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (pairs of seeds are compared)")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    corpus = make_entity_corpus(seed=0)
    vocab = tg.TokenVocab([w for s in corpus.train for w in s.tokens])
    batch = TestBatch(list(corpus.test), vocab)
    n_cue, n_tokens = int(batch.cue.sum()), int(batch.mask.sum())
    rows: list[dict] = []

    def add(test: str, model: str, reference: str, metric: str, value: float | Tensor, n: int = 0) -> None:
        rows.append({"test": test, "model": model, "reference": reference, "metric": metric,
                     "value": round(float(value), 5), "n": n})
        print(rows[-1], flush=True)

    # (a) seeds
    models, att = {}, {}
    for seed in tqdm(range(args.seeds), desc="seeds"):
        model = build(vocab, seed)
        history = tg.train_tagger(model, corpus.train, vocab, steps=args.steps, seed=seed, progress=False, **recipe())
        p, w = batch.run(model)
        models[seed], att[seed] = model, (p, w)
        name = f"seed {seed}"
        add("seeds", name, "", "f1", tg.evaluate_tagger(model, corpus.test, vocab)["f1"])
        for metric, value in batch.accuracies(p).items():
            add("seeds", name, "", metric, value, n_cue if metric == "cue_accuracy" else n_tokens)
        add("seeds", name, "", "train_seconds", history.seconds)
        rows_w = cue_rows(w, batch)
        add("seeds", name, "its rows permuted", "js_median", permuted_js(rows_w, batch.keys[batch.cue]).median(), n_cue)
    pair_js = []
    for a, b in itertools.combinations(range(args.seeds), 2):
        js = ex.js_divergence(cue_rows(att[a][1], batch), cue_rows(att[b][1], batch))
        pair_js.append(js)
        add("seeds", f"seed {a}", f"seed {b}", "js_median", js.median(), n_cue)
        tvd = ex.total_variation(att[a][0], att[b][0])
        add("seeds", f"seed {a}", f"seed {b}", "tvd_mean_cue", tvd[batch.cue].mean(), n_cue)
    add("seeds", "all pairs", "", "js_median", torch.cat(pair_js).median(), len(pair_js) * n_cue)

    # (b) adversarial models against the seed-0 base
    base = models[0]
    p0, w0 = att[0]
    for lam in tqdm([float(v) for v in args.lambdas.split(",")], desc="adversaries"):
        model, losses = train_adversary(base, list(corpus.train), vocab, lam=lam, steps=args.steps, fit=args.fit,
                                        init=args.init, **recipe())
        p, w = batch.run(model)
        name = f"adversary lambda {lam:g}"
        add("adversarial", name, "", "final_loss", sum(losses[-25:]) / len(losses[-25:]))
        add("adversarial", name, "", "f1", tg.evaluate_tagger(model, corpus.test, vocab)["f1"])
        for metric, value in batch.accuracies(p).items():
            add("adversarial", name, "", metric, value, n_cue if metric == "cue_accuracy" else n_tokens)
        tvd = ex.total_variation(p, p0)
        add("adversarial", name, "seed 0", "tvd_mean", tvd[batch.mask].mean(), n_tokens)
        add("adversarial", name, "seed 0", "tvd_mean_cue", tvd[batch.cue].mean(), n_cue)
        agree = p.argmax(-1) == p0.argmax(-1)
        add("adversarial", name, "seed 0", "same_prediction", agree[batch.mask].float().mean(), n_tokens)
        js = ex.js_divergence(cue_rows(w, batch), cue_rows(w0, batch))
        add("adversarial", name, "seed 0", "js_median", js.median(), n_cue)
        per_head = ex.js_divergence(w.permute(0, 2, 1, 3)[batch.cue], w0.permute(0, 2, 1, 3)[batch.cue])  # (N, H)
        add("adversarial", name, "seed 0", "js_median_per_head", per_head.median(), int(per_head.numel()))
    add("run", "all", "", "seconds", time.perf_counter() - start)
    add("run", "all", "", "threads", args.threads)
    add("run", "all", "", "steps", args.steps)
    args.out.parent.mkdir(exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
