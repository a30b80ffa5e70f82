"""The grader's stored reference results: computed once per offering, not once per submission.

Every public check compares a student's output with what the reference computes on the same inputs. The
student kit stores those results for the notebook's inputs (seed 0); the grader also needs them for the
offering's hidden inputs (:mod:`autograder.hidden`). This module records both, once, into a file that
grading then reads in ``fwd_kit.expected``'s *cached* mode — a stored result where the inputs match, the
live reference otherwise — so grading runs the student's code and the comparisons, not the reference.

The file is built by ``course gradescope`` into the zip (``grader_expectations.safetensors``, found through
``FWD_GRADER_EXPECTATIONS``), or by the first ``course grade`` of an offering into
``~/.cache/fun-with-diffusion/`` (one file per part; about 30 s of CPU for Part A, a few for Part B), and rebuilt whenever the checks, the reference, torch
or the secret change (their fingerprint is part of the file's name and manifest).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import io
import os
from pathlib import Path

import torch

from autograder.hidden import HIDDEN_RUN, hidden_seed

CACHE_ENV = "FWD_GRADER_EXPECTATIONS"  # a prebuilt file (the Gradescope zip's), or "live": none
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fun-with-diffusion"
REFERENCE_MODULES = ("denoise", "editing", "illusions", "unet", "denoiser", "flow_matching", "ddpm")


def reference_answer(name: str):
    """The reference's function or class for graded name ``name``."""
    for module in REFERENCE_MODULES:
        obj = getattr(importlib.import_module(f"reference.{module}"), name, None)
        if obj is not None:
            return obj
    raise KeyError(f"no reference answer named {name!r}")


KIT_SOURCES = ("checks/*.py", "expected.py", "tiny.py", "sampling.py", "validate.py", "nets.py", "conditioning.py",
               "schedules.py")  # what the checks and the reference's answers run, in the kit


def sources_fingerprint() -> str:
    """What the stored results depend on: the checks' and the answers' sources, torch's version."""
    import fwd_kit
    import reference

    kit, ref = Path(fwd_kit.__file__).parent, Path(reference.__file__).parent
    paths = sorted({p for pattern in KIT_SOURCES for p in kit.glob(pattern)}) + \
        [ref / f"{module}.py" for module in REFERENCE_MODULES]
    digest = hashlib.sha256(torch.__version__.encode())
    for path in paths:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def part_names(part: str | None) -> tuple[str, ...]:
    """The graded names of ``part`` ("partA", "partB"), or of both for None."""
    from fwd_kit.checks import PART_A, PART_B

    return {"partA": PART_A, "partB": PART_B}.get(part, PART_A + PART_B)


def cache_path(secret: str, part: str | None = None) -> Path:
    """The zip's file (``FWD_GRADER_EXPECTATIONS``, both parts) or the instructor's cache file of ``part``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    tag = hashlib.sha256(f"fwd-offering:{secret}".encode()).hexdigest()[:12]
    return CACHE_DIR / f"grader-expectations-{part or 'all'}-{tag}-{sources_fingerprint()}.safetensors"


def build(secret: str, out: str | Path, part: str | None = None) -> Path:
    """Run the public checks of ``part`` (None: both) on the reference's answers at seed 0 and at the
    hidden seed; store the reference's calls."""
    from fwd_kit import expected
    from fwd_kit.checks import CHECKS
    from fwd_kit.checks.compare import quiet

    seeds = (0, hidden_seed(HIDDEN_RUN, secret))
    with expected.recording(seeds=seeds) as tape, contextlib.redirect_stdout(io.StringIO()):
        for name in part_names(part):
            for seed in seeds:
                with quiet():
                    CHECKS[name](reference_answer(name), seed=seed)
    manifest = {"torch": torch.__version__, "device": "cpu", "dtype": "float32", "sources": sources_fingerprint(),
                "seeds": list(seeds), "part": part, "calls": sum(len(v) for v in tape.values())}
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    expected.save(tape, tmp, manifest)
    os.replace(tmp, out)
    return out


def load_or_build(secret: str, part: str | None = None, log=None) -> dict | None:
    """The grader's stored results for this offering and ``part`` (built the first time, under a lock); None
    when the file cannot be made (grading then computes everything live, as before)."""
    from fwd_kit import expected

    if os.environ.get(CACHE_ENV) == "live":  # benchmarks and debugging: compute every reference call
        return None
    path = cache_path(secret, part)
    try:
        if not path.is_file():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # reference results: the grader's only
            with open(path.with_name(path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait and then read its file
                if not path.is_file():
                    if log is not None:
                        log(f"course: computing the reference's results on the public and hidden inputs of "
                            f"{part or 'both parts'} once, kept in {path}")
                    for stale in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*.safetensors*"):
                        if stale.name != lock.name.rsplit("/", 1)[-1]:  # same offering and part, older sources
                            stale.unlink(missing_ok=True)
                    build(secret, path, part)
                    path.chmod(0o600)
        stored = expected.load(path)
    except (OSError, RuntimeError, ValueError) as err:
        if log is not None:
            log(f"course: no stored reference results ({err}); the checks compute them for every submission")
        return None
    if os.environ.get(CACHE_ENV) is None and stored["manifest"].get("sources") != sources_fingerprint():
        return None
    return stored
