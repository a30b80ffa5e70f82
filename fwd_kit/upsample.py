"""Stage-2 super-resolution of DeepFloyd IF: a 64×64 image → 256×256, written out as a loop.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is pure noise.

Stage 2 is a second diffusion model. Its UNet sees the noisy 256² image x_t next to an upsampled copy
of the small image, itself noised to a fixed *augmentation level* ``noise_level`` (250 of 1000) so
that stage 2 forgives stage 1's artefacts; the level enters the UNet as a class label. Sampling is
ordinary DDPM with classifier-free guidance. This stage is provided to students, not written by them,
so the update step is ``stage2.scheduler.step`` (a ``DDPMScheduler`` with learned-range variance and
dynamic thresholding); the steps are the same as ``IFSuperResolutionPipeline``, in the same order of
random draws, so the same generator gives the same image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fwd_kit.validate import check_embeds, check_image


def _randn(shape, generator, device, dtype) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device (as diffusers does), then moved to ``device``."""
    draw_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_device, dtype=dtype).to(device)


@torch.no_grad()
def upsample(
    stage2,
    images: torch.Tensor,
    prompt_embeds: torch.Tensor,
    uncond_prompt_embeds: torch.Tensor,
    num_inference_steps: int = 20,
    noise_level: int = 250,
    scale: float = 4.0,
    generator: torch.Generator | None = None,
    size: int | None = None,
) -> torch.Tensor:
    """Upsample ``images`` (B, 3, h, w) in [-1, 1] to (B, 3, size, size) in [-1, 1] with stage 2.

    stage2: an ``IFSuperResolutionPipeline`` (``load_stage2``); its UNet, schedulers, device and dtype are used.
    prompt_embeds: (B or 1, 77, W) conditional embeddings; uncond_prompt_embeds: (B or 1, 77, W), usually ``""``.
    noise_level: augmentation level in [0, 999] of the upsampled image; scale: guidance γ (> 1 for CFG).
    size: output side, default ``stage2.unet.config.sample_size`` (256); any h, w are resized to it.

    With ε_u, ε_c the UNet's noise estimates without and with the prompt, each step uses
    ε = ε_u + γ (ε_c − ε_u) and the conditional branch's predicted variance.
    """
    unet, scheduler = stage2.unet, stage2.scheduler
    check_image(images, "images")
    batch = images.shape[0]
    width = unet.config.encoder_hid_dim
    check_embeds(prompt_embeds, "prompt_embeds", width=width, batch=batch)
    check_embeds(uncond_prompt_embeds, "uncond_prompt_embeds", width=width, batch=batch)
    num_train = stage2.image_noising_scheduler.config.num_train_timesteps
    if not isinstance(noise_level, int) or not 0 <= noise_level < num_train:
        raise ValueError(f"noise_level must be an integer in [0, {num_train - 1}], but got {noise_level!r}.")
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be a positive integer, but got {num_inference_steps!r}.")
    size = size or unet.config.sample_size
    device, dtype = unet.device, unet.dtype
    do_cfg = scale > 1.0  # as the pipeline: γ ≤ 1 runs the conditional branch alone

    # 1. text conditions: [unconditional, conditional] in one batch, as the pipeline does
    cond = prompt_embeds.to(device, dtype).expand(batch, -1, -1)
    uncond = uncond_prompt_embeds.to(device, dtype).expand(batch, -1, -1)
    text = torch.cat([uncond, cond]) if do_cfg else cond  # (2B or B, 77, W)

    # 2. timesteps, and the starting noise x_T ~ N(0, I)  (first random draw)
    scheduler.set_timesteps(num_inference_steps, device=device)
    xt = _randn((batch, 3, size, size), generator, device, dtype) * scheduler.init_noise_sigma  # (B, 3, S, S)

    # 3. the condition image: bilinear upsampling, then noised to noise_level  (second random draw)
    #    x_low = sqrt(ᾱ_s)·up(x) + sqrt(1 − ᾱ_s)·ε with s = noise_level
    upscaled = F.interpolate(images.to(device, dtype), (size, size), mode="bilinear", align_corners=True)
    levels = torch.tensor([noise_level] * batch, device=device)
    noise = _randn(upscaled.shape, generator, device, dtype)
    upscaled = stage2.image_noising_scheduler.add_noise(upscaled, noise, timesteps=levels)  # (B, 3, S, S)
    if do_cfg:
        levels = torch.cat([levels, levels])

    for t in scheduler.timesteps:
        # 4. UNet on [x_t, x_low] (6 channels) for both branches; output = [ε̂, variance]
        model_input = torch.cat([xt, upscaled], dim=1)
        model_input = torch.cat([model_input, model_input]) if do_cfg else model_input
        out = unet(model_input, t, encoder_hidden_states=text, class_labels=levels, return_dict=False)[0]

        # 5. classifier-free guidance on ε: ε = ε_u + γ (ε_c − ε_u), conditional variance kept
        if do_cfg:
            out_uncond, out_cond = out.chunk(2)
            eps_uncond, _ = out_uncond.split(3, dim=1)
            eps_cond, variance = out_cond.split(3, dim=1)
            out = torch.cat([eps_uncond + scale * (eps_cond - eps_uncond), variance], dim=1)
        if scheduler.config.variance_type not in ("learned", "learned_range"):
            out = out[:, :3]  # a scheduler with a fixed variance takes ε̂ alone

        # 6. DDPM update x_t → x_{t'} with the predicted variance and dynamic thresholding (one random draw)
        xt = scheduler.step(out, t, xt, generator=generator, return_dict=False)[0]
    return xt
