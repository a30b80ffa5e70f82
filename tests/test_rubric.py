"""One rubric everywhere (``autograder/rubric.py``): the notebooks' nbgrader points, nbgrader's autograde,
``course grade`` (and so Gradescope's results.json) and the feedback page take their numbers from it.

The two routes are compared on the solution notebooks: nbgrader's autograde (the session's course of
``tests/nbgrader_trip.py``, shared with ``tests/test_nbgrader_roundtrip.py``) and ``course grade`` (the
report ``tests/test_grade_proof.py`` keeps in ``solution_reports``, or graded here when that module did not
run) give every function the points of its rubric row, test by test, and the same automatic total; the
written answers are on both, for a person to grade.
"""

from __future__ import annotations

import csv
import json

import nbformat
import pytest
from nbgrader_trip import the_solution

from autograder import catalogue
from autograder.catalogue import load_assignment
from autograder.reports import Outcome, Report, feedback_html, write_report, write_summary
from autograder.rubric import ANSWER_STUB, RUBRICS, question_markdown, rubric, written_answers
from course.notebooks.build import REPO_ROOT, solution_path

pytestmark = pytest.mark.filterwarnings("ignore::Warning:nbgrader.api")  # SQLAlchemy's autoflush notes

PARTS = ("partA", "partB")
KINDS = ("public", "hidden", "semantic")


def notebook(part: str, folder: str) -> nbformat.NotebookNode:
    path = solution_path(REPO_ROOT, part) if folder == "solutions" else REPO_ROOT / folder / part / f"{part}.ipynb"
    return nbformat.read(path, as_version=4)


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def expected_cells(part: str) -> dict[str, float]:
    """grade_id → points of every nbgrader grade cell the rubric asks for."""
    table = rubric(part)
    cells = {}
    for g in table.graded:
        cells[f"test_{g.name}"], cells[f"test_{g.name}_hidden"] = g.public, g.hidden
        if g.semantic:
            cells[f"test_{g.name}_semantic"] = g.semantic
    return cells | {w.grade_id: w.points for w in table.written}


def per_function(points: dict[tuple[str, str], float]) -> dict[str, dict[str, float]]:
    """(name, kind) → points, as name → {kind: points} (kinds worth nothing left out)."""
    out: dict[str, dict[str, float]] = {}
    for (name, kind), value in points.items():
        out.setdefault(name, {})[kind] = out.get(name, {}).get(kind, 0.0) + value
    return out


def rubric_points(part: str) -> dict[str, dict[str, float]]:
    return {g.name: {k: getattr(g, k) for k in KINDS if getattr(g, k)} for g in rubric(part).graded}


# ---------------------------------------------------------------------------------------------------
# The rubric and what is built from it (no grading)


@pytest.mark.parametrize("part", PARTS)
def test_the_rubric_lists_every_graded_function_in_notebook_order(part):
    from autograder.semantic import SEMANTIC
    from fwd_kit.checks import PART_A, PART_B

    table = rubric(part)
    assert [g.name for g in table.graded] == load_assignment(part).graded
    assert {g.name for g in table.graded} == set(PART_A if part == "partA" else PART_B)
    assert {g.name for g in table.graded if g.semantic} == (set(SEMANTIC) if part == "partA" else set())
    for g in table.graded:  # the course's split: the hidden check is worth the public one, a semantic test 2
        assert g.public == g.hidden > 0 and g.semantic in (0, 2), g
    assert all(w.points > 0 and w.asks.strip() and w.section for w in table.written)
    names = [g.name for t in RUBRICS.values() for g in t.graded] + [w.grade_id for t in RUBRICS.values()
                                                                      for w in t.written]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("folder", ["solutions", "assignments"])
@pytest.mark.parametrize("part", PARTS)
def test_the_notebooks_carry_the_rubrics_points(part, folder):
    """Every nbgrader grade cell has its rubric points (one cell per public, hidden and semantic block); above
    each answer cell a comment says what its points are made of; each written answer's question its points."""
    nb, table = notebook(part, folder), rubric(part)
    points = {meta(c)["grade_id"]: float(meta(c)["points"]) for c in nb.cells if meta(c).get("grade")}
    assert points == expected_cells(part)
    written = {w.grade_id for w in table.written}
    assert sum(p for gid, p in points.items() if gid not in written) == table.automatic
    assert sum(p for gid, p in points.items() if gid in written) == table.manual
    answers = {meta(c)["grade_id"]: c for c in nb.cells if meta(c).get("solution") and c.cell_type == "code"}
    for g in table.graded:
        lines = answers[g.name].source.splitlines()
        note = lines[:next(k for k, line in enumerate(lines) if not line.startswith("# "))]
        assert " ".join(line.removeprefix("# ") for line in note) == f"{g.split()}.", g.name
    questions = {meta(c)["grade_id"]: c.source for c in nb.cells if meta(c).get("grade_id", "").endswith("_question")}
    for w in table.written:
        assert questions[f"{w.grade_id}_question"] == question_markdown(w)
        assert f"({w.points:g} point" in questions[f"{w.grade_id}_question"] and w.asks in question_markdown(w)


@pytest.mark.parametrize("part", PARTS)
def test_course_grade_takes_every_tests_points_from_the_rubric(part):
    tests = catalogue.tests_for(load_assignment(part), KINDS)
    assert per_function({(t.target, t.kind): t.max_score for t in tests}) == rubric_points(part)
    assert sum(t.max_score for t in tests) == rubric(part).automatic


def test_written_answers_are_read_by_grade_id():
    solution, released = notebook("partB", "solutions"), notebook("partB", "assignments")
    answers = written_answers(solution, "partB")
    assert list(answers) == [w.grade_id for w in rubric("partB").written]
    assert all(text and "### BEGIN SOLUTION" not in text for text in answers.values())  # the model answers
    assert set(written_answers(released, "partB").values()) == {""}  # nbgrader's stub is no answer
    retyped = nbformat.from_dict(released)
    cell = next(c for c in retyped.cells if meta(c).get("grade_id") == "cfg_effect")
    cell.metadata = {}  # metadata lost: found by the cell id
    cell.source = "Guidance sharpens the digits."
    retyped.cells = [c for c in retyped.cells if meta(c).get("grade_id") != "no_scheduler"]  # deleted
    assert written_answers(retyped, "partB") == {"pure_noise_patterns": "", "cfg_effect": cell.source,
                                                 "no_scheduler": ""}
    assert written_answers({"cells": "no"}, "partB") == dict.fromkeys(answers, "")


def test_results_feedback_and_summary_list_every_written_answer(tmp_path):
    """results.json lists each written answer at 0 of 0 points, marked manual with its rubric points (the
    automatic score and total are unchanged); the feedback page shows the question and the answer; summary.csv
    has an empty column per answer for the staff."""
    part, table = "partB", rubric("partB")
    tests = catalogue.tests_for(load_assignment(part), ("public",))
    answers = dict(written_answers(notebook(part, "solutions"), part), cfg_effect="Sharper <b>digits</b> & less variety")
    report = Report("alice.ipynb", part, [Outcome(t, t.max_score, "passed", "✓") for t in tests], "", {},
                    answers)
    results = json.loads(write_report(report, tmp_path).read_text(encoding="utf-8"))
    automatic = [t for t in results["tests"] if not t["extra_data"].get("manual")]
    manual = [t for t in results["tests"] if t["extra_data"].get("manual")]
    assert results["score"] == sum(t["score"] for t in automatic) == report.max_score == results["extra_data"]["max_score"]
    assert [t["extra_data"]["grade_id"] for t in manual] == [w.grade_id for w in table.written]
    for entry, w in zip(manual, table.written):
        assert entry["score"] == entry["max_score"] == 0 and entry["extra_data"]["points"] == w.points
        assert w.asks in entry["output"] and answers[w.grade_id] in entry["output"]
    assert results["extra_data"]["manual_points"] == table.manual
    page = (tmp_path / "feedback.html").read_text(encoding="utf-8")
    assert "Sharper &lt;b&gt;digits&lt;/b&gt; &amp; less variety" in page and "<b>digits" not in page
    assert page.count("<tr class='written'>") == len(table.written)
    blank = Report("bob.ipynb", part, [], "", {}, dict.fromkeys(answers, ""))
    assert "(no answer written)" in feedback_html(blank)
    unread = Report("carol.ipynb", part, [], "not a notebook", {})  # nothing read: nothing listed
    assert unread.results()["tests"] == []
    with open(write_summary([report, blank, unread], tmp_path / "summary.csv"), encoding="utf-8") as f:
        rows = list(csv.reader(f))
    columns = [f"{w.grade_id} (written, /{w.points:g})" for w in table.written]
    assert rows[0][-len(columns):] == columns and all(row[-len(columns):] == [""] * len(columns) for row in rows[1:])
    assert ANSWER_STUB not in page


# ---------------------------------------------------------------------------------------------------
# nbgrader's autograde and course grade of the same notebook


@pytest.mark.parametrize("part", PARTS)
def test_nbgrader_and_course_grade_give_the_solution_the_rubrics_points(part, nbgrader_trips, solution_reports):
    from autograder.grade import grade_submission

    table = rubric(part)
    trip = nbgrader_trips(part, {"solution": the_solution(part)})
    grades = trip.grades("solution")
    kind_of = {f"test_{g.name}{suffix}": (g.name, kind) for g in table.graded
               for suffix, kind in (("", "public"), ("_hidden", "hidden"), ("_semantic", "semantic"))}
    nbgrader = per_function({kind_of[gid]: g["auto_score"] for gid, g in grades.items() if gid in kind_of})
    nbgrader_max = per_function({kind_of[gid]: g["max_score"] for gid, g in grades.items() if gid in kind_of})

    report = solution_reports.get(part)
    if report is None or {o.test.kind for o in report.outcomes} != {k for g in table.graded for k in KINDS
                                                                  if getattr(g, k)}:
        report = grade_submission(solution_path(REPO_ROOT, part), part=part)  # course grade, every kind
    course = per_function({(o.test.target, o.test.kind): o.score for o in report.outcomes})
    course_max = per_function({(o.test.target, o.test.kind): o.test.max_score for o in report.outcomes})

    assert nbgrader_max == course_max == rubric_points(part)  # the same points per function and test ...
    assert nbgrader == course == rubric_points(part)  # ... all of them earned by the solution on both routes
    assert sum(g["auto_score"] for gid, g in grades.items() if gid in kind_of) == report.score == table.automatic
    # the written answers: manually graded cells in nbgrader, manual entries in results.json
    assert {w.grade_id: grades[w.grade_id]["max_score"] for w in table.written} == \
        {w.grade_id: w.points for w in table.written}
    assert set(grades) - set(kind_of) == {w.grade_id for w in table.written}
    manual = [t for t in report.results()["tests"] if t["extra_data"].get("manual")]
    assert [(t["extra_data"]["grade_id"], t["extra_data"]["points"]) for t in manual] == \
        [(w.grade_id, w.points) for w in table.written]
