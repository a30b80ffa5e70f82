"""Reading submissions (issue 6, item 2): each graded function or class is found by its cell's grade_id or
by what a cell defines — robust to cells moved, split, duplicated or retyped; deleted or renamed ones are
reported; only definitions run (never training, sampling or plotting code); helpers the student wrote in
other cells come along; imports of the grader or of the reference's answers are refused.

Oracles: small notebooks written here, where we know what must be kept, and a rearranged copy of the
Part B solution notebook, which must still score full marks.
"""

from __future__ import annotations

import json
import random

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.catalogue import detect_part, load_assignment
from autograder.grade import grade_submission
from autograder.notebook import SubmissionError, extract, find_notebook, read_notebook
from course.notebooks.build import REPO_ROOT

GRADED = ["forward", "Conv"]


def answer(grade_id: str, source: str):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, "solution": True, "grade": False, "locked": False}
    return cell


def notebook(*cells):
    return new_notebook(cells=list(cells))


def sources(extracted) -> str:
    return "\n".join(c.source for c in extracted.cells)


def test_answer_cells_are_found_by_grade_id_and_only_definitions_are_kept():
    nb = notebook(
        new_markdown_cell("# Part A"),
        answer("forward", "import math\nSCALE = 2\ndef forward(x):\n    return x * SCALE\nprint(forward(3))\n"
                          "for i in range(10**9):\n    pass\n"),
        new_code_cell("unet = load_stage1('DeepFloyd/IF-I-XL-v1.0')\nimages = forward(unet)"),  # a figure cell
    )
    got = extract(nb, GRADED, set())
    assert got.found == {"forward": "forward"} and got.missing == ["Conv"]
    code = sources(got)
    assert "def forward" in code and "SCALE = 2" in code and "import math" in code
    assert "print(" not in code and "range(10**9)" not in code and "load_stage1" not in code
    assert code.splitlines()[2] == "def forward(x):"  # line numbers of the student's cell are kept


def test_moved_duplicated_and_retyped_cells_are_found_and_the_last_definition_wins():
    nb = notebook(
        new_code_cell("class Conv:\n    pass\n"),  # retyped: no metadata at all
        answer("forward", "def forward(x):\n    return 1\n"),
        new_code_cell("def forward(x):\n    return 2\n"),  # a later copy without metadata
    )
    got = extract(nb, GRADED, set())
    assert got.missing == [] and got.found["Conv"] == "Conv (cell 1)" and got.found["forward"] == "forward (cell 3)"
    namespace: dict = {}
    for cell in got.cells:
        exec(cell.source, namespace)
    assert namespace["forward"](0) == 2


def test_a_split_answer_cell_keeps_both_halves_and_helpers_in_other_cells_come_along():
    nb = notebook(
        new_code_cell("import math\ndef scale(x):\n    return helper(x) * 2\ndef helper(x):\n    return x + 1\n"
                      "def unused():\n    pass\nplot(scale(1))\n"),
        answer("forward", "OFFSET = 10\n"),  # first half of a split cell (same grade_id)
        answer("forward", "def forward(x):\n    return scale(x) + OFFSET\n"),
    )
    got = extract(nb, GRADED, set())
    namespace: dict = {}
    for cell in got.cells:
        exec(cell.source, namespace)
    assert namespace["forward"](1) == 14
    assert "unused" not in namespace and "plot(" not in sources(got)


def test_deleted_renamed_and_broken_cells_are_reported_per_function():
    nb = notebook(
        answer("forward", "def forward_v2(x):\n    return x\n"),  # renamed
        answer("Conv", "class Conv(nn.Module)\n    pass\n"),  # a syntax error
    )
    got = extract(nb, GRADED, set())
    assert got.missing == ["forward"]
    assert "syntax error on line 1" in got.problems["Conv"]


def test_a_cell_python_cannot_parse_affects_only_its_own_function():
    nested = "def forward(x):\n    return " + "-" * 200_000 + "x\n"  # MemoryError in the parser
    long_sum = "class Conv:\n    size = 1" + " + 1" * 200_000 + "\n"  # RecursionError building the tree
    for bad in (nested, long_sum):
        nb = notebook(answer("forward", nested if bad is nested else "def forward(x):\n    return x\n"),
                      answer("Conv", long_sum if bad is long_sum else "class Conv:\n    pass\n"))
        got = extract(nb, GRADED, set())
        broken = "forward" if bad is nested else "Conv"
        assert "cannot be parsed" in got.problems[broken] and set(got.problems) == {broken}
        assert got.found.keys() == {"forward", "Conv"}


def test_nbgrader_metadata_that_is_not_a_mapping_affects_only_its_cell(tmp_path):
    nb = notebook(answer("forward", "def forward(x):\n    return x\n"), new_code_cell("class Conv:\n    pass\n"))
    nb.cells[1].metadata["nbgrader"] = "grade_id: Conv"  # a string, not a dict
    path = tmp_path / "meta.ipynb"
    path.write_text(json.dumps(nb))
    got = extract(read_notebook(path), GRADED, set())
    assert got.missing == [] and got.found["forward"] == "forward" and got.found["Conv"] == "Conv (cell 2)"


def test_importing_the_grader_or_the_references_answers_is_refused():
    """The instructors' packages are refused whatever is imported from them (the student's process cannot
    import them either); the kit's helpers are the students' own to use."""
    allowed = {("fwd_kit.sampling", "add_variance")}
    nb = notebook(
        answer("forward", "from reference.denoise import forward as mine\ndef forward(x):\n    return mine(x)\n"),
        answer("Conv", "from fwd_kit.sampling import add_variance\nclass Conv:\n    pass\n"),
    )
    got = extract(nb, GRADED, allowed)
    assert "from reference.denoise import" in got.problems["forward"]
    assert "Conv" not in got.problems
    nb = notebook(answer("Conv", "import autograder.semantic\nclass Conv:\n    pass\n"))
    assert "import autograder.semantic" in extract(nb, GRADED, allowed).problems["Conv"]
    nb = notebook(answer("Conv", "from reference.checks import check_image\nclass Conv:\n    pass\n"))
    assert "from reference.checks import … — moved to fwd_kit.validate" in extract(nb, GRADED, allowed).problems["Conv"]


def test_submission_folders_and_files_that_are_not_notebooks(tmp_path):
    folder = tmp_path / "student"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    nbformat.write(notebook(), folder / "partB.ipynb")
    nbformat.write(notebook(), folder / ".ipynb_checkpoints" / "partB-checkpoint.ipynb")
    assert find_notebook(folder) == folder / "partB.ipynb"
    nbformat.write(notebook(), folder / "scratch.ipynb")
    assert find_notebook(folder, "partB") == folder / "partB.ipynb"
    with pytest.raises(SubmissionError, match="expected one notebook"):
        find_notebook(folder)
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps({"cells": "no"}))
    with pytest.raises(SubmissionError, match="no list of cells"):
        read_notebook(bad)


def test_the_part_is_told_by_the_graded_cells():
    for part in ("partA", "partB"):
        nb = read_notebook(REPO_ROOT / "assignments" / part / f"{part}.ipynb")
        assert detect_part(nb, REPO_ROOT / "x.ipynb") == part
    assignment = load_assignment("partB")
    assert {"Conv", "UnconditionalUNet", "ClassConditionalUNet"} <= assignment.classes
    assert "ddpm_step" in assignment.graded


def test_a_rearranged_solution_still_scores_full_marks(tmp_path):
    """Moved (shuffled order of the answer cells), split (first statement in a cell of its own), retyped
    (metadata dropped), duplicated (an earlier wrong copy) — and a helper function in a new cell."""
    nb = nbformat.read(REPO_ROOT / "solutions" / "partB" / "partB.ipynb", as_version=4)
    answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
    others = [c for c in nb.cells if c not in answers]
    random.Random(0).shuffle(answers)  # classes before the blocks they use is fine: names resolve at call time
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in answers}
    by_id["Conv"].metadata = {}  # retyped
    flow = by_id["flow_target"]
    flow.source = flow.source.replace("return x1 - x0", "return velocity(x0, x1)")
    helper = new_code_cell("def velocity(a, b):\n    return b - a\n")
    wrong_copy = new_code_cell("def interpolate(x0, x1, t):\n    return x0\n")
    split_head = answer("add_noise", "SPLIT_MARKER = 1\n")  # a split cell: both halves keep the grade_id
    cells = [wrong_copy] + answers[:5] + [helper, split_head] + answers[5:] + others
    path = tmp_path / "partB.ipynb"
    nbformat.write(notebook(*cells), path)
    report = grade_submission(path, kinds=("public",))
    failing = {o.test.name: o.output[:300] for o in report.outcomes if o.status != "passed"}
    assert not failing
    assert report.score == report.max_score > 0
