"""The student kit: its stored expectations, its wheel, and the scan that keeps answers out of it.

``course release`` calls :func:`release_kit`: it records what the reference gives on every public check's
inputs (:func:`record_expectations`, seed 0 only — the hidden inputs never leave the instructors),
scans the kit's sources (:func:`scan_kit`) and builds the wheel students install (:func:`build_wheel`).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

import fwd_kit
from autograder.expectations import reference_answer
from fwd_kit import expected

KIT_DIR = Path(fwd_kit.__file__).resolve().parent
KIT_DIST_NAME = "fun-with-diffusion-kit"
INSTRUCTOR_PACKAGES = ("reference", "autograder", "course")  # never importable from the kit


def graded_names() -> tuple[str, ...]:
    from fwd_kit.checks import PART_A, PART_B

    return PART_A + PART_B


def record_expectations(out: str | Path = expected.EXPECTATIONS, log=print) -> Path:
    """Run every public check at seed 0 on the reference's answer, keeping each reference call's result."""
    from fwd_kit.checks import CHECKS
    from fwd_kit.checks.compare import quiet

    with expected.recording() as tape, contextlib.redirect_stdout(io.StringIO()):
        for name in graded_names():
            with quiet():
                CHECKS[name](reference_answer(name))
    manifest = {
        "torch": torch.__version__, "python": platform.python_version(), "device": "cpu", "dtype": "float32",
        "seed": 0, "checks": len(tape), "calls": sum(len(v) for v in tape.values()),
        "fixtures": expected.fingerprint(_fixture_models()),
        "tolerance": "the checks' own (fwd_kit.checks.compare.close); inputs matched within "
                     f"rel {expected.REL_TOL:g} / abs {expected.ABS_TOL:g}",
    }
    path = expected.save(tape, out, manifest)
    path.chmod(0o644)  # safetensors writes 0600; the grader may run as another user
    log(f"kit: stored {manifest['calls']} expected values of {manifest['checks']} public checks in {path}")
    return path


def _fixture_models() -> list:
    from fwd_kit.checks.fixtures import tiny_unet
    from fwd_kit.checks.public_b_generative import sampler_unet

    return [tiny_unet(), sampler_unet("time"), sampler_unet("class")]


# ---------------------------------------------------------------------------------------------------
# What must never be in the kit


def _normalised(node: ast.AST) -> str:
    """A function's body with names, docstrings and argument names abstracted away."""

    class Strip(ast.NodeTransformer):
        def visit_Name(self, n):
            return ast.copy_location(ast.Name(id="_", ctx=n.ctx), n)

        def visit_arg(self, n):
            return ast.copy_location(ast.arg(arg="_"), n)

        def visit_Attribute(self, n):
            self.generic_visit(n)
            return n

    node = ast.parse(textwrap.dedent(ast.unparse(node))).body[0]
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(getattr(s, "value", None), ast.Constant)
                                         and isinstance(s.value.value, str))]
    return ast.dump(Strip().visit(ast.Module(body=body, type_ignores=[])), annotate_fields=False)


def reference_bodies() -> dict[str, str]:
    """Normalised bodies of every graded answer (functions, and each method of graded classes)."""
    bodies = {}
    for name in graded_names():
        tree = ast.parse(textwrap.dedent(inspect.getsource(reference_answer(name))))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                text = _normalised(node)
                if len(text) > 120:  # a one-line body (return x) says nothing about an answer
                    bodies[text] = f"{name}.{node.name}" if node.name != name else name
    return bodies


def scan_kit(root: str | Path = KIT_DIR, secret: str | None = None) -> list[str]:
    """Problems that would make the kit give answers away; [] when clean.

    No ``def``/``class`` of a graded name, no function whose normalised body equals a reference answer's,
    no import of the instructors' packages, no grader-only module, no hidden secret."""
    root = Path(root)
    graded, bodies, problems = set(graded_names()), reference_bodies(), []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        text = path.read_text()
        if secret and secret in text:
            problems.append(f"{rel}: holds the hidden-input secret")
        tree = ast.parse(text)
        for node in tree.body:  # methods may share a graded name (every nn.Module has a forward)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in graded:
                problems.append(f"{rel}:{node.lineno}: defines the graded name {node.name}")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _normalised(node) in bodies:
                problems.append(f"{rel}:{node.lineno}: {node.name} has the body of the answer "
                                f"{bodies[_normalised(node)]}")
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] in INSTRUCTOR_PACKAGES:
                problems.append(f"{rel}:{node.lineno}: imports {node.module}")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in INSTRUCTOR_PACKAGES:
                        problems.append(f"{rel}:{node.lineno}: imports {alias.name}")
    for path in root.rglob("*"):
        if secret and path.is_file() and path.suffix not in (".py",) and path.stat().st_size < 50_000_000 \
                and secret.encode() in path.read_bytes():
            problems.append(f"{path.relative_to(root.parent)}: holds the hidden-input secret")
    return problems


# ---------------------------------------------------------------------------------------------------
# The wheel

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = "The student kit of fun-with-diffusion: provided helpers, the digit model and the public checks."
requires-python = ">=3.10,<3.13"
dependencies = {dependencies}

[tool.setuptools.packages.find]
include = ["fwd_kit*"]

[tool.setuptools.package-data]
fwd_kit = ["digit_model/*", "digit_model/*/*", "data/*"]
"""
KIT_DEPENDENCIES = ["torch>=2.2", "torchvision>=0.17", "diffusers>=0.30,<0.50", "transformers>=4.44,<6",
                    "safetensors>=0.4", "numpy>=1.24", "matplotlib>=3.7", "tqdm>=4.65", "pillow>=9.5",
                    "mlxtend>=0.23", "scikit-image>=0.21"]


def build_wheel(dist: str | Path = "dist", log=print) -> Path:
    """Build the kit's wheel (``fun_with_diffusion_kit-<version>-py3-none-any.whl``) into ``dist``."""
    dist = Path(dist).resolve()
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fwd-kit-") as tmp:
        stage = Path(tmp)
        shutil.copytree(KIT_DIR, stage / "fwd_kit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (stage / "pyproject.toml").write_text(PYPROJECT.format(
            name=KIT_DIST_NAME, version=fwd_kit.__version__, dependencies=repr(KIT_DEPENDENCIES).replace("'", '"')))
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(stage)]
        try:
            import setuptools  # noqa: F401 - present: build without fetching it

            command.insert(4, "--no-build-isolation")
        except ImportError:
            pass
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building the kit's wheel failed:\n{done.stdout}\n{done.stderr}")
    wheel = dist / f"{KIT_DIST_NAME.replace('-', '_')}-{fwd_kit.__version__}-py3-none-any.whl"
    log(f"kit: wrote {wheel}")
    return wheel


def release_kit(dist: str | Path = "dist", record: bool = True, log=print) -> Path:
    """Record the expectations (optional), refuse a kit that gives answers away, build the wheel."""
    if record:
        record_expectations(log=log)
    problems = scan_kit()
    if problems:
        raise RuntimeError("the student kit would give answers away:\n  " + "\n  ".join(problems))
    return build_wheel(dist, log=log)
