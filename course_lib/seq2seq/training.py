"""Training with teacher forcing (教师强制): Adam, warm-up then cosine decay, length-grouped batches. Lesson 07."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_bool, positive_int
from course_lib.seq2seq.data import PAD_ID, PackedPairs

__all__ = ["RECIPE", "TrainHistory", "smooth", "length_grouped_batches", "train_seq2seq", "run_optimiser_steps"]

#: The training budget shared by lessons 07, 08 and 09, so that their models are compared fairly.
RECIPE: dict[str, float | int] = {"steps": 600, "batch_size": 128, "lr": 3e-3, "embed_dim": 64, "hidden_dim": 64}


@dataclass
class TrainHistory:
    """Per-step training loss, and how long training took. Introduced in lesson 07."""

    loss: list[float]
    seconds: float
    steps: int
    examples_per_second: float


def smooth(values: Sequence[float], *, window: int = 25) -> list[float]:
    """Running mean over the last ``window`` values (for a readable loss curve). Introduced in lesson 07."""
    window = positive_int("window", window)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def length_grouped_batches(lengths: Tensor, batch_size: int, generator: torch.Generator, *,
                           pool: int = 50) -> list[Tensor]:
    """One epoch of batches: shuffle, sort each pool of ``pool`` batches by length, cut, shuffle the batches.

    Sentences of similar length share a batch, so little time goes into padding; the order stays random.
    Introduced in lesson 07.
    """
    order = torch.randperm(len(lengths), generator=generator)
    usable = len(order) - len(order) % batch_size  # drop the ragged end: every batch is full
    batches = []
    for start in range(0, usable, pool * batch_size):
        chunk = order[start:min(start + pool * batch_size, usable)]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += list(chunk.split(batch_size))
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[j] for j in shuffled]


def train_seq2seq(
    model: nn.Module,
    data: PackedPairs,
    *,
    steps: int = 1500,
    batch_size: int = 128,
    lr: float = 3e-3,
    warmup: int = 50,
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> TrainHistory:
    """Adam with linear warm-up then cosine decay; cross-entropy over non-padding target tokens.

    Batches are drawn by a seeded permutation, grouped by target length (less padding) and trimmed to their
    longest sentence. Introduced in lesson 07.

    Args:
        model: a course seq2seq model, ``model(src, src_lens, tgt_in) -> logits``.
        data: the training split, packed once.
        steps: optimiser steps.
        batch_size: sentence pairs per step.
        lr: peak learning rate.
        warmup: steps of linear warm-up.
        clip: gradient-norm clipping threshold.
        seed: seed of the batch order.
        progress: show a tqdm bar.
        desc: the bar's label.
    """

    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    warmup = positive_int("warmup", warmup)
    check_bool("progress", progress)
    device = next(model.parameters()).device
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (i - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = torch.Generator().manual_seed(seed)
    batches: list[Tensor] = []

    def next_loss() -> Tensor:
        nonlocal batches
        if not batches:
            batches = length_grouped_batches(data.tgt_lens.cpu(), batch_size, generator)
        batch = data.take(batches.pop().to(device))
        logits = model(batch.src, batch.src_lens, batch.tgt_in)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1), ignore_index=PAD_ID)

    return run_optimiser_steps(model, optimizer, scheduler, next_loss, steps=steps, batch_size=batch_size,
                               clip=clip, progress=progress, desc=desc, log_every=50)


def run_optimiser_steps(model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, next_loss: Callable[[], Tensor], *,
                        steps: int, batch_size: int, clip: float, progress: bool, desc: str,
                        log_every: int) -> TrainHistory:
    """The training loop the course's trainers share: loss, backward, clip, step, schedule, a tqdm bar.

    ``next_loss()`` draws the next batch and returns its loss; the trainer that calls this owns the data, the
    batch order and the loss. Introduced in lesson 07 (``train_seq2seq``), also behind lesson 11's
    ``train_summariser``.
    """
    from tqdm.auto import tqdm

    losses: list[float] = []
    model.train()
    begin = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=1.0)
    for i in bar:
        loss = next_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if i % log_every == 0:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - begin
    model.eval()
    return TrainHistory(losses, seconds, steps, steps * batch_size / max(seconds, 1e-9))

