"""Part B, part 2 (FA25): flow matching, time- and class-conditioned, with Euler sampling and CFG.

Time convention — the opposite of DDPM: **t = 0 is noise, t = 1 is data.** x0 ~ N(0, I) is noise,
x1 is a clean digit (N, 1, 28, 28) in [0, 1], and x_t = (1 − t)·x0 + t·x1 for t ∈ [0, 1].

The UNet u_θ(x_t, t) predicts the velocity u = dx_t/dt = x1 − x0. Sampling integrates
dx/dt = u_θ(x, t) from t = 0 to 1 with T = ``num_ts`` Euler steps at t = i/T, i = 0 … T − 1.

Randomness comes only from a ``torch.Generator`` on the UNet's device (a CUDA generator for a CUDA
model); the same seed gives the same samples. Order of draws: losses draw (class dropout,) t, then x0;
samplers draw x0 once. Samplers run the UNet in eval mode (BatchNorm running statistics) under
``torch.no_grad()`` and restore its training mode afterwards.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fwd_kit.conditioning import drop_classes, one_hot  # noqa: F401 - re-exported
from fwd_kit.validate import check_same_shape, check_tensor
from reference.unet import device_and_dtype, eval_mode


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight path between noise and data, eq. B.3: x_t = (1 − t)·x0 + t·x1.

    x0: noise (N, C, H, W); x1: data, same shape; t: (N,) times in [0, 1], one per image (broadcast over
    C, H, W). t = 0 gives x0 (noise), t = 1 gives x1 (data).
    """
    check_same_shape(x0, x1, "x0", "x1")
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape ({x0.shape[0]},), one time per image, but has shape {tuple(t.shape)}.")
    t = t.reshape(-1, *([1] * (x0.ndim - 1)))  # (N, 1, 1, 1)
    return (1 - t) * x0 + t * x1


def flow_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The velocity of the straight path, eq. B.4: u = dx_t/dt = x1 − x0 (independent of t)."""
    check_same_shape(x0, x1, "x0", "x1")
    return x1 - x0






def time_fm_forward(unet: nn.Module, x1: torch.Tensor, generator=None) -> torch.Tensor:
    """Training loss of the time-conditioned flow, Algorithm B.1 / eq. B.5.

    t ~ U[0, 1], x0 ~ N(0, I), x_t = (1 − t)x0 + t x1, L = ‖(x1 − x0) − u_θ(x_t, t)‖² (mean).
    x1: (N, 1, 28, 28) clean digits in [0, 1]. Returns a scalar tensor with gradients.
    """
    check_tensor(x1, "x1")
    device, dtype = device_and_dtype(unet)
    x1 = x1.to(device, dtype)
    N = x1.shape[0]
    t = torch.rand(N, generator=generator, device=device, dtype=dtype)  # 1. t ~ U[0, 1]
    x0 = torch.randn(x1.shape, generator=generator, device=device, dtype=dtype)  # 2. x0 ~ N(0, I)
    xt = interpolate(x0, x1, t)  # 3. eq. B.3
    return F.mse_loss(unet(xt, t), flow_target(x0, x1))  # 4. eq. B.5


def time_fm_sample(unet: nn.Module, num_samples: int, img_wh=(28, 28), num_ts: int = 50, generator=None,
                   return_trajectory: bool = False):
    """Euler sampling of the time-conditioned flow, Algorithm B.2.

    x ← x0 ~ N(0, I); for i = 0 … T − 1: t = i/T, x ← x + (1/T)·u_θ(x, t). Returns x (N, C, H, W) with
    C = ``unet.in_channels`` (1 if absent) and (W, H) = img_wh; with ``return_trajectory`` also the list
    of the T + 1 iterates (x0 first, the sample last).
    """
    if num_samples < 1 or num_ts < 1:
        raise ValueError(f"num_samples and num_ts must be ≥ 1, but got {num_samples} and {num_ts}.")
    device, dtype = device_and_dtype(unet)
    shape = (num_samples, getattr(unet, "in_channels", 1), img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)  # 1. x0 ~ N(0, I)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            t = torch.full((num_samples,), i / num_ts, device=device, dtype=dtype)  # 2. t = i/T
            x = x + unet(x, t) / num_ts  # 3. Euler step x ← x + u/T
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def class_fm_forward(unet: nn.Module, x1: torch.Tensor, labels, p_uncond: float = 0.1,
                     generator=None) -> torch.Tensor:
    """Training loss of the class-conditioned flow, Algorithm B.3.

    c = one_hot(labels) zeroed w.p. p_uncond per image; t ~ U[0, 1]; x0 ~ N(0, I);
    L = ‖(x1 − x0) − u_θ(x_t, c, t)‖². x1: (N, 1, 28, 28) in [0, 1]; labels: (N,) ints in 0 … 9.
    """
    check_tensor(x1, "x1")
    device, dtype = device_and_dtype(unet)
    x1 = x1.to(device, dtype)
    N = x1.shape[0]
    c = one_hot(labels, getattr(unet, "num_classes", 10)).to(device, dtype)
    if c.shape[0] != N:
        raise ValueError(f"labels must hold one class per image ({N}), but hold {c.shape[0]}.")
    c = drop_classes(c, p_uncond, generator=generator)  # 1. c → 0 w.p. p_uncond
    t = torch.rand(N, generator=generator, device=device, dtype=dtype)  # 2. t ~ U[0, 1]
    x0 = torch.randn(x1.shape, generator=generator, device=device, dtype=dtype)  # 3. x0 ~ N(0, I)
    xt = interpolate(x0, x1, t)  # 4. eq. B.3
    return F.mse_loss(unet(xt, c, t), flow_target(x0, x1))  # 5. eq. B.5 with c


def class_fm_sample(unet: nn.Module, labels, img_wh=(28, 28), num_ts: int = 300, guidance_scale: float = 5.0,
                    generator=None, return_trajectory: bool = False):
    """Euler sampling with classifier-free guidance, Algorithm B.4.

    For i = 0 … T − 1, t = i/T: u_c = u_θ(x, c, t), u_u = u_θ(x, 0, t) (one batched UNet call),
    u = u_u + γ(u_c − u_u), x ← x + u/T. γ = 1 is the conditional flow, γ = 0 the unconditional one.
    labels: (N,) ints. Returns x (N, C, H, W) and, with ``return_trajectory``, the T + 1 iterates.
    """
    if num_ts < 1:
        raise ValueError(f"num_ts must be ≥ 1, but got {num_ts}.")
    device, dtype = device_and_dtype(unet)
    c = one_hot(labels, getattr(unet, "num_classes", 10)).to(device, dtype)  # (N, K)
    N = c.shape[0]
    c_both = torch.cat([c, torch.zeros_like(c)])  # (2N, K): conditional rows, then unconditional
    shape = (N, getattr(unet, "in_channels", 1), img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)  # 1. x0 ~ N(0, I)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            t = torch.full((2 * N,), i / num_ts, device=device, dtype=dtype)  # 2. t = i/T
            u_c, u_u = unet(torch.cat([x, x]), c_both, t).chunk(2)  # 3. both branches in one call
            u = u_u + guidance_scale * (u_c - u_u)  # 4. CFG
            x = x + u / num_ts  # 5. Euler step
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


class TimeConditionalFM(nn.Module):
    """The course's wrapper: ``forward(x1)`` → loss (B.1), ``sample(num_samples)`` → digits (B.2)."""

    def __init__(self, unet: nn.Module, num_ts: int = 50):
        super().__init__()
        self.unet = unet
        self.num_ts = num_ts  # Euler steps for sampling; training does not use it

    def forward(self, x1: torch.Tensor, generator=None) -> torch.Tensor:
        return time_fm_forward(self.unet, x1, generator=generator)

    def sample(self, num_samples: int, img_wh=(28, 28), generator=None, return_trajectory: bool = False):
        return time_fm_sample(self.unet, num_samples, img_wh, self.num_ts, generator, return_trajectory)


class ClassConditionalFM(nn.Module):
    """The course's wrapper: ``forward(x1, labels)`` → loss (B.3), ``sample(labels)`` → digits (B.4)."""

    def __init__(self, unet: nn.Module, num_ts: int = 300, p_uncond: float = 0.1):
        super().__init__()
        self.unet = unet
        self.num_ts = num_ts  # Euler steps for sampling
        self.p_uncond = p_uncond  # probability of training a sample without its class

    def forward(self, x1: torch.Tensor, labels, generator=None) -> torch.Tensor:
        return class_fm_forward(self.unet, x1, labels, self.p_uncond, generator=generator)

    def sample(self, labels, img_wh=(28, 28), guidance_scale: float = 5.0, generator=None,
               return_trajectory: bool = False):
        return class_fm_sample(self.unet, labels, img_wh, self.num_ts, guidance_scale, generator, return_trajectory)
