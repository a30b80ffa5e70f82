"""The Part A notebook template: is every graded function asked for once, checked right after, and can
every name its cells use be resolved from the cells above it (without running the notebook)?"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap

from autograder.rubric import rubric
from course.notebooks import partA
from course.notebooks.cells import Check, Code, Markdown, Reflection, Solution

STUDENT_FUNCTIONS = {
    "forward", "estimate_x0", "one_step_denoise", "strided_timesteps", "denoise_step_mean", "iterative_denoise",
    "cfg_noise", "iterative_denoise_cfg", "sdedit", "inpaint", "flip_upside_down", "visual_anagram", "rot90_ccw",
    "rot90_cw", "negate", "lowpass", "highpass", "make_hybrids",
}
BUILTINS = set(dir(builtins))


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name a piece of code binds anywhere: assignments, imports, defs, arguments, loop variables."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _loaded_names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _solution_tree(obj) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(obj)))


def test_every_student_function_is_asked_for_once_and_checked_right_after():
    cells = partA.CELLS
    solutions = [c for c in cells if isinstance(c, Solution)]
    assert sorted(s.grade_id for s in solutions) == sorted(STUDENT_FUNCTIONS)
    for k, cell in enumerate(cells):
        if isinstance(cell, Solution):
            name = cell.grade_id
            check = cells[k + 1]
            assert isinstance(check, Check), f"{name} must be followed by its Check"
            row = rubric("partA").of(name)  # the points, hidden and semantic tests of the rubric
            assert check.grade_id == f"test_{name}" and (check.points, check.hidden_points) == (row.public, row.hidden)
            assert check.semantic_points == row.semantic and bool(check.semantic) == bool(row.semantic)
            assert check.source == f"from fwd_kit.checks import check_{name}\n\ncheck_{name}({name})"
            assert cell.note.startswith(f"{row.points:g} points:")
            assert cell.obj.__module__.startswith("reference."), "a Solution lifts the reference source"


def test_grade_ids_are_unique_and_reflections_have_points():
    ids = [c.grade_id for c in partA.CELLS if isinstance(c, (Solution, Check, Reflection))]
    assert len(ids) == len(set(ids))
    reflections = [c for c in partA.CELLS if isinstance(c, Reflection)]
    assert len(reflections) >= 8 and all(r.points > 0 and r.prompt.strip() for r in reflections)
    assert [(r.grade_id, r.points) for r in reflections] == [(w.grade_id, w.points) for w in rubric("partA").written]


def test_the_first_cell_of_code_is_the_parameters_cell():
    first = next(c for c in partA.CELLS if isinstance(c, Code))
    assert first.tags == ("parameters",)
    assert {"MODEL", "DEVICE", "FAST", "SEED"} <= _bound_names(ast.parse(first.source))


def test_no_provided_cell_defines_a_function_students_write():
    for cell in partA.CELLS:
        if isinstance(cell, Code):
            bound = _bound_names(ast.parse(cell.source))
            assert not bound & STUDENT_FUNCTIONS, f"a provided cell defines {bound & STUDENT_FUNCTIONS}"


def test_every_name_a_cell_uses_is_defined_above_it():
    """Walk the cells in order: a Solution's free names (body, defaults, decorators) and a Code cell's
    names must come from an earlier cell or the builtins. Catches a missing import before any run."""
    defined = set(BUILTINS)
    for k, cell in enumerate(partA.CELLS):
        if isinstance(cell, Solution):
            tree = _solution_tree(cell.obj)
            free = _loaded_names(tree) - _bound_names(tree) - defined
            assert not free, f"{cell.grade_id} uses {sorted(free)}, which no earlier cell defines"
            defined.add(cell.grade_id)
        elif isinstance(cell, (Code, Check)):
            tree = ast.parse(cell.source)
            free = _loaded_names(tree) - _bound_names(tree) - defined
            assert not free, f"cell {k} uses {sorted(free)}, which no earlier cell defines"
            defined |= _bound_names(tree)


def test_the_notebook_opens_with_its_title_and_ends_with_the_artifacts_export():
    assert isinstance(partA.CELLS[0], Markdown) and partA.CELLS[0].text.startswith("# Part A")
    assert isinstance(partA.CELLS[-2], Markdown) and "Artifacts for grading" in partA.CELLS[-2].text
    last = partA.CELLS[-1]
    assert not isinstance(last, Markdown) and "export_artifacts(globals()" in last.source


def test_the_template_builds_into_a_notebook_with_one_answer_cell_per_function():
    from course.notebooks.build import BEGIN, END, build_notebook

    nb = build_notebook(partA.CELLS)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    assert set(answers) == STUDENT_FUNCTIONS
    for name, source in answers.items():
        assert source.count(BEGIN) == 1 and source.count(END) == 1, name
        assert source.index(f"def {name}(") < source.index(BEGIN), "the signature stays visible"
    assert nb.cells[1].metadata.get("tags") == ["parameters"]
