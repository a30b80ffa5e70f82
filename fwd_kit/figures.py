"""Part B figures: digit grids with labels, loss curves, the noising and OOD figures, trajectory GIFs,
and the figures each training experiment saves after an epoch (``denoiser_figures``, ``generative_figures``).

Images are float tensors (N, C, H, W) with C = 1 (digits) or 3, values in [0, 1] (clipped for display).
Figures are ``matplotlib.figure.Figure`` objects built without ``pyplot``: they render in a notebook
and save with the Agg canvas from a script, without touching the global backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: importing this module stays cheap (the
    from matplotlib.figure import Figure  # notebook's first cell, and the grader, which never draws one)

from fwd_kit.validate import check_image


def tile(images: torch.Tensor, nrow: int, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile (N, C, H, W) images in [0, 1] into one array (rows·(H+pad)+pad, cols·(W+pad)+pad[, 3]).

    ``nrow`` is the number of images per row. Returns float32 in [0, 1]; 2-D for one channel.
    """
    check_image(images, "images", channels=None)
    x = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = x.shape
    rows = math.ceil(n / nrow)
    out = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value)
    for i in range(n):
        r, k = divmod(i, nrow)
        out[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = x[i]
    out = out.permute(1, 2, 0).numpy()
    return out[..., 0] if c == 1 else out


def digit_grid(
    images: torch.Tensor,
    nrow: int,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 0.6,
) -> Figure:
    """A grid of digits, ``nrow`` per row, with optional labels on the left of each row / above each column."""
    pad, h, w = 2, images.shape[-2], images.shape[-1]
    grid = tile(images, nrow, pad=pad)
    rows = math.ceil(images.shape[0] / nrow)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(2.5, nrow * cell_inches + 1.2), rows * cell_inches + (0.8 if title else 0.4)))
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([pad + k * (w + pad) + w / 2 for k in range(nrow)] if col_labels else [])
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(rows)] if row_labels else [])
    if col_labels:
        ax.set_xticklabels(col_labels, fontsize=8)
        ax.xaxis.tick_top()
    if row_labels:
        ax.set_yticklabels(row_labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=10, pad=14 if col_labels else 6)
    fig.tight_layout()
    return fig


def loss_curve(step_losses: Sequence[float], steps_per_epoch: Sequence[int], title: str = "training loss") -> Figure:
    """Loss per step (thin line) and its mean over each epoch (dots at the epoch's last step), log scale.

    ``steps_per_epoch[e]`` is the number of steps of epoch e + 1 (the last epoch may be shorter).
    """
    if sum(steps_per_epoch) != len(step_losses):
        raise ValueError(f"steps_per_epoch sums to {sum(steps_per_epoch)}, but there are {len(step_losses)} losses.")
    losses = np.asarray(step_losses, dtype=float)
    ends = np.cumsum(steps_per_epoch)
    means = [losses[e - n : e].mean() for e, n in zip(ends, steps_per_epoch)]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.6, alpha=0.7, label="per step")
    ax.plot(ends, means, "o-", ms=4, label="epoch mean")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def sigma_sweep(rows: Sequence[torch.Tensor], row_labels: Sequence[str], sigmas: Sequence[float], title: str) -> Figure:
    """One column per σ: ``rows[r][k]`` (1, H, W) is row r at ``sigmas[k]`` (noising figure, OOD test)."""
    images = torch.cat([torch.as_tensor(r) for r in rows])  # (R·K, 1, H, W)
    return digit_grid(images, len(sigmas), row_labels, [f"σ={s:g}" for s in sigmas], title, cell_inches=0.9)


def mean_image_comparison(outputs: torch.Tensor, mean_image: torch.Tensor, title: str) -> Figure:
    """Pure-noise denoiser outputs next to the mean training image (the MSE optimum for pure-noise input)."""
    images = torch.cat([mean_image.reshape(1, 1, *outputs.shape[-2:]), outputs])
    labels = ["train mean"] + [f"out {i + 1}" for i in range(outputs.shape[0])]
    return digit_grid(images, images.shape[0], col_labels=labels, title=title, cell_inches=0.9)


def save_figure(fig: Figure, path: str | Path, dpi: int = 120, deliverable=None) -> Path:
    """Save ``fig`` (Agg canvas, no pyplot) and return the path; creates the folder.

    deliverable: a ``fwd_kit.figure_notes.note(...)`` naming the write-up deliverable this figure is (with
    its settings, e.g. the epoch); the figure is then also saved to the write-up folder, its title as the
    caption.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    if deliverable is not None:
        from fwd_kit.figure_notes import save_deliverable

        save_deliverable(fig, deliverable, dpi=dpi)
    return path


def write_gif(frames: Sequence[torch.Tensor], path: str | Path, nrow: int, scale: int = 3,
              duration_ms: int = 60, hold_last_ms: int = 1500, max_frames: int = 100) -> Path:
    """Write a sampling trajectory as an animated GIF (PIL).

    Args:
        frames: the states x along the sampler, each (N, 1, H, W), roughly in [0, 1] (clipped).
        nrow: images per row; scale: pixel upscaling; frames beyond ``max_frames`` are subsampled evenly
        (the first and last are always kept); the last frame is held for ``hold_last_ms``.
    """
    from PIL import Image

    if len(frames) == 0:
        raise ValueError("frames must hold at least one image batch, but is empty.")
    keep = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int))
    pictures = []
    for i in keep:
        grid = (tile(torch.as_tensor(frames[i]), nrow, pad_value=0.0) * 255).round().astype(np.uint8)
        picture = Image.fromarray(grid)
        pictures.append(picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST))
    durations = [duration_ms] * (len(pictures) - 1) + [hold_last_ms]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path


