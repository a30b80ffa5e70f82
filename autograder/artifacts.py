"""Judging a student's Part A artifacts (their functions' outputs on their GPU) against a reference bundle.

The export runs in the student's notebook (:func:`fwd_kit.artifacts.export_artifacts`); here
``compare_artifacts(artifacts_path, full_bundle_path)`` gives one result per entry (passed, largest error,
tolerance, a message phrased as a question). Artifacts made with another model or from other inputs are
rejected with a message; a missing or damaged file gives every entry a message, never an exception.
Tolerances are the looser of the bundle's and those of the artifacts' device and dtype.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is the noisiest timestep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from fwd_kit.artifacts import ARTIFACTS_FORMAT, MAX_FILE_BYTES, MAX_MESSAGE
from fwd_kit.bundle import (
    ENTRIES,
    FORMAT,
    entry_tolerance,
    looser,
    model_mismatch,
    read_file,
)


@dataclass(frozen=True)
class EntryResult:
    """The verdict on one entry of the bundle."""

    name: str  # e.g. "forward/t250"
    passed: bool
    max_error: float | None  # largest |yours − reference|; None when nothing could be compared
    tolerance: dict  # {"rtol", "atol", "max_outside"}: |error| ≤ atol·max|ref| + rtol·|ref|, share allowed outside
    message: str  # starts with the entry's question






# ---------------------------------------------------------------------------------------------------
# Comparing


def _all_failed(names, tolerances: Mapping, message: str) -> list[EntryResult]:
    return [EntryResult(n, False, None, dict(tolerances.get(n, {})), message) for n in names]


def _whole_file_problem(manifest: dict, art: dict, art_path: Path) -> str | None:
    """Why artifacts cannot be compared with this bundle at all, or ``None``."""
    ref_model, their_model = manifest["model"], art.get("model")
    if not isinstance(their_model, dict):
        return f"Was {art_path.name} written by export_artifacts? It has no model description."
    mismatch = model_mismatch(ref_model, their_model)
    if mismatch is not None:
        their_id = str(their_model.get("id"))[:80]
        return (f"Were these artifacts made with the course's model? They were made with {their_id}, "
                f"but the reference with {ref_model['id']} ({mismatch}): run the notebook with {ref_model['id']} "
                "as stage 1 and export again.")
    if art.get("inputs") != manifest["inputs"] or art.get("version") != manifest.get("version"):
        return ("Were these artifacts made from the course's bundle? Their inputs differ from the reference's "
                "(another bundle, or files changed since): export again with the bundle your instructors gave you.")
    if art.get("seeds") != manifest["seeds"]:
        return "Were these artifacts made with the bundle's seeds? They differ: export again without changing them."
    return None


def _compare_entry(name: str, expected: torch.Tensor, actual, art: dict, manifest: dict) -> EntryResult:
    from fwd_kit.checks.compare import difference, format_index, tensor_problem

    spec = manifest["entries"][name]
    question = ENTRIES[name].question if name in ENTRIES else f"Does {name} match the reference?"
    tol = looser(spec["tolerance"], entry_tolerance(spec["kind"], str(art.get("device", "cpu")),
                                                    str(art.get("dtype", "float32"))))
    where = f"(yours on {art.get('device')} in {art.get('dtype')}, the reference on {manifest['device']} in " \
            f"{manifest['dtype']})"
    errors = art.get("errors") if isinstance(art.get("errors"), dict) else {}
    if name in errors:
        hint = ""
        if "generator" in str(errors[name]).lower():
            hint = (" The export passes a CPU generator so that every device draws the same noise: do you draw with "
                    "gaussian_noise(shape, generator, device, dtype), which draws on the generator's device?")
        return EntryResult(name, False, None, tol, f"{question} Your {spec['function']} raised an error when the "
                           f"artifacts were exported {where}: {str(errors[name])[:MAX_MESSAGE]}{hint}")
    if actual is None:
        return EntryResult(name, False, None, tol, f"{question} The artifacts hold no result for {name}: did "
                           "export_artifacts run to the end with the notebook's functions defined?")
    problem = tensor_problem(actual, expected, f"the result of {spec['function']}", check_dtype=False)
    if problem is not None:
        return EntryResult(name, False, None, tol, f"{question} {problem[:1].upper()}{problem[1:]} {where}.")
    diff = difference(actual, expected, tol["rtol"], tol["atol"])
    allowed = math.floor(tol["max_outside"] * diff.numel)
    passed = diff.num_bad <= allowed
    if passed:
        message = f"{question} Yes: the largest difference is {diff.max_abs:.3g} {where}."
    else:
        share = f" (up to {allowed} may, for a loop)" if allowed else ""
        message = (f"{question} {diff.num_bad} of {diff.numel} values differ by more than the tolerance{share}; the "
                   f"largest difference is {diff.max_abs:.3g} at {format_index(diff.where)}: {diff.actual:.4g} "
                   f"instead of {diff.expected:.4g} {where}.")
    return EntryResult(name, passed, diff.max_abs, tol, message)


def compare_artifacts(artifacts_path, bundle_path) -> list[EntryResult]:
    """Judge a student's artifacts against the full reference bundle: one ``EntryResult`` per bundle entry.

    Never raises for a bad artifacts file: a missing, damaged or foreign file, another model or other
    inputs give every entry ``passed=False`` and a message. A bundle that cannot be read (the grader's
    set-up) gives one failed result named "bundle".
    """
    try:
        manifest, ref = read_file(bundle_path, FORMAT)
        if manifest.get("inputs_only") or not any(k.startswith("output/") for k in ref):
            raise ValueError(f"{Path(bundle_path).name} is the students' copy without reference outputs")
        names = list(manifest["entries"])
    except (ValueError, KeyError, TypeError) as err:
        return [EntryResult("bundle", False, None, {}, f"Is the grader set up with the full reference bundle from "
                            f"`course bundle`? It cannot be used: {err}.")]
    tolerances = {n: manifest["entries"][n]["tolerance"] for n in names}
    art_path = Path(artifacts_path)
    if not art_path.is_file():
        return _all_failed(names, tolerances, f"Did you submit the artifacts file? There is no {art_path.name}: run "
                           "the notebook's last cell (export_artifacts) on the GPU and submit the file it writes.")
    if art_path.stat().st_size > MAX_FILE_BYTES:
        return _all_failed(names, tolerances, f"Is {art_path.name} the file export_artifacts wrote? It is "
                           f"{art_path.stat().st_size / 2**20:.0f} MB, far larger than artifacts can be.")
    try:
        art, tensors = read_file(art_path, ARTIFACTS_FORMAT)
    except ValueError as err:
        return _all_failed(names, tolerances, f"Is {art_path.name} the file export_artifacts wrote? It cannot be "
                           f"read: {err}. Run the notebook's last cell again and submit the new file.")
    problem = _whole_file_problem(manifest, art, art_path)
    if problem is not None:
        return _all_failed(names, tolerances, problem)
    return [_compare_entry(n, ref[f"output/{n}"], tensors.get(f"output/{n}"), art, manifest) for n in names]
