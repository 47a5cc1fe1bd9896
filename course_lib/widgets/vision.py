"""Image and module picker: see where a vision attention module looks on one image (lessons 12-13).

The maps are ``course_lib.vision.spatial_attention_map`` of each module (CBAM's spatial gate, YOLOv4
SAM's gate averaged over channels, the attention each pixel receives in non-local / PAM / SAGAN, a
ViT's class-token attention), computed on the features the module receives inside the model and
upsampled to the image, as in the overlays of Woo et al. 2018 (CBAM, arXiv:1807.06521, figure 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from course_lib._validate import check_int
from course_lib.vision import has_spatial_map, spatial_attention_map, spatial_maps_in_model
from course_lib.widgets._layout import pick_and_slide

__all__ = ["VisionMapsView", "vision_maps_view", "overlay_maps", "vision_maps_explorer", "NO_MAP_CAPTION"]


@dataclass
class VisionMapsView:
    """What the picker draws for one image and one model (or module). Introduced in lesson 12."""

    image: np.ndarray  # (H, W): the image (first channel)
    maps: list[np.ndarray]  # each (h, w): one map per attention module with a spatial map, highest resolution first
    upsampled: list[np.ndarray]  # each (H, W): the maps resized to the image (nearest), for overlays
    names: list[str]  # the module class names, as titles
    peaks: list[tuple[int, int]]  # (row, col) in image pixels of each map's maximum (centre of the cell)
    box: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) of the digit, when given
    mass_in_box: list[float] = field(default_factory=list)  # each map's fraction of mass inside the box


def _modules_of(model_or_module: nn.Module) -> list[nn.Module]:
    if has_spatial_map(model_or_module):
        return [model_or_module]
    finder = getattr(model_or_module, "attention_modules", None)
    found = list(finder()) if callable(finder) else [m for m in model_or_module.modules()
                                                   if m is not model_or_module and has_spatial_map(m)]
    return [m for m in found if has_spatial_map(m)]


def vision_maps_view(model_or_module: nn.Module, images: Tensor, index: int = 0, *,
                     boxes: Tensor | None = None) -> VisionMapsView:
    """Spatial attention maps of ``model_or_module`` on ``images[index]`` (images (N, C, H, W), boxes (N, 4) or None).

    A model (e.g. ``HostCNN``) is run on the image and each attention module's map is computed from the
    features it receives (a forward hook); a module or a ViT is applied to the image directly. Models
    without a spatial attention module give empty lists. Introduced in lesson 12.
    """
    if not isinstance(model_or_module, nn.Module):
        raise TypeError(f"model_or_module must be an nn.Module, got {type(model_or_module).__name__}")
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor of shape (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    index = check_int("index", index)
    if not 0 <= index < images.shape[0]:
        raise ValueError(f"index must lie in [0, {images.shape[0] - 1}] for images of shape {tuple(images.shape)}, "
                         f"got {index}")
    if boxes is not None and (not isinstance(boxes, Tensor) or boxes.shape != (images.shape[0], 4)):
        raise ValueError(f"boxes must have shape (N, 4) = ({images.shape[0]}, 4), got "
                         f"{tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__}")
    first = next(model_or_module.parameters(), None)
    device = first.device if first is not None else images.device
    x = images[index:index + 1].to(device=device, dtype=torch.float32)  # (1, C, H, W)
    height, width = x.shape[2], x.shape[3]
    modules = _modules_of(model_or_module)
    was_training = model_or_module.training
    model_or_module.eval()
    maps: list[Tensor] = []
    try:
        with torch.no_grad():
            if len(modules) == 1 and modules[0] is model_or_module:
                maps = [spatial_attention_map(model_or_module, x)[0]]  # (h, w)
            elif modules:
                maps = [m[0] for m in spatial_maps_in_model(model_or_module, modules, x)]  # each (h, w)
    finally:
        model_or_module.train(was_training)
    up = [F.interpolate(m[None, None].float(), size=(height, width), mode="nearest")[0, 0] for m in maps]  # (H, W)
    peaks = []
    for m in maps:
        h, w = m.shape
        r, c = divmod(int(m.argmax()), w)
        peaks.append((int((r + 0.5) * height / h), int((c + 0.5) * width / w)))
    box: tuple[int, int, int, int] | None = None
    masses: list[float] = []
    if boxes is not None:
        from course_lib.data.digits import box_mass

        b = boxes[index]
        x0, y0, x1, y1 = (int(v) for v in b.tolist())
        box = (x0, y0, x1, y1)
        masses = [float(box_mass(m[None].cpu(), b[None].cpu(), canvas_size=(height, width))[0]) for m in maps]
    return VisionMapsView(
        image=x[0, 0].cpu().numpy(),
        maps=[m.cpu().numpy() for m in maps],
        upsampled=[u.cpu().numpy() for u in up],
        names=[type(m).__name__ for m in modules],
        peaks=peaks,
        box=box,
        mass_in_box=masses,
    )


#: What the picker writes under an image whose model has no spatial attention map (a baseline).
NO_MAP_CAPTION = "no attention map:\nthis model has no spatial\nattention module"


def overlay_maps(view: VisionMapsView, *, title: str = "", alpha: float = 0.55, colorbar: bool = True) -> Figure:
    """Draw the image, then each map over it (with the digit's box and the map's peak); returns the figure.

    ``colorbar=True`` puts a colour bar beside each map (each map has its own scale: the weights a module
    gives its pixels). A model without any spatial map (a baseline) gets the caption ``NO_MAP_CAPTION``
    instead of a bare image. Introduced in lesson 12.
    """
    panels = 1 + len(view.maps)
    width = 2.6 * panels + (0.5 * len(view.maps) if colorbar else 0.0)
    fig, axes = plt.subplots(1, panels, figsize=(max(width, 2.8), 2.8), squeeze=False)
    axes = axes[0]
    axes[0].imshow(view.image, cmap="gray")
    axes[0].set_title(title or "image", fontsize=9)
    if not view.maps:
        axes[0].set_xlabel(NO_MAP_CAPTION, fontsize=8)
    for i, (ax, up) in enumerate(zip(axes[1:], view.upsampled, strict=True)):
        ax.imshow(view.image, cmap="gray")
        shown = ax.imshow(up, cmap="inferno", alpha=alpha)
        if colorbar:
            bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            bar.ax.tick_params(labelsize=7)
            bar.set_label("map value", fontsize=7)
        r, c = view.peaks[i]
        ax.plot(c, r, "c+", markersize=10, mew=2)
        label = f"{view.names[i]} map {i}"
        if view.mass_in_box:
            label += f"\nmass in box {view.mass_in_box[i]:.2f}"
        ax.set_title(label, fontsize=9)
    if view.box is not None:
        x0, y0, x1, y1 = view.box
        for ax in axes:
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.5))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def vision_maps_explorer(models: Mapping[str, nn.Module] | Sequence[nn.Module] | nn.Module, images: Tensor,
                         boxes: Tensor | None = None) -> Any:
    """A slider for the image and a dropdown for the model/module; returns the ipywidgets box.

    Introduced in lesson 12.
    """

    if isinstance(models, nn.Module):
        models = {type(models).__name__: models}
    elif not isinstance(models, Mapping):
        models = {f"{i}: {type(m).__name__}": m for i, m in enumerate(models)}
    by_name: Mapping[str, nn.Module] = models  # (narrowed above; the lambda below needs it named)
    return pick_and_slide(list(by_name), images.shape[0], lambda name, i: overlay_maps(
        vision_maps_view(by_name[name], images, i, boxes=boxes), title=f"image {i}"),
        pick_label="module", index_label="image")
