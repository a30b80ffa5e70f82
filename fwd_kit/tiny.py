"""Tiny offline stand-ins for DeepFloyd IF: random stage-1/stage-2 pipelines with the real interface.

They keep what the course code depends on — DeepFloyd's block types (``ResnetDownsampleBlock2D``,
``SimpleCrossAttn*``), the 6-channel output (ε and learned-range variance), the ``text_proj`` and
``text`` addition embedding, ``scale_shift`` time conditioning, stage 2's ``class_embed_type="timestep"``
and the schedulers' settings — at a few hundred thousand parameters, so that tests and the demo run
on a CPU in seconds. Their pictures are noise: they test mechanics, not quality (for that, see the
digit model in ``fwd_kit.loading.DIGIT_MODEL``).

The text width is ``TEXT_WIDTH`` (32), not T5-XXL's 4096: code must read it from
``unet.config.encoder_hid_dim``.

Saved with :func:`save_tiny_models`, they load through exactly the ``from_pretrained`` code the real
models use (``fwd_kit.loading``), also under their hub ids through a fake Hugging Face cache
(:func:`install_in_fake_hub_cache`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TEXT_WIDTH = 32  # width of the tiny T5's embeddings (T5-XXL: 4096)
MAX_TOKENS = 77  # DeepFloyd's encode_prompt pads/truncates to 77 tokens

# Words the tiny tokenizer knows as whole pieces; anything else falls back to characters.
_WORDS = (
    "a an the of photo oil painting high quality man wearing hat rocket ship snowy mountain village "
    "dog people around campfire old lithograph waterfalls skull pencil handwritten digit zero one two "
    "three four five six seven eight nine"
).split()


def _stage1_scheduler_kwargs() -> dict:
    """DeepFloyd stage-1 scheduler settings (from diffusers' IF conversion)."""
    return dict(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        variance_type="learned_range",
        prediction_type="epsilon",
        thresholding=True,
        dynamic_thresholding_ratio=0.95,
        sample_max_value=1.5,
        clip_sample=True,
    )


def stage1_scheduler():
    """A ``DDPMScheduler`` configured as DeepFloyd IF stage 1's."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_stage1_scheduler_kwargs())


def tiny_tokenizer():
    """A T5 tokenizer built offline: whole-word pieces for ``_WORDS`` plus a character fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import T5TokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,'!?-"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0) for w in dict.fromkeys(_WORDS)]
    vocab += [(c, -5.0) for c in chars]
    backend = Tokenizer(models.Unigram(vocab, unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    from tokenizers import processors

    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0,
        model_max_length=MAX_TOKENS,
    )


def tiny_text_encoder(vocab_size: int, seed: int = 0):
    """A 2-layer T5 encoder of width ``TEXT_WIDTH`` (23 k parameters), seeded."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size, d_model=TEXT_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", relative_attention_num_buckets=8, dropout_rate=0.0,
    )
    return T5EncoderModel(config).eval()


def tiny_stage1_unet(seed: int = 0, sample_size: int = 64):
    """Stage-1 UNet: 3 → 6 channels, IF-I's four levels, block types and conditioning (~0.4 M parameters)."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=6,  # 3 for ε, 3 for the learned-range variance
        down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
        block_out_channels=(16, 32, 32, 64),
        layers_per_block=1,
        cross_attention_dim=64,
        attention_head_dim=8,
        encoder_hid_dim=TEXT_WIDTH,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        norm_num_groups=8,
    ).eval()


def tiny_stage2_unet(seed: int = 1):
    """Stage-2 (super-resolution) UNet: 6 → 6 channels, IF-II's five levels, block types and extras."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=256,
        in_channels=6,  # the noisy 256² image and the noised, upsampled 64² image
        out_channels=6,
        down_block_types=("ResnetDownsampleBlock2D",) * 3 + ("SimpleCrossAttnDownBlock2D",) * 2,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 2 + ("ResnetUpsampleBlock2D",) * 3,
        block_out_channels=(8, 16, 16, 32, 32),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        encoder_hid_dim=TEXT_WIDTH,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        norm_num_groups=8,
        class_embed_type="timestep",  # the noise-augmentation level enters as a class label
        time_embedding_dim=32,
        time_embedding_act_fn="gelu",
        resnet_skip_time_act=True,
        resnet_out_scale_factor=1 / 0.7071,
        mid_block_scale_factor=1 / 0.7071,
    ).eval()


def tiny_stage1_pipeline(seed: int = 0):
    """An ``IFPipeline`` with the tiny UNet, T5 and tokenizer (no safety checker or watermarker)."""
    from diffusers import IFPipeline

    tokenizer = tiny_tokenizer()
    return IFPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny_text_encoder(len(tokenizer), seed=seed),
        unet=tiny_stage1_unet(seed=seed),
        scheduler=stage1_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )


def tiny_stage2_pipeline(seed: int = 1):
    """An ``IFSuperResolutionPipeline`` with the tiny stage-2 UNet and no text encoder."""
    from diffusers import DDPMScheduler, IFSuperResolutionPipeline

    scheduler = DDPMScheduler(**{**_stage1_scheduler_kwargs(), "sample_max_value": 1.0})
    return IFSuperResolutionPipeline(
        tokenizer=None,
        text_encoder=None,
        unet=tiny_stage2_unet(seed=seed),
        scheduler=scheduler,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        safety_checker=None,
        feature_extractor=None,
        watermarker=None,
        requires_safety_checker=False,
    )


def save_tiny_models(root: str | os.PathLike, variants: tuple[str | None, ...] = (None,)) -> dict[str, Path]:
    """Build and save both tiny pipelines under ``root``; returns ``{"stage1": dir, "stage2": dir}``.

    ``variants`` may include ``"fp16"`` to also write fp16 weights (``variant="fp16"`` loading). The
    fp16 files are written first so that the fp32 save leaves the configs' dtype at float32.
    """
    import torch

    root = Path(root)
    paths = {"stage1": root / "IF-I-tiny", "stage2": root / "IF-II-tiny"}
    for name, build in (("stage1", tiny_stage1_pipeline), ("stage2", tiny_stage2_pipeline)):
        pipe = build()
        for variant in sorted(variants, key=lambda v: v is None):  # fp16 first, fp32 last
            if variant == "fp16":
                pipe.to(torch.float16).save_pretrained(paths[name], variant="fp16", safe_serialization=True)
                pipe.to(torch.float32)
            else:
                pipe.save_pretrained(paths[name], safe_serialization=True)
    for path in root.rglob("*"):  # safetensors writes 0600 files; graders may run as another user
        if path.is_file():
            path.chmod(0o644)
    return paths


def install_in_fake_hub_cache(model_dir: str | os.PathLike, repo_id: str, cache_dir: str | os.PathLike) -> Path:
    """Lay ``model_dir`` out in ``cache_dir`` as the hub cache would hold ``repo_id``.

    With ``HF_HUB_CACHE=cache_dir`` and ``HF_HUB_OFFLINE=1``, ``from_pretrained(repo_id)`` then loads it
    through the unmodified hub code path.
    """
    commit = "0" * 40
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(model_dir, snapshot)
    return snapshot
