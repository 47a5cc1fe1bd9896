"""Training and inference loops of the lesson-14 detector and keypoint model (shared with the benchmark)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from course_lib._validate import check_float, check_int
from course_lib.data.canvases import DetectionCanvases, StickFigures
from course_lib.detection.head import GridDetector, decode_predictions
from course_lib.detection.keypoints import SimCCPose, simcc_decode, simcc_loss, simcc_targets
from course_lib.detection.loss import yolo_loss

__all__ = ["train_detector", "detect", "train_pose", "predict_keypoints"]


def _schedule(optimizer: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, total // 20)

    def factor(step: int) -> float:  # linear warm-up, then cosine decay to 5%
        if step < warmup:
            return (step + 1) / warmup
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _fit(model: nn.Module, count: int, loss_of: Callable[[Tensor], Tensor], *, epochs: int, batch_size: int,
         lr: float, seed: int, clip: float | None, desc: str, progress: bool) -> list[float]:
    """The loop both trainers share: AdamW, warm-up and cosine decay, seeded epochs of ``loss_of(indices)``."""
    epochs, batch_size = check_int("epochs", epochs, minimum=1), check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, exclusive_minimum=True)
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    steps = epochs * math.ceil(count / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = _schedule(optimizer, steps)
    losses: list[float] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=True)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, batch_size):
            loss = loss_of(order[start:start + batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    bar.close()
    model.eval()
    return losses


def train_detector(model: GridDetector, data: DetectionCanvases, *, epochs: int = 10, batch_size: int = 32,
                   lr: float = 3e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """AdamW with warm-up and cosine decay on ``yolo_loss``; returns the loss of every step. Introduced in lesson 14."""
    def loss_of(idx: Tensor) -> Tensor:
        raw = model(data.images[idx])
        return yolo_loss(raw, data.boxes[idx], data.labels[idx], model.stride)[0]

    return _fit(model, len(data), loss_of, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, clip=10.0,
                desc=f"detector ({model.neck_name})", progress=progress)


@torch.no_grad()
def detect(model: GridDetector, images: Tensor, *, batch_size: int = 256, score_threshold: float = 0.05,
           iou_threshold: float = 0.5) -> list[dict[str, Tensor]]:
    """Run the detector in eval mode and decode with per-class NMS: one dict per image. Introduced in lesson 14."""
    was_training = model.training
    model.eval()
    out: list[dict[str, Tensor]] = []
    for start in range(0, images.shape[0], batch_size):
        raw = model(images[start:start + batch_size])
        out += decode_predictions(raw, model.stride, score_threshold=score_threshold, iou_threshold=iou_threshold)
    model.train(was_training)
    return out


def train_pose(model: SimCCPose, data: StickFigures, *, epochs: int = 10, batch_size: int = 32, lr: float = 3e-3,
               seed: int = 0, sigma: float = 2.0, progress: bool = True) -> list[float]:
    """AdamW with warm-up and cosine decay on ``simcc_loss``; returns each step's loss. Introduced in lesson 14."""
    tx, ty = simcc_targets(data.keypoints, data.canvas, split_ratio=model.split_ratio, sigma=sigma)

    def loss_of(idx: Tensor) -> Tensor:
        lx, ly, _ = model(data.images[idx])
        return simcc_loss(lx, ly, tx[idx], ty[idx])

    name = "with" if model.use_attention else "without"
    return _fit(model, len(data), loss_of, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, clip=None,
                desc=f"SimCC {name} attention", progress=progress)


@torch.no_grad()
def predict_keypoints(model: SimCCPose, images: Tensor, *, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Keypoints (N, K, 2) in pixels and confidences (N, K) of a SimCC model in eval mode. Introduced in lesson 14."""
    was_training = model.training
    model.eval()
    coords, confs = [], []
    for start in range(0, images.shape[0], batch_size):
        lx, ly, _ = model(images[start:start + batch_size])
        c, p = simcc_decode(lx, ly, split_ratio=model.split_ratio)
        coords.append(c)
        confs.append(p)
    model.train(was_training)
    return torch.cat(coords), torch.cat(confs)
