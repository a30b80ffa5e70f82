"""Reference bundles for Part A: the reference run on fixed inputs and seeds, to judge what students computed.

Students run Part A on a GPU with DeepFloyd IF, which no grading machine has. A *bundle* holds fixed
inputs and the reference's outputs on them (made by the instructor with ``course bundle`` on the same
model, device and dtype the students use); the notebook's last cell runs the student's functions on the
same inputs (``fwd_kit.artifacts.export_artifacts``) and the grader compares the two files
(``autograder.artifacts.compare_artifacts``).

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is the noisiest timestep.

Determinism across devices:

- Every input is made on the CPU in float32 with one seeded CPU ``torch.Generator`` and stored in the file;
  both sides move it to the model's device and dtype, so a CUDA run and a CPU run start from the same values.
- Entries that draw noise (the loops) get a fresh CPU generator seeded with the entry's seed. The course's
  ``gaussian_noise`` (used by ``forward``, ``add_variance`` and the loops) draws on the generator's device and
  moves the draw, so the noise is the same on every device. Limitation: code that draws on the model's
  device (``torch.randn(..., generator=g, device="cuda")``) cannot take a CPU generator and fails that entry;
  the message says how to draw. Noise drawn in float16 equals float32 noise rounded to float16 when the
  tensor has a multiple of 16 elements (every image shape here), so loops stay comparable across dtypes.
- Tolerances depend on the device and dtype (CUDA float32 may run convolutions in TF32, so it is judged as
  float16) and on the kind of entry: a formula, one UNet call (one-step estimates, CFG, one denoising,
  anagram or hybrid step), or a loop of a few steps, where rounding accumulates and up to 1% of the values
  may fall outside. The factors leave 2-5× headroom over what float16 on a CPU measured against this
  float32 reference on the digit model (largest error / tolerance: formulas 0.18, UNet calls 0.27, loops
  0.45, 0.22 at the 1% allowance); float16 runs on two GPUs should differ less than float16 from float32.

File format: safetensors with tensors ``input/<name>`` and ``output/<entry>``, and the manifest (JSON) in
the metadata key ``manifest``. A copy without outputs (``write_inputs_only``) is what students receive.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

FORMAT = "fun-with-diffusion/partA-bundle"
VERSION = 1
BATCH = 2  # images per input batch (a batch of 1 hides batch mistakes)
FORWARD_TS = (250, 500, 750)  # the course's noise levels of 1.1 and 1.3
STEP_TIMESTEPS = [690, 660]  # one strided step (timesteps[10] → timesteps[11] of the course's list)
LOOP_TIMESTEPS = [990, 660, 330, 0]  # a short run: three CFG updates down to t = 0
SDEDIT_I_START = 1  # sdedit from t = 660: two updates
SCALE = 7.0  # CFG scale γ
SETTINGS = dict(batch=BATCH, forward_ts=list(FORWARD_TS), step_timesteps=STEP_TIMESTEPS,
                loop_timesteps=LOOP_TIMESTEPS, sdedit_i_start=SDEDIT_I_START, scale=SCALE)

# kind → (factor on the base tolerance, share of values allowed outside it)
KINDS = {"formula": (3, 0.0), "unet": (20, 0.0), "loop": (50, 0.01)}


# ---------------------------------------------------------------------------------------------------
# Tolerances


def base_tolerance(device: str, dtype: str) -> tuple[float, float]:
    """(rtol, atol) of one formula on ``device`` in ``dtype`` (names such as "cuda", "float16").

    |actual − expected| ≤ atol·max|expected| + rtol·|expected|. CUDA float32 counts as float16 (TF32
    convolutions round to a 10-bit mantissa).
    """
    from fwd_kit.checks.compare import TOLERANCES

    torch_dtype = getattr(torch, dtype, torch.float32)
    if device.startswith("cuda") and torch_dtype == torch.float32:
        torch_dtype = torch.float16
    return TOLERANCES.get(torch_dtype, TOLERANCES[torch.float32])


def entry_tolerance(kind: str, device: str, dtype: str) -> dict:
    """{"rtol", "atol", "max_outside"} of an entry of ``kind`` ("formula", "unet", "loop")."""
    factor, outside = KINDS[kind]
    rtol, atol = base_tolerance(device, dtype)
    return dict(rtol=rtol * factor, atol=atol * factor, max_outside=outside)


def looser(a: dict, b: dict) -> dict:
    """The looser of two tolerances, key by key."""
    return {k: max(a[k], b[k]) for k in ("rtol", "atol", "max_outside")}


# ---------------------------------------------------------------------------------------------------
# Inputs, hashes and the model's fingerprint


def smooth_image(generator: torch.Generator, batch: int, size: int) -> torch.Tensor:
    """A seeded smooth picture (B, 3, size, size) in (-1, 1): tanh of bicubically upsampled 4×4 noise (CPU)."""
    low = torch.randn((batch, 3, 4, 4), generator=generator)
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return torch.tanh(up)




def tensor_sha256(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and float32 bytes (CPU)."""
    data = x.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(f"{data.dtype}{tuple(data.shape)}".encode())
    h.update(data.numpy().tobytes())
    return h.hexdigest()


def model_name(unet) -> str:
    """A readable name for a UNet: the hub id, "digit" for the course's digit model, else its folder."""
    from fwd_kit.loading import DIGIT_MODEL

    path = str(getattr(unet.config, "_name_or_path", "") or "")
    if "models--" in path:  # a hub cache snapshot: .../models--ORG--NAME/snapshots/<commit>/unet
        return path.split("models--")[1].split("/")[0].replace("--", "/", 1)
    folder = Path(path).parent if Path(path).name == "unet" else Path(path)
    if path and folder.resolve() == Path(DIGIT_MODEL).resolve():
        return "digit"
    return folder.name or "unknown model"


def model_fingerprint(unet, scheduler, model_id: str | None = None) -> dict:
    """What identifies the model: name, size, parameter count, a probe of weights and of ᾱ_t.

    The probe (the first 8 weights of three parameter tensors) survives a float16 cast, yet tells two
    trainings of one architecture apart; config keys are not hashed (new diffusers versions add keys).
    """
    params = list(unet.parameters())
    probe = [float(v) for p in (params[0], params[len(params) // 2], params[-2]) for v in p.detach().flatten()[:8]]
    return dict(id=model_id or model_name(unet), parameters=sum(p.numel() for p in params),
                sample_size=int(unet.config.sample_size), text_width=int(unet.config.encoder_hid_dim),
                probe=probe, alphas_cumprod=[float(scheduler.alphas_cumprod[t]) for t in (0, 250, 500, 750, 999)],
                variance_type=str(scheduler.config.variance_type))


def model_mismatch(ours: dict, theirs: dict) -> str | None:
    """``None`` if two fingerprints describe the same model (up to float16 rounding), else what differs."""
    for key in ("parameters", "sample_size", "text_width", "variance_type"):
        if ours.get(key) != theirs.get(key):
            return f"{key} is {str(theirs.get(key))[:40]} instead of {ours.get(key)}"
    for key, rtol, atol in (("probe", 1e-2, 1e-4), ("alphas_cumprod", 1e-4, 1e-7)):
        try:
            a = torch.tensor(ours.get(key, []), dtype=torch.float64)
            b = torch.tensor(theirs.get(key, []), dtype=torch.float64)
            same = a.shape == b.shape and torch.allclose(b, a, rtol=rtol, atol=atol)
        except (TypeError, ValueError, RuntimeError):  # not a list of numbers
            same = False
        if not same:
            return "the weights differ" if key == "probe" else "the noise schedule ᾱ_t differs"
    return None


def versions() -> dict:
    """Library versions for the manifest."""
    import diffusers

    return dict(torch=torch.__version__, diffusers=diffusers.__version__, python=platform.python_version())


# ---------------------------------------------------------------------------------------------------
# The entries: which function each calls, on which inputs


@dataclass(frozen=True)
class Call:
    """One call of a Part A function; ``outputs`` names the entries its return value(s) fill, in order."""

    function: str  # the student's (and the reference's) function name
    outputs: tuple[str, ...]
    kind: str  # "formula", "unet" or "loop" (see KINDS)
    question: str  # the check's question, for the messages
    run: Callable  # run(functions, context) → tensor or tuple of tensors


class Context:
    """What a call receives: the inputs on the model's device and dtype, the model, a scheduler copy, a generator."""

    def __init__(self, inputs: Mapping[str, torch.Tensor], unet, scheduler, seed: int):
        self.x = {k: v.to(unet.device, unet.dtype) for k, v in inputs.items()}
        self.unet = unet
        self.scheduler = type(scheduler).from_config(scheduler.config)  # the caller's keeps its timesteps
        self.alphas_cumprod = self.scheduler.alphas_cumprod
        self.generator = torch.Generator("cpu").manual_seed(seed)


def _forward_call(t: int) -> Call:
    return Call("forward", (f"forward/t{t}",), "formula",
                f"Does forward noise the image as q(x_t | x0) says at t = {t}, with the noise it is given?",
                lambda f, c: f["forward"](c.x["x0"], t, c.alphas_cumprod, noise=c.x["noise"]))


def _one_step_call(t: int) -> Call:
    return Call("one_step_denoise", (f"one_step_denoise/t{t}",), "unet",
                f"Does one_step_denoise turn x_t at t = {t} into a clean estimate with the model's noise estimate?",
                lambda f, c: f["one_step_denoise"](c.unet, c.x[f"xt_{t}"], t, c.x["prompt_1"], c.alphas_cumprod))


CALLS = [
    *[_forward_call(t) for t in FORWARD_TS],
    Call("estimate_x0", ("estimate_x0/t500",), "formula",
         "Does estimate_x0 invert the forward process for the noise estimate it is given, at t = 500?",
         lambda f, c: f["estimate_x0"](c.x["xt_500"], c.x["eps"], 500, c.alphas_cumprod)),
    *[_one_step_call(t) for t in FORWARD_TS],
    Call("denoise_step_mean", ("denoise_step_mean/t690",), "formula",
         "Does denoise_step_mean weigh x̂0 and x_t with the strided α and β of the jump 690 → 660 (mind the "
         "bars)?",
         lambda f, c: f["denoise_step_mean"](c.x["xt_690"], c.x["x0_hat"], 690, 660, c.alphas_cumprod)),
    Call("iterative_denoise", ("iterative_denoise/one_step",), "unet",
         "Does one step of iterative_denoise (690 → 660) predict the noise, estimate x̂0, take the mean and add "
         "the variance drawn from the generator it is given?",
         lambda f, c: f["iterative_denoise"](c.unet, c.scheduler, c.x["xt_690"], 0, c.x["prompt_1"], STEP_TIMESTEPS,
                                             generator=c.generator)),
    Call("cfg_noise", ("cfg_noise/eps", "cfg_noise/variance"), "unet",
         "Does cfg_noise extrapolate from the unconditional towards the conditional estimate (γ = 7), and return "
         "the conditional branch's variance?",
         lambda f, c: f["cfg_noise"](c.unet, c.x["xt_690"], 690, c.x["prompt_1"], c.x["uncond"], scale=SCALE)),
    Call("iterative_denoise_cfg", ("iterative_denoise_cfg/short",), "loop",
         "Does iterative_denoise_cfg follow the reference over a short run (990 → 660 → 330 → 0, γ = 7)?",
         lambda f, c: f["iterative_denoise_cfg"](c.unet, c.scheduler, c.x["x_T"], 0, c.x["prompt_1"], c.x["uncond"],
                                                 LOOP_TIMESTEPS, scale=SCALE, generator=c.generator)),
    Call("sdedit", ("sdedit",), "loop",
         "Does sdedit noise the image to timesteps[i_start] with the generator's first draw, then denoise it with "
         "CFG from i_start?",
         lambda f, c: f["sdedit"](c.unet, c.scheduler, c.x["x0"], SDEDIT_I_START, c.x["prompt_1"], c.x["uncond"],
                                  LOOP_TIMESTEPS, scale=SCALE, generator=c.generator)),
    Call("inpaint", ("inpaint",), "loop",
         "Does inpaint keep the original, noised to each new timestep, outside the mask, drawing its noise in "
         "the documented order?",
         lambda f, c: f["inpaint"](c.unet, c.scheduler, c.x["x0"], c.x["mask"], c.x["prompt_1"], c.x["uncond"],
                                   LOOP_TIMESTEPS, scale=SCALE, generator=c.generator)),
    Call("visual_anagram", ("visual_anagram/one_step",), "unet",
         "Does one step of visual_anagram average the upright estimate with the flipped-back estimate of the "
         "flipped image?",
         lambda f, c: f["visual_anagram"](c.unet, c.scheduler, c.x["xt_690"], 0, c.x["prompt_1"], c.x["prompt_2"],
                                          c.x["uncond"], STEP_TIMESTEPS,
                                          view=(f["flip_upside_down"], f["flip_upside_down"]), scale=SCALE,
                                          generator=c.generator)),
    Call("make_hybrids", ("make_hybrids/one_step",), "unet",
         "Does one step of make_hybrids combine the low frequencies of one guided estimate with the high "
         "frequencies of the other?",
         lambda f, c: f["make_hybrids"](c.unet, c.scheduler, c.x["xt_690"], 0, c.x["prompt_1"], c.x["prompt_2"],
                                        c.x["uncond"], STEP_TIMESTEPS, scale=SCALE, generator=c.generator)),
]
ENTRIES = {name: call for call in CALLS for name in call.outputs}  # entry name → its call
FUNCTIONS = sorted({call.function for call in CALLS} | {"flip_upside_down"})  # what a namespace must define




def call_seeds(seed: int) -> dict[str, int]:
    """The generator seed of each entry: entries of one call share it."""
    return {name: seed * 1000 + i + 1 for i, call in enumerate(CALLS) for name in call.outputs}


def run_call(call: Call, functions: Mapping[str, Callable], inputs, unet, scheduler, seed: int) -> list[torch.Tensor]:
    """Run one call under ``torch.no_grad``; its outputs detached on the CPU (dtype kept), one per entry."""
    with torch.no_grad():
        result = call.run(functions, Context(inputs, unet, scheduler, seed))
    values = result if len(call.outputs) > 1 else (result,)
    if not isinstance(values, (tuple, list)) or len(values) != len(call.outputs):
        raise TypeError(f"{call.function} should return {len(call.outputs)} tensors, but returned "
                        f"{type(result).__name__}.")
    for v in values:
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{call.function} should return a torch.Tensor, but returned a {type(v).__name__}.")
    return [v.detach().to("cpu").contiguous() for v in values]


# ---------------------------------------------------------------------------------------------------
# Files


def write_file(path, tensors: dict[str, torch.Tensor], manifest: dict) -> Path:
    """Save tensors and the JSON manifest (metadata key "manifest") to a safetensors file, readable by all."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"manifest": json.dumps(manifest)})
    path.chmod(0o644)
    return path


def read_file(path, expected_format: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(manifest, tensors) of a bundle or artifacts file; ``ValueError`` with a sentence if it is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"there is no file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            manifest = json.loads((handle.metadata() or {}).get("manifest", "null"))
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:  # safetensors and JSON errors: the file is damaged or not ours
        raise ValueError(f"{path.name} could not be read as a safetensors file ({type(err).__name__}: {err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != expected_format:
        raise ValueError(f"{path.name} is not a {expected_format} file (its manifest is missing or of another kind)")
    return manifest, tensors




