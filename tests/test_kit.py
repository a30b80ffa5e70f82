"""The student kit (``fwd_kit``): what students install holds no answer and no hidden input, and is enough.

- a scan of the kit's sources finds no graded definition, no answer's body, no instructor import, no secret —
  and finds each of them when one is planted;
- the expected values stored in the kit equal a fresh recording with the reference;
- the kit's wheel, installed into a fresh virtual environment *without* the course package, runs the
  student notebooks (every check fails with the stub's "not implemented") and the solution notebooks'
  graded cells (every public check passes, on the stored expectations alone);
- the hidden seeds differ between two offerings' secrets, and so do the hidden inputs.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from course.kit import (
    KIT_DIR,
    build_wheel,
    record_expectations,
    reference_answer,
    scan_kit,
)
from course.notebooks.build import BEGIN_HIDDEN, END_HIDDEN, REPO_ROOT, solution_path
from fwd_kit import expected

KERNEL_ENV = {"FWD_FAST": "1", "FWD_OFFLINE_MNIST": "1", "FWD_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
              "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------------------------------
# What the kit must not hold


def test_the_kit_is_clean():
    assert scan_kit(secret=os.environ["FWD_HIDDEN_SECRET"]) == []


def test_the_scan_finds_each_planted_leak(tmp_path):
    kit = tmp_path / "fwd_kit"
    shutil.copytree(KIT_DIR, kit, ignore=shutil.ignore_patterns("__pycache__", "digit_model", "data"))
    source = textwrap.dedent(inspect.getsource(reference_answer("denoise_step_mean")))
    renamed = source.replace("def denoise_step_mean(", "def mean_of_update(")  # the answer under another name
    (kit / "leak_def.py").write_text(source)
    (kit / "leak_body.py").write_text("import torch\n\nfrom fwd_kit.validate import *\n\n\n" + renamed)
    (kit / "leak_import.py").write_text("def helper():\n    import importlib\n    from reference import denoise\n")
    (kit / "leak_secret.py").write_text('OFFERING = "s3cr3t-of-this-offering"\n')
    problems = "\n".join(scan_kit(kit, secret="s3cr3t-of-this-offering"))
    assert "leak_def.py:" in problems and "defines the graded name denoise_step_mean" in problems
    assert "leak_body.py:" in problems and "mean_of_update has the body of the answer denoise_step_mean" in problems
    assert "leak_import.py:3: imports reference" in problems
    assert "leak_secret.py: holds the hidden-input secret" in problems


def test_stored_expectations_equal_a_fresh_recording(tmp_path):
    fresh = expected.load(record_expectations(tmp_path / "fresh.safetensors", log=lambda *_: None))
    stored = expected.load()
    assert stored["checks"].keys() == fresh["checks"].keys()
    for check, entries in fresh["checks"].items():
        assert [e["label"] for e in entries] == [e["label"] for e in stored["checks"][check]], check
        for new, old in zip(entries, stored["checks"][check]):
            assert expected.same(new["key"], old["key"]), (check, new["label"])
    for key, value in fresh["tensors"].items():  # float32 rounding may differ across thread counts
        torch.testing.assert_close(stored["tensors"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_replay_refuses_hidden_seeds_and_unknown_inputs():
    from fwd_kit.checks import check_forward
    from reference.denoise import forward

    with expected.forced("replay"):
        check_forward(forward)  # the notebook's inputs: stored
        with pytest.raises(expected.HiddenInputsError, match="only the graders"):
            check_forward(forward, seed=3)
        with expected.running("check_forward", 0), pytest.raises(expected.MissingExpectation, match="no expected"):
            expected.reference("denoise").forward(torch.ones(1, 3, 8, 8), 10, torch.linspace(0.9, 0.1, 1000))


def test_hidden_seeds_follow_the_offering_secret():
    from autograder.hidden import hidden_seed
    from fwd_kit.checks.fixtures import derived_seed, picture_inputs

    a, b = hidden_seed(1, "offering-a"), hidden_seed(1, "offering-b")
    assert a != b and a == hidden_seed(1, "offering-a") and min(a, b) >= 1
    assert hidden_seed(2, "offering-a") != a
    assert not torch.equal(picture_inputs(a)["x0"], picture_inputs(b)["x0"])
    assert derived_seed(a) != derived_seed(b)


# ---------------------------------------------------------------------------------------------------
# The kit alone, in a fresh environment


@pytest.fixture(scope="module")
def kit_env(tmp_path_factory):
    """A virtual environment holding the kit's wheel and the third-party libraries, but not the course
    package; and a Jupyter kernel that runs in it. Returns (python, JUPYTER_PATH)."""
    root = tmp_path_factory.mktemp("kit_env")
    wheel = build_wheel(root / "dist", log=lambda *_: None)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # torch, diffusers, ipykernel...: this environment's libraries (a .pth in a plain folder of them does not
    # run their .pth files, so the course package's editable install stays out)
    (site / "_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    kernels = root / "jupyter" / "kernels" / "fwd-kit"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fun-with-diffusion kit", "language": "python"}))
    return python, str(root / "jupyter")


def test_the_kit_environment_cannot_reach_the_instructors_packages(kit_env, tmp_path):
    python, _ = kit_env
    probe = ("import importlib.util as u, fwd_kit, fwd_kit.checks, fwd_kit.loading\n"
             "print(fwd_kit.__file__)\n"
             "print([n for n in ('reference', 'autograder', 'course') if u.find_spec(n) is not None])\n"
             "print(fwd_kit.loading.DIGIT_MODEL.is_dir(), fwd_kit.expected.EXPECTATIONS.is_file())")
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    where, reachable, files = out.stdout.splitlines()
    assert where.startswith(str(python.parent.parent)) and reachable == "[]" and files == "True True"


def run_in_kit(path: Path, kit_env, workdir: Path, monkeypatch, strip_hidden: bool = False):
    """Execute a notebook in the kit's kernel, keeping going after errors."""
    from nbclient import NotebookClient

    _, jupyter_path = kit_env
    for key, value in {**KERNEL_ENV, "JUPYTER_PATH": jupyter_path}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    if strip_hidden:  # what students are given: the visible check calls only
        for cell in nb.cells:
            if cell.cell_type == "code" and BEGIN_HIDDEN in cell.source:
                head, _, rest = cell.source.partition(BEGIN_HIDDEN)
                cell.source = head + rest.partition(END_HIDDEN)[2]
    NotebookClient(nb, timeout=300, kernel_name="fwd-kit", allow_errors=True,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


GRADERS_ONLY = ("_hidden", "_semantic")  # test cells whose tests are hidden: a comment in the release


def notebook_test_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
            and c.metadata["nbgrader"].get("grade_id", "").startswith("test_")]


def graded_checks(nb) -> list:
    """The public check cells (the hidden and semantic test cells hold only comments for students)."""
    return [c for c in notebook_test_cells(nb) if not c.metadata["nbgrader"]["grade_id"].endswith(GRADERS_ONLY)]


def first_error(cell):
    return next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_student_notebook_in_the_kit_fails_every_check_with_not_implemented(part, kit_env, tmp_path, monkeypatch):
    nb = run_in_kit(REPO_ROOT / "assignments" / part / f"{part}.ipynb", kit_env, tmp_path, monkeypatch)
    stubs = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
             and not c.metadata["nbgrader"].get("grade")]
    assert stubs and all(first_error(c) is None for c in stubs)  # a stub cell itself runs: it only defines
    outcome = {c.metadata["nbgrader"]["grade_id"]: (first_error(c).ename if first_error(c) else None)
               for c in graded_checks(nb)}
    assert outcome and set(outcome.values()) == {"NotImplementedError"}, outcome
    hidden = [c for c in notebook_test_cells(nb) if c not in graded_checks(nb)]
    assert hidden and all(first_error(c) is None and not c.outputs for c in hidden)  # nothing runs before grading
    if part == "partB":
        from fwd_kit.checks import PART_B

        assert {f"test_{name}" for name in PART_B} <= set(outcome)


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_solution_graded_cells_pass_every_public_check_with_the_kit_alone(part, kit_env, tmp_path, monkeypatch):
    nb = run_in_kit(solution_path(REPO_ROOT, part), kit_env, tmp_path, monkeypatch, strip_hidden=True)
    failed = {c.id: f"{e.ename}: {e.evalue}"[:300] for c in nb.cells if c.cell_type == "code" and (e := first_error(c))}
    assert failed == {}
    for cell in graded_checks(nb):
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
        assert text.startswith("\u2713"), (cell.id, text)


# ---------------------------------------------------------------------------------------------------
# Answers reached at run time score zero


REACHES = {  # graded name → an answer that fetches the reference's instead of computing (Part B)
    "add_noise": '''
import importlib
def add_noise(x, sigma, noise=None, generator=None):
    return importlib.import_module("ref" + "erence.denoiser").add_noise(x, sigma, noise=noise, generator=generator)
''',
    "interpolate": '''
def interpolate(x0, x1, t):
    return __import__("".join(["refer", "ence.flow_matching"]), fromlist=["x"]).interpolate(x0, x1, t)
''',
    "flow_target": '''
import sys
def flow_target(x0, x1):
    return sys.modules["reference.flow_matching".strip()].flow_target(x0, x1)
''',
    "pure_noise_loss": '''
def pure_noise_loss(unet, x, generator=None):
    helper_globals = denoise.__globals__  # the provided helper's module: the kit's, not the reference's
    return helper_globals["sys"].modules["reference.denoiser"].pure_noise_loss(unet, x, generator=generator)
''',
    "denoiser_loss": '''
from reference.denoiser import denoiser_loss as _theirs
def denoiser_loss(unet, x, sigma=0.5, generator=None):
    return _theirs(unet, x, sigma, generator)
''',
}


def test_answers_that_reach_the_instructors_packages_score_zero(tmp_path):
    from submission_kit import Rewrite, Submission, broken_by

    from autograder.grade import grade_submission

    submission = Submission("partB", tuple(Rewrite(name, "reaches the reference", source)
                                           for name, source in REACHES.items()))
    report = grade_submission(submission.write(tmp_path), kinds=("public",))
    by_name = {o.test.name.split(":")[0]: o for o in report.outcomes}
    for name in REACHES:
        assert by_name[name].score == 0, (name, by_name[name].output)
    assert "cannot import" in by_name["add_noise"].output and "instructors" in by_name["add_noise"].output
    assert "does not provide" in by_name["denoiser_loss"].output  # refused before it runs
    affected = set().union(*(broken_by("partB", name) for name in REACHES))  # they and their callers
    untouched = [o for n, o in by_name.items() if n not in affected]
    assert untouched and all(o.score == o.test.max_score for o in untouched)
