"""nbgrader's own pipeline on a temporary copy of the course, shared by the tests that read its results.

generate_assignment → submitted/<student>/<part>/ → autograde → generate_feedback, through nbgrader's Python
API and ``course/nbgrader_config.py``, in a temporary course root with a temporary gradebook. One course per
part and per test session (the ``nbgrader_trips`` fixture of ``conftest.py``): each student is autograded once,
whichever module asks first (``tests/test_nbgrader_roundtrip.py``, ``tests/test_rubric.py``).

Part A and Part B run in FAST mode on CPU (``NBGRADER_EXECUTION`` switches FAST on; ``FWD_FAST`` is unset);
Part A with ``FWD_STRIDE=990`` (one step per loop in the notebook's own figures; the checks choose their own
inputs, so every graded cell runs as it does at the course's stride).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from course.notebooks.build import REPO_ROOT, solution_path

KERNEL_ENV = {"FWD_OFFLINE_MNIST": "1", "FWD_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PART_ENV = {"partA": {"FWD_STRIDE": "990"}, "partB": {}}


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def autograder_tests(nb) -> dict:
    """The autograder-test cells of a notebook (locked code cells with points), by grade_id."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}


class Roundtrip:
    """One temporary course: the committed solutions/<part>, released once, then each student's notebook
    submitted, autograded and fed back (once)."""

    def __init__(self, part: str, root: Path):
        self.part, self.root = part, root
        self.db_url = f"sqlite:///{root / 'gradebook.db'}"
        self.source = nbformat.read(solution_path(REPO_ROOT, part), as_version=4)
        self.done: set[str] = set()

    def path(self, folder: str, student: str | None = None, suffix: str = ".ipynb") -> Path:
        parts = [folder] + ([student] if student else []) + [self.part, f"{self.part}{suffix}"]
        return self.root.joinpath(*parts)

    def run(self, students) -> None:
        """students: name → function from the released notebook to the submitted one; those not yet
        autograded are submitted, autograded and fed back."""
        from course.notebooks.release import nbgrader_api, scripts_on_path, succeeded

        todo = {name: make for name, make in students.items() if name not in self.done}
        if not todo:
            return
        api = nbgrader_api(self.root, db_url=self.db_url)
        with scripts_on_path(), pytest.MonkeyPatch.context() as mp:
            for key, value in {**KERNEL_ENV, **PART_ENV[self.part]}.items():
                mp.setenv(key, value)
            mp.delenv("FWD_FAST", raising=False)  # nbgrader's NBGRADER_EXECUTION makes FAST the default
            mp.delenv("PYTEST_CURRENT_TEST", raising=False)  # kernels as outside pytest (ipykernel checks it)
            if not self.path("assignments").is_file():
                shutil.copytree(REPO_ROOT / "solutions" / self.part, self.root / "solutions" / self.part)
                succeeded(api.generate_assignment(self.part, force=True, create=True), "generate_assignment")
            released = nbformat.read(self.path("assignments"), as_version=4)
            for student, submission in todo.items():
                path = self.path("submitted", student)
                path.parent.mkdir(parents=True)
                nbformat.write(submission(released), path)
                succeeded(api.autograde(self.part, student, force=True, create=True), f"autograde {student}")
                succeeded(api.generate_feedback(self.part, student, force=True), f"generate_feedback {student}")
                self.done.add(student)

    def grades(self, student: str) -> dict[str, dict]:
        """The gradebook's grades of a student's notebook, by grade_id."""
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url) as gb:
            notebook = gb.find_submission_notebook(self.part, self.part, student)
            return {g.name: g.to_dict() for g in notebook.grades}

    def autograded(self, student: str) -> nbformat.NotebookNode:
        return nbformat.read(self.path("autograded", student), as_version=4)


def the_solution(part: str):
    """A student who hands in the solution notebook."""
    return lambda released: nbformat.read(solution_path(REPO_ROOT, part), as_version=4)


def trips(tmp_path_factory):
    """``trip(part, students)``: the session's course of ``part`` with ``students`` autograded."""
    courses: dict[str, Roundtrip] = {}

    def trip(part: str, students) -> Roundtrip:
        if part not in courses:
            courses[part] = Roundtrip(part, tmp_path_factory.mktemp(f"course-{part}"))
        courses[part].run(students)
        return courses[part]

    return trip
