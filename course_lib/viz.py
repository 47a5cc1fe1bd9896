"""Pictures of attention: one call draws a grid of weight matrices with labelled axes and a colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["show_heatmaps", "plot_curves", "to_numpy"]


def to_numpy(x: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    """Detach, move to CPU and convert, whatever device the tensor lives on. Introduced in lesson 02."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def _as_grid(matrices: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    """Accept (T_q, T_k), (cols, T_q, T_k) or (rows, cols, T_q, T_k); return 4-D."""
    if isinstance(matrices, (list, tuple)) and matrices and not np.isscalar(matrices[0]):
        shapes = {tuple(np.shape(to_numpy(m))) for m in matrices}
        if len(shapes) == 1:
            grid = np.stack([to_numpy(m) for m in matrices])
        else:
            raise ValueError(f"matrices in a list must share a shape to share a grid, got shapes {sorted(shapes)}")
    else:
        grid = to_numpy(matrices)
    if grid.ndim == 2:
        grid = grid[None, None]
    elif grid.ndim == 3:
        grid = grid[None]
    if grid.ndim != 4:
        raise ValueError(f"matrices must have shape (T_q, T_k), (cols, T_q, T_k) or (rows, cols, T_q, T_k), "
                         f"got {np.shape(grid)}")
    return grid


def show_heatmaps(
    matrices: torch.Tensor | np.ndarray | Sequence,
    *,
    xlabel: str = "keys",
    ylabel: str = "queries",
    titles: Sequence[str] | Sequence[Sequence[str]] | None = None,
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
    cmap: str = "Reds",
    vmin: float | None = 0.0,
    vmax: float | None = None,
    annotate: bool = False,
    figsize: tuple[float, float] | None = None,
    suptitle: str | None = None,
) -> Figure:
    """Draw attention matrices as heatmaps in a grid sharing one colour bar; return the figure.

    ``matrices`` is (T_q, T_k), (cols, T_q, T_k) or (rows, cols, T_q, T_k) (e.g. layers x heads),
    a tensor on any device or an array. ``annotate=True`` writes each weight in its cell (small
    matrices). ``vmax=None`` uses the largest weight shown. Introduced in lesson 00.
    """
    grid = _as_grid(matrices)
    rows, cols, t_q, t_k = grid.shape
    if xticklabels is not None and len(xticklabels) != t_k:
        raise ValueError(f"xticklabels has {len(xticklabels)} labels for T_k = {t_k} keys")
    if yticklabels is not None and len(yticklabels) != t_q:
        raise ValueError(f"yticklabels has {len(yticklabels)} labels for T_q = {t_q} queries")
    vmax = float(np.nanmax(grid)) if vmax is None else vmax
    if figsize is None:
        cell = max(1.6, min(3.2, 0.35 * max(t_q, t_k) + 1.0))
        figsize = (cell * cols + 0.8, cell * rows * max(0.5, t_q / max(t_k, 1)) + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, sharex=True, sharey=True, squeeze=False,
                             constrained_layout=True)
    image = None
    for i in range(rows):
        for j in range(cols):
            ax = axes[i][j]
            image = ax.imshow(grid[i, j], cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            if titles is not None:
                title = titles[i][j] if rows > 1 and not isinstance(titles[0], str) else titles[i * cols + j]
                ax.set_title(title, fontsize=9)
            if i == rows - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if xticklabels is not None:
                ax.set_xticks(range(t_k), labels=list(xticklabels), rotation=90, fontsize=8)
            if yticklabels is not None:
                ax.set_yticks(range(t_q), labels=list(yticklabels), fontsize=8)
            if annotate:
                for (r, c), w in np.ndenumerate(grid[i, j]):
                    colour = "white" if vmax and w > 0.6 * vmax else "black"
                    ax.text(c, r, f"{w:.2f}", ha="center", va="center", fontsize=7, color=colour)
    assert image is not None  # the grid has at least one panel
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_curves(
    curves: dict[str, Sequence[float]],
    *,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    logy: bool = False,
    figsize: tuple[float, float] = (5.5, 3.2),
) -> Figure:
    """Plot named curves (loss, accuracy, ...) on one axis; return the figure. Introduced in lesson 02."""
    if not curves:
        raise ValueError("curves must name at least one curve")
    fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    for name, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), to_numpy(values), label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
