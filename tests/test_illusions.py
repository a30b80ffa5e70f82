"""Do the anagram views invert, and do anagrams/hybrids combine the CFG estimates as the formulas say?

Oracles: per-branch UNet calls combined by hand and stepped with diffusers' ``DDPMScheduler.step``;
reductions to plain CFG sampling (identity view / equal prompts); hand-made pixel layouts for views.
Images are 32×32; the batched calls of the illusions differ from the oracle's separate calls by float
rounding only.
"""

from __future__ import annotations

import pytest
import torch

from reference import denoise as D
from reference import illusions as I

SIZE = 32
SHORT = [990, 740, 490, 240, 0]
TOL = dict(atol=1e-3, rtol=1e-3)  # batch 4B/3B vs separate UNet calls: rounding, amplified by the random UNet


@pytest.fixture
def scheduler(stage1):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(stage1.scheduler.config, thresholding=False, clip_sample=False)


@pytest.fixture
def embeds(text_width):
    g = torch.Generator().manual_seed(7)
    return tuple(torch.randn(1, 77, text_width, generator=g) for _ in range(3))  # p1, p2, uncond


@pytest.fixture
def xt():
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(12))


def cfg(unet, x, t, cond, uncond, scale=7.0):
    """Oracle CFG estimate and conditional variance from two separate UNet calls."""
    with torch.no_grad():
        out_u = unet(x, t, encoder_hidden_states=uncond, return_dict=False)[0]
        out_c = unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]
    return out_u[:, :3] + scale * (out_c[:, :3] - out_u[:, :3]), out_c[:, 3:]


def oracle_loop(scheduler, x, timesteps, combine, generator):
    """Strided loop with DDPMScheduler.step; ``combine(x, t)`` returns (ε, variance)."""
    scheduler.set_timesteps(timesteps=timesteps)
    for t in timesteps[:-1]:
        eps, variance = combine(x, t)
        x = scheduler.step(torch.cat([eps, variance], 1), t, x, generator=generator).prev_sample
    return x


def test_views_move_pixels_as_named():
    x = torch.arange(4.0).reshape(1, 1, 2, 2)  # [[0, 1], [2, 3]]
    assert I.flip_upside_down(x).flatten().tolist() == [2, 3, 0, 1]
    assert I.rot90_ccw(x).flatten().tolist() == [1, 3, 0, 2]  # the top-right corner moves to the top-left
    assert I.negate(x).flatten().tolist() == [0, -1, -2, -3]


@pytest.mark.parametrize("name", sorted(I.VIEWS))
def test_each_inverse_undoes_its_view(name):
    view, inverse = I.VIEWS[name]
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(inverse(view(x)), x) and torch.equal(view(inverse(x)), x)


def test_rot90_needs_square_images():
    with pytest.raises(ValueError, match="square"):
        I.rot90_ccw(torch.zeros(1, 3, 8, 16))


@pytest.mark.parametrize("name", ["flip", "negate", "rot90"])
def test_anagram_averages_the_view_branch_mapped_back(stage1, scheduler, embeds, xt, name):
    p1, p2, uncond = embeds
    view, inverse = I.VIEWS[name]
    ours = I.visual_anagram(stage1.unet, scheduler, xt, 2, p1, p2, uncond, SHORT, view=I.VIEWS[name],
                            generator=torch.Generator().manual_seed(3))

    def combine(x, t):
        eps_1, variance_1 = cfg(stage1.unet, x, t, p1, uncond)
        eps_2, _ = cfg(stage1.unet, view(x), t, p2, uncond)
        return (eps_1 + inverse(eps_2)) / 2, variance_1  # upright branch's variance

    expected = oracle_loop(scheduler, xt, SHORT[2:], combine, torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours, expected, **TOL)


def test_anagram_with_identity_view_and_one_prompt_is_cfg_sampling(stage1, scheduler, embeds, xt):
    p1, _, uncond = embeds
    ours = I.visual_anagram(stage1.unet, scheduler, xt, 1, p1, p1, uncond, SHORT, view=I.identity_view,
                            generator=torch.Generator().manual_seed(5))
    expected = D.iterative_denoise_cfg(stage1.unet, scheduler, xt, 1, p1, uncond, SHORT,
                                       generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, expected, **TOL)


def test_make_flip_illusion_is_the_flip_anagram(stage1, scheduler, embeds, xt):
    p1, p2, uncond = embeds
    ts = SHORT[2:]
    a = I.make_flip_illusion(stage1.unet, scheduler, xt, 0, p1, p2, uncond, ts,
                             generator=torch.Generator().manual_seed(1))
    b = I.visual_anagram(stage1.unet, scheduler, xt, 0, p1, p2, uncond, ts, view=I.flip_view,
                         generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_lowpass_plus_highpass_is_the_identity():
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(I.lowpass(x) + I.highpass(x), x)
    constant = torch.full((1, 3, SIZE, SIZE), 0.3)
    torch.testing.assert_close(I.lowpass(constant), constant)  # a blur keeps a flat image
    assert I.highpass(x).abs().mean() > 0.5 * x.abs().mean() > I.lowpass(x).abs().mean()  # white noise is mostly high


def test_hybrid_combines_lowpass_and_highpass_of_cfg(stage1, scheduler, embeds, xt):
    p_low, p_high, uncond = embeds
    ours = I.make_hybrids(stage1.unet, scheduler, xt, 2, p_low, p_high, uncond, SHORT,
                          generator=torch.Generator().manual_seed(4))

    def combine(x, t):
        eps_low, variance_low = cfg(stage1.unet, x, t, p_low, uncond)
        eps_high, variance_high = cfg(stage1.unet, x, t, p_high, uncond)
        blur = lambda e: torch.nn.functional.conv2d(  # independent 33-tap Gaussian, σ = 2, reflect padding
            torch.nn.functional.pad(e, (16, 16, 16, 16), mode="reflect"), gaussian_33().expand(3, 1, 33, 33), groups=3)
        return blur(eps_low) + eps_high - blur(eps_high), (variance_low + variance_high) / 2

    expected = oracle_loop(scheduler, xt, SHORT[2:], combine, torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours, expected, **TOL)


def gaussian_33(sigma=2.0):
    """A normalised 33×33 Gaussian kernel (1, 1, 33, 33)."""
    r = torch.arange(33.0) - 16
    k = torch.exp(-(r**2) / (2 * sigma**2))
    k = k / k.sum()
    return (k[:, None] * k[None, :])[None, None]


def test_hybrid_with_one_prompt_is_cfg_sampling(stage1, scheduler, embeds, xt):
    p1, _, uncond = embeds
    ours = I.make_hybrids(stage1.unet, scheduler, xt, 1, p1, p1, uncond, SHORT,
                          generator=torch.Generator().manual_seed(6))
    expected = D.iterative_denoise_cfg(stage1.unet, scheduler, xt, 1, p1, uncond, SHORT,
                                       generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(ours, expected, **TOL)


def test_bad_illusion_input_raises(stage1, scheduler, embeds, text_width):
    p1, p2, uncond = embeds
    with pytest.raises(ValueError, match="square"):
        I.visual_anagram(stage1.unet, scheduler, torch.zeros(1, 3, 32, 64), 2, p1, p2, uncond, SHORT, view=I.rot90_view)
    with pytest.raises(ValueError, match="pair"):
        I.visual_anagram(stage1.unet, scheduler, torch.zeros(1, 3, SIZE, SIZE), 2, p1, p2, uncond, SHORT,
                         view=I.flip_upside_down)
    with pytest.raises(ValueError, match="encoder_hid_dim"):
        I.make_hybrids(stage1.unet, scheduler, torch.zeros(1, 3, SIZE, SIZE), 2, p1,
                       torch.zeros(1, 77, text_width * 2), uncond, SHORT)
    with pytest.raises(ValueError, match="i_start"):
        I.make_hybrids(stage1.unet, scheduler, torch.zeros(1, 3, SIZE, SIZE), 4, p1, p2, uncond, SHORT)
