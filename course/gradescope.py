"""The Gradescope autograder: a zip to upload (``course gradescope``) and the grading it runs per submission.

Gradescope builds an Ubuntu image once from the zip (``setup.sh``, run as root with internet access), then
for each submission starts a container from it — by default 0.5 vCPU, 768 MB of memory and a 10-minute
timeout — with this layout (the root is ``/autograder``; ``AUTOGRADER_ROOT`` overrides it for local runs)::

    ROOT/source/          the zip, extracted: setup.sh, run_autograder, gradescope.json, the course wheel
    ROOT/run_autograder   copied from source/ when the image is built; run with ROOT as working folder
    ROOT/submission/      what the student uploaded (one notebook, perhaps among other files)
    ROOT/results/         where results.json must be written (Gradescope's format)

``setup.sh`` makes a virtual environment ``ROOT/venv`` with torch and torchvision built for the CPU (PyTorch's
CPU wheel index, pinned, so pip never pulls the multi-GB CUDA build), then the course wheel and the grader's
extra dependencies. ``run_autograder`` calls ``python -m course.gradescope``, which grades the submission
with ``course grade``'s machinery (:func:`autograder.grade.grade_submission`) under ``gradescope.json``'s
settings. A results file is always written: a provisional one (score 0) before grading starts, which stays
if the container is killed for time or memory; the report when grading ends; a message of its own when the
grader cannot even start (and, from the shell script, when Python itself cannot run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

DEFAULT_ROOT = "/autograder"  # Gradescope's; the environment variable AUTOGRADER_ROOT overrides it
SETTINGS_FILE = "gradescope.json"  # in the zip, beside setup.sh
CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's index of CPU-only wheels
PACKAGE_PATHS = ("pyproject.toml", "README.md", "fwd_kit", "reference", "autograder", "course")  # what the wheel is built from
GRADER_EXTRAS = ("nbformat",)  # the grader imports these; pyproject declares them only in its extras
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info", "build", "dist")
ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # a fixed time stamp: the same inputs give the same zip


@dataclass
class GradescopeSettings:
    """How the uploaded autograder grades; written into the zip as ``gradescope.json``.

    Grading a complete submission takes about 20–40 s on one core (start-up of two processes with torch
    included), so about a minute on Gradescope's 0.5 vCPU.
    """

    part: str | None = None  # "partA" or "partB" (one Gradescope assignment each); None: told by each notebook
    tests: tuple[str, ...] = ("public", "hidden", "semantic")  # kinds of tests run
    memory_mb: int = 512  # address space the student's code may add (Limits.memory_mb): 768 MB in all by default
    call_s: float | None = None  # seconds one call of student code may take; None: Limits' default
    total_s: float = 420.0  # no test starts after this many seconds: results well before the 10-minute timeout
    torch: str | None = None  # the torch version setup.sh installs, CPU build; None: the version installed here
    torchvision: str | None = None  # likewise for torchvision

    def limits(self):
        """The sandbox's :class:`autograder.sandbox.Limits`: its defaults, with this memory and call time."""
        from autograder.sandbox import Limits

        limits = Limits(memory_mb=self.memory_mb)
        if self.call_s:
            limits.call_s = self.call_s
        return limits


def read_settings(path: str | Path) -> GradescopeSettings:
    """The settings stored in the zip (unknown keys are refused: a zip from another version of the course)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    known = {f.name for f in fields(GradescopeSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path} has settings this course package does not know: {', '.join(unknown)}.")
    if data.get("tests") is not None:
        data["tests"] = tuple(data["tests"])
    return GradescopeSettings(**data)


# ---------------------------------------------------------------------------------------------------
# Building the zip


def cpu_version(package: str) -> str:
    """The installed version of ``package`` without its local label ("2.4.1+cu121" → "2.4.1")."""
    from importlib.metadata import version

    return version(package).split("+")[0]


def grader_requirements() -> list[str]:
    """Requirement strings for :data:`GRADER_EXTRAS`, with the versions pyproject.toml gives them."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = [r.split(";")[0].strip() for r in requires("fun-with-diffusion") or []]
    except PackageNotFoundError:
        declared = []
    found = []
    for name in GRADER_EXTRAS:
        specs = [r for r in declared if r.startswith(name) and not r[len(name):len(name) + 1].isalnum()]
        found.append(specs[0] if specs else name)
    return found


def build_wheel(repo_root: str | Path, out_dir: str | Path) -> Path:
    """The course package as a wheel in ``out_dir`` (``pip wheel --no-deps``), built from a copy of the
    working tree so that the checkout gets no build folders."""
    repo_root, out_dir = Path(repo_root), Path(out_dir)
    if not (repo_root / "pyproject.toml").is_file():
        raise ValueError(f"course gradescope builds the package from a checkout of the repository, but "
                         f"{repo_root} has no pyproject.toml. Is the course package installed from a clone?")
    with tempfile.TemporaryDirectory(prefix="fwd-wheel-") as tmp:
        for name in PACKAGE_PATHS:
            source = repo_root / name
            if source.is_dir():
                shutil.copytree(source, Path(tmp, name), ignore=IGNORED)
            elif source.is_file():
                shutil.copy2(source, Path(tmp, name))
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                "-w", str(out_dir), tmp], capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"pip wheel could not build the course package (is setuptools>=68 installed?):\n"
                               f"{built.stderr[-2000:]}")
    wheels = sorted(out_dir.glob("fun_with_diffusion-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip wheel wrote no fun_with_diffusion wheel into {out_dir}.")
    return wheels[-1]


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root and with internet access, when it builds the autograder's image:
# a virtual environment with torch for the CPU, then the course package shipped beside this script.
set -euo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
SOURCE="$ROOT/source"
if ! python3 -m venv "$ROOT/venv"; then  # no python3 yet, or Ubuntu's without its venv module
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv
    rm -rf "$ROOT/venv"
    python3 -m venv "$ROOT/venv"
fi
# libseccomp for the kernel layers that confine students' code (autograder.isolation); where the image
# forbids namespaces the grader says so in its log and uses the next layers (another uid, seccomp, Landlock)
if ! ldconfig -p | grep -q libseccomp.so.2; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libseccomp2 || true
fi
"$ROOT/venv/bin/python" -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 10) <= v <= (3, 12) else
    f"The course needs Python 3.10-3.12, this image has {{sys.version.split()[0]}}: choose another base image.")'
PIP=("$ROOT/venv/bin/python" -m pip install --no-cache-dir)
"${{PIP[@]}}" --upgrade pip
# torch and torchvision built for the CPU only (the default build from PyPI brings CUDA, several GB)
"${{PIP[@]}}" --index-url {index} "torch=={torch}+cpu" "torchvision=={torchvision}+cpu"
# the course package and its dependencies; naming torch again keeps the CPU build in place
"${{PIP[@]}}" "$SOURCE/{wheel}" {extras} "torch=={torch}+cpu" "torchvision=={torchvision}+cpu"
"$ROOT/venv/bin/python" -c 'import torch, autograder.grade, course.gradescope; assert not torch.version.cuda'
# the answers, the hidden checks and the zip's files: for root only (students' code runs as uids 63000+)
SITE="$("$ROOT/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
chmod -R go-rwx "$SITE/reference" "$SITE/autograder" "$SITE/course" "$SOURCE" || true
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission (from ROOT/run_autograder, working folder ROOT): grade the
# notebook in ROOT/submission and write ROOT/results/results.json, whatever happens.
# AUTOGRADER_ROOT overrides ROOT (/autograder); AUTOGRADER_PYTHON the Python that setup.sh installed.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
RESULTS="$ROOT/results/results.json"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CUDA_VISIBLE_DEVICES="" MPLBACKEND=Agg
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export FWD_HIDDEN_SECRET_FILE="$ROOT/source/hidden_secret"  # the offering's hidden inputs (course gradescope)
export FWD_GRADER_EXPECTATIONS="$ROOT/source/grader_expectations.safetensors"  # the reference's results on them
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
"$PYTHON" -m course.gradescope --root "$ROOT"
status=$?
if [ ! -s "$RESULTS" ]; then
    printf '{"score": 0, "tests": [], "output": "%s (exit status %s). Please tell the course staff."}\\n' \\
        "The autograder could not run" "$status" > "$RESULTS"
fi
exit 0
"""


def setup_script(settings: GradescopeSettings, wheel_name: str, extras: list[str]) -> str:
    """``setup.sh`` for a wheel and pinned CPU versions of torch and torchvision."""
    if not (settings.torch and settings.torchvision):
        raise ValueError("setup.sh needs the torch and torchvision versions to pin; fill them in first.")
    quoted = " ".join(f'"{e}"' for e in extras)
    return SETUP_SH.format(index=CPU_INDEX, torch=settings.torch, torchvision=settings.torchvision,
                           wheel=wheel_name, extras=quoted)


def add_file(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    """Add ``name`` with a Unix mode (unzip, as Gradescope uses it, restores the executable bit)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".whl") else zipfile.ZIP_DEFLATED  # a wheel is a zip
    archive.writestr(info, data)


def build_autograder_zip(out: str | Path, settings: GradescopeSettings | None = None,
                         repo_root: str | Path | None = None, secret: str | None = None) -> Path:
    """Write the zip to upload as Gradescope's "Autograder": setup.sh, run_autograder, gradescope.json, the
    course wheel, ``hidden_secret`` (the offering's secret, :mod:`autograder.hidden`: by default the
    instructor's, so that ``course grade`` and Gradescope agree) and ``grader_expectations.safetensors``
    (the reference's results on the public and hidden inputs, :mod:`autograder.expectations`), all at the
    zip's root. Returns its path."""
    from autograder.expectations import cache_path, load_or_build
    from autograder.hidden import ensure_secret
    from course.notebooks.build import REPO_ROOT

    settings = settings or GradescopeSettings()
    if settings.part not in (None, "partA", "partB"):
        raise ValueError(f"part must be partA, partB or None (told by the notebook), but got {settings.part!r}.")
    unknown = [k for k in settings.tests if k not in ("public", "hidden", "semantic")]
    if unknown or not settings.tests:
        raise ValueError(f"tests must be among public, hidden and semantic, but got {', '.join(settings.tests)}.")
    settings.torch = settings.torch or cpu_version("torch")
    settings.torchvision = settings.torchvision or cpu_version("torchvision")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fwd-gradescope-") as tmp:
        wheel = build_wheel(repo_root or REPO_ROOT, tmp)
        with zipfile.ZipFile(out, "w") as archive:
            add_file(archive, "setup.sh", setup_script(settings, wheel.name, grader_requirements()).encode(), True)
            add_file(archive, "run_autograder", RUN_AUTOGRADER.encode(), True)
            add_file(archive, SETTINGS_FILE, (json.dumps(asdict(settings), indent=2) + "\n").encode())
            add_file(archive, wheel.name, wheel.read_bytes())
            secret = secret or ensure_secret(log=print)
            add_file(archive, "hidden_secret", (secret + "\n").encode())
            stored = load_or_build(secret, settings.part, log=print)  # computed here once, not per submission
            if stored is not None:
                add_file(archive, "grader_expectations.safetensors", cache_path(secret, settings.part).read_bytes())
    return out


# ---------------------------------------------------------------------------------------------------
# Grading one submission on Gradescope


def message_results(message: str) -> dict:
    """Gradescope results with no tests and a score of 0: what a student sees when grading could not run."""
    return {"score": 0.0, "output": message, "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def unfinished_message() -> str:
    """What results.json says while grading runs, and keeps if the grader itself is stopped: never a message
    that blames the student (the student's own process is the kernel's first choice when memory runs out,
    and the grader goes on without it)."""
    from autograder import memory

    staff = memory.staff_note()
    return ("Grading did not finish: the autograder itself was stopped before it could write the results. "
            + (staff if staff else "Please tell the course staff.") + " This is not about your code.")


def grade_on_gradescope(root: str | Path, settings: GradescopeSettings) -> Path:
    """Grade ``root/submission`` into ``root/results`` (results.json and feedback.html); returns results.json.

    Never raises for anything the submission does: the report of :func:`autograder.grade.grade_submission`,
    or a report of the grader's own failure, is written; until then a provisional file (score 0) stands."""
    root = Path(root)
    results = root / "results" / "results.json"
    write_json(results, message_results(unfinished_message()))
    begin = time.perf_counter()
    try:
        import autograder.preload  # noqa: F401 - the grader's imports, then frozen (autograder.startup)
        from autograder.grade import grade_submission
        from autograder.reports import crashed_report, write_report, write_with_sandbox_note
    except Exception as err:  # noqa: BLE001 - a broken installation: say so in the results
        write_json(results, message_results(f"The autograder is not installed correctly ({type(err).__name__}: "
                                            f"{err}). Please tell the course staff."))
        return results
    submission = root / "submission"
    try:
        report = grade_submission(submission, settings.part, settings.limits(), settings.tests, settings.total_s,
                                  progress=lambda partial: write_report(partial, results.parent))
    except Exception as err:  # noqa: BLE001 - the grader's own failure, written down like a crash of a batch
        report = crashed_report(submission, settings.part, f"The grader failed on this submission "
                                f"({type(err).__name__}: {err}); please tell the course staff.")
        report.seconds["total"] = round(time.perf_counter() - begin, 2)
    write_with_sandbox_note(report, results.parent)  # with the layers that confined the code
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m course.gradescope [--root ROOT]``: what ``run_autograder`` runs."""
    parser = argparse.ArgumentParser(prog="python -m course.gradescope",
                                     description="Grade ROOT/submission into ROOT/results/results.json.")
    parser.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", DEFAULT_ROOT),
                        help="Gradescope's root folder (default: $AUTOGRADER_ROOT or /autograder)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        settings = read_settings(root / "source" / SETTINGS_FILE)
    except (OSError, ValueError, TypeError) as err:
        write_json(root / "results" / "results.json", message_results(
            f"The autograder's settings could not be read ({err}). Please tell the course staff."))
        return 1
    grade_on_gradescope(root, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
