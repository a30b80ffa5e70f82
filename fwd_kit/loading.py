"""Loading DeepFloyd IF (or an offline stand-in) and its T5 prompt embeddings.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is pure noise.

Stage 1 makes 64×64 images from text, stage 2 upsamples them to 256×256. Both are loaded without
their T5 text encoder (it alone is 4.9 B parameters): prompts enter as precomputed embeddings, a dict
``{prompt: tensor (1, 77, W)}`` with W = 4096 for T5-XXL (``unet.config.encoder_hid_dim``; 32 for the
tiny stand-ins of ``fwd_kit.tiny``). The dict always holds the empty prompt ``""``, the
unconditional branch of classifier-free guidance.

The DeepFloyd models are gated: accept the licence on the ``DeepFloyd/IF-I-XL-v1.0`` model card (it
covers every IF model), then log in with a read token — ``huggingface_hub.login()`` or the
``HF_TOKEN`` environment variable. Without a GPU or a licence, use the digit model ``DIGIT_MODEL``.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import torch

STAGE1_DEFAULT = "DeepFloyd/IF-I-XL-v1.0"  # the model card whose licence covers every IF model
STAGE1_LIGHTER = ("DeepFloyd/IF-I-L-v1.0", "DeepFloyd/IF-I-M-v1.0")  # 900 M and 400 M parameters
STAGE2_DEFAULT = "DeepFloyd/IF-II-L-v1.0"  # 64² → 256² super-resolution, 1.2 B parameters
DIGIT_MODEL = Path(__file__).resolve().parent / "digit_model"  # small trained stand-in (saved pipeline)
DIGIT_EMBEDS = DIGIT_MODEL / "prompt_embeds.safetensors"  # its prompt embeddings


def default_device() -> torch.device:
    """CUDA if a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device) -> torch.dtype:
    """fp16 on CUDA (as the course runs DeepFloyd), fp32 on the CPU (fp16 there is ~10× slower)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def _is_local(model_id) -> bool:
    """A ``Path`` or an existing directory is a local model; any other string is a hub id."""
    return isinstance(model_id, Path) or os.path.isdir(str(model_id))


def _wants_fp16_variant(model_id, dtype: torch.dtype) -> bool:
    """Request ``variant="fp16"`` for fp16 loads: always for hub ids, if its files exist for a directory."""
    if dtype != torch.float16:
        return False
    if not _is_local(model_id):
        return True
    return any(Path(model_id).rglob("*.fp16.safetensors"))


class ModelUnavailable(OSError):
    """A hub model that could not be loaded; ``reason`` says why in a few words (for one-line messages)."""

    def __init__(self, model_id, reason: str, message: str):
        super().__init__(message)
        self.model_id = str(model_id)
        self.reason = reason


def _loading_options() -> dict:
    """Keyword arguments every ``from_pretrained`` of ours adds: without ``accelerate`` installed, ask for
    ``low_cpu_mem_usage=False`` outright (diffusers would fall back to it anyway, after a warning that shows
    as a red box in the students' notebook on every load)."""
    import importlib.util

    return {} if importlib.util.find_spec("accelerate") else {"low_cpu_mem_usage": False}


@contextlib.contextmanager
def _no_loading_bar():
    """Without diffusers' "Loading pipeline components..." bar (it goes to stderr: a red box in a notebook),
    restoring the setting afterwards; sampling keeps its own bars."""
    from diffusers.utils import logging as diffusers_logging

    was_on = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            diffusers_logging.enable_progress_bar()


def _offline_and_missing(model_id, cache_dir=None) -> bool:
    """Whether ``model_id`` is a hub id that cannot load for sure: HF_HUB_OFFLINE is set and it is not cached."""
    from huggingface_hub import constants

    return not _is_local(model_id) and bool(constants.HF_HUB_OFFLINE) and not _is_cached(str(model_id), cache_dir)


def _hub_unreachable_reason(model_id, cache_dir=None) -> str:
    """Why a hub id could not be loaded, in a few words (offline and not cached, or no access)."""
    if _offline_and_missing(model_id, cache_dir):
        return "it is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    return "the Hugging Face hub refused it or could not be reached (licence, token or network)"


def _load_pipeline(model_id, device, dtype, token, cache_dir, **components):
    """``DiffusionPipeline.from_pretrained`` with the course's settings and a helpful error for hub ids."""
    from diffusers import DiffusionPipeline

    device = torch.device(device) if device is not None else default_device()
    dtype = dtype if dtype is not None else default_dtype(device)
    looks_like_path = isinstance(model_id, Path) or not re.fullmatch(r"\w[\w.-]*/[\w.-]+", str(model_id))
    if looks_like_path and not os.path.isdir(str(model_id)):
        raise ValueError(
            f"model_id must be a hub id such as {STAGE1_DEFAULT!r} or a directory holding a saved pipeline, "
            f"but {str(model_id)!r} is neither (no such directory)."
        )
    kwargs = dict(dtype=dtype, token=token or os.environ.get("HF_TOKEN"), cache_dir=cache_dir, **components,
                  **_loading_options())
    if _wants_fp16_variant(model_id, dtype):
        kwargs["variant"] = "fp16"
    hint = (f"To use DeepFloyd IF: (1) accept the licence on https://huggingface.co/{STAGE1_DEFAULT} (it covers every "
            f"IF model), (2) log in with a read token (set HF_TOKEN or run huggingface_hub.login()), and (3) be online "
            f"for the first download (HF_HUB_OFFLINE must not be set). Without a GPU or a licence, load the digit "
            f"model instead: model_id=fwd_kit.loading.DIGIT_MODEL.")
    if _offline_and_missing(model_id, cache_dir):  # certain to fail: say so before diffusers tries and logs
        reason = _hub_unreachable_reason(model_id, cache_dir)
        raise ModelUnavailable(model_id, reason, f"Could not load {model_id!r}: {reason}. {hint}")
    try:
        with _no_loading_bar():
            pipe = DiffusionPipeline.from_pretrained(model_id, **kwargs)
    except OSError as err:
        if _is_local(model_id):
            raise
        raise ModelUnavailable(
            model_id, _hub_unreachable_reason(model_id, cache_dir),
            f"Could not load {model_id!r} from the Hugging Face hub or its local cache ({err}). {hint}",
        ) from err
    return pipe.to(device)


def load_stage1(model_id=STAGE1_DEFAULT, device=None, dtype=None, token=None, cache_dir=None):
    """Stage 1 (text → 64×64 image) without its text encoder: an ``IFPipeline`` on ``device``.

    model_id: a hub id (``STAGE1_DEFAULT``, one of ``STAGE1_LIGHTER``) or a directory such as
        ``DIGIT_MODEL`` or a tiny model from ``fwd_kit.tiny``.
    device: defaults to ``default_device()``; dtype: defaults to ``default_dtype(device)``, and fp16
        loads the ``fp16`` weight variant where it exists.
    token: a Hugging Face read token; defaults to ``HF_TOKEN``, then to the login stored by
        ``huggingface_hub.login()`` (logging in is your choice; this function never does it).
    cache_dir: the hub cache to read (defaults to ``HF_HUB_CACHE``).

    A hub id that cannot be loaded raises :class:`ModelUnavailable` (an ``OSError``) saying how to get access
    or which model to use instead.
    """
    return _load_pipeline(model_id, device, dtype, token, cache_dir, text_encoder=None, tokenizer=None)


def load_stage2(model_id=STAGE2_DEFAULT, device=None, dtype=None, token=None, cache_dir=None):
    """Stage 2 (64×64 → 256×256 super-resolution) without its text encoder; arguments as ``load_stage1``."""
    return _load_pipeline(model_id, device, dtype, token, cache_dir, text_encoder=None, tokenizer=None)


def _is_cached(repo_id: str, cache_dir=None) -> bool:
    """Whether the hub cache holds ``repo_id``'s pipeline index and UNet config (no network access)."""
    from huggingface_hub import try_to_load_from_cache

    files = ("model_index.json", "unet/config.json")
    return all(isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache_dir), str) for f in files)


def choose_stage1(model=None, device=None, cache_dir=None) -> tuple[object, str]:
    """Pick the stage-1 model to run: returns ``(model_id or None, reason)`` without touching the network.

    ``model`` given → it. Otherwise DeepFloyd IF-I-XL when a CUDA GPU is available and the model is
    either in the hub cache or downloadable (online with a token; the licence itself cannot be checked
    offline); else the digit model if it has been installed; else ``None`` with the reason.
    """
    from huggingface_hub import constants, get_token

    if model is not None:
        return model, f"using the model you asked for: {model}"
    device = torch.device(device) if device is not None else default_device()
    digit = DIGIT_MODEL if (DIGIT_MODEL / "model_index.json").is_file() else None
    if device.type != "cuda":
        why = f"no CUDA GPU (device {device}), and DeepFloyd IF needs one"
    elif _is_cached(STAGE1_DEFAULT, cache_dir):
        return STAGE1_DEFAULT, f"{STAGE1_DEFAULT} is in the Hugging Face cache and a GPU is available"
    elif constants.HF_HUB_OFFLINE:
        why = f"{STAGE1_DEFAULT} is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    elif not (os.environ.get("HF_TOKEN") or get_token()):
        why = f"no Hugging Face token (set HF_TOKEN or run huggingface_hub.login()) to download {STAGE1_DEFAULT}"
    else:
        return STAGE1_DEFAULT, f"a GPU and a Hugging Face token are available; {STAGE1_DEFAULT} will be downloaded"
    if digit is not None:
        return digit, f"{why}; using the digit model"
    return None, f"{why}, and the digit model is not installed at {DIGIT_MODEL}"


def save_prompt_embeds(embeds: dict, path, dtype: torch.dtype | None = None) -> Path:
    """Write ``{prompt: tensor (1, 77, W)}`` to a safetensors file; ``""`` must be among the prompts.

    All tensors are stored in one dtype: ``dtype`` if given, else their common promoted dtype.
    """
    from safetensors.torch import save_file

    if not isinstance(embeds, dict) or "" not in embeds:
        raise ValueError('embeds must be a dict {prompt: tensor} that includes the empty prompt "" (used for CFG).')
    for prompt, e in embeds.items():
        if not isinstance(e, torch.Tensor) or e.ndim != 3 or e.shape[0] != 1:
            shape = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
            raise ValueError(f"The embedding of {prompt!r} must be a tensor of shape (1, tokens, width), but is {shape}.")
    if dtype is None:
        dtype = next(iter(embeds.values())).dtype
        for e in embeds.values():
            dtype = torch.promote_types(dtype, e.dtype)
    tensors = {p: e.detach().to("cpu", dtype).contiguous() for p, e in embeds.items()}
    save_file(tensors, str(path))
    os.chmod(path, 0o644)  # safetensors writes 0600; graders may read as another user
    return Path(path)


def load_prompt_embeds(path, device=None, dtype=None) -> dict:
    """Read a prompt-embedding dict: our safetensors files or the course's original ``.pth`` (``torch.load``)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be a prompt-embedding file (.safetensors or .pth), but {path} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        embeds = load_file(str(path))
    else:
        embeds = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(embeds, dict):
            raise ValueError(f"{path} must hold a dict {{prompt: tensor}}, but holds a {type(embeds).__name__}.")
    return {p: e.to(device=device, dtype=dtype) for p, e in embeds.items()}


def prompt_embeds(embeds: dict, prompts) -> torch.Tensor:
    """The embeddings of one prompt or a list of prompts, concatenated: (len(prompts), 77, W)."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("prompts must name at least one prompt, but is empty.")
    missing = [p for p in prompts if p not in embeds]
    if missing:
        known = ", ".join(repr(p) for p in list(embeds)[:5])
        raise ValueError(
            f"No embedding for {missing[0]!r}. The dict holds {len(embeds)} prompts, e.g. {known}; compute new ones "
            f"with `course embed PROMPTS.txt --out FILE` or fwd_kit.loading.compute_prompt_embeds."
        )
    return torch.cat([embeds[p] for p in prompts])


def compute_prompt_embeds(prompts, model_id=STAGE1_DEFAULT, device=None, load_in_8bit=False, dtype=None, cache_dir=None):
    """T5 embeddings ``{prompt: (1, 77, W)}`` of ``prompts`` plus ``""``, by the pipeline's own ``encode_prompt``.

    Loads the text encoder (``subfolder="text_encoder"``; 8-bit through bitsandbytes if ``load_in_8bit``,
    which needs a CUDA GPU) and builds the pipeline without its UNet. T5-XXL needs about 10 GB in fp16,
    5 GB in 8 bit. ``model_id`` may also be a local directory holding a full pipeline (tokenizer and text
    encoder), e.g. a tiny model of ``fwd_kit.tiny``.
    """
    from diffusers import DiffusionPipeline
    from transformers import T5EncoderModel

    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype if dtype is not None else default_dtype(device)
    kwargs = dict(subfolder="text_encoder", cache_dir=cache_dir, token=os.environ.get("HF_TOKEN"))
    if load_in_8bit:
        from transformers import BitsAndBytesConfig

        kwargs.update(quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map={"": device})
        if not _is_local(model_id) or any(Path(model_id, "text_encoder").glob("*.8bit.*")):
            kwargs["variant"] = "8bit"
    elif _wants_fp16_variant(Path(model_id, "text_encoder") if _is_local(model_id) else model_id, dtype):
        kwargs["variant"] = "fp16"
    try:
        text_encoder = T5EncoderModel.from_pretrained(str(model_id), dtype=dtype, **kwargs)
        text_pipe = DiffusionPipeline.from_pretrained(  # only the tokenizer is still read from model_id
            model_id, text_encoder=text_encoder, unet=None, safety_checker=None, feature_extractor=None,
            watermarker=None, requires_safety_checker=False, cache_dir=cache_dir, token=kwargs["token"],
            **_loading_options(),
        )
    except OSError as err:
        if _is_local(model_id):
            raise
        raise OSError(
            f"Could not load the text encoder of {model_id!r} ({err}). Accept the licence on "
            f"https://huggingface.co/{STAGE1_DEFAULT}, log in (HF_TOKEN or huggingface_hub.login()) and be online."
        ) from err
    if not load_in_8bit:
        text_pipe = text_pipe.to(device)
    embeds = {}
    with torch.no_grad():
        for prompt in dict.fromkeys([""] + prompts):  # "" first; duplicates once
            embeds[prompt] = text_pipe.encode_prompt(prompt, do_classifier_free_guidance=False, device=device)[0]
    return embeds
