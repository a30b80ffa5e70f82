"""Artifacts: what a student's Part A functions computed on their own GPU, judged against a reference bundle.

The grader runs on a CPU and cannot run DeepFloyd IF. Instead, the notebook's last cell runs the
student's functions on the fixed inputs of a bundle (``course bundle``, see :mod:`course.bundle`) on
whatever device and dtype the student's UNet has, and saves the results::

    from fwd_kit.artifacts import export_artifacts
    export_artifacts(globals(), "partA_bundle.safetensors", stage_1.unet, stage_1.scheduler,
                     "partA_artifacts.safetensors")

The grader then calls ``compare_artifacts("partA_artifacts.safetensors", FULL_BUNDLE)``: one result per
entry (passed, largest error, tolerance, a message phrased as a question). Artifacts made with another
model or from other inputs are rejected with a message; a missing or damaged file gives every entry a
message, never an exception. Tolerances are the looser of the bundle's and those of the artifacts'
device and dtype.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is the noisiest timestep.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from fwd_kit.bundle import (
    CALLS,
    FORMAT,
    FUNCTIONS,
    SETTINGS,
    VERSION,
    model_fingerprint,
    model_mismatch,
    read_file,
    run_call,
    tensor_sha256,
    versions,
    write_file,
)

ARTIFACTS_FORMAT = "fun-with-diffusion/partA-artifacts"
MAX_FILE_BYTES = 64 * 2**20  # artifacts of DeepFloyd's 64×64 images take well under 1 MB
MAX_MESSAGE = 600  # characters kept of an error message




def _inputs(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len("input/"):]: v for k, v in tensors.items() if k.startswith("input/")}


def _error_text(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def export_artifacts(namespace: Mapping, bundle_path, unet, scheduler, out_path) -> Path:
    """Run the student's functions (looked up by name in ``namespace``, e.g. ``globals()``) on the bundle's
    inputs and seeds, on ``unet``'s device and dtype, and save their results to ``out_path`` (safetensors).

    The bundle may be the full one or the inputs-only copy students receive. Raises ``ValueError`` when the
    bundle cannot be read or was made with another model (the artifacts would be rejected anyway). A
    function that is missing or raises is recorded in the file (and printed) and the others still run.
    ``scheduler`` is copied, so the notebook's scheduler keeps its timesteps. Returns the path written.
    """
    try:
        manifest, tensors = read_file(bundle_path, FORMAT)
    except ValueError as err:
        raise ValueError(f"The bundle cannot be used: {err}. Download it again from your instructors.") from None
    if manifest.get("version") != VERSION or manifest.get("settings") != SETTINGS:
        raise ValueError(f"The bundle {Path(bundle_path).name} was made for another version of the course "
                         "package: update the package or ask your instructors for a matching bundle.")
    fingerprint = model_fingerprint(unet, scheduler)
    mismatch = model_mismatch(manifest["model"], fingerprint)
    if mismatch is not None:
        raise ValueError(f"The bundle was made with {manifest['model']['id']}, but your UNet is "
                         f"{fingerprint['id']} ({mismatch}): load {manifest['model']['id']} as stage 1 and run again.")
    inputs = _inputs(tensors)
    functions = {name: namespace[name] for name in FUNCTIONS if callable(namespace.get(name))}
    seeds = {name: int(seed) for name, seed in manifest["seeds"].items()}
    outputs, errors = {}, {}
    for call in CALLS:
        needed = [n for n in (call.function, "flip_upside_down" if call.function == "visual_anagram" else None)
                  if n is not None and n not in functions]
        try:
            if needed:
                raise NameError(f"no function named {needed[0]} is defined (the notebook's cell that defines it "
                                "must run before this one)")
            values = run_call(call, functions, inputs, unet, scheduler, seeds[call.outputs[0]])
            outputs.update({f"output/{name}": v for name, v in zip(call.outputs, values)})
        except Exception as err:  # the student's code: record it and go on
            errors.update({name: _error_text(err) for name in call.outputs})
    device, dtype = unet.device.type, str(unet.dtype).replace("torch.", "")
    art_manifest = dict(format=ARTIFACTS_FORMAT, version=VERSION, model=fingerprint, device=device, dtype=dtype,
                        versions=versions(), seeds=seeds, inputs={k: tensor_sha256(v) for k, v in inputs.items()},
                        errors=errors)
    path = write_file(out_path, outputs, art_manifest)
    print(f"Wrote {path}: {len(outputs)} results on {device} in {dtype}"
          + (f"; {len(errors)} entries failed to run:" if errors else "."))
    for name, text in errors.items():
        print(f"  {name}: {text}")
    return path


# ---------------------------------------------------------------------------------------------------
# Comparing








