"""The public checks of the notebooks: each passes on the reference, fails with a question on a typical
mistake, lets a stub's NotImplementedError through, accepts correct alternatives and writes nothing to
stderr (nbgrader scores a cell 0 when anything reaches it)."""

from __future__ import annotations

import inspect
import sys
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from fwd_kit import checks as public
from fwd_kit import expected
from reference import ddpm as DD
from reference import denoise as D
from reference import denoiser as DN
from reference import editing as E
from reference import flow_matching as FM
from reference import illusions as I
from reference import unet as U

MODULES = (D, E, I, U, DN, FM, DD)


@pytest.fixture(autouse=True)
def as_in_the_kit(request):
    """Checks at seed 0 run as in the student kit: on the expectations stored in the kit, never on the
    reference; the hidden seeds (tests named ``..._seed...``) run live, as in the grader."""
    if "seed" in request.node.name:
        yield
    else:
        with expected.forced("replay"):
            yield


def reference_object(name: str):
    return next(getattr(m, name) for m in MODULES if hasattr(m, name))


def test_every_graded_name_has_a_check_and_a_reference():
    assert set(public.CHECKS) == set(public.PART_A) | set(public.PART_B)
    for name, check in public.CHECKS.items():
        assert check.__name__ == f"check_{name}" and callable(reference_object(name))


@pytest.mark.parametrize("name", public.PART_A + public.PART_B)
def test_check_passes_on_the_reference(name, capfd):
    public.CHECKS[name](reference_object(name))
    out, err = capfd.readouterr()
    assert err == ""
    assert out.startswith(f"\u2713 {name}") and out.count("\n") == 1, out


def stub(*args, **kwargs):
    raise NotImplementedError()


class StubInit(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        raise NotImplementedError()


class StubForward(nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, *args, **kwargs):
        raise NotImplementedError()


@pytest.mark.parametrize("name", public.PART_A + public.PART_B)
def test_stub_fails_with_not_implemented(name, capfd):
    stubs = (StubInit, StubForward) if isinstance(reference_object(name), type) else (stub,)
    for student in stubs:
        with pytest.raises(NotImplementedError):
            public.CHECKS[name](student)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------
# Typical mistakes, Part A (signatures as in reference)


def forward_without_sqrt(x0, t, alphas_cumprod, noise=None, generator=None):
    noise = torch.randn(x0.shape, generator=generator) if noise is None else noise
    return alphas_cumprod[t] * x0 + (1 - alphas_cumprod[t]) * noise


def forward_ignoring_generator(x0, t, alphas_cumprod, noise=None, generator=None):
    noise = torch.randn_like(x0) if noise is None else noise
    return alphas_cumprod[t] ** 0.5 * x0 + (1 - alphas_cumprod[t]) ** 0.5 * noise


def estimate_x0_multiplied(xt, eps, t, alphas_cumprod):
    return (xt - (1 - alphas_cumprod[t]) ** 0.5 * eps) * alphas_cumprod[t] ** 0.5


def one_step_from_variance(unet, xt, t, prompt_embeds, alphas_cumprod):
    _, variance = D.predict_noise(unet, xt, t, prompt_embeds)
    return D.estimate_x0(xt, variance, t, alphas_cumprod)


def denoise_step_mean_one_step_alpha(xt, x0_hat, t, t_prev, alphas_cumprod):
    alpha_bar, alpha_bar_prev = alphas_cumprod[t], alphas_cumprod[t_prev]
    alpha = alpha_bar / alphas_cumprod[t - 1]  # the scheduler's one-step α_t, not the strided one
    return alpha_bar_prev**0.5 * (1 - alpha) / (1 - alpha_bar) * x0_hat \
        + alpha**0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar) * xt


def iterative_denoise_without_variance(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None):
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps, _ = D.predict_noise(unet, xt, t, prompt_embeds)
        xt = D.denoise_step_mean(xt, D.estimate_x0(xt, eps, t, scheduler.alphas_cumprod), t, t_prev,
                                 scheduler.alphas_cumprod)
    return xt


def iterative_denoise_from_zero(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None):
    return D.iterative_denoise(unet, scheduler, xt, 0, prompt_embeds, timesteps, generator=generator)


def cfg_noise_two_calls(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale=7.0, wrong_branch=False):
    eps_c, variance_c = D.predict_noise(unet, xt, t, prompt_embeds)
    eps_u, _ = D.predict_noise(unet, xt, t, uncond_prompt_embeds)
    if wrong_branch:
        return eps_c + scale * (eps_u - eps_c), variance_c
    return eps_u + scale * (eps_c - eps_u), variance_c


def cfg_noise_wrong_branch(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale=7.0):
    return cfg_noise_two_calls(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale, wrong_branch=True)


def cfg_noise_unconditional_variance(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale=7.0):
    eps, _ = D.cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)
    return eps, D.predict_noise(unet, xt, t, uncond_prompt_embeds)[1]


def cfg_loop(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0, generator=None,
             callback=None, return_intermediates=False, noise_fn=cfg_noise_two_calls, every=5):
    D.set_strided_timesteps(scheduler, timesteps)
    frames = []
    for k, (t, t_prev) in enumerate(zip(timesteps[i_start:-1], timesteps[i_start + 1:])):
        if return_intermediates and k % every == 0:
            frames.append((t, xt))
        eps, variance = noise_fn(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)
        xt = D.denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
        if callback is not None:
            callback(i_start + k, t_prev, xt)
    return (xt, frames) if return_intermediates else xt


def cfg_loop_wrong_branch(*args, **kwargs):
    return cfg_loop(*args, **kwargs, noise_fn=cfg_noise_wrong_branch)


def sdedit_without_noising(unet, scheduler, x_orig, i_start, prompt_embeds, uncond_prompt_embeds, timesteps,
                           scale=7.0, generator=None):
    return D.iterative_denoise_cfg(unet, scheduler, x_orig, i_start, prompt_embeds, uncond_prompt_embeds, timesteps,
                                   scale=scale, generator=generator)


def inpaint_inverted_mask(unet, scheduler, x_orig, mask, *args, **kwargs):
    return E.inpaint(unet, scheduler, x_orig, 1 - mask, *args, **kwargs)


def anagram_not_undone(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=I.flip_view, scale=7.0,
                       generator=None, callback=None):
    return I.visual_anagram(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=(view[0], I.identity),
                            scale=scale, generator=generator)


def anagram_mean_variance(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=I.flip_view, scale=7.0,
                          generator=None, callback=None):
    """A correct alternative: two separate CFG calls and the average of both branches' variances."""
    view_fn, inverse = view
    D.set_strided_timesteps(scheduler, timesteps)
    for i, (t, t_prev) in enumerate(zip(timesteps[i_start:-1], timesteps[i_start + 1:]), start=i_start):
        eps_1, var_1 = D.cfg_noise(unet, xt, t, p1, uncond, scale)
        eps_2, var_2 = D.cfg_noise(unet, view_fn(xt), t, p2, uncond, scale)
        eps = (eps_1 + inverse(eps_2)) / 2
        xt = D.denoise_step(scheduler, xt, eps, (var_1 + inverse(var_2)) / 2, t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt


def anagram_without_callback(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=I.flip_view, scale=7.0,
                             generator=None, callback=None):
    return I.visual_anagram(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=view, scale=scale,
                            generator=generator)  # the callback is never called


def hybrids_swapped(unet, scheduler, xt, i_start, low, high, uncond, timesteps, scale=7.0, kernel_size=33, sigma=2.0,
                    generator=None, callback=None):
    return I.make_hybrids(unet, scheduler, xt, i_start, high, low, uncond, timesteps, scale=scale,
                          kernel_size=kernel_size, sigma=sigma, generator=generator)


def hybrids_with(unet, scheduler, xt, i_start, low, high, uncond, timesteps, scale=7.0, kernel_size=33, sigma=2.0,
                 generator=None, callback=None, variance_of="low", call_back=True):
    """Separate CFG calls; the variance added: ``variance_of`` "low" or "high" (that prompt's conditional
    variance), "guided" (the average of both variances guided like the noise) or "uncond"."""
    D.set_strided_timesteps(scheduler, timesteps)
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        eps_low, var_low = D.cfg_noise(unet, xt, t, low, uncond, scale)
        eps_high, var_high = D.cfg_noise(unet, xt, t, high, uncond, scale)
        _, var_uncond = D.predict_noise(unet, xt, t, uncond)
        eps = I.lowpass(eps_low, kernel_size, sigma) + I.highpass(eps_high, kernel_size, sigma)
        variance = {"low": var_low, "high": var_high, "uncond": var_uncond,
                    "guided": var_uncond + scale * ((var_low + var_high) / 2 - var_uncond)}[variance_of]
        xt = D.denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
        if callback is not None and call_back:
            callback(i, t_prev, xt)
    return xt


def hybrids_separate_calls(*args, **kwargs):
    """A correct alternative: separate CFG calls, the low prompt's variance."""
    return hybrids_with(*args, **kwargs)


def hybrids_high_variance(*args, **kwargs):
    """A correct alternative: the high prompt's conditional variance (the course leaves the choice open)."""
    return hybrids_with(*args, **kwargs, variance_of="high")


def hybrids_guided_variance(*args, **kwargs):
    return hybrids_with(*args, **kwargs, variance_of="guided")


def hybrids_unconditional_variance(*args, **kwargs):
    return hybrids_with(*args, **kwargs, variance_of="uncond")


def hybrids_without_callback(*args, **kwargs):
    return hybrids_with(*args, **kwargs, call_back=False)


def forward_in_place(x0, t, alphas_cumprod, noise=None, generator=None):
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype) if noise is None else noise
    return x0.mul_(alphas_cumprod[t] ** 0.5).add_((1 - alphas_cumprod[t]) ** 0.5 * noise)  # writes into x0


def strided_without_value_error(start=990, stride=30):
    return list(range(start, -1, -stride))  # start = 100, stride = 30 gives 100, 70, 40, 10: no t = 0


def denoise_step_mean_without_value_error(xt, x0_hat, t, t_prev, alphas_cumprod):
    alpha_bar, alpha_bar_prev = alphas_cumprod[t], alphas_cumprod[t_prev]
    alpha = alpha_bar / alpha_bar_prev
    return alpha_bar_prev**0.5 * (1 - alpha) / (1 - alpha_bar) * x0_hat \
        + alpha**0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar) * xt


def iterative_denoise_every_frame(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None,
                                  callback=None, return_intermediates=False):
    frames = []
    result = D.iterative_denoise(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=generator,
                                 callback=lambda i, t_prev, x: frames.append((timesteps[i], x)))
    return (result, [(timesteps[i_start], xt)] + frames[:-1]) if return_intermediates else result


def iterative_denoise_callback_before(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None,
                                      callback=None, return_intermediates=False):
    wrapped = None if callback is None else (lambda i, t_prev, x: callback(i, timesteps[i], x))  # t, not t_prev
    return D.iterative_denoise(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=generator,
                               callback=wrapped, return_intermediates=return_intermediates)


def strided_rejecting_zero(start=990, stride=30):
    if stride <= 0 or start <= 0 or start % stride:  # start = 0 is allowed by the docstring
        raise ValueError("start must be a positive multiple of stride.")
    return list(range(start, -1, -stride))


def iterative_denoise_every_6th(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None,
                                callback=None, return_intermediates=False):
    frames = []

    def record(i, t_prev, x):
        if (i + 1 - i_start) % 6 == 0 and i + 1 < len(timesteps) - 1:
            frames.append((t_prev, x))
        if callback is not None:
            callback(i, t_prev, x)

    result = D.iterative_denoise(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=generator,
                                 callback=record)
    return (result, [(timesteps[i_start], xt)] + frames) if return_intermediates else result


def cfg_loop_every_4th(*args, **kwargs):
    return cfg_loop(*args, **kwargs, every=4)


def inpaint_without_callback(unet, scheduler, x_orig, mask, *args, callback=None, **kwargs):
    return E.inpaint(unet, scheduler, x_orig, mask, *args, **kwargs)  # the callback is never called


def inpaint_callback_before_the_kept_pixels(unet, scheduler, x_orig, mask, prompt_embeds, uncond_prompt_embeds,
                                            timesteps, scale=7.0, generator=None, xt=None, callback=None):
    D.set_strided_timesteps(scheduler, timesteps)
    xt = D.gaussian_noise(x_orig.shape, generator, x_orig.device, x_orig.dtype) if xt is None else xt
    for i in range(len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        eps, variance = D.cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)
        xt = D.denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)  # before the known pixels are put back
        xt = mask * xt + (1 - mask) * D.forward(x_orig, t_prev, scheduler.alphas_cumprod, generator=generator)
    return xt


def forward_noise_on_the_cpu(x0, t, alphas_cumprod, noise=None, generator=None):
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype) if noise is None else noise  # no device=
    return alphas_cumprod[t] ** 0.5 * x0 + (1 - alphas_cumprod[t]) ** 0.5 * noise


def cfg_loop_moved_to_the_cpu(unet, scheduler, xt, *args, **kwargs):
    return cfg_loop(unet, scheduler, xt.cpu(), *args, **kwargs)  # .cpu(): the GPU's UNet gets a CPU image


def estimate_x0_sliced_alpha(xt, eps, t, alphas_cumprod):
    alpha_bar = alphas_cumprod[t:t + 1]  # shape (1,), on the CPU: it broadcasts, but does not mix with the GPU
    return (xt - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def hybrids_noise_on_the_cpu(unet, scheduler, xt, i_start, low, high, uncond, timesteps, scale=7.0, kernel_size=33,
                             sigma=2.0, generator=None, callback=None):
    D.set_strided_timesteps(scheduler, timesteps)
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        eps_low, var_low = D.cfg_noise(unet, xt, t, low, uncond, scale)
        eps_high, var_high = D.cfg_noise(unet, xt, t, high, uncond, scale)
        eps = I.lowpass(eps_low, kernel_size, sigma) + I.highpass(eps_high, kernel_size, sigma)
        mean = D.denoise_step_mean(xt, D.estimate_x0(xt, eps, t, scheduler.alphas_cumprod), t, t_prev,
                                   scheduler.alphas_cumprod)
        log_variance = scheduler._get_variance(t, predicted_variance=(var_low + var_high) / 2)
        noise = torch.randn(xt.shape, generator=generator, device="cpu", dtype=xt.dtype)  # a hard-coded device
        xt = mean + torch.exp(0.5 * log_variance) * noise
        if callback is not None:
            callback(i, t_prev, xt)
    return xt


def iterative_denoise_cfg_checking_values(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds,
                                          timesteps, scale=7.0, generator=None, callback=None,
                                          return_intermediates=False):
    """A correct alternative that reads values (it stops on NaN): on data-less meta tensors the device check
    cannot run it, and must not fail it."""
    if not torch.isfinite(xt).all():
        raise ValueError("xt holds NaN or infinite values.")
    return cfg_loop(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale, generator,
                    callback, return_intermediates)


def estimate_x0_clamped(xt, eps, t, alphas_cumprod):
    """A correct alternative: x̂0 clamped to [-1, 1] (common, optional in the course)."""
    return D.estimate_x0(xt, eps, t, alphas_cumprod).clamp(-1, 1)


def iterative_denoise_clamped(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None, callback=None,
                              return_intermediates=False):
    """A correct alternative: each x̂0 clamped to [-1, 1] before the mean."""
    D.set_strided_timesteps(scheduler, timesteps)
    frames = []
    for k, (t, t_prev) in enumerate(zip(timesteps[i_start:-1], timesteps[i_start + 1:])):
        if return_intermediates and k % 5 == 0:
            frames.append((t, xt))
        eps, variance = D.predict_noise(unet, xt, t, prompt_embeds)
        x0_hat = D.estimate_x0(xt, eps, t, scheduler.alphas_cumprod).clamp(-1, 1)
        xt = D.add_variance(scheduler, variance, t, D.denoise_step_mean(xt, x0_hat, t, t_prev,
                                                                         scheduler.alphas_cumprod), generator)
        if callback is not None:
            callback(i_start + k, t_prev, xt)
    return (xt, frames) if return_intermediates else xt


PART_A_MISTAKES = [
    ("forward", forward_without_sqrt, "sqrt"),
    ("forward", forward_ignoring_generator, "generator"),
    ("forward", lambda x0, t, ab, noise=None, generator=None: D.forward(x0, t, ab, noise=torch.rand(
        x0.shape, generator=generator) if noise is None else noise), "N(0, I)"),
    ("estimate_x0", estimate_x0_multiplied, "invert"),
    ("one_step_denoise", one_step_from_variance, "first 3 output channels"),
    ("strided_timesteps", lambda start=990, stride=30: list(range(start, 0, -stride)), "including"),
    ("denoise_step_mean", denoise_step_mean_one_step_alpha, "strided"),
    ("iterative_denoise", iterative_denoise_without_variance, "add_variance"),
    ("iterative_denoise", iterative_denoise_from_zero, "should see t"),
    ("cfg_noise", cfg_noise_wrong_branch, "ε_u + γ"),
    ("cfg_noise", cfg_noise_unconditional_variance, "conditional branch"),
    ("iterative_denoise_cfg", cfg_loop_wrong_branch, "starts from the conditional"),
    ("sdedit", sdedit_without_noising, "first noise x_orig"),
    ("inpaint", inpaint_inverted_mask, "mask = 0"),
    ("flip_upside_down", lambda x: torch.flip(x, dims=[3]), "left-right"),
    ("rot90_ccw", lambda x: torch.rot90(x, -1, dims=(2, 3)), "clockwise quarter-turn"),
    ("rot90_cw", lambda x: torch.rot90(x, 1, dims=(2, 3)), "counter-clockwise"),
    ("negate", lambda x: 1 - x, "1 − x"),
    ("visual_anagram", anagram_not_undone, "without undoing"),
    ("lowpass", lambda x, kernel_size=33, sigma=2.0: TF.gaussian_blur(x, kernel_size, 1.0), "sigma"),
    ("highpass", lambda x, kernel_size=33, sigma=2.0: x - I.lowpass(x), "highpass"),
    ("make_hybrids", hybrids_swapped, "swapped"),
    ("forward", forward_in_place, "leave its inputs unchanged"),
    ("strided_timesteps", strided_without_value_error, "raise a ValueError when start is not a multiple"),
    ("denoise_step_mean", denoise_step_mean_without_value_error, "raise a ValueError when t_prev"),
    ("iterative_denoise", iterative_denoise_every_frame, "every 5th step"),
    ("iterative_denoise", iterative_denoise_callback_before, "callback(i, t_prev, x_t′)"),
    ("strided_timesteps", strided_rejecting_zero, "accept start = 0"),
    ("iterative_denoise", iterative_denoise_every_6th, "every 5th step"),
    ("iterative_denoise_cfg", cfg_loop_every_4th, "every 5th step"),
    ("inpaint", inpaint_without_callback, "callback(i, t_prev, x_t′)"),
    ("inpaint", inpaint_callback_before_the_kept_pixels, "after the whole step"),
    ("visual_anagram", anagram_without_callback, "callback(i, t_prev, x_t′)"),
    ("make_hybrids", hybrids_without_callback, "callback(i, t_prev, x_t′)"),
    ("make_hybrids", hybrids_guided_variance, "guided like the noise"),
    ("make_hybrids", hybrids_unconditional_variance, "either prompt's?"),
    ("forward", forward_noise_on_the_cpu, "Follow the device of the inputs/model"),
    ("estimate_x0", estimate_x0_sliced_alpha, "Follow the device of the inputs/model"),
    ("iterative_denoise_cfg", cfg_loop_moved_to_the_cpu, "Follow the device of the inputs/model"),
    ("make_hybrids", hybrids_noise_on_the_cpu, "Follow the device of the inputs/model"),
]
PART_A_ALTERNATIVES = [
    ("forward", lambda x0, t, ab, noise=None, generator=None: x0 * ab[t].sqrt() + (1 - ab[t]).sqrt() * (
        torch.randn(x0.shape, generator=generator, device=x0.device) if noise is None else noise)),
    ("cfg_noise", cfg_noise_two_calls),
    ("iterative_denoise_cfg", cfg_loop),
    ("visual_anagram", anagram_mean_variance),
    ("make_hybrids", hybrids_separate_calls),
    ("make_hybrids", hybrids_high_variance),
    ("iterative_denoise_cfg", iterative_denoise_cfg_checking_values),
    ("estimate_x0", estimate_x0_clamped),
    ("one_step_denoise", lambda unet, xt, t, p, ab: estimate_x0_clamped(xt, D.predict_noise(unet, xt, t, p)[0], t, ab)),
    ("iterative_denoise", iterative_denoise_clamped),
]


# ---------------------------------------------------------------------------------------------------
# Typical mistakes, Part B


class ConvWithoutBatchNorm(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.conv(x))


class DownConvStrideOne(U.DownConv):
    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1)


class UpConvKernel3(U.UpConv):
    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels, out_channels)
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1)


class FlattenWithoutGELU(U.Flatten):
    def forward(self, x):
        return self.pool(x)


class UnflattenGELUFirst(U.Unflatten):
    def forward(self, x):
        return self.norm(self.act(self.conv(x)))


class ConcatSwapped(U.Concat):
    def forward(self, x, y):
        return torch.cat([y, x], dim=1)


class ConvBlockSingle(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = U.Conv(in_channels, out_channels)

    def forward(self, x):
        return self.conv1(x)


class DownBlockConvFirst(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.block = U.ConvBlock(in_channels, in_channels)
        self.down = U.DownConv(in_channels, out_channels)

    def forward(self, x):
        return self.down(self.block(x))


class UpBlockSequential(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.layers = nn.Sequential(U.UpConv(in_channels, out_channels), U.ConvBlock(out_channels, out_channels))

    def forward(self, x):
        return self.layers(x)


class FCBlockWithoutGELU(U.FCBlock):
    def forward(self, x):
        return self.fc2(self.fc1(x))


class UNetSkipSwapped(U.UnconditionalUNet):
    def forward(self, x):
        e1 = self.conv_in(x)
        e2 = self.down1(e1)
        e3 = self.down2(e2)
        u0 = self.unflatten(self.flatten(e3))
        u1 = self.up1(self.concat(u0, e3))  # skip and upsampled path in the wrong order
        u2 = self.up2(self.concat(e2, u1))
        return self.head(self.conv_out(self.concat(e1, u2)))


class TimeUNetAlwaysAdditive(U.TimeConditionalUNet):
    def __init__(self, in_channels=1, num_hiddens=64, conditioning="fm"):
        super().__init__(in_channels, num_hiddens, "ddpm")


class ClassUNetIgnoringMask(U.ClassConditionalUNet):
    def forward(self, x, c, t, mask=None):
        return super().forward(x, c, t)


def add_noise_sigma_squared(x, sigma, noise=None, generator=None):
    noise = torch.randn(x.shape, generator=generator) if noise is None else noise
    return x + sigma**2 * noise


def add_noise_one_sigma_only(x, sigma, noise=None, generator=None):
    noise = torch.randn(x.shape, generator=generator) if noise is None else noise
    return x + torch.as_tensor(sigma) * noise  # a (N,) σ does not broadcast over (N, 1, 28, 28)


def denoiser_loss_fixed_sigma(unet, x, sigma=0.5, generator=None):
    return DN.denoiser_loss(unet, x, sigma=0.5, generator=generator)  # ignores its sigma argument


def denoiser_loss_on_noise(unet, x, sigma=0.5, generator=None):
    eps = torch.randn(x.shape, generator=generator)
    return F.mse_loss(unet(x + sigma * eps), eps)


def denoiser_loss_randn_like(unet, x, sigma=0.5, generator=None):
    """A correct alternative: ignores the generator."""
    return F.mse_loss(unet(x + sigma * torch.randn_like(x)), x)


def pure_noise_loss_with_x(unet, x, generator=None):
    return F.mse_loss(unet(x + torch.randn(x.shape, generator=generator)), x)


def time_fm_forward_reversed(unet, x1, generator=None):
    t = torch.rand(x1.shape[0], generator=generator)
    x0 = torch.randn(x1.shape, generator=generator)
    return F.mse_loss(unet(FM.interpolate(x0, x1, t), t), x0 - x1)


def time_fm_forward_one_time(unet, x1, generator=None):
    t = torch.rand(1, generator=generator).expand(x1.shape[0])
    x0 = torch.randn(x1.shape, generator=generator)
    return F.mse_loss(unet(FM.interpolate(x0, x1, t), t), x1 - x0)


def time_fm_forward_noise_first(unet, x1, generator=None):
    """A correct alternative: draws x0 before t, and t as (N, 1)."""
    x0 = torch.randn(x1.shape, generator=generator)
    t = torch.rand((x1.shape[0], 1), generator=generator)
    xt = (1 - t[:, :, None, None]) * x0 + t[:, :, None, None] * x1
    return ((unet(xt, t) - (x1 - x0)) ** 2).mean()


def class_fm_forward_no_dropout(unet, x1, labels, p_uncond=0.1, generator=None):
    return FM.class_fm_forward(unet, x1, labels, p_uncond=0.0, generator=generator)


def class_fm_forward_mask_argument(unet, x1, labels, p_uncond=0.1, generator=None):
    """A correct alternative: drops classes through the UNet's mask argument."""
    n = x1.shape[0]
    keep = (torch.rand(n, generator=generator) >= p_uncond).float()
    t = torch.rand(n, generator=generator)
    x0 = torch.randn(x1.shape, generator=generator)
    return F.mse_loss(unet(FM.interpolate(x0, x1, t), FM.one_hot(labels), t, mask=keep), x1 - x0)


def time_fm_sample_late_times(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None):
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator)
    with U.eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            x = x + unet(x, torch.full((num_samples,), (i + 1) / num_ts)) / num_ts
    return x


def time_fm_sample_train_mode(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None):
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator)
    for i in range(num_ts):
        x = x + unet(x, torch.full((num_samples,), i / num_ts)).detach() / num_ts
    return x


def class_fm_sample_two_calls(unet, labels, img_wh=(28, 28), num_ts=300, guidance_scale=5.0, generator=None,
                              return_trajectory=False, wrong_branch=False, noise_on_cpu=False):
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    c = FM.one_hot(labels).to(device, dtype)
    x = torch.randn((len(labels), 1, img_wh[1], img_wh[0]), generator=generator, dtype=dtype,
                    **({} if noise_on_cpu else {"device": device}))  # noise_on_cpu: no device=
    trajectory = [x]
    with U.eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            t = torch.full((len(labels),), i / num_ts, device=device, dtype=dtype)
            u_c, u_u = unet(x, c, t), unet(x, torch.zeros_like(c), t)
            u = u_c + guidance_scale * (u_u - u_c) if wrong_branch else u_u + guidance_scale * (u_c - u_u)
            x = x + u / num_ts
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def class_fm_sample_wrong_branch(*args, **kwargs):
    return class_fm_sample_two_calls(*args, **kwargs, wrong_branch=True)


def class_fm_sample_noise_on_the_cpu(*args, **kwargs):
    return class_fm_sample_two_calls(*args, **kwargs, noise_on_cpu=True)


def time_fm_sample_noise_on_the_cpu(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None,
                                    return_trajectory=False):
    weight = next(unet.parameters())
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator, dtype=weight.dtype)  # no device=
    trajectory = [x]
    with U.eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            x = x + unet(x, torch.full((num_samples,), i / num_ts, device=weight.device, dtype=weight.dtype)) / num_ts
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def ddpm_sample_z_on_the_cpu(unet, schedule, num_samples, img_wh=(28, 28), num_ts=300, generator=None,
                             return_trajectory=False):
    s = DD._schedule64(schedule, num_ts)
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    shape = (num_samples, 1, img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    with U.eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            z = torch.randn(shape, generator=generator, device="cpu", dtype=dtype) if t > 1 else None  # hard-coded
            x = DD.ddpm_step(s, t, x, unet(x, torch.full((num_samples,), t / num_ts, device=device, dtype=dtype)), z)
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def ddpm_step_sliced_schedule(s, t, xt, eps_hat, z):
    beta, alpha, alpha_bar = s["betas"][t - 1:t], s["alphas"][t - 1:t], s["alpha_bars"][t - 1:t]  # (1,) on the CPU
    alpha_bar_prev = s["alpha_bars"][t - 2:t - 1] if t > 1 else torch.ones(1, dtype=alpha_bar.dtype)
    x0_hat = (xt - (1 - alpha_bar).sqrt().to(xt.dtype) * eps_hat) / alpha_bar.sqrt().to(xt.dtype)
    mean = (alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)).to(xt.dtype) * x0_hat \
        + (alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)).to(xt.dtype) * xt
    return mean if z is None else mean + beta.sqrt().to(xt.dtype) * z


def class_ddpm_sample_z_on_the_cpu(unet, schedule, labels, img_wh=(28, 28), num_ts=300, guidance_scale=5.0,
                                      generator=None, return_trajectory=False):
    s = DD._schedule64(schedule, num_ts)
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    c = FM.one_hot(labels).to(device, dtype)
    shape = (len(c), 1, img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    with U.eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            z = torch.randn(shape, generator=generator, dtype=dtype) if t > 1 else None  # no device=
            t_in = torch.full((2 * len(c),), t / num_ts, device=device, dtype=dtype)
            eps_c, eps_u = unet(torch.cat([x, x]), torch.cat([c, torch.zeros_like(c)]), t_in).chunk(2)
            x = DD.ddpm_step(s, t, x, eps_u + guidance_scale * (eps_c - eps_u), z)
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def ddpm_schedule_shifted(beta1=1e-4, beta2=0.02, num_ts=300):
    betas = torch.linspace(beta1, beta2, num_ts)
    alpha_bars = torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)[:-1]])
    return dict(betas=betas, alphas=1 - betas, alpha_bars=alpha_bars)


def ddpm_forward_with(unet, schedule, x0, num_ts=300, generator=None, bars="alpha_bars", normalise=True,
                      labels=None, p_uncond=0.0, from_zero=False):
    n = x0.shape[0]
    c = None if labels is None else FM.drop_classes(FM.one_hot(labels), p_uncond, generator)
    t = torch.randint(0, num_ts, (n,), generator=generator) if from_zero else \
        torch.randint(1, num_ts + 1, (n,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    ab = schedule[bars][t if from_zero else t - 1].reshape(n, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    t_in = t / num_ts if normalise else t.float()
    return F.mse_loss(unet(xt, t_in) if c is None else unet(xt, c, t_in), eps)


def class_ddpm_forward_with_alphas(unet, schedule, x0, labels, p_uncond=0.1, num_ts=300, generator=None):
    return ddpm_forward_with(unet, schedule, x0, num_ts, generator, bars="alphas", labels=labels, p_uncond=p_uncond)


def class_ddpm_forward_float32(unet, schedule, x0, labels, p_uncond=0.1, num_ts=300, generator=None):
    """A correct alternative: the float32 schedule as given."""
    return ddpm_forward_with(unet, schedule, x0, num_ts, generator, labels=labels, p_uncond=p_uncond)


def ddpm_sample_noise_at_the_end(unet, schedule, num_samples, img_wh=(28, 28), num_ts=300, generator=None):
    s = DD._schedule64(schedule, num_ts)
    shape = (num_samples, 1, img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator)
    with U.eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            z = torch.randn(shape, generator=generator)  # also at t = 1
            x = DD.ddpm_step(s, t, x, unet(x, torch.full((num_samples,), t / num_ts)), z)
    return x


def time_fm_sample_float_time(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None,
                              return_trajectory=False):
    """A correct alternative: the time as a Python float, eval mode set by hand; no trajectory kept."""
    weight = next(unet.parameters())
    x = torch.randn(num_samples, 1, img_wh[1], img_wh[0], generator=generator, device=weight.device, dtype=weight.dtype)
    trajectory = [x]
    unet.eval()
    with torch.no_grad():
        for i in range(num_ts):
            x = x + (1 / num_ts) * unet(x, i / num_ts)
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def ddpm_sample_float32_noise_after(unet, schedule, num_samples, img_wh=(28, 28), num_ts=300, generator=None,
                                    return_trajectory=False):
    """A correct alternative: float32 schedule entries, z drawn after the UNet call (in the UNet's dtype)."""
    betas, alphas, alpha_bars = schedule["betas"], schedule["alphas"], schedule["alpha_bars"]
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    with U.eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            eps = unet(x, torch.full((num_samples, 1), t / num_ts, device=device))
            ab, ab_prev = alpha_bars[t - 1], alpha_bars[t - 2] if t > 1 else torch.tensor(1.0)
            x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
            x = ab_prev.sqrt() * betas[t - 1] / (1 - ab) * x0_hat + alphas[t - 1].sqrt() * (1 - ab_prev) / (1 - ab) * x
            if t > 1:
                x = x + betas[t - 1].sqrt() * torch.randn(x.shape, generator=generator, device=device, dtype=dtype)
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def class_ddpm_sample_wrong_branch(unet, schedule, labels, img_wh=(28, 28), num_ts=300, guidance_scale=5.0,
                                   generator=None):
    return DD.class_ddpm_sample(unet, schedule, labels, img_wh, num_ts, 1 - guidance_scale, generator)


def add_noise_in_place(x, sigma, noise=None, generator=None):
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if noise is None else noise
    sigma = torch.as_tensor(sigma, dtype=x.dtype)
    return x.add_((sigma.reshape(-1, 1, 1, 1) if sigma.ndim else sigma) * noise)  # writes into x


def time_fm_sample_float32_noise(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None,
                                 return_trajectory=False):
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator)  # float32, whatever the UNet's
    trajectory = [x]
    with U.eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            x = x + unet(x, torch.full((num_samples,), i / num_ts)) / num_ts
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def class_fm_sample_short_trajectory(unet, labels, img_wh=(28, 28), num_ts=300, guidance_scale=5.0, generator=None,
                                     return_trajectory=False):
    result = FM.class_fm_sample(unet, labels, img_wh, num_ts, guidance_scale, generator, return_trajectory)
    return (result[0], result[1][1:]) if return_trajectory else result  # the starting noise left out


def ddpm_step_beta_not_sqrt(s, t, xt, eps_hat, z):
    mean = DD.ddpm_step(s, t, xt, eps_hat, None)
    return mean if z is None else mean + float(s["betas"][t - 1]) * z


PART_B_MISTAKES = [
    ("Conv", ConvWithoutBatchNorm, "parameters"),
    ("DownConv", DownConvStrideOne, "shape"),
    ("UpConv", UpConvKernel3, "shape"),
    ("Flatten", FlattenWithoutGELU, "in eval mode"),
    ("Unflatten", UnflattenGELUFirst, "in eval mode"),
    ("Concat", ConcatSwapped, "first input first"),
    ("ConvBlock", ConvBlockSingle, "parameters"),
    ("DownBlock", DownBlockConvFirst, "parameters"),
    ("UpBlock", UpBlockSequential, "missing: up.conv.weight"),
    ("FCBlock", FCBlockWithoutGELU, "in eval mode"),
    ("UnconditionalUNet", UNetSkipSwapped, "in eval mode"),
    ("TimeConditionalUNet", TimeUNetAlwaysAdditive, "in eval mode"),
    ("ClassConditionalUNet", ClassUNetIgnoringMask, "mask"),
    ("add_noise", add_noise_sigma_squared, "x + σ·ε"),
    ("add_noise", add_noise_one_sigma_only, "one σ per image"),
    ("denoiser_loss", denoiser_loss_on_noise, "clean digits x"),
    ("denoiser_loss", denoiser_loss_fixed_sigma, "σ = sigma"),
    ("pure_noise_loss", pure_noise_loss_with_x, "pure noise"),
    ("interpolate", lambda x0, x1, t: FM.interpolate(x1, x0, t), "other way"),
    ("flow_target", lambda x0, x1: x0 - x1, "from the noise x0 to the data x1"),
    ("time_fm_forward", time_fm_forward_reversed, "x0 − x1"),
    ("time_fm_forward", time_fm_forward_one_time, "U[0, 1]"),
    ("class_fm_forward", class_fm_forward_no_dropout, "p_uncond"),
    ("time_fm_sample", time_fm_sample_late_times, "i/num_ts"),
    ("time_fm_sample", time_fm_sample_train_mode, "eval mode"),
    ("class_fm_sample", class_fm_sample_wrong_branch, "starts from the conditional"),
    ("ddpm_schedule", ddpm_schedule_shifted, "cumulative product"),
    ("ddpm_forward", lambda *a, **k: ddpm_forward_with(*a, **k, bars="alphas"), "cumulative product"),
    ("ddpm_forward", lambda *a, **k: ddpm_forward_with(*a, **k, normalise=False), "t/T"),
    ("ddpm_forward", lambda *a, **k: ddpm_forward_with(*a, **k, from_zero=True), "not from {0, …, T − 1}"),
    ("class_ddpm_forward", class_ddpm_forward_with_alphas, "cumulative product"),
    ("ddpm_sample", ddpm_sample_noise_at_the_end, "t > 1 only"),
    ("class_ddpm_sample", class_ddpm_sample_wrong_branch, "starts from the conditional"),
    ("add_noise", add_noise_in_place, "leave its inputs unchanged"),
    ("time_fm_sample", time_fm_sample_float32_noise, "follow the UNet's dtype and device"),
    ("class_fm_sample", class_fm_sample_short_trajectory, "num_ts + 1 iterates"),
    ("ddpm_step", ddpm_step_beta_not_sqrt, "sqrt(β_t)·z"),
    ("time_fm_sample", time_fm_sample_noise_on_the_cpu, "Follow the device of the inputs/model"),
    ("class_fm_sample", class_fm_sample_noise_on_the_cpu, "Follow the device of the inputs/model"),
    ("ddpm_step", ddpm_step_sliced_schedule, "Follow the device of the inputs/model"),
    ("ddpm_sample", ddpm_sample_z_on_the_cpu, "Follow the device of the inputs/model"),
    ("class_ddpm_sample", class_ddpm_sample_z_on_the_cpu, "Follow the device of the inputs/model"),
]
def ddpm_step_with_tensors(s, t, xt, eps_hat, z):
    """A correct alternative: 0-dim tensors of the float64 schedule for the coefficients."""
    beta, alpha, alpha_bar = s["betas"][t - 1], s["alphas"][t - 1], s["alpha_bars"][t - 1]
    alpha_bar_prev = s["alpha_bars"][t - 2] if t > 1 else torch.ones((), dtype=alpha_bar.dtype)
    x0_hat = (xt - (1 - alpha_bar).sqrt().to(xt.dtype) * eps_hat) / alpha_bar.sqrt().to(xt.dtype)
    mean = (alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)).to(xt.dtype) * x0_hat \
        + (alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)).to(xt.dtype) * xt
    return mean if z is None else mean + beta.sqrt().to(xt.dtype) * z


PART_B_ALTERNATIVES = [
    ("denoiser_loss", denoiser_loss_randn_like),
    ("time_fm_forward", time_fm_forward_noise_first),
    ("class_fm_forward", class_fm_forward_mask_argument),
    ("class_fm_sample", class_fm_sample_two_calls),
    ("class_ddpm_forward", class_ddpm_forward_float32),
    ("time_fm_sample", time_fm_sample_float_time),
    ("ddpm_sample", ddpm_sample_float32_noise_after),
    ("ddpm_step", ddpm_step_with_tensors),
]


def case_id(case) -> str:
    return f"{case[0]}-{getattr(case[1], '__name__', 'lambda')}"


@pytest.mark.parametrize("name, wrong, phrase", PART_A_MISTAKES + PART_B_MISTAKES,
                         ids=[case_id(m) for m in PART_A_MISTAKES + PART_B_MISTAKES])
def test_typical_mistake_fails_with_a_question(name, wrong, phrase, capfd):
    with pytest.raises(AssertionError) as failure:
        public.CHECKS[name](wrong)
    message = str(failure.value)
    assert "?" in message and phrase in message, message
    assert capfd.readouterr().err == ""


def test_every_check_is_shown_failing_on_a_typical_mistake():
    assert {m[0] for m in PART_A_MISTAKES + PART_B_MISTAKES} == set(public.CHECKS)


@pytest.mark.parametrize("name, alternative", PART_A_ALTERNATIVES + PART_B_ALTERNATIVES,
                         ids=[case_id(m) for m in PART_A_ALTERNATIVES + PART_B_ALTERNATIVES])
def test_correct_alternative_passes(name, alternative, capfd):
    public.CHECKS[name](alternative)
    out, err = capfd.readouterr()
    assert err == "" and out.startswith("\u2713")


def test_warnings_and_stderr_of_student_code_do_not_reach_stderr(capfd):
    def noisy_forward(*args, **kwargs):
        warnings.warn("a warning from student code")
        print("progress", file=sys.stderr)
        return D.forward(*args, **kwargs)

    public.check_forward(noisy_forward)
    assert capfd.readouterr().err == ""


def test_a_library_logger_with_its_own_handler_is_silent_inside_a_check_and_heard_after(capfd):
    """A handler bound to the real stderr (diffusers' is) is not reached by redirecting sys.stderr, and a logger's
    level may be reset inside the check (diffusers sets its own to WARNING when first used): still silent."""
    import logging

    logger = logging.getLogger("diffusers.quiet_test")
    level = logging.getLogger("diffusers").level
    handler = logging.StreamHandler(sys.__stderr__)
    logger.addHandler(handler)
    try:
        def logging_forward(*args, **kwargs):
            logging.getLogger("diffusers").setLevel(logging.WARNING)  # as diffusers' first use does
            logger.warning("a library warning while the student's code runs")
            return D.forward(*args, **kwargs)

        public.check_forward(logging_forward)
        assert "library warning" not in capfd.readouterr().err
        logger.warning("after the check")
        handler.flush()
        assert "after the check" in capfd.readouterr().err
    finally:
        logger.removeHandler(handler)
        logging.getLogger("diffusers").setLevel(level)


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    public.check_Conv(U.Conv)
    public.check_one_step_denoise(D.one_step_denoise)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------------------------------------
# The comparison helpers the checks (and the autograder) share


def test_tolerance_follows_the_coarsest_dtype():
    from fwd_kit.checks.compare import TOLERANCES, tolerance

    assert tolerance(torch.float32, torch.float16) == TOLERANCES[torch.float16]
    assert tolerance(torch.float32) == TOLERANCES[torch.float32]
    assert tolerance(torch.float32, loose=True)[0] > TOLERANCES[torch.float32][0]


def test_difference_says_how_far_and_where():
    from fwd_kit.checks.compare import difference

    expected = torch.zeros(2, 3, 4, 5)
    actual = expected.clone()
    actual[1, 2, 3, 4] = 0.5
    diff = difference(actual, expected, rtol=1e-4, atol=1e-5)
    assert not diff.ok and diff.num_bad == 1 and diff.max_abs == 0.5
    assert "image 1, channel 2, row 3, column 4" in diff.sentence()
    assert difference(expected, expected, 1e-4, 1e-5).ok


def test_assert_close_names_nan_shape_and_dtype():
    from fwd_kit.checks.compare import assert_close

    expected = torch.ones(2, 3)
    cases = [(torch.full((2, 3), float("nan")), "NaN"), (torch.ones(3, 2), "shape (3, 2)"),
             (torch.ones(2, 3, dtype=torch.float64), "dtype float64"), ([1.0], "torch.Tensor")]
    for actual, phrase in cases:
        with pytest.raises(AssertionError, match="^Is it right\\?") as failure:
            assert_close(actual, expected, "Is it right?")
        assert phrase in str(failure.value)
    assert_close(expected.half(), expected, "Is it right?", check_dtype=False)


def test_a_check_reports_nans_from_student_code():
    with pytest.raises(AssertionError, match="NaN"):
        public.check_estimate_x0(lambda xt, eps, t, alphas_cumprod: xt * float("nan"))


def test_a_nan_loss_fails_its_check():  # NaN compares false with everything: the check must not pass it
    def nan_loss(unet, x0, sigma=0.5, generator=None):
        return DN.denoiser_loss(unet, x0, sigma=sigma, generator=generator) * float("nan")

    with pytest.raises(AssertionError, match="Your loss is nan"):
        public.check_denoiser_loss(nan_loss)


# ---------------------------------------------------------------------------------------------------
# Hidden runs: every check takes a keyword seed; seed 0 is what the notebooks show, other seeds other inputs

OTHER_SEEDS = (1, 2)


def test_every_check_takes_a_keyword_only_seed_defaulting_to_0():
    for name, check in public.CHECKS.items():
        parameter = inspect.signature(check).parameters.get("seed")
        assert parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default == 0, name
    with pytest.raises(TypeError):
        public.check_forward(D.forward, 1)


@pytest.mark.parametrize("seed", OTHER_SEEDS)
@pytest.mark.parametrize("name", public.PART_A + public.PART_B)
def test_check_passes_on_the_reference_at_other_seeds(name, seed, capfd):
    public.CHECKS[name](reference_object(name), seed=seed)
    out, err = capfd.readouterr()
    assert err == ""
    assert out.startswith(f"\u2713 {name}") and out.count("\n") == 1, out


@pytest.mark.parametrize("name, wrong, phrase", PART_A_MISTAKES + PART_B_MISTAKES,
                         ids=[case_id(m) for m in PART_A_MISTAKES + PART_B_MISTAKES])
def test_typical_mistake_fails_with_a_question_at_seed_1(name, wrong, phrase, capfd):
    with pytest.raises(AssertionError) as failure:
        public.CHECKS[name](wrong, seed=1)
    message = str(failure.value)
    assert "?" in message and phrase in message, message
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name, alternative", PART_A_ALTERNATIVES + PART_B_ALTERNATIVES,
                         ids=[case_id(m) for m in PART_A_ALTERNATIVES + PART_B_ALTERNATIVES])
def test_correct_alternative_passes_at_seed_1(name, alternative, capfd):
    public.CHECKS[name](alternative, seed=1)
    out, err = capfd.readouterr()
    assert err == "" and out.startswith("\u2713")


def recording_stand_in(reference, log: list):
    """The reference function or class, logging what the check gives it: (args, kwargs) of each call, and for
    a class its constructor's and its forward's."""
    if not isinstance(reference, type):
        def stand_in(*args, **kwargs):
            log.append(("call", args, kwargs))
            return reference(*args, **kwargs)

        return stand_in

    class StandIn(reference):
        def __init__(self, *args, **kwargs):
            log.append(("init", args, kwargs))
            super().__init__(*args, **kwargs)

        def forward(self, *args, **kwargs):
            log.append(("forward", args, kwargs))
            return super().forward(*args, **kwargs)

    StandIn.__signature__ = inspect.signature(reference)  # so that a check inspecting the class sees the reference's
    return StandIn


def logged_inputs(name: str, seed: int) -> list:
    log = []
    public.CHECKS[name](recording_stand_in(reference_object(name), log), seed=seed)
    return log


def flat_values(log: list) -> list:
    """Every tensor, number and generator seed in the log, in order (modules, schedulers and functions left out)."""
    values = []

    def visit(value):
        if isinstance(value, torch.Generator):
            values.append(("generator", value.initial_seed()))
        elif isinstance(value, torch.Tensor):
            values.append(value)
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            values.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for key in sorted(value):
                visit(key)
                visit(value[key])

    for _, args, kwargs in log:
        visit(args)
        visit(kwargs)
    return values


def same_values(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
                    and x.device == y.device):
                return False
            if x.device.type != "meta" and not torch.equal(x, y):  # meta tensors (the device check) hold no values
                return False
        elif x != y:
            return False
    return True


def first_call_tensors(log: list) -> list:
    """The tensors of the first call of the student's object (its forward's, for a class)."""
    kind = "forward" if any(entry[0] == "forward" for entry in log) else "call"
    _, args, kwargs = next(entry for entry in log if entry[0] == kind)
    return [v for v in flat_values([(kind, args, kwargs)]) if isinstance(v, torch.Tensor)]


def seeds_of_generators(log: list) -> set:
    return {v[1] for v in flat_values(log) if isinstance(v, tuple)}


@pytest.mark.parametrize("name", public.PART_A + public.PART_B)
def test_seed_1_gives_the_student_other_inputs(name):
    public_run, hidden_run = logged_inputs(name, 0), logged_inputs(name, 1)
    assert public_run and hidden_run
    assert not same_values(flat_values(public_run), flat_values(hidden_run))
    # the first tensor input the student's object sees (an image, digits, a time) is another one
    public_first, hidden_first = first_call_tensors(public_run), first_call_tensors(hidden_run)
    assert not any(x.shape == y.shape and torch.equal(x, y) for x, y in zip(public_first[:1], hidden_first[:1])), name
    # and no generator the student's object is given is seeded as at seed 0
    assert not seeds_of_generators(public_run) & seeds_of_generators(hidden_run), name


@pytest.mark.parametrize("name", ["forward", "iterative_denoise_cfg", "Conv", "class_fm_forward", "ddpm_sample"])
def test_a_seed_gives_the_same_inputs_every_time(name):
    assert same_values(flat_values(logged_inputs(name, 1)), flat_values(logged_inputs(name, 1)))
    assert same_values(flat_values(logged_inputs(name, 0)), flat_values(logged_inputs(name, 0)))


def test_fixtures_draw_other_inputs_at_other_seeds():
    from fwd_kit.checks import fixtures

    public_inputs, hidden_inputs = fixtures.picture_inputs(0), fixtures.picture_inputs(1)
    for key in public_inputs:
        assert not torch.equal(public_inputs[key], hidden_inputs[key]), key
        assert torch.equal(public_inputs[key], fixtures.picture_inputs(0)[key]), key
    assert not torch.equal(fixtures.digits(4, 0), fixtures.digits(4, 1))
    assert fixtures.derived_seed(0, 7) == 7 and fixtures.derived_seed(1, 7) != 7
    assert fixtures.parameter_rng("forward", 1).random() == fixtures.parameter_rng("forward", 1).random()
    assert fixtures.parameter_rng("forward", 1).random() != fixtures.parameter_rng("forward", 2).random()
