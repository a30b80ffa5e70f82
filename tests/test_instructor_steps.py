"""The README's nbgrader route for instructors, command by command, in a temporary copy of the course with the
Part B notebook: does each command run as written, from ``course/``, with ``course/nbgrader_config.py``?

generate_assignment over an existing release → release_assignment → a student submits the untouched notebook
through the exchange → collect → autograde (no warnings: the notebook is untouched) → generate_feedback."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course.notebooks.build import REPO_ROOT

PART = "partB"
KERNEL_ENV = {"FWD_OFFLINE_MNIST": "1", "FWD_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def nbgrader(cwd: Path, *words: str) -> str:
    """``nbgrader WORDS`` in ``cwd`` as a shell would run it; its output (stdout and stderr). Fails if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("FWD_FAST", "PYTEST_CURRENT_TEST")}
    env.update(KERNEL_ENV, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run(["nbgrader", *words], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"nbgrader {' '.join(words)} failed:\n{output[-3000:]}"
    return output


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if "| WARNING]" in line or "| ERROR]" in line]


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory) -> Path:
    """The repository's course folder (its nbgrader_config.py), solutions/ and assignments/ of Part B."""
    root = tmp_path_factory.mktemp("course-root")
    (root / "course").mkdir()
    shutil.copy(REPO_ROOT / "course" / "nbgrader_config.py", root / "course")
    for folder in ("solutions", "assignments"):
        shutil.copytree(REPO_ROOT / folder / PART, root / folder / PART)
    return root


def edited_copy(released: Path, target: Path) -> str:
    """The released notebook with its first locked test cell emptied, written to ``target``; that cell's id."""
    import nbformat

    nb = nbformat.read(released, as_version=4)
    cell = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "").startswith(
        "test_") and c.metadata["nbgrader"].get("locked"))
    cell.source = "pass  # the student deleted the check"
    target.parent.mkdir(parents=True)
    nbformat.write(nb, target)
    return cell.metadata["nbgrader"]["grade_id"]


@pytest.mark.slow  # several minutes of nbgrader runs; tests/test_nbgrader_roundtrip.py covers the same pipeline by default
def test_the_readme_steps_run_as_written(course_copy):
    root, course = course_copy, course_copy / "course"
    released = root / "assignments" / PART / f"{PART}.ipynb"
    before = released.stat().st_mtime_ns

    # 1. Release: regenerates the existing student notebook (no --force needed)
    output = nbgrader(course, "generate_assignment", PART)
    assert released.stat().st_mtime_ns != before and "Skipping existing assignment" not in output

    # 3. Collect: the exchange lives in the course root; a student submits the untouched notebook through it
    nbgrader(course, "release_assignment", PART)
    student = root / "student"
    shutil.copytree(root / "assignments" / PART, student / PART)
    nbgrader(student, "submit", PART, "--course", "fun-with-diffusion", f"--Exchange.root={root / 'exchange'}")
    output = nbgrader(course, "collect", PART)
    me = getpass.getuser()
    assert (root / "submitted" / me / PART / f"{PART}.ipynb").is_file(), output
    # (another hand-in, put in place by hand, edits a locked test cell: that one must still be reported)
    edited = edited_copy(released, root / "submitted" / "editor" / PART / f"{PART}.ipynb")

    # Autograde: no warning for the untouched notebook (its hidden tests are restored quietly), one for the edit
    output = nbgrader(course, "autograde", PART)
    assert [line for line in warnings_in(output) if edited not in line] == [], warnings_in(output)[:5]
    assert len([line for line in warnings_in(output) if "has changed" in line]) == 1
    assert (root / "autograded" / me / PART / f"{PART}.ipynb").is_file()

    # 4. Return feedback
    nbgrader(course, "generate_feedback", PART)
    assert (root / "feedback" / me / PART / f"{PART}.html").is_file()
