"""A small host CNN for the vision lessons, and the loop that trains it on cluttered digits.

``HostCNN(attention)`` puts one attention module (``course_lib.vision.create_attention`` name) on the
residual branch of each residual block, after the last conv + BN and before the add, as SE-ResNet and
CBAM do (Hu et al. 2018, arXiv:1709.01507); ``attention=None`` is the baseline. ``train_classifier`` and
``evaluate_classifier`` are the plain loop the lessons and ``benchmarks/vision_ablation.py`` share;
``attention_box_mass`` measures how much of the first module's spatial map falls inside the digit's box, and
``attention_box_auc`` how well the map ranks box positions above the rest (``box_auc``), a reading that means the
same for sigmoid gates and softmax maps. Introduced in lesson 12.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib._validate import check_int, check_tensor, positive_int
from course_lib.data.digits import box_mass
from course_lib.vision import (
    ATTENTION_NAMES,
    IdentityInitGate,
    create_attention,
    has_spatial_map,
    spatial_maps_in_model,
)

GATE_INITS = ("default", "identity")

__all__ = [
    "ResidualBlock", "HostCNN", "count_parameters", "train_classifier", "evaluate_classifier", "attention_box_mass",
    "box_auc", "attention_box_auc", "GATE_INITS",
]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters. Introduced in lesson 12."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out))


def _check_gate_init(gate_init: object) -> None:
    if not isinstance(gate_init, str):
        raise TypeError(f"gate_init must be a str, one of {GATE_INITS}, got {type(gate_init).__name__}")
    if gate_init not in GATE_INITS:
        raise ValueError(f"gate_init must be one of {GATE_INITS}, got {gate_init!r}")


class ResidualBlock(nn.Module):
    """Basic residual block (He et al. 2016, arXiv:1512.03385), an attention module on the branch before the add.

    Introduced in lesson 12.

    Args:
        channels: C, input and output channels.
        attention: a ``create_attention`` name, or None for the plain block.
        gate_init: ``"default"`` (the module as built) or ``"identity"``: a gating module wrapped in
            ``IdentityInitGate``, so that the block starts as the plain block (ignored when ``attention`` is None).
        **attention_kwargs: passed to the attention module's constructor.
    """

    def __init__(self, channels: int, attention: str | None = None, *, gate_init: str = "default",
                 **attention_kwargs: Any) -> None:
        super().__init__()
        _check_gate_init(gate_init)
        self.branch = nn.Sequential(_conv_bn(channels, channels), nn.ReLU(), _conv_bn(channels, channels))
        module = nn.Identity() if attention is None else create_attention(attention, channels, **attention_kwargs)
        if gate_init == "identity" and attention is not None:
            if not callable(getattr(module, "gate", None)):
                raise ValueError(f"gate_init='identity' needs a gating module (with gate(x)); {attention!r} builds "
                                 f"{type(module).__name__}, which is already the identity at init (gamma = 0)")
            module = IdentityInitGate(module)
        self.attention: nn.Module = module

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
        gate_init: ``"default"`` or ``"identity"`` (every gate wrapped in ``IdentityInitGate``: the model starts
            as the baseline); see ``ResidualBlock``.
    """

    def __init__(self, attention: str | None = None, *, in_channels: int = 1, num_classes: int = 10,
                 widths: tuple[int, ...] = (16, 32, 64), attention_kwargs: dict[str, Any] | None = None,
                 gate_init: str = "default") -> None:
        super().__init__()
        _check_gate_init(gate_init)
        if attention is not None and attention not in ATTENTION_NAMES:
            raise ValueError(f"unknown attention module {attention!r}; valid names: None, {', '.join(ATTENTION_NAMES)}")
        if len(widths) < 2:
            raise ValueError(f"widths needs at least 2 entries (stem and one stage), got {widths}")
        self.attention_name = attention
        self.gate_init = gate_init
        kwargs = dict(attention_kwargs or {})
        self.stem = nn.Sequential(_conv_bn(in_channels, widths[0]), nn.ReLU())
        stages = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            stages.append(nn.Sequential(_conv_bn(c_in, c_out, stride=2), nn.ReLU(),
                                        ResidualBlock(c_out, attention, gate_init=gate_init, **kwargs)))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(widths[-1], num_classes)

    def attention_modules(self) -> list[nn.Module]:
        """The attention modules, from the highest resolution to the lowest (empty for the baseline).

        With ``gate_init="identity"`` these are the wrapped gates (the ``IdentityInitGate``'s ``module``), whose
        spatial maps the box readings score.
        """
        found = [m.attention for m in self.modules() if isinstance(m, ResidualBlock)
                 and not isinstance(m.attention, nn.Identity)]
        return [m.module if isinstance(m, IdentityInitGate) else m for m in found]

    def gate_scales(self) -> list[float]:
        """The ``alpha`` of each ``IdentityInitGate`` (0 at init, 1 = the full gate); empty without them."""
        return [float(m.attention.alpha.item()) for m in self.modules()
                if isinstance(m, ResidualBlock) and isinstance(m.attention, IdentityInitGate)]

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


def _canvas_hw(canvas_size: object, h: int, w: int) -> tuple[int, int]:
    if canvas_size is None:
        return h, w
    if isinstance(canvas_size, (tuple, list)) and len(canvas_size) == 2:
        return check_int("canvas_size[0]", canvas_size[0], minimum=1), check_int("canvas_size[1]", canvas_size[1],
                                                                                 minimum=1)
    if isinstance(canvas_size, bool) or not isinstance(canvas_size, int):
        raise TypeError(f"canvas_size must be an int, an (H, W) pair or None, got {type(canvas_size).__name__} "
                        f"{canvas_size!r}")
    size = check_int("canvas_size", canvas_size, minimum=1)
    return size, size


def _cell_coverage(lo: Tensor, hi: Tensor, cells: int, extent: float) -> Tensor:
    """(B,), (B,) box edges in canvas pixels -> (B, cells) canvas pixels of each map cell inside [lo, hi)."""
    step = extent / cells
    edges = torch.arange(cells + 1, dtype=torch.float64, device=lo.device) * step  # (cells + 1,)
    inside = torch.minimum(edges[1:][None, :], hi[:, None]) - torch.maximum(edges[:-1][None, :], lo[:, None])
    return inside.clamp_min(0.0)  # (B, cells)


def box_auc(maps: Tensor, boxes: Tensor, *, canvas_size: int | tuple[int, int] | None = None) -> Tensor:
    """(B, h, w) maps, (B, 4) boxes ``(x0, y0, x1, y1)`` -> (B,) box AUC: P(map at a random box pixel > outside one).

    The area under the ROC curve (Hanley & McNeil 1982, https://doi.org/10.1148/radiology.143.1.7063747) of the
    map as a detector of the box: the probability that a uniformly random canvas pixel inside the box gets a
    higher map value than a uniformly random pixel outside it, ties counting one half. 0.5 is no preference
    (a constant map), 1.0 every box pixel above every outside one, 0.0 the reverse. It uses only the order of
    the values, so any map (a sigmoid gate in (0, 1), a softmax summing to 1, raw logits) is scored on the
    same scale, and a strictly increasing transform of a map leaves it unchanged. ``boxes`` are in canvas
    pixels (``x1``, ``y1`` exclusive); the map covers the canvas of ``canvas_size`` (default: the map's own
    size), each cell an equal rectangle whose pixels all take the cell's value, so a cell cut by the box's
    edge has pixels on both sides (they tie with each other). Introduced in lesson 12.
    """
    check_tensor("maps", maps, dim=3, layout="(B, h, w)")
    check_tensor("boxes", boxes, dim=2, layout="(B, 4)")
    if boxes.shape[1] != 4 or boxes.shape[0] != maps.shape[0]:
        raise ValueError(f"boxes must have shape (B, 4) = ({maps.shape[0]}, 4) to match maps {tuple(maps.shape)}, "
                         f"got {tuple(boxes.shape)}")
    batch, h, w = maps.shape
    if h * w == 0:
        raise ValueError(f"maps must have at least one cell, got shape {tuple(maps.shape)}")
    canvas_h, canvas_w = _canvas_hw(canvas_size, h, w)
    values = maps.detach().to(torch.float64).reshape(batch, h * w)  # (B, n)
    if not torch.isfinite(values).all():
        raise ValueError(f"maps must be finite, got NaN or inf in maps of shape {tuple(maps.shape)}")
    b = boxes.detach().to(device=values.device, dtype=torch.float64)
    x0, y0, x1, y1 = b.unbind(dim=1)
    if ((x1 <= x0) | (y1 <= y0)).any():
        raise ValueError(f"boxes must satisfy x0 < x1 and y0 < y1 (x1, y1 exclusive), got boxes of shape "
                         f"{tuple(boxes.shape)} with an empty box")
    if ((x0 < 0) | (y0 < 0) | (x1 > canvas_w) | (y1 > canvas_h)).any():
        raise ValueError(f"boxes must lie inside the canvas of (H, W) = ({canvas_h}, {canvas_w}) for maps "
                         f"{tuple(maps.shape)}; pass canvas_size when the maps are at a lower resolution than the "
                         f"canvas")
    if ((x1 - x0) * (y1 - y0) >= canvas_h * canvas_w).any():
        raise ValueError(f"boxes must leave some of the canvas (H, W) = ({canvas_h}, {canvas_w}) outside; a box "
                         f"covering it all has no outside pixels and the AUC is undefined")
    cover_y = _cell_coverage(y0, y1, h, float(canvas_h))  # (B, h) pixel rows inside, per cell row
    cover_x = _cell_coverage(x0, x1, w, float(canvas_w))  # (B, w)
    inside = (cover_y[:, :, None] * cover_x[:, None, :]).reshape(batch, h * w)  # (B, n) box pixels per cell
    outside = (canvas_h / h) * (canvas_w / w) - inside  # (B, n) outside pixels per cell
    order = values.argsort(dim=1)
    sorted_values = values.gather(1, order)  # (B, n)
    cum_out = F.pad(outside.gather(1, order).cumsum(dim=1), (1, 0))  # (B, n + 1): outside pixels below each rank
    lower = torch.searchsorted(sorted_values, values, side="left")  # (B, n) cells with a smaller value
    upper = torch.searchsorted(sorted_values, values, side="right")  # (B, n) smaller or equal
    below = cum_out.gather(1, lower)  # outside pixels with a smaller value than each cell
    ties = cum_out.gather(1, upper) - below  # outside pixels with an equal value
    wins = (inside * (below + 0.5 * ties)).sum(dim=1)  # (B,)
    auc = wins / (inside.sum(dim=1) * outside.sum(dim=1))
    return auc.to(maps.dtype if maps.is_floating_point() else torch.float64)


def _spatial_map_batches(model: HostCNN, data: Any, which: int, batch_size: int,
                         device: torch.device | str | None) -> list[tuple[Tensor, Tensor]] | None:
    """(maps (B, h, w), boxes (B, 4)) per batch for attention module ``which``, or None without a spatial map."""
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
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                batch = data[start:start + batch_size]
                (maps,) = spatial_maps_in_model(model, [module], batch.images.to(device))  # (B, h, w)
                out.append((maps, batch.boxes.to(device)))
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def attention_box_mass(model: HostCNN, data: Any, *, which: int = 0, batch_size: int = 256,
                       device: torch.device | str | None = None) -> float | None:
    """Mean fraction of the spatial map of attention module ``which`` (0 = highest resolution) inside the digit's box.

    The map is computed from the features the module receives (caught by a forward hook) and scored by
    ``box_mass`` at its own resolution. Returns None for the baseline and for modules without a spatial
    map (SE, ECA, CAM). Compare with the chance level: the mean box area over the canvas area. A mass reads
    the same for every map only if they all sum to 1 (softmax maps); a sigmoid gate near 0.5 everywhere
    scores about the chance level whatever it prefers, so compare gates with ``attention_box_auc``.
    Introduced in lesson 12.
    """
    batches = _spatial_map_batches(model, data, which, batch_size, device)
    if batches is None:
        return None
    return torch.cat([box_mass(maps, boxes, canvas_size=data.canvas) for maps, boxes in batches]).mean().item()


@torch.no_grad()
def attention_box_auc(model: HostCNN, data: Any, *, which: int = 0, batch_size: int = 256,
                      device: torch.device | str | None = None) -> float | None:
    """Mean box AUC (``box_auc``) of the spatial map of attention module ``which`` (0 = highest resolution).

    The same hook capture as ``attention_box_mass``; each image's map is scored at its own resolution
    against the digit's box and the scores averaged. 0.5 is no preference for the box, 1.0 a perfect
    ranking, whether the map is a sigmoid gate or a softmax. Returns None for the baseline and for modules
    without a spatial map (SE, ECA, CAM). Introduced in lesson 12.
    """
    batches = _spatial_map_batches(model, data, which, batch_size, device)
    if batches is None:
        return None
    return torch.cat([box_auc(maps, boxes, canvas_size=data.canvas) for maps, boxes in batches]).mean().item()
