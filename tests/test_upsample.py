"""Stage-2 upsampling: does the written-out loop give exactly what IFSuperResolutionPipeline gives?"""

from __future__ import annotations

import pytest
import torch

from fwd_kit.upsample import upsample


def _inputs(text_width, batch=2, side=64):
    g = torch.Generator().manual_seed(3)
    images = torch.rand(batch, 3, side, side, generator=g) * 2 - 1
    cond = torch.randn(batch, 77, text_width, generator=g)
    uncond = torch.randn(1, 77, text_width, generator=g)
    return images, cond, uncond


@pytest.mark.parametrize("scale", [4.0, 1.0])
def test_upsample_matches_the_pipeline(stage2, text_width, scale):
    images, cond, uncond = _inputs(text_width)
    ours = upsample(stage2, images, cond, uncond, num_inference_steps=2, noise_level=250, scale=scale,
                    generator=torch.Generator().manual_seed(0))
    theirs = stage2(
        image=images, prompt_embeds=cond, negative_prompt_embeds=uncond.expand(2, -1, -1), num_inference_steps=2,
        noise_level=250, guidance_scale=scale, generator=torch.Generator().manual_seed(0), output_type="pt",
    ).images
    assert ours.shape == (2, 3, 256, 256)
    assert (ours - theirs).abs().max() <= 1e-5
    assert ours.abs().max() <= 1.0 + 1e-6  # dynamic thresholding keeps stage 2's samples in [-1, 1]


def test_upsample_is_seeded_and_accepts_other_sizes(stage2, text_width):
    images, cond, uncond = _inputs(text_width, batch=1, side=32)  # e.g. the 32×32 digit model
    a = upsample(stage2, images, cond, uncond, num_inference_steps=1, generator=torch.Generator().manual_seed(1))
    b = upsample(stage2, images, cond, uncond, num_inference_steps=1, generator=torch.Generator().manual_seed(1))
    c = upsample(stage2, images, cond, uncond, num_inference_steps=1, generator=torch.Generator().manual_seed(2))
    assert a.shape == (1, 3, 256, 256) and torch.equal(a, b) and not torch.equal(a, c)
    small = upsample(stage2, images, cond, uncond, num_inference_steps=1, size=128)
    assert small.shape == (1, 3, 128, 128)


def test_upsample_rejects_bad_input(stage2, text_width):
    images, cond, uncond = _inputs(text_width, batch=1)
    with pytest.raises(ValueError, match="shape"):
        upsample(stage2, images[0], cond, uncond)  # (3, 64, 64): the batch dimension is missing
    with pytest.raises(ValueError, match="width"):
        upsample(stage2, images, cond[..., :8], uncond)
    with pytest.raises(ValueError, match="noise_level"):
        upsample(stage2, images, cond, uncond, noise_level=1000)
