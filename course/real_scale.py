"""DeepFloyd IF at its real size with random weights, offline (instructors and tests only).

The tiny stand-ins of ``fwd_kit.tiny`` keep DeepFloyd's interface at a few hundred thousand parameters,
so a mistake that only shows at real size (T5's width 4096, 64 attention-pooling heads, IF-I's channel
counts, 64×64 stage 1, 256×256 stage 2) would never show in them. This module builds checkpoints with
the real configurations and random (seeded) weights:

- stage 1: ``IF_I_M`` — the IF-I architecture at IF-I-M's size (400 M parameters on the model card);
- stage 2: ``IF_II_M`` — the IF-II architecture at IF-II-M's size (450-500 M), with its image-noising
  scheduler;
- a T5 text encoder of T5-XXL's real width (d_model 4096, 64 heads of 64, d_ff 10240, gated-gelu, vocab
  32128) but ONE layer instead of 24, and the offline tokenizer of ``fwd_kit.tiny``;

saved once in the diffusers layout inside a fake Hugging Face cache, so that the unmodified hub ids
``DeepFloyd/IF-I-M-v1.0`` and ``DeepFloyd/IF-II-M-v1.0`` load through ``fwd_kit.loading`` with
``HF_HUB_CACHE=<cache> HF_HUB_OFFLINE=1`` (see :func:`hub_env`). Their pictures are noise: they test
shapes, dtypes and memory, never quality. About 4.7 GB on disk (float32); never committed.

Sources of the configurations (facts only; see /work/shared/spec/deepfloyd_offline.md §1):

- IF-I-XL-v1.0 ``unet/config.json`` and IF-II-L-v1.0 ``unet/config.json``: copies of the hub files in
  fine-tunes whose ``_name_or_path`` is the DeepFloyd repo (huggingface.co/lucostiguy11/dreambooth_if,
  huggingface.co/williamberman/dreambooth_me_upscale), the original ``config.yml`` of IF-I-XL
  (model_channels 704, channel_mult 1,2,3,4, num_res_blocks 3, num_head_channels 64, att_pool_heads 64,
  encoder_dim 4096, encoder_channels 2816) and diffusers' ``scripts/convert_if.py``. Building them on the
  ``meta`` device gives 4,305 M and 1,243 M parameters, the model cards' 4.3 B and 1.2 B.
- IF-I-M-v1.0 and IF-II-M-v1.0: their ``config.json`` could not be read here (no hub access, and no copy
  in the searchable mirrors). ⚠ ``IF_I_M`` and ``IF_II_M`` are therefore *derived*: the verified XL / L
  architecture with every width scaled down by one factor, the width chosen so that the parameter count
  matches the model card (IF-I-M: base width 192 → 372 M for the card's 400 M; IF-II-M: base width 96 →
  482 M for 450-500 M). Everything the course code depends on is the same in every IF size: block types,
  64-channel attention heads, 64 attention-pooling heads, ``encoder_hid_dim`` 4096, ``text_proj``,
  ``scale_shift``, gelu, 64×64 / 256×256, 3 → 6 / 6 → 6 channels. ``bench/gpu_check.py`` prints the
  differences from the hub's files where it can download them; replace the two dicts then.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is pure noise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

STAGE1_ID = "DeepFloyd/IF-I-M-v1.0"  # the hub ids the checkpoints stand in for (fake cache entries)
STAGE2_ID = "DeepFloyd/IF-II-M-v1.0"
VERSION = 1  # bump when a builder changes: caches of another version are rebuilt
COMMIT = "0" * 40  # the fake snapshot's commit hash


def default_cache_dir() -> Path:
    """``FWD_REAL_SCALE_CACHE`` or ``~/.cache/fun-with-diffusion/real-scale``: the fake hub cache."""
    return Path(os.environ.get("FWD_REAL_SCALE_CACHE") or Path.home() / ".cache" / "fun-with-diffusion" / "real-scale")


# ---------------------------------------------------------------------------------------------------
# Configurations


def stage1_unet_config(base: int) -> dict:
    """IF-I's UNet (IF-I-XL's verified config) at base width ``base``: widths base·(1, 2, 3, 4), 3 layers each."""
    return dict(
        sample_size=64,
        in_channels=3,
        out_channels=6,  # 3 for ε, 3 for the learned-range variance
        down_block_types=("ResnetDownsampleBlock2D",) + ("SimpleCrossAttnDownBlock2D",) * 3,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 3 + ("ResnetUpsampleBlock2D",),
        block_out_channels=(base, 2 * base, 3 * base, 4 * base),
        layers_per_block=3,
        cross_attention_dim=4 * base,  # XL: encoder_channels 2816 = 4 · 704
        attention_head_dim=64,  # num_head_channels 64
        encoder_hid_dim=4096,  # T5-XXL's width, projected to cross_attention_dim ("text_proj")
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",  # attention-pooled T5 added to the time embedding
        addition_embed_type_num_heads=64,  # att_pool_heads 64
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        norm_num_groups=32,
        norm_eps=1e-5,
        flip_sin_to_cos=True,
        freq_shift=0,
        mid_block_scale_factor=1,
        resnet_out_scale_factor=1.0,
        resnet_skip_time_act=False,
        only_cross_attention=False,
    )


def stage2_unet_config(widths: tuple[int, ...]) -> dict:
    """IF-II's super-resolution UNet (IF-II-L's verified config) with block widths ``widths`` (5 levels)."""
    return dict(
        sample_size=256,
        in_channels=6,  # the noisy 256² image and the noised, upsampled 64² image
        out_channels=6,
        down_block_types=("ResnetDownsampleBlock2D",) * 3 + ("SimpleCrossAttnDownBlock2D",) * 2,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D",) * 2 + ("ResnetUpsampleBlock2D",) * 3,
        block_out_channels=tuple(widths),
        layers_per_block=(2, 2, 3, 5, 5),
        cross_attention_dim=widths[-1],
        attention_head_dim=64,
        encoder_hid_dim=4096,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",
        addition_embed_type_num_heads=64,
        class_embed_type="timestep",  # the noise-augmentation level enters as a class label
        time_embedding_dim=widths[-1],
        time_embedding_act_fn="gelu",
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        norm_num_groups=32,
        resnet_skip_time_act=True,
        resnet_out_scale_factor=1.4142271248762552,  # 1 / 0.7071
        mid_block_scale_factor=1.4142271248762552,
        only_cross_attention=False,
    )


IF_I_XL = stage1_unet_config(704)  # verified: 4,305 M parameters
IF_I_M = stage1_unet_config(192)  # ⚠ derived (see the module docstring): 372 M parameters
IF_II_L = stage2_unet_config((160, 320, 640, 960, 1280))  # verified: 1,243 M parameters
IF_II_M = stage2_unet_config((96, 192, 384, 576, 768))  # ⚠ derived: 482 M parameters

# google/t5-v1_1-xxl's encoder (T5EncoderModel in the IF repos' text_encoder/): 4.76 B parameters at 24 layers
T5_XXL = dict(d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24, feed_forward_proj="gated-gelu",
              vocab_size=32128, relative_attention_num_buckets=32, relative_attention_max_distance=128,
              layer_norm_epsilon=1e-6, dropout_rate=0.0, tie_word_embeddings=False)
T5_ONE_LAYER = {**T5_XXL, "num_layers": 1}  # the real width, one layer: 325 M parameters


def unet_parameters(config: dict) -> int:
    """Parameters of a ``UNet2DConditionModel`` with ``config``, counted on the meta device (no memory)."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return sum(p.numel() for p in UNet2DConditionModel(**config).parameters())


def t5_parameters(config: dict = T5_XXL) -> int:
    """Parameters of a ``T5EncoderModel`` with ``config``, counted on the meta device."""
    import torch
    from transformers import T5Config, T5EncoderModel

    with torch.device("meta"):
        return sum(p.numel() for p in T5EncoderModel(T5Config(**config)).parameters())


# ---------------------------------------------------------------------------------------------------
# Builders


def _unet(config: dict, seed: int):
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**config).eval()


def build_stage1(seed: int = 0):
    """An ``IFPipeline``: ``IF_I_M`` UNet, one-layer T5 of width 4096, offline tokenizer, IF's stage-1 scheduler."""
    import torch
    from diffusers import IFPipeline
    from transformers import T5Config, T5EncoderModel

    from fwd_kit.tiny import stage1_scheduler, tiny_tokenizer

    tokenizer = tiny_tokenizer()  # ~80 pieces; T5's 32128-row embedding is indexed by its first rows only
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(**T5_ONE_LAYER)).eval()
    return IFPipeline(tokenizer=tokenizer, text_encoder=text_encoder, unet=_unet(IF_I_M, seed),
                      scheduler=stage1_scheduler(), safety_checker=None, feature_extractor=None, watermarker=None,
                      requires_safety_checker=False)


def build_stage2(seed: int = 1):
    """An ``IFSuperResolutionPipeline``: ``IF_II_M`` UNet, IF's stage-2 scheduler and image-noising scheduler."""
    from diffusers import DDPMScheduler, IFSuperResolutionPipeline

    from fwd_kit.tiny import stage1_scheduler

    scheduler = DDPMScheduler.from_config(stage1_scheduler().config, sample_max_value=1.0)
    return IFSuperResolutionPipeline(
        tokenizer=None, text_encoder=None, unet=_unet(IF_II_M, seed), scheduler=scheduler,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"), safety_checker=None,
        feature_extractor=None, watermarker=None, requires_safety_checker=False,
    )


def _snapshot(cache_dir: Path, repo_id: str) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--")) / "snapshots" / COMMIT


def _stamp(seed: int) -> dict:
    import diffusers
    import torch
    import transformers

    return dict(version=VERSION, seed=seed, torch=torch.__version__, diffusers=diffusers.__version__,
                transformers=transformers.__version__, stage1=STAGE1_ID, stage2=STAGE2_ID)


@contextlib.contextmanager
def _lock(path: Path):
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two test sessions: the second waits, then finds the cache built
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_real_scale_cache(cache_dir=None, seed: int = 0) -> Path:
    """The fake hub cache holding both checkpoints, built (seeded) if missing or of another version.

    Returns the cache directory, for ``HF_HUB_CACHE`` (see :func:`hub_env`). Building takes a few minutes
    and about 6 GB of memory; the stamp file ``real-scale.json`` is written last, so an interrupted build
    is redone.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stamp_path = cache_dir / "real-scale.json"
    with _lock(cache_dir / ".lock"):
        stamp = _stamp(seed)
        if stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp:
            return cache_dir
        stamp_path.unlink(missing_ok=True)
        for repo_id, build in ((STAGE1_ID, lambda: build_stage1(seed)), (STAGE2_ID, lambda: build_stage2(seed + 1))):
            repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
            shutil.rmtree(repo_dir, ignore_errors=True)
            pipe = build()
            pipe.save_pretrained(_snapshot(cache_dir, repo_id), safe_serialization=True)
            del pipe
            (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
            (repo_dir / "refs" / "main").write_text(COMMIT)
        for path in cache_dir.rglob("*"):  # safetensors writes 0600; a grader may read as another user
            if path.is_file():
                path.chmod(0o644)
        stamp_path.write_text(json.dumps(stamp, indent=1))
    return cache_dir


def hub_env(cache_dir) -> dict[str, str]:
    """Environment variables under which the hub ids load offline from ``cache_dir``."""
    return {"HF_HUB_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1"}
