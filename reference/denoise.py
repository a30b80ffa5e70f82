"""Part A sampling stages: forward process, one-step and strided iterative denoising, CFG, sampling.

Time convention (DDPM / Part A): t = 0 is clean, t = 999 is the noisiest timestep. ``timesteps`` lists
run noisiest first (990, 960, ..., 30, 0); ``i_start`` indexes that list, it is not a timestep.

Images are float tensors (B, 3, H, W): clean ones in [-1, 1], noisy ones unbounded. ``unet`` is a
diffusers ``UNet2DConditionModel`` with 6 output channels (ε̂ = [:, :3], predicted variance = [:, 3:]),
``scheduler`` a ``DDPMScheduler`` with ``variance_type="learned_range"`` and ``alphas_cumprod`` its
ᾱ_t (fp32, CPU). Prompt embeddings are (1 or B, 77, W) with W = ``unet.config.encoder_hid_dim``
(4096 for DeepFloyd, 32 for the tiny stand-ins). Randomness only comes from an explicit
``torch.Generator``; noise is drawn exactly as diffusers draws it, so the loops below reproduce
``IFPipeline`` bit for bit when its dynamic thresholding is switched off.
"""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF

from fwd_kit.sampling import (  # noqa: F401 - provided helpers, re-exported for the reference's callers
    IMAGE_CHANNELS,
    NUM_TRAIN_TIMESTEPS,
    add_variance,
    gaussian_noise,
    predict_noise,
    set_strided_timesteps,
)
from fwd_kit.validate import (
    check_embeds,
    check_i_start,
    check_image,
    check_same_shape,
    check_timestep,
    check_timesteps,
)


def strided_timesteps(start: int = 990, stride: int = 30) -> list[int]:
    """The course's strided schedule: [start, start − stride, ..., 0] — 990, 960, ..., 30, 0 (34 entries).

    Returns a list of ints, noisiest first. ``start`` must be a non-negative multiple of ``stride`` > 0
    (so that the list ends at t = 0); otherwise raise a ValueError.
    """
    if stride <= 0 or start < 0 or start % stride:
        raise ValueError(
            f"start must be a non-negative multiple of stride > 0 (so that the list ends at t = 0), "
            f"but got start={start}, stride={stride}."
        )
    return list(range(start, -1, -stride))




def forward(x0, t, alphas_cumprod, noise=None, generator=None) -> torch.Tensor:
    """Forward process q(x_t | x0): x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε, ε ~ N(0, I).

    x0: clean images (B, 3, H, W) in [-1, 1]; t: int in [0, len(alphas_cumprod) − 1]; noise: ε of x0's
    shape, or None to draw it with ``generator``. Returns x_t, same shape, device and dtype as x0.
    """
    check_image(x0, "x0", value_range=(-1.0, 1.0))
    t = check_timestep(t, len(alphas_cumprod))
    if noise is None:
        noise = gaussian_noise(x0.shape, generator, x0.device, x0.dtype)
    check_same_shape(noise, x0, "noise", "x0")
    alpha_bar = alphas_cumprod[t].to(x0.device, x0.dtype)
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise.to(x0.device, x0.dtype)


def blur_denoise(xt, kernel_size: int = 5, sigma: float = 2.0) -> torch.Tensor:
    """Classical baseline: Gaussian blur of the noisy image (odd ``kernel_size``, std ``sigma`` pixels).

    xt: (B, 3, H, W). Returns the blurred image, same shape (``torchvision``'s ``gaussian_blur``).
    """
    check_image(xt, "xt")
    return TF.gaussian_blur(xt, kernel_size=kernel_size, sigma=sigma)


def estimate_x0(xt, eps, t, alphas_cumprod) -> torch.Tensor:
    """Clean-image estimate (eq. A.2 inverted): x̂0 = (x_t − sqrt(1 − ᾱ_t)·ε̂) / sqrt(ᾱ_t).

    xt, eps: (B, 3, H, W); t: int timestep; alphas_cumprod: ᾱ for t = 0..999 (fp32, CPU — move ᾱ_t to
    xt's device and dtype). Returns x̂0, (B, 3, H, W). Exact inverse of ``forward`` when ε̂ is the true ε.
    """
    check_image(xt, "xt")
    check_same_shape(eps, xt, "eps", "xt")
    alpha_bar = alphas_cumprod[check_timestep(t, len(alphas_cumprod))]
    return (xt - ((1 - alpha_bar) ** 0.5).to(xt.device, xt.dtype) * eps) / (alpha_bar**0.5).to(xt.device, xt.dtype)




def one_step_denoise(unet, xt, t, prompt_embeds, alphas_cumprod) -> torch.Tensor:
    """One-step denoising: x̂0 = (x_t − sqrt(1 − ᾱ_t)·ε̂(x_t, t)) / sqrt(ᾱ_t), shape (B, 3, H, W).

    ε̂ is the noise estimate of ``predict_noise(unet, xt, t, prompt_embeds)`` (its first output); xt:
    (B, 3, H, W) noisy images at the int timestep t; prompt_embeds: (1 or B, 77, W). The result is on
    the UNet's device and dtype.
    """
    eps, _ = predict_noise(unet, xt, t, prompt_embeds)
    return estimate_x0(xt.to(eps.device, eps.dtype), eps, t, alphas_cumprod)


def learned_range_log_variance(alphas_cumprod, t, t_prev, predicted_variance) -> torch.Tensor:
    """Log-variance of the strided step t → t′ (DeepFloyd's ``learned_range``), written out.

    β_t = 1 − ᾱ_t/ᾱ_{t′}; posterior variance β̃_t = (1 − ᾱ_{t′})/(1 − ᾱ_t)·β_t (clamped ≥ 1e-20);
    with frac = (v + 1)/2 for the UNet's v in [-1, 1]: log σ² = frac·log β_t + (1 − frac)·log β̃_t.
    t_prev = −1 means ᾱ_{t′} = 1 (the step after t = 0). Same shape as ``predicted_variance``.
    """
    alpha_bar = alphas_cumprod[check_timestep(t, len(alphas_cumprod))]
    alpha_bar_prev = alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones_like(alpha_bar)
    beta = 1 - alpha_bar / alpha_bar_prev
    beta_tilde = torch.clamp((1 - alpha_bar_prev) / (1 - alpha_bar) * beta, min=1e-20)
    frac = (predicted_variance + 1) / 2
    device, dtype = predicted_variance.device, predicted_variance.dtype
    return frac * torch.log(beta).to(device, dtype) + (1 - frac) * torch.log(beta_tilde).to(device, dtype)




def denoise_step_mean(xt, x0_hat, t, t_prev, alphas_cumprod) -> torch.Tensor:
    """Mean of the strided update t → t′ (eq. A.3, without the noise term v_σ):

    x_{t′} = sqrt(ᾱ_{t′})·β_t/(1 − ᾱ_t)·x̂0 + sqrt(α_t)·(1 − ᾱ_{t′})/(1 − ᾱ_t)·x_t,
    with the *strided* α_t = ᾱ_t/ᾱ_{t′} and β_t = 1 − α_t. xt, x0_hat: (B, 3, H, W); 0 ≤ t′ < t (a ValueError
    otherwise); alphas_cumprod: ᾱ for t = 0..999. Returns the mean of x_{t′}, (B, 3, H, W), xt's device/dtype.
    """
    check_image(xt, "xt")
    check_same_shape(x0_hat, xt, "x0_hat", "xt")
    t = check_timestep(t, len(alphas_cumprod))
    t_prev = check_timestep(t_prev, len(alphas_cumprod), name="t_prev")
    if t_prev >= t:
        raise ValueError(f"t_prev must be smaller than t (less noisy), but got t={t}, t_prev={t_prev}.")
    alpha_bar, alpha_bar_prev = alphas_cumprod[t], alphas_cumprod[t_prev]
    alpha = alpha_bar / alpha_bar_prev
    beta = 1 - alpha
    x0_coeff = (alpha_bar_prev**0.5 * beta / (1 - alpha_bar)).to(xt.device, xt.dtype)
    xt_coeff = (alpha**0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar)).to(xt.device, xt.dtype)
    return x0_coeff * x0_hat + xt_coeff * xt


def denoise_step(scheduler, xt, eps, predicted_variance, t, t_prev, generator=None) -> torch.Tensor:
    """One strided DDPM update x_t → x_{t′}: x̂0 (A.2) → mean (A.3) → + v_σ (``add_variance``).

    The update every loop of Part A shares; only the noise estimate ε̂ differs between them.
    """
    x0_hat = estimate_x0(xt, eps, t, scheduler.alphas_cumprod)
    mean = denoise_step_mean(xt, x0_hat, t, t_prev, scheduler.alphas_cumprod)
    return add_variance(scheduler, predicted_variance, t, mean, generator)


def iterative_denoise(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None, callback=None,
                      return_intermediates=False):
    """Strided iterative denoising from x_{timesteps[i_start]} down to x_{timesteps[-1]} (eq. A.3).

    xt: noisy images (B, 3, H, W) at t = timesteps[i_start]; timesteps: strictly decreasing list
    (e.g. ``strided_timesteps()``); i_start: index into it, 0 ≤ i_start ≤ len − 2. Sets the scheduler's
    timesteps (see ``set_strided_timesteps``). Each step: ε̂ (``predict_noise``), x̂0, the A.3 mean, then
    ``add_variance`` with ``generator``. ``callback(i, t_prev, x_{t′})`` runs after each update.
    Returns the final image (B, 3, H, W) on the UNet's device/dtype, or with ``return_intermediates``
    ``(image, [(t, x_t), ...])`` for every 5th step from i_start (t = 690, 540, ... for i_start = 10).
    The last update is timesteps[-2] → timesteps[-1] (30 → 0), its variance taken with t′ = 0.
    ``IFPipeline`` runs one more step at t = 0 (to ᾱ = 1, without noise): it only swaps x_0 for x̂0.
    """
    timesteps = check_timesteps(timesteps, len(scheduler.alphas_cumprod))
    i_start = check_i_start(i_start, timesteps)
    check_image(xt, "xt")
    set_strided_timesteps(scheduler, timesteps)
    xt = xt.to(unet.device, unet.dtype)
    frames = []
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]  # t′ < t: one stride less noisy
        if return_intermediates and (i - i_start) % 5 == 0:
            frames.append((t, xt))
        # 1. noise estimate ε̂(x_t, t) and the learned variance
        eps, predicted_variance = predict_noise(unet, xt, t, prompt_embeds)
        # 2. clean estimate x̂0 (eq. A.2)
        x0_hat = estimate_x0(xt, eps, t, scheduler.alphas_cumprod)
        # 3. mean of x_{t′} with strided α_t = ᾱ_t/ᾱ_{t′} (eq. A.3)
        mean = denoise_step_mean(xt, x0_hat, t, t_prev, scheduler.alphas_cumprod)
        # 4. add the predicted noise v_σ
        xt = add_variance(scheduler, predicted_variance, t, mean, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return (xt, frames) if return_intermediates else xt


@torch.no_grad()
def cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale=7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free guidance (eq. A.4): ε = ε_u + γ·(ε_c − ε_u), and the conditional variance.

    One batched UNet call on cat([x_t, x_t]) with cat([uncond, cond]), as ``IFPipeline`` does. xt:
    (B, 3, H, W); embeddings (1 or B, 77, W); scale γ (0: unconditional, 1: conditional, > 1 guided).
    Returns (ε, predicted variance of the conditional branch), each (B, 3, H, W).
    """
    check_image(xt, "xt")
    batch = xt.shape[0]
    width = unet.config.encoder_hid_dim
    check_embeds(prompt_embeds, "prompt_embeds", width=width, batch=batch)
    check_embeds(uncond_prompt_embeds, "uncond_prompt_embeds", width=width, batch=batch)
    embeds = torch.cat([uncond_prompt_embeds.expand(batch, -1, -1), prompt_embeds.expand(batch, -1, -1)])
    eps, predicted_variance = predict_noise(unet, torch.cat([xt, xt]), t, embeds)  # (2B, 3, H, W) each
    eps_uncond, eps_cond = eps.chunk(2)
    return eps_uncond + scale * (eps_cond - eps_uncond), predicted_variance.chunk(2)[1]


def iterative_denoise_cfg(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
                          generator=None, callback=None, return_intermediates=False):
    """``iterative_denoise`` with the CFG noise estimate ε = ε_u + γ·(ε_c − ε_u) (eqs. A.3, A.4).

    Same arguments, shapes and return values as ``iterative_denoise``, plus the unconditional
    embeddings (the empty prompt '') and the guidance scale γ. The conditional variance is added.
    """
    timesteps = check_timesteps(timesteps, len(scheduler.alphas_cumprod))
    i_start = check_i_start(i_start, timesteps)
    check_image(xt, "xt")
    set_strided_timesteps(scheduler, timesteps)
    xt = xt.to(unet.device, unet.dtype)
    frames = []
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        if return_intermediates and (i - i_start) % 5 == 0:
            frames.append((t, xt))
        # 1. guided noise estimate (eq. A.4) and the conditional branch's variance
        eps, predicted_variance = cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)
        # 2. clean estimate x̂0 (eq. A.2)
        x0_hat = estimate_x0(xt, eps, t, scheduler.alphas_cumprod)
        # 3. mean of x_{t′} (eq. A.3)
        mean = denoise_step_mean(xt, x0_hat, t, t_prev, scheduler.alphas_cumprod)
        # 4. add the predicted noise v_σ
        xt = add_variance(scheduler, predicted_variance, t, mean, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return (xt, frames) if return_intermediates else xt


def sample(unet, scheduler, prompt_embeds, uncond_prompt_embeds=None, timesteps=None, num_samples=1, scale=7.0,
           generator=None, size=None) -> torch.Tensor:
    """Sampling from pure noise: x_{timesteps[0]} ~ N(0, I), then denoise from i_start = 0.

    Without ``uncond_prompt_embeds`` this is ``iterative_denoise`` (section 1.5, no guidance, ``scale``
    unused); with them ``iterative_denoise_cfg`` at guidance ``scale`` (section 1.6). timesteps default
    to ``strided_timesteps()``; size: int or (H, W), default ``unet.config.sample_size``. The initial
    noise is the first draw of ``generator`` — as in ``IFPipeline``. Returns (num_samples, 3, H, W).
    """
    timesteps = strided_timesteps() if timesteps is None else timesteps
    size = unet.config.sample_size if size is None else size
    height, width = (size, size) if isinstance(size, int) else size
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, but got {num_samples!r}.")
    xt = gaussian_noise((num_samples, IMAGE_CHANNELS, height, width), generator, unet.device, unet.dtype)
    if uncond_prompt_embeds is None:
        return iterative_denoise(unet, scheduler, xt, 0, prompt_embeds, timesteps, generator=generator)
    return iterative_denoise_cfg(unet, scheduler, xt, 0, prompt_embeds, uncond_prompt_embeds, timesteps,
                                 scale=scale, generator=generator)
