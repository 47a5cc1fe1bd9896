"""The glimpse explorer of lesson 15: pick a test image, step through the recurrent attention model's glimpses.

``glimpse_view`` computes what the picture shows (unit-tested without a browser), ``draw_glimpses`` draws it and
``glimpse_explorer`` is the ipywidgets shell. Introduced in lesson 15.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from course_lib._validate import check_int
from course_lib.generation.glimpse import glimpse_sensor, location_to_pixel
from course_lib.generation.ram import RecurrentAttentionModel
from course_lib.widgets._layout import labelled

__all__ = ["GlimpseView", "glimpse_view", "draw_glimpses", "glimpse_explorer"]


@dataclass
class GlimpseView:
    """One image and the model's first ``step + 1`` glimpses. Introduced in lesson 15."""

    image: np.ndarray  # (H, W)
    label: int
    step: int  # 0-based index of the glimpse shown
    centres: list[tuple[int, int]]  # (column, row) pixel of glimpses 0..step
    sides: list[int]  # the retina's patch sides in pixels, smallest first
    crops: np.ndarray  # (k, g, g): the retina at glimpse ``step``
    probabilities: np.ndarray  # (10,): the classifier's belief after glimpse ``step``
    prediction: int


def glimpse_view(model: RecurrentAttentionModel, images: Tensor, labels: Tensor, index: int = 0,
                 step: int = 0) -> GlimpseView:
    """Run ``model`` (eval mode: mean locations) on ``images[index]`` and describe glimpse ``step``. Lesson 15."""
    if not isinstance(model, RecurrentAttentionModel):
        raise TypeError(f"model must be a RecurrentAttentionModel, got {type(model).__name__}")
    if not isinstance(images, Tensor) or images.dim() != 4 or not isinstance(labels, Tensor) \
            or labels.shape != images.shape[:1]:
        raise ValueError(f"images must have shape (N, 1, H, W) and labels (N,), got "
                         f"{getattr(images, 'shape', type(images).__name__)} and "
                         f"{getattr(labels, 'shape', type(labels).__name__)}")
    index = check_int("index", index)
    if not 0 <= index < images.shape[0]:
        raise ValueError(f"index must lie in [0, {images.shape[0] - 1}] for images of shape {tuple(images.shape)}, "
                         f"got {index}")
    step = check_int("step", step)
    if not 0 <= step < model.num_glimpses:
        raise ValueError(f"step must lie in [0, {model.num_glimpses - 1}] for a model of {model.num_glimpses} "
                         f"glimpses, got {step}")
    x = images[index:index + 1].float()  # (1, 1, H, W)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(x, sample=False)
        loc = out.locations[0, :step + 1]  # (step + 1, 2)
        crops = glimpse_sensor(x, loc[-1:], patch_size=model.patch_size, num_scales=model.num_scales)[0]
        probs = torch.softmax(out.step_logits[0, step], dim=-1)
    model.train(was_training)
    centres = [(int(c), int(r)) for c, r in location_to_pixel(loc, x.shape[-1]).tolist()]
    return GlimpseView(image=x[0, 0].numpy(), label=int(labels[index]), step=step, centres=centres,
                       sides=[model.patch_size * 2 ** k for k in range(model.num_scales)], crops=crops.numpy(),
                       probabilities=probs.numpy(), prediction=int(probs.argmax()))


def draw_glimpses(view: GlimpseView, *, title: str = "") -> Figure:
    """The image with the path of glimpses and the current retina squares, the crops, the belief. Lesson 15."""
    k = len(view.sides)
    fig, axes = plt.subplots(1, k + 2, figsize=(2.4 * (k + 2), 2.6), gridspec_kw={"width_ratios": [1.6] + [1] * k
                                                                                  + [1.4]})
    ax = axes[0]
    ax.imshow(view.image, cmap="gray", vmin=0, vmax=1)
    cols = [c for c, _ in view.centres]
    rows = [r for _, r in view.centres]
    ax.plot(cols, rows, "-o", color="orange", ms=3, lw=1)
    c, r = view.centres[-1]
    for side, colour in zip(view.sides, ("lime", "cyan", "magenta", "yellow"), strict=False):
        ax.add_patch(plt.Rectangle((c - side // 2 - 0.5, r - side // 2 - 0.5), side, side, fill=False, ec=colour,
                                   lw=1.2))
    ax.set_title(title or f"label {view.label}, glimpse {view.step + 1}", fontsize=9)
    ax.set_xlim(-0.5, view.image.shape[1] - 0.5)
    ax.set_ylim(view.image.shape[0] - 0.5, -0.5)
    for i, crop in enumerate(view.crops):
        axes[1 + i].imshow(crop, cmap="gray", vmin=0, vmax=1)
        axes[1 + i].set_title(f"{view.sides[i]}x{view.sides[i]} px", fontsize=9)
    axes[-1].bar(range(10), view.probabilities, color=["C1" if d == view.label else "C0" for d in range(10)])
    axes[-1].set_xticks(range(10))
    axes[-1].set_ylim(0, 1)
    axes[-1].set_title(f"belief: {view.prediction}", fontsize=9)
    for a in axes[:-1]:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def glimpse_explorer(model: RecurrentAttentionModel, images: Tensor, labels: Tensor) -> Any:
    """Sliders for the test image and the glimpse; returns the ipywidgets box. Introduced in lesson 15."""
    import ipywidgets as widgets
    from IPython.display import display

    index = labelled(widgets.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="image"))
    step = labelled(widgets.IntSlider(value=model.num_glimpses - 1, min=0, max=model.num_glimpses - 1,
                                      description="glimpse"))
    out = widgets.Output()

    def update(_: object = None) -> None:
        view = glimpse_view(model, images, labels, index.value, step.value)
        with out:
            out.clear_output(wait=True)
            fig = draw_glimpses(view)
            display(fig)
            plt.close(fig)

    index.observe(update, names="value")
    step.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([index, step]), out])
