"""Canvas and model picker for lesson 14: a detector's boxes on a test canvas, and its neck's attention map.

The map is ``course_lib.vision.spatial_attention_map`` of the neck module, on the features it receives
(the backbone's output, stride 8), upsampled to the canvas; the baseline has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from course_lib._validate import check_float, check_int
from course_lib.data.canvases import DetectionCanvases
from course_lib.detection.head import GridDetector, decode_predictions
from course_lib.vision import has_spatial_map, spatial_attention_map
from course_lib.widgets._layout import pick_and_slide

__all__ = ["DetectionView", "detection_view", "draw_detection", "detection_explorer"]


@dataclass
class DetectionView:
    """What the picker draws for one canvas and one detector. Introduced in lesson 14."""

    image: np.ndarray  # (H, W)
    boxes: np.ndarray  # (k, 4) predicted corners, score above the threshold, after NMS
    scores: np.ndarray  # (k,)
    labels: np.ndarray  # (k,)
    gt_boxes: np.ndarray  # (g, 4)
    gt_labels: np.ndarray  # (g,)
    attention: np.ndarray | None  # (h, w) the neck's spatial map, None for the baseline
    upsampled: np.ndarray | None  # (H, W) the map resized to the canvas (nearest)
    name: str  # the neck module's name


def detection_view(model: GridDetector, data: DetectionCanvases, index: int = 0, *,
                   score_threshold: float = 0.3) -> DetectionView:
    """Boxes and the neck's attention map of ``model`` on canvas ``index`` of ``data``. Introduced in lesson 14."""
    if not isinstance(model, GridDetector):
        raise TypeError(f"model must be a GridDetector, got {type(model).__name__}")
    if not isinstance(data, DetectionCanvases):
        raise TypeError(f"data must be DetectionCanvases, got {type(data).__name__}")
    index = check_int("index", index)
    if not 0 <= index < len(data):
        raise ValueError(f"index must lie in [0, {len(data) - 1}] for {len(data)} canvases, got {index}")
    score_threshold = check_float("score_threshold", score_threshold, minimum=0.0, maximum=1.0)
    x = data.images[index:index + 1]  # (1, 1, H, W)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            raw = model(x)
            det = decode_predictions(raw, model.stride, score_threshold=score_threshold)[0]
            modules = model.attention_modules()
            attn: Tensor | None = None
            if modules and has_spatial_map(modules[0]):
                attn = spatial_attention_map(modules[0], model.features(x))[0]  # (h, w)
    finally:
        model.train(was_training)
    up = None
    if attn is not None:
        up = F.interpolate(attn[None, None].float(), size=x.shape[2:], mode="nearest")[0, 0].numpy()
    gt_boxes, gt_labels = data.targets(index)
    return DetectionView(image=x[0, 0].numpy(), boxes=det["boxes"].numpy(), scores=det["scores"].numpy(),
                         labels=det["labels"].numpy(), gt_boxes=gt_boxes.numpy(), gt_labels=gt_labels.numpy(),
                         attention=None if attn is None else attn.numpy(), upsampled=up, name=model.neck_name)


def draw_detection(view: DetectionView, *, title: str = "") -> Figure:
    """The canvas with true (green, dashed) and predicted (red, class and score) boxes, and the map beside it.

    Introduced in lesson 14.
    """
    panels = 2 if view.upsampled is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(3.4 * panels, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.imshow(view.image, cmap="gray", vmin=0, vmax=1)
    for x0, y0, x1, y1 in view.gt_boxes:
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", ls="--", lw=1.2))
    for (x0, y0, x1, y1), s, c in zip(view.boxes, view.scores, view.labels, strict=True):
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.5))
        ax.text(x0, y0 - 1, f"{int(c)} {s:.2f}", color="red", fontsize=8, va="bottom")
    ax.set_title(title or f"{view.name}: {len(view.boxes)} boxes", fontsize=9)
    if view.upsampled is not None:
        ax2 = axes[0, 1]
        ax2.imshow(view.image, cmap="gray", vmin=0, vmax=1)
        ax2.imshow(view.upsampled, cmap="inferno", alpha=0.6)
        for x0, y0, x1, y1 in view.gt_boxes:
            ax2.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", ls="--"))
        ax2.set_title(f"{view.name} map ({view.attention.shape[0]}x{view.attention.shape[1]})"
                      if view.attention is not None else "", fontsize=9)
    for a in axes[0]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def detection_explorer(models: Mapping[str, GridDetector], data: DetectionCanvases, *,
                       score_threshold: float = 0.3) -> Any:
    """A dropdown for the detector, a slider for the canvas; returns the ipywidgets box. Introduced in lesson 14."""
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty mapping of names to GridDetector")
    return pick_and_slide(list(models), len(data), lambda name, i: draw_detection(
        detection_view(models[name], data, i, score_threshold=score_threshold), title=f"canvas {i}, {name}"),
        pick_label="model", index_label="canvas")
