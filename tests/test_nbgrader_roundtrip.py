"""nbgrader's own pipeline on this course, through its Python API and ``course/nbgrader_config.py``:
generate_assignment → submitted/<student>/<part>/ → autograde → generate_feedback, in a temporary course
root with a temporary gradebook (``tests/nbgrader_trip.py``, shared with ``tests/test_rubric.py``).

Students: ``solution`` hands in the solution notebook; ``stub`` the released notebook untouched;
``memoriser`` (Part B) the released notebook with ``interpolate`` answered only for the times the
visible check uses. Oracles: the points written in the solution notebook's test cells (full marks for
the solution, zero for the stub), the ✓ line every passing check prints (one per visible call, one per
hidden call and one per semantic check, so the hidden tests ran), the hidden blocks of solutions/ in every
autograded hidden and semantic test cell (restored, although the release has none), and the feedback HTML.

Part B runs in FAST mode on CPU (``NBGRADER_EXECUTION`` switches FAST on; ``FWD_FAST`` is unset);
Part A's stub takes ~1-2 minutes more and is marked slow (its solution is autograded in the default suite by
``tests/test_rubric.py``, on the same course).
"""

from __future__ import annotations

import re
from html import unescape

import nbformat
import pytest

from course.notebooks.build import BEGIN_HIDDEN, END_HIDDEN, REPO_ROOT, check_calls, solution_path

from nbgrader_trip import autograder_tests, nbgrader_meta, the_solution

pytestmark = pytest.mark.filterwarnings("ignore::Warning:nbgrader.api")  # SQLAlchemy's autoflush notes

PASS_MARK = "✓"  # the first character of the line every public check prints when it passes

MEMORISED_INTERPOLATE = '''
def interpolate(x0, x1, t):
    """Right only for the four times of the visible check."""
    if t.shape == (4,) and torch.allclose(t.float(), torch.tensor([0.0, 0.3, 0.75, 1.0])):  # any dtype
        t = t.reshape(-1, 1, 1, 1)
        return (1 - t) * x0 + t * x1
    return x1
'''.strip()


def memorise_interpolate(nb) -> nbformat.NotebookNode:
    """The notebook with its ``interpolate`` answer cell replaced by :data:`MEMORISED_INTERPOLATE`."""
    nb = nbformat.from_dict(nb)
    cell = next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "interpolate")
    cell.source = MEMORISED_INTERPOLATE
    return nb


@pytest.fixture(scope="module", params=[pytest.param("partA", marks=pytest.mark.slow), "partB"])
def roundtrip(request, nbgrader_trips):
    part = request.param
    students = {"solution": the_solution(part), "stub": lambda released: released}
    if part == "partB":
        students["memoriser"] = memorise_interpolate
    return nbgrader_trips(part, students)


def hidden_cells(cells: dict) -> dict:
    """The test cells whose tests are hidden in the release: test_<name>_hidden and test_<name>_semantic."""
    return {gid: c for gid, c in cells.items() if gid.endswith(("_hidden", "_semantic"))}


def test_release_has_no_hidden_tests_and_autograde_restores_them(roundtrip):
    released = autograder_tests(nbformat.read(roundtrip.path("assignments"), as_version=4))
    source = autograder_tests(roundtrip.source)
    assert set(released) == set(source) and source
    for gid, cell in source.items():
        hidden = gid in hidden_cells(source)
        assert (BEGIN_HIDDEN in cell.source and END_HIDDEN in cell.source) == hidden, gid
        assert BEGIN_HIDDEN not in released[gid].source and "seed=" not in released[gid].source, gid
        assert hidden or released[gid].source == cell.source, gid  # a public check is released as it is
    assert {gid.removesuffix("_hidden") for gid in hidden_cells(source) if gid.endswith("_hidden")} == \
        set(source) - set(hidden_cells(source))  # every public check has its hidden twin
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
        assert calls >= 1, f"{gid} should run its check (the visible one, or its hidden or semantic twin)"
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
    grades = roundtrip.grades("memoriser")
    cells = autograder_tests(roundtrip.autograded("memoriser"))
    shown = "".join(o.text for o in cells["test_interpolate"].outputs if o.output_type == "stream")
    assert shown.startswith(PASS_MARK + " interpolate"), shown  # the visible check passed ...
    assert grades["test_interpolate"]["auto_score"] == grades["test_interpolate"]["max_score"] > 0
    errors = [o.ename for o in cells["test_interpolate_hidden"].outputs if o.output_type == "error"]
    assert errors == ["AssertionError"]  # ... and the hidden one, at other times, did not
    assert grades["test_interpolate_hidden"]["auto_score"] == 0.0


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
    assert "autograder.semantic" not in text  # nor the semantic tests
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
