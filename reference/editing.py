"""Part A image editing: SDEdit (image-to-image, also text-guided) and RePaint-style inpainting.

Time convention (DDPM / Part A): t = 0 is clean, t = 999 is the noisiest timestep; ``i_start`` is an
index into the strided ``timesteps`` list (larger i_start = less noise = closer to the original).
Images are (B, 3, H, W) in [-1, 1]; the other arguments are as in ``reference.denoise``.
"""

from __future__ import annotations

import torch

from fwd_kit.sampling import SDEDIT_I_STARTS  # noqa: F401 - re-exported
from fwd_kit.validate import check_i_start, check_image, check_mask, check_timesteps
from reference.denoise import (
    cfg_noise,
    denoise_step,
    forward,
    gaussian_noise,
    iterative_denoise_cfg,
    set_strided_timesteps,
)


def sdedit(unet, scheduler, x_orig, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
           generator=None) -> torch.Tensor:
    """SDEdit: noise the image to t = timesteps[i_start] with ``forward``, then denoise it with CFG.

    x_t = sqrt(ᾱ_t)·x_orig + sqrt(1 − ᾱ_t)·ε, then ``iterative_denoise_cfg(x_t, i_start, ...)``.
    x_orig: (B, 3, H, W) in [-1, 1]. With "a high quality photo" it projects the image onto natural
    images (section 1.7); text-conditional image-to-image (1.7.3) is the same function with another
    prompt. The forward noise is the first draw of ``generator``. Returns (B, 3, H, W).
    """
    check_image(x_orig, "x_orig", value_range=(-1.0, 1.0))
    timesteps = check_timesteps(timesteps, len(scheduler.alphas_cumprod))
    i_start = check_i_start(i_start, timesteps)
    x_orig = x_orig.to(unet.device, unet.dtype)
    xt = forward(x_orig, timesteps[i_start], scheduler.alphas_cumprod, generator=generator)
    return iterative_denoise_cfg(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps,
                                 scale=scale, generator=generator)


def sdedit_sweep(unet, scheduler, x_orig, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
                 generator=None, i_starts=SDEDIT_I_STARTS) -> list[torch.Tensor]:
    """``sdedit`` at each noise level of ``i_starts`` (one shared generator, in order): list of (B, 3, H, W)."""
    return [
        sdedit(unet, scheduler, x_orig, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale, generator)
        for i_start in i_starts
    ]




def inpaint(unet, scheduler, x_orig, mask, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
            generator=None, xt=None, callback=None) -> torch.Tensor:
    """RePaint inpainting: regenerate where mask = 1, keep x_orig where mask = 0.

    Starting from x_t ~ N(0, I) at i = 0 (or the given ``xt``), each CFG update x_t → x_{t′} is
    followed by (eq. A.5)   x_{t′} ← m·x_{t′} + (1 − m)·forward(x_orig, t′),
    so outside the mask the image is the original noised to the current timestep; at t′ = 0 that is
    sqrt(ᾱ_0)·x_orig + sqrt(1 − ᾱ_0)·ε ≈ x_orig. x_orig: (B, 3, H, W) in [-1, 1]; mask: (1|B, 1|3, H, W)
    of 0/1. Draws from ``generator``, in order: the start noise (if xt is None), then per step the
    variance noise of the update and after it the noise of forward(x_orig, t′). ``callback(i, t_prev,
    x_{t′})`` runs after each step. Returns (B, 3, H, W) on the UNet's device/dtype.
    """
    check_image(x_orig, "x_orig", value_range=(-1.0, 1.0))
    check_mask(mask, x_orig)
    timesteps = check_timesteps(timesteps, len(scheduler.alphas_cumprod))
    set_strided_timesteps(scheduler, timesteps)
    x_orig = x_orig.to(unet.device, unet.dtype)
    mask = mask.to(unet.device, unet.dtype)
    if xt is None:
        xt = gaussian_noise(x_orig.shape, generator, unet.device, unet.dtype)
    check_image(xt, "xt")
    xt = xt.to(unet.device, unet.dtype)
    for i in range(len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        # 1. guided noise estimate (eq. A.4)
        eps, predicted_variance = cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)
        # 2. strided update x_t → x_{t′}: x̂0, mean (eq. A.3), variance
        xt = denoise_step(scheduler, xt, eps, predicted_variance, t, t_prev, generator)
        # 3. keep the known pixels, noised to the new timestep t′ (eq. A.5)
        xt = mask * xt + (1 - mask) * forward(x_orig, t_prev, scheduler.alphas_cumprod, generator=generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt
