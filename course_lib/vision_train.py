"""A small host CNN for the vision lessons, and the loop that trains it on cluttered digits.

``HostCNN(attention)`` puts one attention module (``course_lib.vision.create_attention`` name) on the
residual branch of each residual block, after the last conv + BN and before the add, as SE-ResNet and
CBAM do (Hu et al. 2018, arXiv:1709.01507); ``attention=None`` is the baseline. ``train_classifier`` and
``evaluate_classifier`` are the plain loop the lessons and ``benchmarks/vision_ablation.py`` share;
``attention_box_mass`` measures how much of the first module's spatial map falls inside the digit's box.
Introduced in lesson 12.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_int, positive_int
from course_lib.data.digits import box_mass
from course_lib.vision import ATTENTION_NAMES, create_attention, has_spatial_map, spatial_maps_in_model

__all__ = [
    "ResidualBlock", "HostCNN", "count_parameters", "train_classifier", "evaluate_classifier", "attention_box_mass",
]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters. Introduced in lesson 12."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out))


class ResidualBlock(nn.Module):
    """Basic residual block (He et al. 2016, arXiv:1512.03385), an attention module on the branch before the add.

    Introduced in lesson 12.

    Args:
        channels: C, input and output channels.
        attention: a ``create_attention`` name, or None for the plain block.
        **attention_kwargs: passed to the attention module's constructor.
    """

    def __init__(self, channels: int, attention: str | None = None, **attention_kwargs: Any) -> None:
        super().__init__()
        self.branch = nn.Sequential(_conv_bn(channels, channels), nn.ReLU(), _conv_bn(channels, channels))
        self.attention = nn.Identity() if attention is None else create_attention(attention, channels,
                                                                                 **attention_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.attention(self.branch(x)))


class HostCNN(nn.Module):
    """Small ResNet-style classifier for 1x40x40 canvases: stem, then per width a stride-2 conv and a residual block.

    ``widths=(16, 32, 64)`` gives feature maps of 40x40 (stem), 20x20 and 10x10; the attention module
    sits in the residual blocks at 20x20 and 10x10. Introduced in lesson 12.

    Args:
        attention: a ``create_attention`` name, or None for the baseline.
        in_channels: the image's channels.
        num_classes: number of classes.
        widths: channels of the stem, then of each stage (at least 2 entries).
        attention_kwargs: passed to every attention module's constructor.
    """

    def __init__(self, attention: str | None = None, *, in_channels: int = 1, num_classes: int = 10,
                 widths: tuple[int, ...] = (16, 32, 64), attention_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if attention is not None and attention not in ATTENTION_NAMES:
            raise ValueError(f"unknown attention module {attention!r}; valid names: None, {', '.join(ATTENTION_NAMES)}")
        if len(widths) < 2:
            raise ValueError(f"widths needs at least 2 entries (stem and one stage), got {widths}")
        self.attention_name = attention
        kwargs = dict(attention_kwargs or {})
        self.stem = nn.Sequential(_conv_bn(in_channels, widths[0]), nn.ReLU())
        stages = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            stages.append(nn.Sequential(_conv_bn(c_in, c_out, stride=2), nn.ReLU(),
                                        ResidualBlock(c_out, attention, **kwargs)))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(widths[-1], num_classes)

    def attention_modules(self) -> list[nn.Module]:
        """The attention modules, from the highest resolution to the lowest (empty for the baseline)."""
        return [m.attention for m in self.modules() if isinstance(m, ResidualBlock)
                and not isinstance(m.attention, nn.Identity)]

    def forward(self, x: Tensor) -> Tensor:
        features = self.stages(self.stem(x))  # (B, C_last, H/2^k, W/2^k)
        return self.head(features.mean(dim=(2, 3)))  # (B, classes)


def _unpack(data: Any) -> tuple[Tensor, Tensor]:
    if hasattr(data, "images") and hasattr(data, "labels"):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise TypeError(f"data must have .images and .labels (e.g. ClutteredDigits) or be an (images, labels) pair, "
                    f"got {type(data).__name__}")


def _device_of(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def evaluate_classifier(model: nn.Module, data: Any, *, batch_size: int = 256,
                        device: torch.device | str | None = None) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``data`` (eval mode; the mode is restored).

    Introduced in lesson 12.

    Args:
        model: a classifier returning (B, classes) logits.
        data: ``ClutteredDigits`` (``.images``, ``.labels``) or an ``(images, labels)`` pair.
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
    """
    batch_size = positive_int("batch_size", batch_size)
    images, labels = _unpack(data)
    device = _device_of(model, device)
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(labels), batch_size):
        x = images[start:start + batch_size].to(device)
        y = labels[start:start + batch_size].to(device)
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    model.train(was_training)
    n = max(1, len(labels))
    return {"accuracy": correct / n, "loss": loss_sum / n}


def train_classifier(model: nn.Module, data: Any, *, epochs: int = 5, batch_size: int = 64, lr: float = 3e-3,
                     weight_decay: float = 1e-4, val_data: Any = None, seed: int = 0,
                     device: torch.device | str | None = None, progress: bool = True) -> dict[str, list[float]]:
    """AdamW with a one-cycle schedule; returns the history ``train_loss``, ``train_acc``, ``val_acc``,
    ``epoch_seconds``.

    Shuffling uses its own generator seeded by ``seed``, so runs repeat. ``val_acc`` is empty when
    ``val_data`` is None. A tqdm bar shows the epochs unless ``progress=False``. Introduced in lesson 12.
    """
    from tqdm.auto import tqdm

    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    images, labels = _unpack(data)
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(f"data must hold as many images as labels (> 0), got {len(images)} images and "
                         f"{len(labels)} labels")
    device = _device_of(model, device)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = (len(labels) + batch_size - 1) // batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": [], "val_acc": [], "epoch_seconds": []}
    bar = tqdm(range(epochs), desc="epochs", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(labels), generator=generator)
        loss_sum, correct = 0.0, 0
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(dim=1) == y).sum().item()
        history["epoch_seconds"].append(time.perf_counter() - start)
        history["train_loss"].append(loss_sum / len(labels))
        history["train_acc"].append(correct / len(labels))
        if val_data is not None:
            history["val_acc"].append(evaluate_classifier(model, val_data, device=device)["accuracy"])
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}",
                        **({"val_acc": f"{history['val_acc'][-1]:.3f}"} if history["val_acc"] else {}))
    model.eval()
    return history


@torch.no_grad()
def attention_box_mass(model: HostCNN, data: Any, *, which: int = 0, batch_size: int = 256,
                       device: torch.device | str | None = None) -> float | None:
    """Mean fraction of the spatial map of attention module ``which`` (0 = highest resolution) inside the digit's box.

    The map is computed from the features the module receives (caught by a forward hook) and scored by
    ``box_mass`` at its own resolution. Returns None for the baseline and for modules without a spatial
    map (SE, ECA, CAM). Compare with the chance level: the mean box area over the canvas area.
    Introduced in lesson 12.
    """
    which = check_int("which", which)
    batch_size = positive_int("batch_size", batch_size)
    modules = model.attention_modules()
    if not modules:
        return None
    module = modules[which]
    if not has_spatial_map(module):
        return None
    device = _device_of(model, device)
    was_training = model.training
    model.eval()
    masses = []
    try:
        for start in range(0, len(data), batch_size):
            batch = data[start:start + batch_size]
            (maps,) = spatial_maps_in_model(model, [module], batch.images.to(device))  # (B, h, w)
            masses.append(box_mass(maps, batch.boxes.to(device), canvas_size=data.canvas))
    finally:
        model.train(was_training)
    return torch.cat(masses).mean().item()

