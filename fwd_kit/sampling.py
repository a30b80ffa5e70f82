"""Provided helpers of Part A's sampling loops: Gaussian noise, the scheduler's strided list, one UNet call
split into ε̂ and the learned variance, and the learned variance added to a step's mean.

Time convention (DDPM, as DeepFloyd): t = 0 is clean, t = 999 is pure noise; ``i_start`` indexes a strided
list of timesteps (it is not a timestep).
"""

from __future__ import annotations

import torch

from fwd_kit.validate import (
    check_embeds,
    check_image,
    check_same_shape,
    check_timestep,
    check_timesteps,
)

NUM_TRAIN_TIMESTEPS = 1000  # DeepFloyd's T: timesteps are integers in [0, 999]


IMAGE_CHANNELS = 3  # the UNet outputs 2 × 3 channels: ε̂ and the learned-range variance


def gaussian_noise(shape, generator=None, device=None, dtype=None) -> torch.Tensor:
    """ε ~ N(0, I) of ``shape``, drawn on the generator's device and moved to ``device``.

    These are the semantics of diffusers' ``randn_tensor`` for one generator, so the same seed gives
    the same noise here and inside ``DDPMScheduler.step`` / ``IFPipeline``.
    """
    draw_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=draw_device, dtype=dtype).to(device)


def set_strided_timesteps(scheduler, timesteps) -> None:
    """Tell ``scheduler`` the strided list: ``scheduler.set_timesteps(timesteps=timesteps)``.

    Pitfall: ``add_variance`` needs it. ``scheduler._get_variance(t)`` finds t′ with
    ``scheduler.previous_timestep(t)``: the next list entry once the list is set, but t − 1 before that
    (a one-step variance, far too small) and an IndexError for a t that is not in the list. Running a
    pipeline resets the scheduler's timesteps, so the loops of this package call this at their start.
    """
    scheduler.set_timesteps(timesteps=check_timesteps(timesteps, len(scheduler.alphas_cumprod)))


@torch.no_grad()
def predict_noise(unet, xt, t, prompt_embeds) -> tuple[torch.Tensor, torch.Tensor]:
    """One UNet call: ε̂(x_t, t, prompt) and the learned-range variance, each (B, 3, H, W).

    xt: (B, 3, H, W), moved to the UNet's device and dtype; t: int in [0, 999]; prompt_embeds:
    (1 or B, 77, W), W = ``unet.config.encoder_hid_dim`` (a batch of 1 is shared by all images).
    The UNet's 6 output channels are split as ε̂ = [:, :3], predicted variance = [:, 3:].
    """
    check_image(xt, "xt")
    t = check_timestep(t, NUM_TRAIN_TIMESTEPS)
    check_embeds(prompt_embeds, "prompt_embeds", width=unet.config.encoder_hid_dim, batch=xt.shape[0])
    device, dtype = unet.device, unet.dtype  # read once: diffusers walks the modules for each
    xt = xt.to(device, dtype)
    prompt_embeds = prompt_embeds.to(device, dtype).expand(xt.shape[0], -1, -1)
    model_output = unet(xt, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]  # (B, 6, H, W)
    eps, predicted_variance = torch.split(model_output, xt.shape[1], dim=1)
    return eps, predicted_variance


def add_variance(scheduler, predicted_variance, t, image, generator=None) -> torch.Tensor:
    """The course's helper: image + exp(0.5·log σ²_t)·z, z ~ N(0, I), log σ²_t = ``scheduler._get_variance``.

    predicted_variance: the UNet's last 3 channels (B, 3, H, W); t: a timestep of the scheduler's
    strided list (call ``set_strided_timesteps`` first); image: the A.3 mean (B, 3, H, W). z is drawn
    with ``generator`` like ``DDPMScheduler.step`` draws it — with the 3-channel shape of ε̂ (``step``
    splits the 6-channel output before drawing), the image's device and dtype — so a shared generator
    gives the scheduler's exact result.
    """
    check_image(image, "image")
    check_same_shape(predicted_variance, image, "predicted_variance", "image")
    if not (scheduler.custom_timesteps or scheduler.num_inference_steps):
        raise ValueError("The scheduler has no timesteps: call set_strided_timesteps(scheduler, timesteps) first.")
    if int(t) not in scheduler.timesteps.tolist():
        raise ValueError(
            f"t={int(t)} is not one of the scheduler's timesteps {scheduler.timesteps.tolist()[:5]}...: call "
            "set_strided_timesteps(scheduler, timesteps) with the list you are denoising along."
        )
    log_variance = scheduler._get_variance(int(t), predicted_variance=predicted_variance)
    noise = gaussian_noise(image.shape, generator, image.device, image.dtype)
    return image + torch.exp(0.5 * log_variance) * noise


SDEDIT_I_STARTS = (1, 3, 5, 7, 10, 20)  # the course's noise levels: t = 960, 900, 840, 780, 690, 390
