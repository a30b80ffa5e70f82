"""The notebooks: one source of truth (templates + reference → solutions/ → nbgrader → assignments/),
a grade_id for everything students write, stubs that raise NotImplementedError, and both
notebooks executed end to end on CPU in FAST mode (solution: every check passes; student version:
every check fails with the stub's NotImplementedError).

Oracles: the committed notebooks against a fresh build/release; nbgrader's own ClearSolutions (through
``generate_assignment``) against our markers; the public checks of ``fwd_kit.checks`` run inside
the executed notebooks; ``nbgrader validate`` on both versions.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course.notebooks.build import (
    BEGIN,
    BEGIN_HIDDEN,
    END,
    END_HIDDEN,
    HIDDEN_IMPORT,
    PARTS,
    REPO_ROOT,
    build_notebook,
    load_template,
    notebook_json,
    solution_path,
    solution_source,
    write_solutions,
)
from course.notebooks.cells import Solution

PARTB_GRADED = [  # every class and function Part B students write (spec §3), in notebook order
    "Conv", "DownConv", "UpConv", "Flatten", "Unflatten", "Concat", "ConvBlock", "DownBlock", "UpBlock",
    "FCBlock", "UnconditionalUNet", "add_noise", "denoiser_loss", "pure_noise_loss", "interpolate",
    "flow_target", "TimeConditionalUNet", "time_fm_forward", "time_fm_sample", "ClassConditionalUNet",
    "class_fm_forward", "class_fm_sample", "ddpm_schedule", "ddpm_forward", "ddpm_step", "ddpm_sample",
    "class_ddpm_forward", "class_ddpm_sample",
]
PARTB_REFLECTIONS = {"pure_noise_patterns", "cfg_effect", "no_scheduler"}
CHECKED_THROUGH: dict[str, str] = {}  # solutions without a check of their own → the check that runs them (none now)
KERNEL_ENV = {"FWD_FAST": "1", "FWD_OFFLINE_MNIST": "1", "FWD_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
              "TRANSFORMERS_OFFLINE": "1",
              "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # 1 thread: 2 threads on busy cores are ~50× slower


def existing_parts() -> list[str]:
    return [part for part in PARTS if load_template(part) is not None]


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def solution_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("solution")]


def defined_names(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


# ---------------------------------------------------------------------------------------------------
# The builder on small examples (an analytic oracle: we know where the markers must go)


def example_function(x, y=2):
    """Docstring stays visible."""
    # a comment inside the body
    total = x + y
    return total


class ExampleModule:
    """A class: every method keeps its signature; __init__ keeps super().__init__()."""

    def __init__(self, width):
        super().__init__()
        self.width = width

    def forward(self, x):
        return x * self.width


def test_solution_source_marks_function_body():
    source = solution_source(example_function)
    lines = source.split("\n")
    assert lines[0] == "def example_function(x, y=2):"
    assert lines[1] == '    """Docstring stays visible."""'
    assert lines[2:] == [f"    {BEGIN}", "    # a comment inside the body", "    total = x + y",
                         "    return total", f"    {END}"]


def test_solution_source_marks_each_method_after_super_init():
    source = solution_source(ExampleModule)
    assert source.count(BEGIN) == 2 and source.count(END) == 2
    head, rest = source.split(BEGIN, 1)
    assert head.rstrip().endswith("super().__init__()")  # students keep a valid nn.Module constructor
    assert "def forward(self, x):\n        " + BEGIN in source


def test_build_notebook_is_deterministic_and_has_nbgrader_metadata():
    from course.notebooks.cells import Check, Code, Markdown, Reflection

    visible = "from checks import check_example_function\n\ncheck_example_function(example_function)"
    cells = [Markdown("# Title"), Code("SEED = 0", tags=("parameters",)),
             Solution(example_function, note="5 points: 2 for the check below, 2 for the same check on hidden "
                      "inputs, and 1 for a semantic test."),
             Check("test_example_function", 2, visible, hidden_points=2, semantic="check_sense(example_function)",
                   semantic_points=1),
             Reflection("why", 3, "Why?", answer="Because.")]
    first, second = notebook_json(build_notebook(cells)), notebook_json(build_notebook(cells))
    assert first == second
    nb = nbformat.reads(first, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    md, params, sol, check, hidden, semantic, question, answer = nb.cells
    assert nbgrader_meta(md)["locked"] and not nbgrader_meta(md)["solution"]
    assert params.metadata.tags == ["parameters"] and "nbgrader" not in params.metadata
    assert nbgrader_meta(sol) == {"grade": False, "grade_id": "example_function", "locked": False,
                                  "schema_version": 3, "solution": True, "task": False}
    assert sol.source.startswith("# 5 points: 2 for the check below") and "\ndef example_function(" in sol.source
    # one test cell per block of points, so that nbgrader grades each block as course grade does
    for cell, gid, points in ((check, "test_example_function", 2), (hidden, "test_example_function_hidden", 2),
                              (semantic, "test_example_function_semantic", 1)):
        assert nbgrader_meta(cell) == {"grade": True, "grade_id": gid, "locked": True, "points": points,
                                       "schema_version": 3, "solution": False, "task": False}
    assert check.source == visible  # the public check holds no hidden tests
    comment, block = hidden.source.split(f"\n{BEGIN_HIDDEN}\n")
    assert comment.startswith("# Hidden tests of example_function (2 points)") and "\n# " in comment
    assert block == ("from checks import check_example_function\n"  # the check is imported again
                     f"{HIDDEN_IMPORT}\ncheck_example_function(example_function, seed=hidden_seed(1))\n{END_HIDDEN}")
    comment, block = semantic.source.split(f"\n{BEGIN_HIDDEN}\n")
    assert comment.startswith("# Semantic test of example_function (1 point)")
    assert block == f"check_sense(example_function)\n{END_HIDDEN}"  # all of it hidden in the release
    assert question.cell_type == "markdown" and nbgrader_meta(question)["locked"]
    assert answer.cell_type == "markdown" and nbgrader_meta(answer)["points"] == 3
    assert nbgrader_meta(answer)["grade"] and nbgrader_meta(answer)["solution"]
    assert all(c.get("outputs", []) == [] for c in nb.cells)


def test_hidden_tests_repeat_every_check_call_with_each_hidden_seed():
    from course.notebooks.cells import Check

    source = "from m import check_f, check_g\nx = 1\ncheck_f(f, atol=2)\ncheck_g(g, seed=0)"
    public, hidden = build_notebook([Check("test_f", 1, source, hidden_seeds=(1, 5), hidden_points=1)]).cells
    assert public.source == source
    assert hidden.source.split("\n")[2:] == [BEGIN_HIDDEN, "from m import check_f, check_g", HIDDEN_IMPORT,
                                             "check_f(f, atol=2, seed=hidden_seed(1))", "check_g(g, seed=hidden_seed(1))",
                                             "check_f(f, atol=2, seed=hidden_seed(5))", "check_g(g, seed=hidden_seed(5))",
                                             END_HIDDEN]
    (plain,) = build_notebook([Check("test_f", 1, source)]).cells  # no hidden points: no hidden cell
    assert plain.source == source
    with pytest.raises(ValueError, match="check_<name>"):  # nothing to repeat on other inputs
        build_notebook([Check("test_f", 1, "assert f(1) == 3", hidden_points=1)])
    with pytest.raises(ValueError, match="hidden seeds"):
        build_notebook([Check("test_f", 1, source, hidden_seeds=(), hidden_points=1)])
    with pytest.raises(ValueError, match="only the visible call"):
        build_notebook([Check("test_f", 1, f"check_f(f)\n{BEGIN_HIDDEN}\ncheck_f(f, seed=2)\n{END_HIDDEN}")])


def test_build_rejects_repeated_grade_ids():
    with pytest.raises(ValueError, match="repeat"):
        build_notebook([Solution(example_function), Solution(example_function)])


# ---------------------------------------------------------------------------------------------------
# (a) committed solutions == fresh build; (c) grade_ids and stubs


@pytest.mark.parametrize("part", PARTS)
def test_committed_solutions_equal_a_fresh_build(part):
    """A change to a template or to the reference source must be rebuilt (`course release`)."""
    cells = load_template(part)
    if cells is None:
        pytest.skip(f"no template course/notebooks/{part}.py yet")
    path = solution_path(REPO_ROOT, part)
    assert path.is_file(), f"{path} is missing: run `course release`."
    assert path.read_text(encoding="utf-8") == notebook_json(build_notebook(cells)), (
        f"{path.relative_to(REPO_ROOT)} differs from a fresh build of its template and the reference: "
        "run `course release` and commit solutions/ and assignments/.")


@pytest.mark.parametrize("part", PARTS)
def test_every_solution_cell_is_named_after_what_it_defines(part):
    cells = load_template(part)
    if cells is None:
        pytest.skip(f"no template course/notebooks/{part}.py yet")
    nb = build_notebook(cells)
    grade_ids = [nbgrader_meta(c)["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(grade_ids) == len(set(grade_ids))
    for cell in solution_cells(nb):
        gid = nbgrader_meta(cell)["grade_id"]
        assert defined_names(cell.source) == [gid], f"cell {gid} must define exactly {gid}"
        assert cell.source.count(BEGIN) == cell.source.count(END) >= 1
    for i, cell in enumerate(nb.cells):  # each solution is followed by its public check
        gid = nbgrader_meta(cell).get("grade_id")
        if cell in solution_cells(nb) and gid not in CHECKED_THROUGH:
            follower = nb.cells[i + 1]
            assert nbgrader_meta(follower).get("grade_id") == f"test_{gid}", f"{gid} needs its check right after it"
            assert nbgrader_meta(follower)["points"] >= 1 and nbgrader_meta(follower)["locked"]
        elif gid in CHECKED_THROUGH:  # checked by a later check cell, which must exist
            assert f"test_{CHECKED_THROUGH[gid]}" in grade_ids


def test_partB_asks_for_every_function_class_and_reflection():
    nb = build_notebook(load_template("partB"))
    assert [nbgrader_meta(c)["grade_id"] for c in solution_cells(nb)] == PARTB_GRADED
    answers = {nbgrader_meta(c)["grade_id"] for c in nb.cells
               if c.cell_type == "markdown" and nbgrader_meta(c).get("grade")}
    assert answers == PARTB_REFLECTIONS
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.metadata.get("tags") == ["parameters"]
    assert all(f"\n{name} =" in "\n" + first_code.source for name in ("MODEL", "DEVICE", "FAST", "SEED"))


def stub_bodies(source: str) -> list[list[ast.stmt]]:
    """The bodies students must write in a released cell (docstring and super().__init__() removed)."""
    tree = ast.parse(source).body[0]
    functions = [tree] if isinstance(tree, ast.FunctionDef) else [m for m in tree.body if isinstance(m, ast.FunctionDef)]
    bodies = []
    for func in functions:
        body = [s for s in func.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        body = [s for s in body if "super().__init__(" not in ast.unparse(s)]
        bodies.append(body)
    return bodies


@pytest.mark.parametrize("part", PARTS)
def test_released_stubs_raise_not_implemented(part):
    path = REPO_ROOT / "assignments" / part / f"{part}.ipynb"
    if load_template(part) is None:
        pytest.skip(f"no template course/notebooks/{part}.py yet")
    assert path.is_file(), f"{path} is missing: run `course release`."
    nb = nbformat.read(path, as_version=4)
    solutions = solution_cells(nb)
    assert solutions
    for cell in solutions:
        assert BEGIN not in cell.source and END not in cell.source
        for body in stub_bodies(cell.source):
            assert [ast.unparse(s) for s in body] == ["raise NotImplementedError()"], cell.source
    for cell in nb.cells:  # no model answer leaks into the student version
        if cell.cell_type == "markdown" and nbgrader_meta(cell).get("solution"):
            assert cell.source.strip() == "YOUR ANSWER HERE"
        assert cell.get("outputs", []) == []


@pytest.mark.parametrize("part", PARTS)
def test_hidden_tests_are_in_the_solution_test_cells_only(part):
    """Every public check cell test_<name> is the same in solutions/ and in the release, without hidden tests; its
    twin test_<name>_hidden ends with the hidden block, check_<name>(<name>, seed=hidden_seed(1)), and Part A's
    test_<name>_semantic with a hidden semantic check; released, both are their comment only (nbgrader restores
    the blocks from the gradebook at autograde)."""
    if load_template(part) is None:
        pytest.skip(f"no template course/notebooks/{part}.py yet")
    source = {c.id: c for c in check_cells(nbformat.read(solution_path(REPO_ROOT, part), as_version=4))}
    released = {c.id: c for c in check_cells(nbformat.read(REPO_ROOT / "assignments" / part / f"{part}.ipynb",
                                                           as_version=4))}
    assert source and set(source) == set(released)
    public = [gid for gid in source if not gid.endswith(("_hidden", "_semantic"))]
    for gid in public:
        name = gid.removeprefix("test_")
        assert BEGIN_HIDDEN not in source[gid].source and released[gid].source == source[gid].source, gid
        visible, hidden = source[f"{gid}_hidden"].source.split(f"\n{BEGIN_HIDDEN}\n")
        assert hidden == (f"from fwd_kit.checks import check_{name}\n{HIDDEN_IMPORT}\n"
                          f"check_{name}({name}, seed=hidden_seed(1))\n{END_HIDDEN}"), gid
        assert released[f"{gid}_hidden"].source == visible, f"{gid}_hidden: the released cell must be its comment"
    semantic = [gid for gid in source if gid.endswith("_semantic")]
    assert bool(semantic) == (part == "partA") and set(source) == {*public, *(f"{g}_hidden" for g in public), *semantic}
    for gid in semantic:
        visible, hidden = source[gid].source.split(f"\n{BEGIN_HIDDEN}\n")
        assert hidden.startswith("from autograder.semantic import check_") and hidden.endswith(END_HIDDEN), gid
        assert released[gid].source == visible
    for gid, cell in released.items():
        assert BEGIN_HIDDEN not in cell.source and END_HIDDEN not in cell.source and "seed" not in cell.source, gid
        if gid not in public:  # nothing for students to run: comments only
            assert all(line.startswith("# ") for line in cell.source.splitlines()), gid


# ---------------------------------------------------------------------------------------------------
# (b) the committed assignments/ == a fresh release


def test_release_reproduces_the_committed_assignments(tmp_path):
    from course.notebooks.release import release

    parts = existing_parts()
    write_solutions(tmp_path, parts, log=lambda line: None)
    released = release(tmp_path, tmp_path / "assignments", parts, regenerate=False, log=lambda line: None)
    assert [p.name for p in released] == parts
    for part in parts:
        fresh = {p.relative_to(tmp_path / "assignments"): p for p in (tmp_path / "assignments" / part).rglob("*")
                 if p.is_file()}
        committed = {p.relative_to(REPO_ROOT / "assignments"): p for p in (REPO_ROOT / "assignments" / part).rglob("*")
                     if p.is_file()}
        assert sorted(fresh) == sorted(committed), "run `course release` and commit assignments/"
        for name, path in fresh.items():
            assert path.read_bytes() == committed[name].read_bytes(), (
                f"assignments/{name} differs from a fresh release: run `course release` and commit it.")


# ---------------------------------------------------------------------------------------------------
# (d), (e) executing the Part B notebooks on CPU in FAST mode; (f) nbgrader validate


@pytest.mark.parametrize("part", PARTS)
def test_every_check_cell_calls_an_existing_public_check(part):
    import fwd_kit.checks as public

    cells = load_template(part)
    if cells is None:
        pytest.skip(f"no template course/notebooks/{part}.py yet")
    nb = build_notebook(cells)
    called = set()
    for cell in check_cells(nb):
        tree = ast.parse(cell.source)
        if cell.id.endswith("_semantic"):  # the graders' semantic test (autograder.semantic), hidden in the release
            from autograder.semantic import SEMANTIC

            imports = [a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "autograder.semantic"
                       for a in n.names]
            assert imports == [SEMANTIC[cell.id[len("test_"):-len("_semantic")]].__name__], cell.id
            continue
        imports = [a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "fwd_kit.checks"
                   for a in n.names]
        assert imports, f"{cell.id} must import its check from the student kit, fwd_kit.checks"
        missing = [name for name in imports if not hasattr(public, name)]
        assert not missing, f"{cell.id} imports {missing}, which fwd_kit.checks does not define"
        called.update(imports)
    if part == "partB":  # the checks and the notebook agree on what students write
        assert {f"check_{n}" for n in public.PART_B} == called


def execute(path: Path, workdir: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook top to bottom in a python3 kernel, keeping going after errors."""
    from nbclient import NotebookClient

    for key, value in KERNEL_ENV.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def errors(cell) -> list:
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


def check_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


PARTB_FIGURES = {"noising", "denoiser_loss", "denoiser_epoch1", "denoiser_ood", "pure_noise_epoch1",
                 "pure_noise_vs_mean", "time_fm_loss", "time_fm_epoch1", "class_fm_loss", "class_fm_epoch1",
                 "class_fm_guidance", "class_fm_no_scheduler_epoch1", "time_ddpm_epoch1", "class_ddpm_epoch1"}
EXECUTED_PARTS = ["partA", "partB"]  # FAST, CPU, digit model: Part A ~50 s, Part B ~10 s on a quiet machine


def require_template(part: str) -> None:
    if load_template(part) is None:
        pytest.skip(f"no template course/notebooks/{part}.py yet")


@pytest.mark.parametrize("part", EXECUTED_PARTS)
def test_solution_notebook_runs_and_passes_every_public_check(part, tmp_path, monkeypatch):
    require_template(part)
    nb = execute(solution_path(REPO_ROOT, part), tmp_path, monkeypatch)
    failed = {c.id: f"{e[0].ename}: {e[0].evalue}" for c in nb.cells if c.cell_type == "code" and (e := errors(c))}
    assert failed == {}, f"cells of the {part} solution notebook failed: {failed}"
    for cell in check_cells(nb):
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        assert not [o for o in streams if o.name == "stderr"], f"{cell.id} wrote to stderr (nbgrader scores it 0)"
        assert any(o.name == "stdout" and o.text.strip() for o in streams), f"{cell.id} printed no success line"
    if part == "partB":
        assert PARTB_FIGURES <= {p.stem for p in (tmp_path / "partB_figures_fast").glob("*.png")}


@pytest.mark.slow  # the same run in the student kit's own environment is in the default suite (tests/test_kit.py)
@pytest.mark.parametrize("part", EXECUTED_PARTS)
def test_student_notebook_checks_fail_with_not_implemented(part, tmp_path, monkeypatch):
    require_template(part)
    nb = execute(REPO_ROOT / "assignments" / part / f"{part}.ipynb", tmp_path, monkeypatch)
    for cell in solution_cells(nb):
        assert errors(cell) == [], f"the stub cell {cell.id} itself must run (it only defines {cell.id})"
    names = {}
    for cell in check_cells(nb):
        errs = errors(cell)
        names[cell.id] = errs[0].ename if errs else None
    assert names == {c.id: None if c.id.endswith(("_hidden", "_semantic")) else "NotImplementedError"
                     for c in check_cells(nb)}  # the hidden and semantic cells are comments until grading
    if part == "partB":
        assert {n for n in names if names[n]} == {f"test_{name}" for name in PARTB_GRADED if name not in CHECKED_THROUGH}


def nbgrader_validate(path: Path) -> str:
    env = {**os.environ, **KERNEL_ENV}
    env.pop("FWD_FAST")  # nbgrader's NBGRADER_EXECUTION switches FAST on by itself
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run([sys.executable, "-m", "nbgrader", "validate", str(path)], cwd=REPO_ROOT / "course",
                            env=env, capture_output=True, text=True, timeout=600)
    return result.stdout + result.stderr


@pytest.mark.slow  # ~65 s on 2 busy cores: two more full executions through nbgrader's own CLI
def test_nbgrader_validate_passes_the_solution_and_fails_the_stub(tmp_path):
    import shutil

    for version, source in (("solution", solution_path(REPO_ROOT, "partB")),
                            ("student", REPO_ROOT / "assignments" / "partB" / "partB.ipynb")):
        copy = tmp_path / version / "partB.ipynb"  # validate runs in the notebook's folder: keep figures out
        copy.parent.mkdir()
        shutil.copy(source, copy)
        report = nbgrader_validate(copy)
        if version == "solution":
            assert "Success! Your notebook passes all the tests." in report, report[-3000:]
        else:
            assert "VALIDATION FAILED" in report and "NotImplementedError" in report, report[-3000:]


def test_release_command_rejects_unknown_parts():
    from course.cli import main

    with pytest.raises(SystemExit, match="partC"):
        main(["release", "partC"])
