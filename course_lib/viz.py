"""Pictures of attention: one call draws a grid of weight matrices with labelled axes and a colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["show_heatmaps", "plot_curves", "to_numpy", "integer_ticks", "block_mean"]

#: Matrices with more rows or columns than this are drawn as block means (see ``show_heatmaps``).
MAX_CELLS = 96


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


def integer_ticks(n: int, max_ticks: int = 10) -> list[int]:
    """Tick positions for an axis of ``n`` cells: every index when ``n <= max_ticks``, else a round step.

    Cells sit at whole indices, so ticks never fall between two cells (no -0.5 ... 0.5 on a 1 x N matrix).
    """
    if n < 1 or max_ticks < 1:
        raise ValueError(f"n and max_ticks must be >= 1, got n = {n}, max_ticks = {max_ticks}")
    if n <= max_ticks:
        return list(range(n))
    raw = (n - 1) / (max_ticks - 1) if max_ticks > 1 else n
    magnitude = 10 ** int(np.floor(np.log10(raw)))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, n, int(step)))


def block_mean(matrix: np.ndarray, max_cells: int = MAX_CELLS) -> tuple[np.ndarray, tuple[int, int]]:
    """Average a (T_q, T_k) matrix over blocks so that neither side exceeds ``max_cells``; return it and the
    block size (rows, cols). A 576 x 576 matrix with ``max_cells = 96`` becomes 96 x 96 means of 6 x 6 blocks.
    Blocks at the far edges may be smaller (the mean ignores the padding)."""
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D (T_q, T_k), got shape {matrix.shape}")
    if max_cells < 1:
        raise ValueError(f"max_cells must be >= 1, got {max_cells}")
    t_q, t_k = matrix.shape
    f_q, f_k = -(-t_q // max_cells), -(-t_k // max_cells)  # ceiling division
    if f_q == f_k == 1:
        return matrix, (1, 1)
    padded = np.full((-(-t_q // f_q) * f_q, -(-t_k // f_k) * f_k), np.nan, dtype=np.float64)
    padded[:t_q, :t_k] = matrix
    blocks = padded.reshape(padded.shape[0] // f_q, f_q, padded.shape[1] // f_k, f_k)
    return np.nanmean(blocks, axis=(1, 3)).astype(matrix.dtype), (f_q, f_k)


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
    max_cells: int = MAX_CELLS,
) -> Figure:
    """Draw attention matrices as heatmaps in a grid sharing one colour bar; return the figure.

    ``matrices`` is (T_q, T_k), (cols, T_q, T_k) or (rows, cols, T_q, T_k) (e.g. layers x heads),
    a tensor on any device or an array. ``annotate=True`` writes each weight in its cell (small
    matrices). ``vmax=None`` uses the largest weight shown. Axes without labels get whole-number ticks.
    Matrices larger than ``max_cells`` on a side (e.g. 576 x 576 pixel-to-pixel weights) would be thinner
    than a screen pixel per cell at page size, so each is drawn as the mean of equal blocks and the colour
    bar says so; the axes keep the original indices. Introduced in lesson 00.
    """
    grid = _as_grid(matrices)
    rows, cols, t_q, t_k = grid.shape
    blocks = (1, 1)
    if max(t_q, t_k) > max_cells:
        if xticklabels is not None or yticklabels is not None:
            raise ValueError(f"tick labels for a {t_q} x {t_k} matrix cannot be read; pass max_cells >= "
                             f"{max(t_q, t_k)} to draw every cell, or no tick labels")
        reduced = [[block_mean(grid[i, j], max_cells) for j in range(cols)] for i in range(rows)]
        blocks = reduced[0][0][1]
        grid = np.stack([np.stack([m for m, _ in row]) for row in reduced])
        annotate = False
    if xticklabels is not None and len(xticklabels) != t_k:
        raise ValueError(f"xticklabels has {len(xticklabels)} labels for T_k = {t_k} keys")
    if yticklabels is not None and len(yticklabels) != t_q:
        raise ValueError(f"yticklabels has {len(yticklabels)} labels for T_q = {t_q} queries")
    vmax = float(np.nanmax(grid)) if vmax is None else vmax
    extent = (-0.5, t_k - 0.5, t_q - 0.5, -0.5)  # axes in the original indices, whatever the block size
    if figsize is None:
        cell = max(1.6, min(3.2, 0.35 * max(t_q, t_k) + 1.0))
        figsize = (cell * cols + 0.8, cell * rows * max(0.5, t_q / max(t_k, 1)) + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, sharex=True, sharey=True, squeeze=False,
                             constrained_layout=True)
    image = None
    for i in range(rows):
        for j in range(cols):
            ax = axes[i][j]
            image = ax.imshow(grid[i, j], cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", extent=extent,
                              interpolation="nearest")
            if titles is not None:
                title = titles[i][j] if rows > 1 and not isinstance(titles[0], str) else titles[i * cols + j]
                ax.set_title(title, fontsize=9)
            if i == rows - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if xticklabels is not None:
                ax.set_xticks(range(t_k), labels=list(xticklabels), rotation=90, fontsize=8)
            else:
                ax.set_xticks(integer_ticks(t_k))
            if yticklabels is not None:
                ax.set_yticks(range(t_q), labels=list(yticklabels), fontsize=8)
            else:
                ax.set_yticks(integer_ticks(t_q))
            if annotate:
                for (r, c), w in np.ndenumerate(grid[i, j]):
                    colour = "white" if vmax and w > 0.6 * vmax else "black"
                    ax.text(c, r, f"{w:.2f}", ha="center", va="center", fontsize=7, color=colour)
    assert image is not None  # the grid has at least one panel
    label = "attention weight"
    if blocks != (1, 1):
        label = f"mean attention weight\nover {blocks[0]} x {blocks[1]} blocks"
    fig.colorbar(image, ax=axes, shrink=0.8, label=label)
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
