"""Does reference.denoise match diffusers' DDPMScheduler / IFPipeline and the closed-form formulas?

Oracles: ``scheduler.add_noise``, ``DDPMScheduler.step`` (thresholding off), the full ``IFPipeline``,
direct UNet calls, and analytic identities. Images are 32×32 to keep the tiny UNet fast.
"""

from __future__ import annotations

import copy

import pytest
import torch

from reference import denoise as D

SIZE = 32
SHORT = [990, 740, 490, 240, 0]  # a short strided list: four updates, ends at t = 0


@pytest.fixture
def scheduler(stage1):
    """A fresh stage-1 scheduler without thresholding (the course loop does not threshold)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(stage1.scheduler.config, thresholding=False, clip_sample=False)


@pytest.fixture
def embeds(text_width):
    g = torch.Generator().manual_seed(7)
    return torch.randn(1, 77, text_width, generator=g), torch.randn(1, 77, text_width, generator=g)


def ramp_image(batch=1, size=SIZE):
    """A deterministic clean image in [-1, 1]."""
    x = torch.linspace(-1, 1, batch * 3 * size * size).reshape(batch, 3, size, size)
    return x.flip(-1) * torch.cos(torch.arange(size) / 3.0)


def test_strided_timesteps_are_990_to_0_by_30():
    ts = D.strided_timesteps()
    assert len(ts) == 34 and ts[0] == 990 and ts[-1] == 0
    assert all(a - b == 30 for a, b in zip(ts, ts[1:]))
    assert ts[10] == 690


def test_forward_equals_scheduler_add_noise(scheduler):
    x0, noise = ramp_image(2), torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    for t in (0, 250, 500, 750, 999):
        expected = scheduler.add_noise(x0, noise, torch.tensor([t]))
        torch.testing.assert_close(D.forward(x0, t, scheduler.alphas_cumprod, noise=noise), expected)


def test_forward_statistics_match_the_marginal(scheduler):
    """Over many draws, x_t has mean sqrt(ᾱ_t)·x0 and variance 1 − ᾱ_t per pixel."""
    abar = scheduler.alphas_cumprod
    x0 = ramp_image(1, 4).expand(20000, -1, -1, -1)
    for t in (250, 750):
        xt = D.forward(x0, t, abar, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(xt.mean(0), abar[t].sqrt() * x0[0], atol=0.04, rtol=0)
        torch.testing.assert_close(xt.var(0), (1 - abar[t]).expand(3, 4, 4), atol=0.05, rtol=0)


def test_forward_at_t0_is_nearly_clean_and_seeded(scheduler):
    x0 = ramp_image()
    x_a = D.forward(x0, 0, scheduler.alphas_cumprod, generator=torch.Generator().manual_seed(3))
    x_b = D.forward(x0, 0, scheduler.alphas_cumprod, generator=torch.Generator().manual_seed(3))
    assert torch.equal(x_a, x_b)
    assert (x_a - x0).abs().max() < 0.05  # sqrt(1 − ᾱ_0) ≈ 0.0064


def test_estimate_x0_inverts_forward_with_the_true_noise(scheduler):
    x0, noise = ramp_image(), torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    for t in (0, 30, 500, 990):
        xt = D.forward(x0, t, scheduler.alphas_cumprod, noise=noise)
        torch.testing.assert_close(D.estimate_x0(xt, noise, t, scheduler.alphas_cumprod), x0, atol=2e-4, rtol=0)


def test_one_step_denoise_uses_the_unets_first_three_channels(stage1, scheduler, embeds):
    cond, _ = embeds
    xt = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = stage1.unet(xt, 500, encoder_hidden_states=cond.expand(2, -1, -1), return_dict=False)[0]
    eps, variance = D.predict_noise(stage1.unet, xt, 500, cond)  # batch-1 embeddings are shared
    torch.testing.assert_close(eps, out[:, :3])
    torch.testing.assert_close(variance, out[:, 3:])
    abar = scheduler.alphas_cumprod[500]
    expected = (xt - (1 - abar).sqrt() * out[:, :3]) / abar.sqrt()
    torch.testing.assert_close(D.one_step_denoise(stage1.unet, xt, 500, cond, scheduler.alphas_cumprod), expected)


def test_learned_range_log_variance_matches_the_scheduler(scheduler):
    ts = D.strided_timesteps()
    D.set_strided_timesteps(scheduler, ts)
    v = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for i in (0, 10, 32, 33):
        t, t_prev = ts[i], (ts[i + 1] if i + 1 < len(ts) else -1)
        torch.testing.assert_close(
            D.learned_range_log_variance(scheduler.alphas_cumprod, t, t_prev, v), scheduler._get_variance(t, v)
        )


@pytest.mark.parametrize("i", [0, 10, 20, 32])  # 32 is the last update, 30 → 0
def test_strided_update_equals_ddpm_scheduler_step(scheduler, stage1, i):
    from diffusers import DDPMScheduler

    ts = D.strided_timesteps()
    t, t_prev = ts[i], ts[i + 1]
    g = torch.Generator().manual_seed(100 + i)
    model_output = torch.randn(2, 6, 8, 8, generator=g)
    model_output[:, 3:] = model_output[:, 3:].tanh()  # learned-range values live in [-1, 1]
    xt = torch.randn(2, 3, 8, 8, generator=g)
    oracle = DDPMScheduler.from_config(stage1.scheduler.config, thresholding=False, clip_sample=False)
    oracle.set_timesteps(timesteps=ts)
    expected = oracle.step(model_output, t, xt, generator=torch.Generator().manual_seed(5)).prev_sample

    D.set_strided_timesteps(scheduler, ts)
    eps, variance = torch.split(model_output, 3, dim=1)
    mean = D.denoise_step_mean(xt, D.estimate_x0(xt, eps, t, scheduler.alphas_cumprod), t, t_prev,
                               scheduler.alphas_cumprod)
    ours = D.add_variance(scheduler, variance, t, mean, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)
    shared = D.denoise_step(scheduler, xt, eps, variance, t, t_prev, torch.Generator().manual_seed(5))
    torch.testing.assert_close(shared, expected, atol=1e-6, rtol=1e-6)


def test_add_variance_needs_the_strided_list(scheduler):
    image, variance = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="set_strided_timesteps"):
        D.add_variance(scheduler, variance, 990, image)
    D.set_strided_timesteps(scheduler, D.strided_timesteps())
    with pytest.raises(ValueError, match="not one of the scheduler's timesteps"):
        D.add_variance(scheduler, variance, 500, image)


def test_full_cfg_loop_equals_ifpipeline(stage1, embeds):
    """34 strided CFG steps from the pipeline's own initial noise reproduce IFPipeline without thresholding."""
    from diffusers import DDPMScheduler, IFPipeline

    cond, uncond = embeds
    ts = D.strided_timesteps()
    no_threshold = DDPMScheduler.from_config(stage1.scheduler.config, thresholding=False, clip_sample=False)
    pipe = IFPipeline(**{**stage1.components, "scheduler": no_threshold})  # the shared fixture is untouched
    pipe.set_progress_bar_config(disable=True)
    frames = {}
    final = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, timesteps=ts, guidance_scale=7.0,
                 height=SIZE, width=SIZE, generator=torch.Generator().manual_seed(0), output_type="pt",
                 callback=lambda i, t, x: frames.__setitem__(i, x.clone())).images  # "pt": no clamping

    ours = D.sample(stage1.unet, copy.deepcopy(no_threshold), cond, uncond, ts, scale=7.0, size=SIZE,
                    generator=torch.Generator().manual_seed(0))
    # The course loop stops at t = 0 (after the 30 → 0 update); the pipeline's callback after step 32 shows it.
    torch.testing.assert_close(ours, frames[len(ts) - 2], atol=1e-5, rtol=1e-5)
    # The pipeline does one more step at t = 0 (t′ = −1, ᾱ = 1, no noise): that is just x̂0 at t = 0.
    eps, _ = D.cfg_noise(stage1.unet, ours, 0, cond, uncond, 7.0)
    torch.testing.assert_close(D.estimate_x0(ours, eps, 0, no_threshold.alphas_cumprod), final, atol=1e-5, rtol=1e-5)


def scheduler_loop(unet, scheduler, xt, timesteps, cond, generator):
    """Oracle: the same loop written with diffusers' DDPMScheduler.step and direct UNet calls."""
    scheduler.set_timesteps(timesteps=timesteps)
    with torch.no_grad():
        for t in timesteps[:-1]:
            out = unet(xt, t, encoder_hidden_states=cond.expand(xt.shape[0], -1, -1), return_dict=False)[0]
            xt = scheduler.step(out, t, xt, generator=generator).prev_sample
    return xt


def test_iterative_denoise_equals_scheduler_loop_and_records_every_fifth(stage1, scheduler, embeds):
    cond, _ = embeds
    ts = D.strided_timesteps(990, 90)  # 12 entries
    xt = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    seen = {}
    ours, frames = D.iterative_denoise(stage1.unet, scheduler, xt, 1, cond, ts, torch.Generator().manual_seed(9),
                                       callback=lambda i, t, x: seen.__setitem__(i, (t, x)), return_intermediates=True)
    oracle = copy.deepcopy(scheduler)
    expected = scheduler_loop(stage1.unet, oracle, xt, ts[1:], cond, torch.Generator().manual_seed(9))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    assert [t for t, _ in frames] == [ts[1], ts[6]]  # every 5th step from i_start = 1
    assert torch.equal(frames[0][1], xt) and torch.equal(frames[1][1], seen[5][1]) and seen[5][0] == ts[6]


def test_cfg_scale_one_is_conditional_scale_zero_unconditional(stage1, embeds):
    cond, uncond = embeds
    xt = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    eps_c, var_c = D.predict_noise(stage1.unet, xt, 690, cond)
    eps_u, _ = D.predict_noise(stage1.unet, xt, 690, uncond)
    eps_1, var_1 = D.cfg_noise(stage1.unet, xt, 690, cond, uncond, scale=1.0)
    eps_0, _ = D.cfg_noise(stage1.unet, xt, 690, cond, uncond, scale=0.0)
    eps_7, _ = D.cfg_noise(stage1.unet, xt, 690, cond, uncond, scale=7.0)
    torch.testing.assert_close(eps_1, eps_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(var_1, var_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps_0, eps_u, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eps_7, eps_u + 7 * (eps_c - eps_u), atol=1e-4, rtol=1e-5)


def test_sample_without_uncond_is_plain_iterative_denoising_and_seeded(stage1, scheduler, embeds):
    cond, _ = embeds
    a = D.sample(stage1.unet, scheduler, cond, timesteps=SHORT, num_samples=2, size=SIZE,
                 generator=torch.Generator().manual_seed(11))
    b = D.sample(stage1.unet, scheduler, cond, timesteps=SHORT, num_samples=2, size=SIZE,
                 generator=torch.Generator().manual_seed(11))
    assert a.shape == (2, 3, SIZE, SIZE) and torch.equal(a, b)
    g = torch.Generator().manual_seed(11)
    x_T = torch.randn(2, 3, SIZE, SIZE, generator=g)  # the first draw is the starting noise
    expected = scheduler_loop(stage1.unet, copy.deepcopy(scheduler), x_T, SHORT, cond, g)
    torch.testing.assert_close(a, expected, atol=1e-5, rtol=1e-5)


def test_half_precision_follows_the_unet(stage1, scheduler, embeds):
    """fp16 UNet: inputs are cast, ᾱ is cast, and the result stays close to fp32."""
    cond, uncond = embeds
    unet16 = copy.deepcopy(stage1.unet).half()
    xt = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    out16 = D.iterative_denoise_cfg(unet16, scheduler, xt, 3, cond, uncond, SHORT,
                                    generator=torch.Generator().manual_seed(1))
    out32 = D.iterative_denoise_cfg(stage1.unet, scheduler, xt, 3, cond, uncond, SHORT,
                                    generator=torch.Generator().manual_seed(1))
    assert out16.dtype == torch.float16
    torch.testing.assert_close(out16.float(), out32, atol=0.05, rtol=0.05)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a: D.forward(torch.zeros(3, 64, 64), 10, a), r"\(B, 3, H, W\)"),
        (lambda a: D.forward(torch.zeros(1, 1, 64, 64), 10, a), r"\(B, 3, H, W\)"),
        (lambda a: D.forward(torch.full((1, 3, 8, 8), 255.0), 10, a), r"\[-1, 1\]"),
        (lambda a: D.forward(torch.zeros(1, 3, 8, 8), 1000, a), r"\[0, 999\]"),
        (lambda a: D.forward(torch.zeros(1, 3, 8, 8), -1, a), r"\[0, 999\]"),
        (lambda a: D.denoise_step_mean(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), 30, 60, a), "smaller"),
        (lambda a: D.strided_timesteps(990, 0), "stride"),
    ],
)
def test_bad_input_raises_a_helpful_value_error(scheduler, call, message):
    with pytest.raises(ValueError, match=message):
        call(scheduler.alphas_cumprod)


def test_bad_loop_arguments_raise(stage1, scheduler, embeds, text_width):
    cond, uncond = embeds
    xt = torch.zeros(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="i_start"):
        D.iterative_denoise(stage1.unet, scheduler, xt, len(SHORT) - 1, cond, SHORT)
    with pytest.raises(ValueError, match="decreasing"):
        D.iterative_denoise(stage1.unet, scheduler, xt, 0, cond, [0, 30, 60])
    with pytest.raises(ValueError, match="encoder_hid_dim"):
        D.cfg_noise(stage1.unet, xt, 990, torch.zeros(1, 77, text_width + 1), uncond)
    with pytest.raises(ValueError, match="batch size"):
        D.predict_noise(stage1.unet, xt, 990, torch.zeros(2, 77, text_width))
