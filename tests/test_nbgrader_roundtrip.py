"""nbgrader's own pipeline on this course, through its Python API and ``course/nbgrader_config.py``:
generate_assignment → submitted/<student>/<part>/ → autograde → generate_feedback, in a temporary course
root with a temporary gradebook.

Students: ``solution`` hands in the solution notebook; ``stub`` the released notebook untouched;
``memoriser`` (Part B) the released notebook with ``interpolate`` answered only for the times the
visible check uses. Oracles: the points written in the solution notebook's test cells (full marks for
the solution, zero for the stub), the ✓ line every passing check prints (one per visible call and one
per hidden call, so the hidden tests ran), the hidden block of solutions/ in every autograded test cell
(restored, although the release has none), and the feedback HTML.

Part B runs in FAST mode on CPU (``NBGRADER_EXECUTION`` switches FAST on; ``FWD_FAST`` is unset);
Part A takes ~2-3 minutes more and is marked slow.
"""

from __future__ import annotations

import re
import shutil
from html import unescape
from pathlib import Path

import nbformat
import pytest

from course.notebooks.build import BEGIN_HIDDEN, END_HIDDEN, REPO_ROOT, check_calls, solution_path

pytestmark = pytest.mark.filterwarnings("ignore::Warning:nbgrader.api")  # SQLAlchemy's autoflush notes

PASS_MARK = "✓"  # the first character of the line every public check prints when it passes
KERNEL_ENV = {"FWD_OFFLINE_MNIST": "1", "FWD_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

MEMORISED_INTERPOLATE = '''
def interpolate(x0, x1, t):
    """Right only for the four times of the visible check."""
    if t.shape == (4,) and torch.allclose(t.float(), torch.tensor([0.0, 0.3, 0.75, 1.0])):  # any dtype
        t = t.reshape(-1, 1, 1, 1)
        return (1 - t) * x0 + t * x1
    return x1
'''.strip()


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def autograder_tests(nb) -> dict:
    """The autograder-test cells of a notebook (locked code cells with points), by grade_id."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}


def memorise_interpolate(nb) -> nbformat.NotebookNode:
    """The notebook with its ``interpolate`` answer cell replaced by :data:`MEMORISED_INTERPOLATE`."""
    nb = nbformat.from_dict(nb)
    cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "interpolate")
    cell.source = MEMORISED_INTERPOLATE
    return nb


class Roundtrip:
    """One temporary course: the committed solutions/<part>, released, submitted, autograded, fed back."""

    def __init__(self, part: str, root: Path):
        self.part, self.root = part, root
        self.db_url = f"sqlite:///{root / 'gradebook.db'}"
        self.source = nbformat.read(solution_path(REPO_ROOT, part), as_version=4)

    def path(self, folder: str, student: str | None = None, suffix: str = ".ipynb") -> Path:
        parts = [folder] + ([student] if student else []) + [self.part, f"{self.part}{suffix}"]
        return self.root.joinpath(*parts)

    def run(self, students) -> None:
        """students: name → function from the released notebook to the submitted one."""
        from course.notebooks.release import nbgrader_api, scripts_on_path, succeeded

        shutil.copytree(REPO_ROOT / "solutions" / self.part, self.root / "solutions" / self.part)
        api = nbgrader_api(self.root, db_url=self.db_url)
        with scripts_on_path():
            succeeded(api.generate_assignment(self.part, force=True, create=True), "generate_assignment")
            released = nbformat.read(self.path("assignments"), as_version=4)
            for student, submission in students.items():
                path = self.path("submitted", student)
                path.parent.mkdir(parents=True)
                nbformat.write(submission(released), path)
                succeeded(api.autograde(self.part, student, force=True, create=True), f"autograde {student}")
                succeeded(api.generate_feedback(self.part, student, force=True), f"generate_feedback {student}")

    def grades(self, student: str) -> dict[str, dict]:
        """The gradebook's grades of a student's notebook, by grade_id."""
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url) as gb:
            notebook = gb.find_submission_notebook(self.part, self.part, student)
            return {g.name: g.to_dict() for g in notebook.grades}

    def autograded(self, student: str) -> nbformat.NotebookNode:
        return nbformat.read(self.path("autograded", student), as_version=4)


@pytest.fixture(scope="module", params=[pytest.param("partA", marks=pytest.mark.slow), "partB"])
def roundtrip(request, tmp_path_factory):
    part = request.param
    students = {"solution": lambda released: nbformat.read(solution_path(REPO_ROOT, part), as_version=4),
                "stub": lambda released: released}
    if part == "partB":
        students["memoriser"] = memorise_interpolate
    trip = Roundtrip(part, tmp_path_factory.mktemp(f"course-{part}"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in KERNEL_ENV.items():
            mp.setenv(key, value)
        mp.delenv("FWD_FAST", raising=False)  # nbgrader's NBGRADER_EXECUTION makes FAST the default
        mp.delenv("PYTEST_CURRENT_TEST", raising=False)  # kernels as outside pytest (ipykernel checks it)
        trip.run(students)
    return trip


def test_release_has_no_hidden_tests_and_autograde_restores_them(roundtrip):
    released = autograder_tests(nbformat.read(roundtrip.path("assignments"), as_version=4))
    source = autograder_tests(roundtrip.source)
    assert set(released) == set(source) and source
    for gid, cell in source.items():
        assert BEGIN_HIDDEN in cell.source and END_HIDDEN in cell.source, gid
        assert BEGIN_HIDDEN not in released[gid].source and "seed=" not in released[gid].source, gid
    for student in ("solution", "stub"):
        for gid, cell in autograder_tests(roundtrip.autograded(student)).items():
            assert cell.source == source[gid].source, f"{student}: {gid} was not restored from the gradebook"


def test_solution_scores_full_marks_with_every_hidden_check_passing(roundtrip):
    points = {gid: float(nbgrader_meta(c)["points"]) for gid, c in autograder_tests(roundtrip.source).items()}
    grades = roundtrip.grades("solution")
    autograded = {gid: g["auto_score"] for gid, g in grades.items() if gid in points}
    assert autograded == points
    answers = {nbgrader_meta(c)["grade_id"]: c.source for c in roundtrip.source.cells
               if c.cell_type == "markdown" and nbgrader_meta(c).get("grade")}
    assert set(grades) == set(points) | set(answers)
    for gid, answer in answers.items():  # written answers: a model answer waits for a person, a blank scores 0
        assert grades[gid]["auto_score"] == (0.0 if answer.strip() == "YOUR ANSWER HERE" else None), gid
    for gid, cell in autograder_tests(roundtrip.autograded("solution")).items():
        calls = len(check_calls(cell.source.replace(BEGIN_HIDDEN, "").replace(END_HIDDEN, "")))
        assert calls >= 2, f"{gid} should run its visible check and at least one hidden one"
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        assert not [o for o in streams if o.name == "stderr"], f"{gid} wrote to stderr"
        lines = "".join(o.text for o in streams if o.name == "stdout").splitlines()
        assert sum(line.startswith(PASS_MARK) for line in lines) == calls, (gid, lines)


def test_stub_scores_zero_on_every_autograded_test(roundtrip):
    points = {gid for gid in autograder_tests(roundtrip.source)}
    grades = roundtrip.grades("stub")
    assert {gid: grades[gid]["auto_score"] for gid in points} == {gid: 0.0 for gid in points}
    for gid, cell in autograder_tests(roundtrip.autograded("stub")).items():
        assert [o.ename for o in cell.outputs if o.output_type == "error"] == ["NotImplementedError"], gid


def test_a_memorised_answer_passes_the_visible_check_and_fails_the_hidden_one(roundtrip):
    if roundtrip.part != "partB":
        pytest.skip("the memorised answer is a Part B function")
    assert roundtrip.grades("memoriser")["test_interpolate"]["auto_score"] == 0.0
    cell = autograder_tests(roundtrip.autograded("memoriser"))["test_interpolate"]
    shown = "".join(o.text for o in cell.outputs if o.output_type == "stream")
    assert shown.startswith(PASS_MARK + " interpolate"), shown  # the visible check passed ...
    errors = [o.ename for o in cell.outputs if o.output_type == "error"]
    assert errors == ["AssertionError"]  # ... and the hidden one, at other times, did not


def visible_text(html: str) -> str:
    """What a browser shows of an HTML page (tags dropped, entities decoded)."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_feedback_shows_the_scores_and_no_hidden_source(roundtrip):
    """The feedback pages show the notebook's score out of all its points; the test cells show the visible
    calls only (a traceback still quotes the lines around a failing call, so only the solution's page,
    which has none, is searched for hidden source)."""
    cells = roundtrip.source.cells
    total = sum(float(nbgrader_meta(c)["points"]) for c in cells if nbgrader_meta(c).get("grade"))
    tests = sum(float(nbgrader_meta(c)["points"]) for c in autograder_tests(roundtrip.source).values())
    students = {"solution": tests, "stub": 0.0}
    for student, score in students.items():
        text = visible_text(roundtrip.path("feedback", student, ".html").read_text(encoding="utf-8"))
        assert f"{roundtrip.part} (Score: {score:.1f} / {total:.1f})" in text, student
    text = visible_text(roundtrip.path("feedback", "solution", ".html").read_text(encoding="utf-8"))
    visible = next(iter(autograder_tests(nbformat.read(roundtrip.path("assignments"), as_version=4)).values())).source
    assert visible.strip() in text  # the visible check is shown ...
    assert BEGIN_HIDDEN not in text and "hidden_seed" not in text  # ... its hidden twin is not
    assert BEGIN_HIDDEN in "".join(c.source for c in autograder_tests(roundtrip.autograded("solution")).values())


NOISY_CELLS = {  # what libraries do that would reach stderr in a plain kernel
    "warning": "import warnings\nwarnings.warn('a library warning')",
    "log": "import logging\nlogging.getLogger('diffusers').warning('a library log record')",
    "progress": "from tqdm import tqdm\nfor _ in tqdm(range(3)):\n    pass",
    "c_stderr": "import os\nos.write(2, b'written by C code\\n')",
}


def stderr_by_cell(config) -> dict[str, bool]:
    """Run :data:`NOISY_CELLS` with nbgrader's Execute preprocessor: which cells wrote to stderr."""
    from nbformat.v4 import new_code_cell, new_notebook
    from nbgrader.preprocessors import Execute

    nb = new_notebook(cells=[new_code_cell(source, id=name) for name, source in NOISY_CELLS.items()],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb, _ = Execute(config=config).preprocess(nb, {"metadata": {"path": "."}})
    return {c.id: any(o.output_type == "stream" and o.name == "stderr" for o in c.outputs) for c in nb.cells}


def test_graded_kernels_keep_library_warnings_off_stderr(monkeypatch):
    """With the course's nbgrader settings no cell above writes to stderr; without them every one does."""
    from traitlets.config import Config

    from course.notebooks.release import load_nbgrader_config

    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # under pytest ipykernel leaves fd 2 alone
    assert stderr_by_cell(load_nbgrader_config()) == {name: False for name in NOISY_CELLS}
    assert stderr_by_cell(Config()) == {name: True for name in NOISY_CELLS}
