"""Reference bundles for Part A (instructors): the reference run on fixed inputs and seeds, saved to a file.

``build_bundle`` makes the inputs on the CPU from one seed (``make_inputs``), runs the reference on every
entry of the format that :mod:`fwd_kit.bundle` defines (calls, seeds, tolerances, file layout — shared with
the student kit, whose ``export_artifacts`` runs the student's functions on the same inputs), and writes the
bundle; ``write_inputs_only`` is the copy students receive. See :mod:`fwd_kit.bundle` for how inputs, noise
and tolerances stay comparable across devices and dtypes.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is the noisiest timestep.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from fwd_kit.bundle import (  # the format, calls and tolerances, shared with the student kit
    BATCH,
    CALLS,
    ENTRIES,
    FORMAT,
    FORWARD_TS,
    FUNCTIONS,
    SETTINGS,
    STEP_TIMESTEPS,
    VERSION,
    call_seeds,
    entry_tolerance,
    model_fingerprint,
    read_file,
    run_call,
    smooth_image,
    tensor_sha256,
    versions,
    write_file,
)


def make_inputs(size: int, prompt_1: torch.Tensor, prompt_2: torch.Tensor, uncond: torch.Tensor,
                alphas_cumprod: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every input of the bundle, float32 on the CPU, from one CPU generator seeded with ``seed * 1000``.

    x0, x0_hat: smooth images in (-1, 1); noise, eps, x_T: N(0, I); xt_<t> = forward(x0, t, noise) for the
    forward timesteps and 690; mask (1, 1, S, S): 1 on a rectangle to regenerate; the prompt embeddings.
    """
    from reference.denoise import forward

    g = torch.Generator("cpu").manual_seed(seed * 1000)
    shape = (BATCH, 3, size, size)
    inputs = {"x0": smooth_image(g, BATCH, size), "x0_hat": smooth_image(g, BATCH, size),
              "noise": torch.randn(shape, generator=g), "eps": torch.randn(shape, generator=g),
              "x_T": torch.randn(shape, generator=g)}
    for t in (*FORWARD_TS, STEP_TIMESTEPS[0]):
        inputs[f"xt_{t}"] = forward(inputs["x0"], t, alphas_cumprod, noise=inputs["noise"])
    mask = torch.zeros((1, 1, size, size))
    mask[:, :, size // 8:size // 2, size // 4:3 * size // 4] = 1
    inputs["mask"] = mask
    for name, e in (("prompt_1", prompt_1), ("prompt_2", prompt_2), ("uncond", uncond)):
        inputs[name] = e.detach().to("cpu", torch.float32).reshape(1, *e.shape[-2:])
    return {k: v.contiguous() for k, v in inputs.items()}


def reference_functions() -> dict[str, Callable]:
    """The reference implementation of every function in ``FUNCTIONS``."""
    from reference import denoise, editing, illusions

    modules = (denoise, editing, illusions)
    return {name: next(getattr(m, name) for m in modules if hasattr(m, name)) for name in FUNCTIONS}


def build_bundle(unet, scheduler, embeds: Mapping[str, torch.Tensor], prompts: tuple[str, str], out_path,
                 model_id: str | None = None, seed: int = 0) -> Path:
    """Run the reference on the fixed inputs on ``unet``'s device and dtype and write the bundle to ``out_path``.

    embeds: {prompt: (1, 77, W)} holding ``""`` and both ``prompts`` (prompt 1: one-step, CFG, SDEdit,
    inpainting, upright anagram and low-pass hybrid; prompt 2: flipped anagram and high-pass hybrid).
    """
    missing = [p for p in ("", *prompts) if p not in embeds]
    if missing:
        raise ValueError(f"The embeddings have no entry for {missing[0]!r}; they hold {sorted(embeds)[:5]}...")
    inputs = make_inputs(int(unet.config.sample_size), embeds[prompts[0]], embeds[prompts[1]], embeds[""],
                         scheduler.alphas_cumprod, seed)
    device, dtype = unet.device.type, str(unet.dtype).replace("torch.", "")
    seeds, functions, outputs = call_seeds(seed), reference_functions(), {}
    for call in CALLS:
        values = run_call(call, functions, inputs, unet, scheduler, seeds[call.outputs[0]])
        outputs.update({f"output/{name}": v for name, v in zip(call.outputs, values)})
    manifest = dict(format=FORMAT, version=VERSION, model=model_fingerprint(unet, scheduler, model_id), device=device,
                    dtype=dtype, versions=versions(), seed=seed, seeds=seeds, prompts=list(prompts), settings=SETTINGS,
                    inputs={k: tensor_sha256(v) for k, v in inputs.items()},
                    entries={name: dict(function=call.function, kind=call.kind,
                                        tolerance=entry_tolerance(call.kind, device, dtype))
                             for name, call in ENTRIES.items()})
    return write_file(out_path, {**{f"input/{k}": v for k, v in inputs.items()}, **outputs}, manifest)


def write_inputs_only(bundle_path, out_path) -> Path:
    """A copy of the bundle without the reference's outputs: the file students receive."""
    manifest, tensors = read_file(bundle_path, FORMAT)
    return write_file(out_path, {k: v for k, v in tensors.items() if k.startswith("input/")},
                      {**manifest, "inputs_only": True})
