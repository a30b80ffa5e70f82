"""Part B, part 1: the single-step denoiser D_θ, trained to map a noisy digit back to the clean one.

No time variable here: the noise level σ is fixed during training (σ = 0.5 by default, spec §3.2).
Digits ``x`` are (N, 1, 28, 28) in [0, 1]; noisy digits ``z`` are unbounded. Randomness comes only
from an explicit ``noise`` tensor or a ``torch.Generator`` on the model's device (a CUDA generator
for a CUDA model); the same seed gives the same tensor.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fwd_kit.nets import denoise  # noqa: F401 - re-exported
from fwd_kit.validate import check_image, check_same_shape, check_tensor
from reference.unet import device_and_dtype


def add_noise(x: torch.Tensor, sigma, noise: torch.Tensor | None = None, generator=None) -> torch.Tensor:
    """Noise clean digits, eq. B.2: z = x + σ·ε with ε ~ N(0, I).

    x: (N, C, H, W) clean digits in [0, 1]. sigma: a float ≥ 0, or a tensor (N,) of per-image levels.
    noise: ε of x's shape; drawn with ``generator`` (on x's device) if not given. Returns z, x's shape.
    """
    check_tensor(x, "x")
    sigma = torch.as_tensor(sigma, device=x.device, dtype=x.dtype)
    if sigma.ndim == 1 and sigma.shape[0] == x.shape[0]:
        sigma = sigma.reshape(-1, *([1] * (x.ndim - 1)))  # (N, 1, 1, 1) per-image levels
    elif sigma.ndim != 0:
        raise ValueError(f"sigma must be a float or have shape ({x.shape[0]},), but has shape {tuple(sigma.shape)}.")
    if (sigma < 0).any():
        raise ValueError(f"sigma must be non-negative, but got {sigma.flatten()[:4].tolist()}.")
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    check_same_shape(x, noise, "x", "noise")
    return x + sigma * noise


def denoiser_loss(unet: nn.Module, x: torch.Tensor, sigma: float = 0.5, generator=None) -> torch.Tensor:
    """Training loss of the single-step denoiser, eq. B.1: L = ‖D_θ(x + σε) − x‖² (mean over pixels).

    Fresh noise ε is drawn on every call (re-noise each batch). x: (N, 1, 28, 28) in [0, 1], moved
    to the UNet's device and dtype. Returns a scalar tensor that carries gradients.
    """
    check_tensor(x, "x")  # no value scan: it would synchronise the GPU in every training step
    device, dtype = device_and_dtype(unet)
    x = x.to(device, dtype)
    z = add_noise(x, sigma, generator=generator)  # (N, 1, 28, 28)
    return F.mse_loss(unet(z), x)


def pure_noise_loss(unet: nn.Module, x: torch.Tensor, generator=None) -> torch.Tensor:
    """Loss of the pure-noise "denoiser" (1.2.3): L = ‖D_θ(ε) − x‖², the input being ε ~ N(0, I) alone.

    Since ε says nothing about x, the MSE-optimal output is the mean training image: the model learns
    a blurry average digit. x: (N, 1, 28, 28) in [0, 1]. Returns a scalar tensor.
    """
    check_tensor(x, "x")  # no value scan: it would synchronise the GPU in every training step
    device, dtype = device_and_dtype(unet)
    x = x.to(device, dtype)
    eps = torch.randn(x.shape, generator=generator, device=device, dtype=dtype)  # the input, not noise on x
    return F.mse_loss(unet(eps), x)




def mean_image(data, batch_size: int = 1024) -> torch.Tensor:
    """The average training image x̄ = (1/N) Σ x_i, the MSE optimum of the pure-noise denoiser.

    data: a tensor (N, C, H, W), or a dataset whose items are images (C, H, W) or (image, label)
    pairs (e.g. torchvision's MNIST with ToTensor). Returns x̄ as a batch of one image, (1, C, H, W),
    in float32 on the CPU (accumulated in float64).
    """
    if isinstance(data, torch.Tensor):
        check_image(data, "data", channels=None)
        return data.double().mean(dim=0, keepdim=True).float().cpu()
    if len(data) == 0:
        raise ValueError("data must hold at least one image, but is empty.")
    total, count = None, 0
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    for batch in loader:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch  # drop labels if present
        check_image(images, "a batch of the dataset's images", channels=None)
        batch_sum = images.double().sum(dim=0, keepdim=True)
        total = batch_sum if total is None else total + batch_sum
        count += images.shape[0]
    return (total / count).float().cpu()
