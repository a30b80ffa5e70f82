"""Part B figures: digit grids with labels, loss curves, the noising and OOD figures, trajectory GIFs,
and the figures each training experiment saves after an epoch (``denoiser_figures``, ``generative_figures``).

Images are float tensors (N, C, H, W) with C = 1 (digits) or 3, values in [0, 1] (clipped for display).
Figures are ``matplotlib.figure.Figure`` objects built without ``pyplot``: they render in a notebook
and save with the Agg canvas from a script, without touching the global backend.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fwd_kit import data
from fwd_kit.figures import *  # noqa: F403 - the generic figures, provided to students in the kit
from fwd_kit.figures import (  # noqa: F401
    digit_grid,
    loss_curve,
    mean_image_comparison,
    save_figure,
    sigma_sweep,
    tile,
    write_gif,
)

# ---------------------------------------------------------------------------------------------------
# The figures of each experiment (called by reference.training after an epoch)


def _figure_generator(cfg, device) -> torch.Generator:
    """The same noise for the figures of every epoch, apart from the training generators."""
    return torch.Generator(device=device).manual_seed(cfg.seed + 12345)


def _one_of_each_digit(cfg, device) -> torch.Tensor:
    """The first held-out digit of each class 0–9, (10, 1, 28, 28) in [0, 1]."""
    images, labels = data.to_device_tensors(data.load_mnist(cfg.data_root, train=False, offline=cfg.offline))
    rows = torch.stack([torch.nonzero(labels == d)[0, 0] for d in range(10)])
    return data.batch_images(images, rows).to(device)


def denoiser_figures(name, model, cfg, out: Path, epoch: int, final: bool, train_images: torch.Tensor) -> None:
    """Denoiser: clean/noisy/denoised held-out digits, then the noising and OOD figures after the last epoch.
    Pure-noise denoiser: outputs for pure noise, then the comparison with the mean training image.
    """
    from reference.denoiser import add_noise, denoise

    device = next(model.parameters()).device
    gen = _figure_generator(cfg, device)
    x = _one_of_each_digit(cfg, device)  # (10, 1, 28, 28)
    with torch.no_grad():
        if name == "pure-noise":
            outputs = denoise(model, torch.randn(x.shape, generator=gen, device=device))
            save_figure(digit_grid(outputs, 10, title=f"pure noise → denoiser, epoch {epoch}"),
                        out / f"samples_epoch{epoch:02d}.png")
            if final:
                from reference.denoiser import mean_image

                mean = mean_image(data.batch_images(train_images, slice(None)))  # (1, 1, 28, 28)
                fig = mean_image_comparison(outputs[:5], mean, "outputs vs the mean training digit")
                save_figure(fig, out / "mean_image.png")
            return
        z = add_noise(x, cfg.sigma, generator=gen)
        grid = torch.cat([x, z, denoise(model, z)])
        fig = digit_grid(grid, 10, ["clean x", f"noisy σ={cfg.sigma:g}", "denoised"],
                         title=f"held-out digits, epoch {epoch}")
        save_figure(fig, out / f"samples_epoch{epoch:02d}.png")
        if final:
            noisy = [add_noise(x[:1], s, generator=gen) for s in cfg.ood_sigmas]  # one digit, every σ
            save_figure(sigma_sweep([torch.cat(noisy)], ["z = x + σε"], cfg.ood_sigmas, "noising process"),
                        out / "noising.png")
            denoised = [denoise(model, z) for z in noisy]
            fig = sigma_sweep([torch.cat(noisy), torch.cat(denoised)], ["noisy", "denoised"],
                              cfg.ood_sigmas, f"out-of-distribution test (trained at σ={cfg.sigma:g})")
            save_figure(fig, out / "ood.png")


def generative_figures(name, model, cfg, out: Path, epoch: int, final: bool, train_images: torch.Tensor,
                       sample=None) -> None:
    """Sample grid after an epoch (4 of each digit for class models) and, after the last, the trajectory GIF.

    ``sample(name, model, cfg, generator, labels, return_trajectory=...)`` is reference.training.sample_digits.
    """
    device = next(model.parameters()).device
    gen = _figure_generator(cfg, device)
    labels = torch.arange(10).repeat(cfg.samples_per_digit) if name.startswith("class") else None
    result = sample(name, model, cfg, gen, labels, return_trajectory=final)
    samples, frames = result if final else (result, None)
    title = f"{name}, epoch {epoch}" + (f", γ={cfg.guidance:g}" if labels is not None else "")
    col_labels = [str(d) for d in range(10)] if labels is not None else None
    save_figure(digit_grid(samples, 10, col_labels=col_labels, title=title), out / f"samples_epoch{epoch:02d}.png")
    if final:
        write_gif(list(frames), out / "trajectory.gif", nrow=10)
