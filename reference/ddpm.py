"""Part B, part 2 (FA24): DDPM, time- and class-conditioned, with ancestral sampling and CFG.

Time convention: **t = 0 is clean, t = T is pure noise** (T = ``num_ts`` = 300). The algorithms index
t = 1 … T; the schedule arrays are 0-indexed, so β_t = ``betas[t − 1]`` and ᾱ_t = ``alpha_bars[t − 1]``,
with ᾱ_0 = 1 (array index T − 1 is the noisiest step, as in ``reference``'s vocabulary). The UNet is
fed the normalised time t/T ∈ (0, 1].

Forward process: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε; the UNet ε_θ(x_t, t/T) predicts ε.
Digits x0 are (N, 1, 28, 28) in [0, 1]. Randomness comes only from a ``torch.Generator`` on the UNet's
device; the same seed gives the same samples. Order of draws: losses draw (class dropout,) t, then ε;
samplers draw x_T, then z for t = T … 2 (none at t = 1). Samplers run the UNet in eval mode under
``torch.no_grad()`` and restore its training mode afterwards. The schedule's coefficients are computed
from its betas in float64 (1 − ᾱ_t near t = 1 cancels badly in float32), then applied in the model's dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fwd_kit.schedules import _schedule64  # noqa: F401 - re-exported
from fwd_kit.validate import check_tensor
from reference.flow_matching import drop_classes, one_hot
from reference.unet import ClassConditionalUNet, device_and_dtype, eval_mode


def ddpm_schedule(beta1: float = 1e-4, beta2: float = 0.02, num_ts: int = 300) -> dict:
    """The linear DDPM schedule: β linearly spaced from beta1 to beta2 (T = num_ts values),
    α_t = 1 − β_t, ᾱ_t = ∏_{s ≤ t} α_s. Returns dict(betas, alphas, alpha_bars), each float32 (T,).
    """
    if not 0.0 < beta1 < beta2 < 1.0:
        raise ValueError(f"betas must satisfy 0 < beta1 < beta2 < 1, but got beta1={beta1}, beta2={beta2}.")
    if not isinstance(num_ts, int) or num_ts < 1:
        raise ValueError(f"num_ts must be a positive integer, but got {num_ts!r}.")
    betas = torch.linspace(beta1, beta2, num_ts)  # β_1 … β_T at indices 0 … T − 1
    alphas = 1 - betas
    alpha_bars = torch.cumprod(alphas, dim=0)
    return dict(betas=betas, alphas=alphas, alpha_bars=alpha_bars)




def ddpm_forward(unet: nn.Module, schedule: dict, x0: torch.Tensor, num_ts: int = 300, generator=None):
    """Training loss of the time-conditioned DDPM, Algorithm B.1 / eq. B.4.

    t ~ Uniform{1, …, T}; ε ~ N(0, I); x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε; L = ‖ε − ε_θ(x_t, t/T)‖² (mean).
    x0: (N, 1, 28, 28) clean digits in [0, 1]. Returns a scalar tensor with gradients.
    """
    check_tensor(x0, "x0")
    device, dtype = device_and_dtype(unet)
    s = _schedule64(schedule, num_ts)
    x0 = x0.to(device, dtype)
    N = x0.shape[0]
    t = torch.randint(1, num_ts + 1, (N,), generator=generator, device=device)  # 1. t ~ U{1..T}
    eps = torch.randn(x0.shape, generator=generator, device=device, dtype=dtype)  # 2. ε ~ N(0, I)
    sqrt_ab = s["alpha_bars"].sqrt().to(device, dtype)[t - 1].reshape(N, 1, 1, 1)  # √ᾱ_t
    sqrt_1m_ab = (1 - s["alpha_bars"]).sqrt().to(device, dtype)[t - 1].reshape(N, 1, 1, 1)  # √(1 − ᾱ_t)
    xt = sqrt_ab * x0 + sqrt_1m_ab * eps  # 3. forward process
    return F.mse_loss(unet(xt, (t / num_ts).to(dtype)), eps)  # 4. eq. B.4


def ddpm_step(s: dict, t: int, xt: torch.Tensor, eps_hat: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    """One ancestral step x_t → x_{t−1} of Algorithm B.2, t ∈ 1 … T (``s`` from :func:`ddpm_schedule`):

    x̂0 = (x_t − √(1 − ᾱ_t)·ε̂)/√ᾱ_t,
    x_{t−1} = (√ᾱ_{t−1} β_t/(1 − ᾱ_t))·x̂0 + (√α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t))·x_t + √β_t·z   (z = None → 0).
    The coefficients are Python floats, so x keeps its device and dtype.
    """
    beta, alpha, alpha_bar = float(s["betas"][t - 1]), float(s["alphas"][t - 1]), float(s["alpha_bars"][t - 1])
    alpha_bar_prev = float(s["alpha_bars"][t - 2]) if t > 1 else 1.0  # ᾱ_0 = 1
    x0_hat = (xt - math.sqrt(1 - alpha_bar) * eps_hat) / math.sqrt(alpha_bar)  # 1. clean estimate
    mean = (math.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar)) * x0_hat \
        + (math.sqrt(alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar)) * xt  # 2. posterior mean μ̃
    return mean if z is None else mean + math.sqrt(beta) * z  # 3. add √β_t z (variance from the β list)


def ddpm_sample(unet: nn.Module, schedule: dict, num_samples: int, img_wh=(28, 28), num_ts: int = 300,
                generator=None, return_trajectory: bool = False):
    """Ancestral sampling of the time-conditioned DDPM, Algorithm B.2.

    x_T ~ N(0, I); for t = T … 1: z ~ N(0, I) if t > 1 else 0; ε̂ = ε_θ(x_t, t/T); x_{t−1} by
    :func:`ddpm_step`. Returns x_0 (N, C, H, W) and, with ``return_trajectory``, the T + 1 iterates
    (x_T first, x_0 last).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be ≥ 1, but got {num_samples}.")
    device, dtype = device_and_dtype(unet)
    s = _schedule64(schedule, num_ts)
    shape = (num_samples, getattr(unet, "in_channels", 1), img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)  # 1. x_T ~ N(0, I)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            z = torch.randn(shape, generator=generator, device=device, dtype=dtype) if t > 1 else None  # 2.
            t_in = torch.full((num_samples,), t / num_ts, device=device, dtype=dtype)
            eps_hat = unet(x, t_in)  # 3. ε̂ = ε_θ(x_t, t/T)
            x = ddpm_step(s, t, x, eps_hat, z)  # 4. x_{t−1}
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def class_ddpm_forward(unet: nn.Module, schedule: dict, x0: torch.Tensor, labels, p_uncond: float = 0.1,
                       num_ts: int = 300, generator=None):
    """Training loss of the class-conditioned DDPM, Algorithm B.3: B.1 with c = one_hot(labels) zeroed
    w.p. p_uncond; L = ‖ε − ε_θ(x_t, c, t/T)‖². x0: (N, 1, 28, 28) in [0, 1]; labels: (N,) ints.
    """
    check_tensor(x0, "x0")
    device, dtype = device_and_dtype(unet)
    s = _schedule64(schedule, num_ts)
    x0 = x0.to(device, dtype)
    N = x0.shape[0]
    c = one_hot(labels, getattr(unet, "num_classes", 10)).to(device, dtype)
    if c.shape[0] != N:
        raise ValueError(f"labels must hold one class per image ({N}), but hold {c.shape[0]}.")
    c = drop_classes(c, p_uncond, generator=generator)  # 1. c → 0 w.p. p_uncond
    t = torch.randint(1, num_ts + 1, (N,), generator=generator, device=device)  # 2. t ~ U{1..T}
    eps = torch.randn(x0.shape, generator=generator, device=device, dtype=dtype)  # 3. ε ~ N(0, I)
    sqrt_ab = s["alpha_bars"].sqrt().to(device, dtype)[t - 1].reshape(N, 1, 1, 1)  # √ᾱ_t
    sqrt_1m_ab = (1 - s["alpha_bars"]).sqrt().to(device, dtype)[t - 1].reshape(N, 1, 1, 1)  # √(1 − ᾱ_t)
    xt = sqrt_ab * x0 + sqrt_1m_ab * eps  # 4. forward process
    return F.mse_loss(unet(xt, c, (t / num_ts).to(dtype)), eps)  # 5. eq. B.4 with c


def class_ddpm_sample(unet: nn.Module, schedule: dict, labels, img_wh=(28, 28), num_ts: int = 300,
                      guidance_scale: float = 5.0, generator=None, return_trajectory: bool = False):
    """Ancestral sampling with classifier-free guidance, Algorithm B.4.

    As :func:`ddpm_sample` with ε̂ = ε_u + γ(ε_c − ε_u), ε_c = ε_θ(x_t, c, t/T), ε_u = ε_θ(x_t, 0, t/T)
    (one batched UNet call). labels: (N,) ints. Returns x_0 (N, C, H, W) [and the T + 1 iterates].
    """
    device, dtype = device_and_dtype(unet)
    s = _schedule64(schedule, num_ts)
    c = one_hot(labels, getattr(unet, "num_classes", 10)).to(device, dtype)  # (N, K)
    N = c.shape[0]
    c_both = torch.cat([c, torch.zeros_like(c)])  # (2N, K): conditional rows, then unconditional
    shape = (N, getattr(unet, "in_channels", 1), img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)  # 1. x_T ~ N(0, I)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            z = torch.randn(shape, generator=generator, device=device, dtype=dtype) if t > 1 else None  # 2.
            t_in = torch.full((2 * N,), t / num_ts, device=device, dtype=dtype)
            eps_c, eps_u = unet(torch.cat([x, x]), c_both, t_in).chunk(2)  # 3. both branches
            eps_hat = eps_u + guidance_scale * (eps_c - eps_u)  # 4. CFG
            x = ddpm_step(s, t, x, eps_hat, z)  # 5. x_{t−1}
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


class DDPM(nn.Module):
    """The course's wrapper around a UNet and its schedule: ``forward`` → loss, ``sample`` → digits.

    Class- or time-conditioned according to ``class_conditional`` (default: whether ``unet`` is a
    :class:`ClassConditionalUNet`). The schedule is kept as plain tensors, not buffers, so the
    ``state_dict`` holds only the UNet (keys ``unet.*``); it is moved to the UNet's device on use.
    """

    def __init__(self, unet: nn.Module, betas=(1e-4, 0.02), num_ts: int = 300, p_uncond: float = 0.1,
                 class_conditional: bool | None = None):
        super().__init__()
        self.unet = unet
        self.betas = tuple(betas)  # (β_1, β_T) of the linear schedule
        self.num_ts = num_ts  # T, diffusion steps for training and sampling
        self.p_uncond = p_uncond  # probability of training a sample without its class
        self.schedule = ddpm_schedule(self.betas[0], self.betas[1], num_ts)
        self.class_conditional = isinstance(unet, ClassConditionalUNet) if class_conditional is None \
            else class_conditional

    def forward(self, x0: torch.Tensor, labels=None, generator=None) -> torch.Tensor:
        if self.class_conditional:
            if labels is None:
                raise ValueError("This DDPM is class-conditioned: call it as ddpm(x0, labels).")
            return class_ddpm_forward(self.unet, self.schedule, x0, labels, self.p_uncond, self.num_ts, generator)
        return ddpm_forward(self.unet, self.schedule, x0, self.num_ts, generator)

    def sample(self, labels_or_num_samples, img_wh=(28, 28), guidance_scale: float = 5.0, generator=None,
               return_trajectory: bool = False):
        """Class-conditioned: pass labels (N,) and get one digit per label (guided by γ = guidance_scale).
        Time-conditioned: pass the number of samples (``guidance_scale`` is ignored)."""
        if self.class_conditional:
            return class_ddpm_sample(self.unet, self.schedule, labels_or_num_samples, img_wh, self.num_ts,
                                     guidance_scale, generator, return_trajectory)
        if not isinstance(labels_or_num_samples, int):
            raise ValueError(f"This DDPM is time-conditioned: sample takes a number of samples, "
                             f"but got {type(labels_or_num_samples).__name__}.")
        return ddpm_sample(self.unet, self.schedule, labels_or_num_samples, img_wh, self.num_ts, generator,
                           return_trajectory)
