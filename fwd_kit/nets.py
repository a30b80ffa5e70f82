"""Provided helpers of Part B's networks: a module's device and dtype, eval mode for a block of code, the
digit-shape check, a time column, and D_θ(z) without gradients in eval mode.

Digits are float tensors (N, C, 28, 28); time t is a float in [0, 1] (flow matching: t = 0 noise).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from fwd_kit.validate import check_tensor


def device_and_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of ``module``'s first parameter (or buffer); CPU/float32 if it has neither."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


@contextmanager
def eval_mode(module: nn.Module):
    """Put ``module`` in eval mode (BatchNorm uses running statistics) and restore its mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def check_digits(x, in_channels: int) -> None:
    """``x`` must be a float tensor (N, in_channels, 28, 28): the UNet's 7×7 bottleneck needs 28×28."""
    check_tensor(x, "x")  # shape only: no value scan, so no GPU sync in every training step
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"x must have shape (N, {in_channels}, 28, 28), but has shape {tuple(x.shape)}.")
    if tuple(x.shape[-2:]) != (28, 28):
        raise ValueError(
            f"x must be 28×28 images (the UNet downsamples 28 → 14 → 7 and pools the 7×7 bottleneck), "
            f"but has shape {tuple(x.shape)}."
        )


def time_column(t, n: int, like: torch.Tensor) -> torch.Tensor:
    """Time ``t`` — a float, a 0-d tensor, (N,) or (N, 1) — as an (N, 1) tensor on ``like``'s device/dtype."""
    t = torch.as_tensor(t, device=like.device, dtype=like.dtype)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape not in ((n,), (n, 1)):
        raise ValueError(f"t must be a float or have shape ({n},) or ({n}, 1), but has shape {tuple(t.shape)}.")
    return t.reshape(n, 1)


def denoise(unet: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """D_θ(z) in eval mode (BatchNorm running statistics) without gradients; restores the mode after.

    z: (N, 1, 28, 28) noisy digits (any device; moved to the UNet's). Returns (N, 1, 28, 28).
    """
    check_tensor(z, "z")
    device, dtype = device_and_dtype(unet)
    with eval_mode(unet), torch.no_grad():
        return unet(z.to(device, dtype))
