"""Part A illusions: visual anagrams (sections 1.8 and the extra views) and hybrid images (1.9).

Time convention (DDPM / Part A): t = 0 is clean, t = 999 is the noisiest timestep. Both illusions
are the strided CFG loop of ``reference.denoise`` with a combined noise estimate; the variance they add
is documented per function (the course leaves it open). Images are (B, 3, H, W).

A view is a pair ``(view, inverse)`` of functions on (B, C, H, W) tensors. All views here permute or
negate pixels, so a view of N(0, I) noise is again N(0, I) and the UNet sees a valid noisy image.
"""

from __future__ import annotations

import torch
import torchvision.transforms.functional as TF

from fwd_kit.validate import check_embeds, check_i_start, check_image, check_timesteps
from reference.denoise import (
    cfg_noise,
    denoise_step,
    predict_noise,
    set_strided_timesteps,
)


def identity(x: torch.Tensor) -> torch.Tensor:
    """x unchanged."""
    return x


def flip_upside_down(x: torch.Tensor) -> torch.Tensor:
    """Upside-down flip along the height axis (dims=[2]); its own inverse."""
    return torch.flip(x, dims=[2])


def rot90_ccw(x: torch.Tensor) -> torch.Tensor:
    """Rotate 90° counter-clockwise (H must equal W, so the rotated image has the UNet's size)."""
    if x.shape[-2] != x.shape[-1]:
        raise ValueError(f"The 90° rotation view needs square images, but got H×W = {x.shape[-2]}×{x.shape[-1]}.")
    return torch.rot90(x, k=1, dims=(2, 3))


def rot90_cw(x: torch.Tensor) -> torch.Tensor:
    """Rotate 90° clockwise: the inverse of ``rot90_ccw``."""
    if x.shape[-2] != x.shape[-1]:
        raise ValueError(f"The 90° rotation view needs square images, but got H×W = {x.shape[-2]}×{x.shape[-1]}.")
    return torch.rot90(x, k=-1, dims=(2, 3))


def negate(x: torch.Tensor) -> torch.Tensor:
    """Colour inversion x → −x in [-1, 1]; its own inverse.

    As the inverse of a noise estimate it is also right: x_t = sqrt(ᾱ)·x0 + sqrt(1 − ᾱ)·ε gives
    −x_t = sqrt(ᾱ)·(−x0) + sqrt(1 − ᾱ)·(−ε), so the noise in the negated image is −ε, and negating the
    estimate maps it back. (A variance is not negated: see ``visual_anagram``.)
    """
    return -x


identity_view = (identity, identity)
flip_view = (flip_upside_down, flip_upside_down)
rot90_view = (rot90_ccw, rot90_cw)
negate_view = (negate, negate)
VIEWS = {"identity": identity_view, "flip": flip_view, "rot90": rot90_view, "negate": negate_view}


def visual_anagram(unet, scheduler, xt, i_start, prompt_embeds_1, prompt_embeds_2, uncond_prompt_embeds, timesteps,
                   view=flip_view, scale=7.0, generator=None, callback=None) -> torch.Tensor:
    """Visual anagram: an image that shows prompt 1 as is and prompt 2 under ``view`` (default upside down).

    Per step: ε1 = CFG(x_t, p1), ε2 = inverse(CFG(view(x_t), p2)), ε = (ε1 + ε2)/2, then the strided
    update (eq. A.3). Variance: the upright (prompt 1) branch's conditional variance, as in the course
    notebook copies. (Averaging with inverse(var2) would be defensible for the flips and rotations, but
    wrong for negation: a variance does not change sign.) Both branches go through one UNet call.
    xt: (B, 3, H, W) at t = timesteps[i_start]; view: a (view, inverse) pair of functions on images, such as
    ``flip_view = (flip_upside_down, flip_upside_down)``; embeddings (1 or B, 77, W).
    ``callback(i, t_prev, x_{t′})`` runs after each step. Returns (B, 3, H, W).
    """
    if not (isinstance(view, (tuple, list)) and len(view) == 2 and all(callable(f) for f in view)):
        raise ValueError(f"view must be a pair (view, inverse) of functions such as flip_view, but got {view!r}.")
    view_fn, inverse_fn = view
    timesteps = check_timesteps(timesteps, len(scheduler.alphas_cumprod))
    i_start = check_i_start(i_start, timesteps)
    check_image(xt, "xt")
    set_strided_timesteps(scheduler, timesteps)
    xt = xt.to(unet.device, unet.dtype)
    batch, width = xt.shape[0], unet.config.encoder_hid_dim
    for name, e in (("prompt_embeds_1", prompt_embeds_1), ("prompt_embeds_2", prompt_embeds_2),
                    ("uncond_prompt_embeds", uncond_prompt_embeds)):
        check_embeds(e, name, width=width, batch=batch)
    # the two branches as one batch of 2B: (x_t, p1) and (view(x_t), p2)
    embeds = torch.cat([prompt_embeds_1.expand(batch, -1, -1), prompt_embeds_2.expand(batch, -1, -1)])
    uncond = uncond_prompt_embeds.expand(batch, -1, -1).repeat(2, 1, 1)
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        # 1. CFG noise estimates of the upright and the viewed image, in one UNet call
        eps, predicted_variance = cfg_noise(unet, torch.cat([xt, view_fn(xt)]), t, embeds, uncond, scale)
        eps_1, eps_2_viewed = eps.chunk(2)
        # 2. map the second estimate back to the upright frame and average
        eps = (eps_1 + inverse_fn(eps_2_viewed)) / 2
        # 3. strided update with the upright branch's variance
        xt = denoise_step(scheduler, xt, eps, predicted_variance.chunk(2)[0], t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt


def make_flip_illusion(unet, scheduler, xt, i_start, prompt_embeds_1, prompt_embeds_2, uncond_prompt_embeds,
                       timesteps, scale=7.0, generator=None, callback=None) -> torch.Tensor:
    """The course notebook's name for the upside-down anagram: ``visual_anagram`` with ``flip_view``."""
    return visual_anagram(unet, scheduler, xt, i_start, prompt_embeds_1, prompt_embeds_2, uncond_prompt_embeds,
                          timesteps, view=flip_view, scale=scale, generator=generator, callback=callback)


def lowpass(x, kernel_size=33, sigma=2.0) -> torch.Tensor:
    """Low frequencies: Gaussian blur (odd ``kernel_size``, std ``sigma``) of (B, C, H, W), same shape."""
    return TF.gaussian_blur(x, kernel_size=kernel_size, sigma=sigma)


def highpass(x, kernel_size=33, sigma=2.0) -> torch.Tensor:
    """High frequencies: x − lowpass(x), so lowpass(x) + highpass(x) = x."""
    return x - lowpass(x, kernel_size, sigma)


def make_hybrids(unet, scheduler, xt, i_start, prompt_embeds_low, prompt_embeds_high, uncond_prompt_embeds,
                 timesteps, scale=7.0, kernel_size=33, sigma=2.0, generator=None, callback=None) -> torch.Tensor:
    """Hybrid image (Factorized Diffusion): prompt "low" seen from afar, prompt "high" up close.

    Per step, with CFG per prompt: ε1 = ε_u + γ(ε_c1 − ε_u), ε2 = ε_u + γ(ε_c2 − ε_u),
    ε = lowpass(ε1) + highpass(ε2) (Gaussian blur, kernel 33, σ 2), then the strided update (eq. A.3).
    Variance: the average of the two conditional variances (both branches see the same x_t; neither
    prompt is privileged). One UNet call per step on the batch (uncond, cond_low, cond_high) = 3B.
    xt: (B, 3, H, W) at t = timesteps[i_start]. ``callback(i, t_prev, x_{t′})`` runs after each step.
    """
    timesteps = check_timesteps(timesteps, len(scheduler.alphas_cumprod))
    i_start = check_i_start(i_start, timesteps)
    check_image(xt, "xt")
    set_strided_timesteps(scheduler, timesteps)
    xt = xt.to(unet.device, unet.dtype)
    batch, width = xt.shape[0], unet.config.encoder_hid_dim
    for name, e in (("prompt_embeds_low", prompt_embeds_low), ("prompt_embeds_high", prompt_embeds_high),
                    ("uncond_prompt_embeds", uncond_prompt_embeds)):
        check_embeds(e, name, width=width, batch=batch)
    embeds = torch.cat([e.expand(batch, -1, -1) for e in (uncond_prompt_embeds, prompt_embeds_low, prompt_embeds_high)])
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        # 1. unconditional and both conditional estimates in one UNet call (batch 3B)
        eps, variance = predict_noise(unet, torch.cat([xt, xt, xt]), t, embeds)
        eps_uncond, eps_low, eps_high = eps.chunk(3)
        _, variance_low, variance_high = variance.chunk(3)
        # 2. CFG per prompt (eq. A.4)
        eps_low = eps_uncond + scale * (eps_low - eps_uncond)
        eps_high = eps_uncond + scale * (eps_high - eps_uncond)
        # 3. combine low frequencies of one with high frequencies of the other
        eps = lowpass(eps_low, kernel_size, sigma) + highpass(eps_high, kernel_size, sigma)
        # 4. strided update with the average conditional variance
        xt = denoise_step(scheduler, xt, eps, (variance_low + variance_high) / 2, t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt
