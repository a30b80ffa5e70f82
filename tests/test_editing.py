"""Does SDEdit start from forward() and does inpainting keep the unmasked pixels on the forward process?

Oracles: a replay of the documented generator draws with plain ``torch.randn``, and a CFG loop written
with diffusers' ``DDPMScheduler.step`` and direct UNet calls. Images are 32×32.
"""

from __future__ import annotations

import pytest
import torch

from reference import denoise as D
from reference import editing as E

SIZE = 32
SHORT = [990, 740, 490, 240, 0]


@pytest.fixture
def scheduler(stage1):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(stage1.scheduler.config, thresholding=False, clip_sample=False)


@pytest.fixture
def embeds(text_width):
    g = torch.Generator().manual_seed(7)
    return torch.randn(1, 77, text_width, generator=g), torch.randn(1, 77, text_width, generator=g)


@pytest.fixture
def image():
    x = torch.linspace(-1, 1, 3 * SIZE * SIZE).reshape(1, 3, SIZE, SIZE)
    return x * torch.cos(torch.arange(SIZE) / 4.0)


def box_mask():
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[:, :, 2:12, 12:24] = 1  # like the Campanile's tower-top mask, at 32×32
    return mask


def scheduler_cfg_loop(unet, scheduler, xt, timesteps, cond, uncond, scale, generator, draws_after_each_step=0):
    """Oracle CFG loop as IFPipeline writes it: one UNet call on (uncond, cond), DDPMScheduler.step.

    ``draws_after_each_step`` skips that many extra generator draws after each step.
    """
    scheduler.set_timesteps(timesteps=timesteps)
    with torch.no_grad():
        for t in timesteps[:-1]:
            out = unet(torch.cat([xt, xt]), t, encoder_hidden_states=torch.cat([uncond, cond]), return_dict=False)[0]
            out_u, out_c = out.chunk(2)
            eps = out_u[:, :3] + scale * (out_c[:, :3] - out_u[:, :3])
            xt = scheduler.step(torch.cat([eps, out_c[:, 3:]], 1), t, xt, generator=generator).prev_sample
            for _ in range(draws_after_each_step):
                torch.randn(xt.shape, generator=generator)
    return xt


def test_sdedit_levels_are_the_courses():
    ts = D.strided_timesteps()
    assert [ts[i] for i in E.SDEDIT_I_STARTS] == [960, 900, 840, 780, 690, 390]


def test_sdedit_noises_with_forward_then_denoises_with_cfg(stage1, scheduler, embeds, image):
    cond, uncond = embeds
    ours = E.sdedit(stage1.unet, scheduler, image, 2, cond, uncond, SHORT, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    abar = scheduler.alphas_cumprod[SHORT[2]]
    xt = abar.sqrt() * image + (1 - abar).sqrt() * torch.randn(image.shape, generator=g)  # first draw: forward
    expected = scheduler_cfg_loop(stage1.unet, scheduler, xt, SHORT[2:], cond, uncond, 7.0, g)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_sdedit_sweep_gives_one_image_per_level(stage1, scheduler, embeds, image):
    cond, uncond = embeds
    images = E.sdedit_sweep(stage1.unet, scheduler, image, cond, uncond, SHORT, i_starts=(2, 3),
                            generator=torch.Generator().manual_seed(0))
    assert len(images) == 2 and all(x.shape == image.shape for x in images)


def test_inpaint_keeps_the_unmasked_region_on_the_forward_process(stage1, scheduler, embeds, image):
    cond, uncond = embeds
    mask = box_mask()
    seen = []
    out = E.inpaint(stage1.unet, scheduler, image, mask, cond, uncond, SHORT,
                    generator=torch.Generator().manual_seed(1), callback=lambda i, t, x: seen.append((t, x)))
    # replay the draws: start noise, then per step the variance noise and the forward noise
    g = torch.Generator().manual_seed(1)
    torch.randn(image.shape, generator=g)
    keep = (mask == 0).expand_as(image)
    for t_prev, x in seen:
        torch.randn(image.shape, generator=g)
        abar = scheduler.alphas_cumprod[t_prev]
        expected = abar.sqrt() * image + (1 - abar).sqrt() * torch.randn(image.shape, generator=g)
        torch.testing.assert_close(x[keep], expected[keep], atol=1e-6, rtol=1e-6)
        assert not torch.allclose(x[~keep], expected[~keep], atol=1e-2)  # the hole is regenerated
    assert [t for t, _ in seen] == SHORT[1:] and torch.equal(out, seen[-1][1])
    assert (out[keep] - image[keep]).abs().max() < 0.05  # at t′ = 0 the kept pixels are the original


def test_inpaint_with_an_all_zero_mask_returns_the_original_at_t0(stage1, scheduler, embeds, image):
    cond, uncond = embeds
    out = E.inpaint(stage1.unet, scheduler, image, torch.zeros(1, 1, SIZE, SIZE), cond, uncond, SHORT,
                    generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, image, atol=0.05, rtol=0)


def test_inpaint_with_an_all_ones_mask_is_cfg_sampling(stage1, scheduler, embeds, image):
    cond, uncond = embeds
    xt = torch.randn(image.shape, generator=torch.Generator().manual_seed(8))
    ours = E.inpaint(stage1.unet, scheduler, image, torch.ones(1, 3, SIZE, SIZE), cond, uncond, SHORT,
                     generator=torch.Generator().manual_seed(4), xt=xt)
    # the forward draws still happen (after each variance draw); the oracle skips them
    expected = scheduler_cfg_loop(stage1.unet, scheduler, xt, SHORT, cond, uncond, 7.0,
                                  torch.Generator().manual_seed(4), draws_after_each_step=1)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.zeros(1, 1, 16, 16), "shape"),
        (torch.zeros(2, 1, SIZE, SIZE), "shape"),
        (torch.zeros(1, 2, SIZE, SIZE), "shape"),
        (torch.zeros(SIZE, SIZE), "shape"),
        (torch.full((1, 1, SIZE, SIZE), 0.5), "only 0"),
        ([[0, 1]], "torch.Tensor"),
    ],
)
def test_bad_mask_raises(stage1, scheduler, embeds, image, mask, message):
    cond, uncond = embeds
    with pytest.raises(ValueError, match=message):
        E.inpaint(stage1.unet, scheduler, image, mask, cond, uncond, SHORT)


def test_bad_sdedit_input_raises(stage1, scheduler, embeds, image):
    cond, uncond = embeds
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        E.sdedit(stage1.unet, scheduler, image * 127.5 + 127.5, 1, cond, uncond, SHORT)
    with pytest.raises(ValueError, match="i_start"):
        E.sdedit(stage1.unet, scheduler, image, 4, cond, uncond, SHORT)


def test_the_inpainting_study_with_one_pass_per_step_is_the_course_loop():
    """bench/inpaint_ceiling.py's RePaint with resampling, at one pass per step, is ``inpaint`` draw for draw;
    with two passes it takes other draws, and the known pixels still follow the forward process."""
    import importlib.util as iu
    from pathlib import Path

    from fwd_kit.checks.fixtures import tiny_scheduler, tiny_unet

    spec = iu.spec_from_file_location("inpaint_ceiling", Path(__file__).parents[1] / "bench" / "inpaint_ceiling.py")
    study = iu.module_from_spec(spec)
    spec.loader.exec_module(study)
    g = torch.Generator().manual_seed(3)
    x_orig = torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1
    uncond = torch.randn(1, 77, 32, generator=g)
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[:, :, SIZE // 2:] = 1
    unet, scheduler = tiny_unet(), tiny_scheduler()
    seeded = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with torch.no_grad():
        course = E.inpaint(unet, scheduler, x_orig, mask, uncond, uncond, SHORT, generator=seeded())
        once = study.inpaint_resampled(unet, scheduler, x_orig, mask, uncond, SHORT, 1, seeded())
        twice = study.inpaint_resampled(unet, scheduler, x_orig, mask, uncond, SHORT, 2, seeded())
    assert torch.equal(once, course)
    assert not torch.allclose(twice[..., SIZE // 2:, :], course[..., SIZE // 2:, :])
    assert torch.allclose(twice[..., :SIZE // 2, :], x_orig[..., :SIZE // 2, :], atol=0.05)
