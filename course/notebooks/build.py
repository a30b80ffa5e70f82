"""Build the solution notebooks (nbgrader's source, ``solutions/``) from the templates.

A template (``course/notebooks/partA.py``, ``partB.py``) is a list ``CELLS`` of the cells in
``course.notebooks.cells``. :func:`build_notebook` turns it into an nbformat v4 notebook:

    Markdown    markdown cell, nbgrader read-only (locked)            grade_id md_<index>
    Code        code cell students may edit (tags kept, e.g. "parameters")
    Solution    autograded answer: a comment with its points, then the
                reference source, body between
                ### BEGIN SOLUTION / ### END SOLUTION                 grade_id = the function's name
    Check       autograder test cells, locked, one per block of the
                rubric's points (autograder/rubric.py):
                the visible check call                                grade_id given (test_<name>)
                a comment, then ### BEGIN HIDDEN TESTS / the same
                call with seed=hidden_seed(1) / ### END HIDDEN TESTS  test_<name>_hidden
                a comment, then a hidden semantic check (Part A)      test_<name>_semantic
                (nbgrader strips the hidden blocks on release and restores them at autograde)
    Reflection  read-only question cell, then a manually graded
                markdown answer cell with points                      grade_id given (+ "_question")

The notebook is deterministic — no outputs, no execution counts, cell ids derived from the grade_ids
and the template positions, JSON written by nbformat with sorted keys — so building the same
template twice gives byte-identical files, and ``tests/test_notebooks.py`` can compare the committed
``solutions/`` with a fresh build. Solution sources are lifted with ``inspect.getsource`` from
``reference``, so a change there reaches the notebooks (or that test fails).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.rubric import ANSWER_STUB  # what nbgrader puts in a released written-answer cell
from course.notebooks.cells import Check, Code, Markdown, Reflection, Solution

PARTS = ("partA", "partB")  # one nbgrader assignment per part, one notebook each
REPO_ROOT = Path(__file__).resolve().parents[2]  # the nbgrader course root (holds solutions/, assignments/)
SOURCE_DIR = "solutions"  # nbgrader's source_directory, relative to the course root
RELEASE_DIR = "assignments"  # nbgrader's release_directory
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_IMPORT = "from autograder.hidden import hidden_seed  # the graders' secret inputs, never in the kit"

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


# ---------------------------------------------------------------------------------------------------
# Solution cells: the reference source with the body between the solution markers


def _body_statements(func: ast.FunctionDef) -> list[ast.stmt]:
    """The statements students write: the body without its docstring and, in ``__init__``, without
    everything up to and including ``super().__init__(...)`` (so the stub still builds an nn.Module)."""
    body = list(func.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring stays visible
    if func.name == "__init__":
        for k, stmt in enumerate(body):
            if "super().__init__(" in ast.unparse(stmt):
                body = body[k + 1:]
                break
    return body


def _first_line(stmt: ast.stmt) -> int:
    """1-based first line of a statement, decorators included."""
    return min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])


def _body_start(func: ast.FunctionDef, body: list[ast.stmt], lines: list[str]) -> int:
    """First line of the students' part: the first statement, and the comment lines just above it
    (but below the signature, the docstring and ``super().__init__()``)."""
    kept = [s for s in func.body if s not in body]
    floor = kept[-1].end_lineno if kept else func.lineno  # the last line that stays outside
    start = _first_line(body[0])
    while start - 1 > floor and lines[start - 2].strip().startswith("#"):
        start -= 1
    return start


def solution_source(obj) -> str:
    """The source of a reference function or class with solution markers around what students write.

    A function keeps its decorators, signature and docstring outside the markers; a class keeps its
    docstring and every method signature, with markers around each method's body (``__init__``: after
    ``super().__init__()``). nbgrader's ``generate_assignment`` replaces each marked region with
    ``raise NotImplementedError()``.
    """
    source = textwrap.dedent(inspect.getsource(obj))
    node = ast.parse(source).body[0]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        functions = [node]
    elif isinstance(node, ast.ClassDef):
        functions = [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
    else:
        raise ValueError(f"a Solution must hold a function or a class, but {obj!r} is a {type(node).__name__}.")
    lines = source.rstrip("\n").split("\n")
    spans = []
    for func in functions:
        body = _body_statements(func)
        if body and body[0].lineno == func.lineno:
            raise ValueError(f"{obj.__qualname__}: write the body of {func.name} on its own lines, not after "
                             f"the colon, so that it can be marked as the solution.")
        if body:
            spans.append((_body_start(func, body, lines), body[-1].end_lineno))
    if not spans:
        raise ValueError(f"{obj.__qualname__} has no body for students to write.")
    for start, end in sorted(spans, reverse=True):  # bottom-up, so earlier line numbers stay valid
        first = lines[start - 1]
        indent = first[: len(first) - len(first.lstrip())]
        lines[end:end] = [indent + END]
        lines[start - 1:start - 1] = [indent + BEGIN]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Check cells: the visible call, then the same check on other inputs as nbgrader's hidden tests


def check_calls(source: str) -> list[ast.Call]:
    """The top-level ``check_<name>(...)`` calls of a Check cell's source, in order."""
    calls = []
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func = stmt.value.func
            if isinstance(func, ast.Name) and func.id.startswith("check_"):
                calls.append(stmt.value)
    return calls


def with_seed(call: ast.Call, run: int) -> str:
    """``call`` as source with the keyword ``seed=hidden_seed(<run>)`` (replacing any seed it already has): the
    offering's ``run``-th hidden seed, derived from the instructors' secret (:mod:`autograder.hidden`)."""
    seed = ast.Call(ast.Name("hidden_seed"), [ast.Constant(run)], [])
    keywords = [k for k in call.keywords if k.arg != "seed"] + [ast.keyword("seed", seed)]
    return ast.unparse(ast.Call(call.func, call.args, keywords))


def hidden_tests(source: str, seeds) -> str:
    """nbgrader's hidden-test block: the imports of ``source``, then every check call of it again with
    ``seed=s`` for each seed.

    ``from fwd_kit.checks import check_forward`` / ``check_forward(forward)`` with seeds (1,) gives::

        ### BEGIN HIDDEN TESTS
        from fwd_kit.checks import check_forward
        from autograder.hidden import hidden_seed  # ...
        check_forward(forward, seed=hidden_seed(1))
        ### END HIDDEN TESTS
    """
    calls = check_calls(source)
    if not calls:
        raise ValueError(f"a Check cell with hidden seeds must call a check_<name>(...) at top level, so that "
                         f"the hidden tests can call it again with another seed; its source is:\n{source}")
    imports = [ast.unparse(s) for s in ast.parse(source).body if isinstance(s, (ast.Import, ast.ImportFrom))]
    lines = [*imports, HIDDEN_IMPORT] + [with_seed(call, seed) for seed in seeds for call in calls]
    return "\n".join([BEGIN_HIDDEN, *lines, END_HIDDEN])


def hidden_cell_source(cell: Check, name: str) -> str:
    """The hidden-tests cell: a comment students see, then the hidden block (solution notebook only)."""
    if not cell.hidden_seeds:
        raise ValueError(f"{cell.grade_id}: hidden points need hidden seeds to call the check with.")
    note = (f"Hidden tests of {name} ({_points(cell.hidden_points)}): the check above again, on inputs only the "
            "graders have. They run when your notebook is graded; until then this cell does nothing.")
    return noted(hidden_tests(cell.source, cell.hidden_seeds), note)


def semantic_cell_source(cell: Check, name: str) -> str:
    """The semantic-test cell: a comment students see, then the semantic check, hidden in the release."""
    note = (f"Semantic test of {name} ({_points(cell.semantic_points)}): does a digit drawn with it by the course's "
            "digit model read as its prompt to an MNIST classifier? It runs when your notebook is graded; until then "
            "this cell does nothing.")
    return noted(f"{BEGIN_HIDDEN}\n{cell.semantic.strip()}\n{END_HIDDEN}", note)


def _points(n: float) -> str:
    return f"{n:g} point{'' if n == 1 else 's'}"


def check_cells(cell: Check) -> list[tuple[str, float, str]]:
    """(grade_id, points, source) of each test cell of a Check: the public check, then its hidden tests and
    its semantic test where it has points for them."""
    visible = cell.source.strip("\n")
    if BEGIN_HIDDEN in visible or END_HIDDEN in visible:
        raise ValueError(f"{cell.grade_id}: write only the visible call; the build adds the hidden tests.")
    name = cell.grade_id.removeprefix("test_")
    cells = [(cell.grade_id, cell.points, visible)]
    if cell.hidden_points:
        cells.append((f"{cell.grade_id}_hidden", cell.hidden_points, hidden_cell_source(cell, name)))
    if cell.semantic_points:
        if not cell.semantic.strip():
            raise ValueError(f"{cell.grade_id}: semantic points need the semantic check's source.")
        cells.append((f"{cell.grade_id}_semantic", cell.semantic_points, semantic_cell_source(cell, name)))
    return cells


def noted(source: str, note: str) -> str:
    """``source`` under a comment holding ``note`` (wrapped at 110 columns)."""
    if not note:
        return source
    return "\n".join(textwrap.wrap(note, 110, initial_indent="# ", subsequent_indent="# ")) + "\n" + source


# ---------------------------------------------------------------------------------------------------
# Cells and notebooks


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def build_cells(cell, index: int) -> list:
    """The notebook cell(s) of template cell number ``index`` (a Reflection gives two)."""
    if isinstance(cell, Markdown):
        grade_id = f"md_{index:03d}"
        out = new_markdown_cell(cell.text.strip("\n"), id=grade_id.replace("_", "-"),
                                metadata=_nbgrader(grade_id, grade=False, solution=False, locked=True))
        return [out]
    if isinstance(cell, Code):
        metadata = {"tags": list(cell.tags)} if cell.tags else {}
        return [new_code_cell(cell.source.strip("\n"), id=f"code-{index:03d}", metadata=metadata)]
    if isinstance(cell, Solution):
        gid = cell.grade_id
        return [new_code_cell(noted(solution_source(cell.obj), cell.note), id=gid,
                              metadata=_nbgrader(gid, grade=False, solution=True, locked=False))]
    if isinstance(cell, Check):
        return [new_code_cell(source, id=gid, metadata=_nbgrader(gid, grade=True, solution=False, locked=True,
                                                                 points=points))
                for gid, points, source in check_cells(cell)]
    if isinstance(cell, Reflection):
        qid = f"{cell.grade_id}_question"
        answer = getattr(cell, "answer", "") or ANSWER_STUB
        if answer != ANSWER_STUB:  # a model answer for the instructor; nbgrader clears it on release
            answer = f"{BEGIN}\n{answer.strip()}\n{END}"
        return [
            new_markdown_cell(cell.prompt.strip("\n"), id=qid,
                              metadata=_nbgrader(qid, grade=False, solution=False, locked=True)),
            new_markdown_cell(answer, id=cell.grade_id,
                              metadata=_nbgrader(cell.grade_id, grade=True, solution=True, locked=False,
                                                 points=cell.points)),
        ]
    raise ValueError(f"template cells must be Markdown, Code, Solution, Check or Reflection, but cell {index} "
                     f"is a {type(cell).__name__}.")


def build_notebook(cells) -> nbformat.NotebookNode:
    """An nbformat v4 notebook from template cells: no outputs, python3 kernel, stable cell ids."""
    nb = new_notebook(metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    for index, cell in enumerate(cells):
        nb.cells.extend(build_cells(cell, index))
    ids = [c.id for c in nb.cells]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"every cell needs its own id (grade_id), but these repeat: {duplicates}.")
    nbformat.validate(nb)
    return nb


def notebook_json(nb: nbformat.NotebookNode) -> str:
    """The notebook as nbformat writes it (sorted keys, one-space indent), ending with a newline."""
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def load_template(part: str):
    """The ``CELLS`` of ``course.notebooks.<part>``, or None if that template does not exist yet."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, but got {part!r}.")
    try:
        module = importlib.import_module(f"course.notebooks.{part}")
    except ModuleNotFoundError as err:
        if err.name == f"course.notebooks.{part}":
            return None
        raise
    return module.CELLS


def solution_path(root: str | Path, part: str) -> Path:
    """``<root>/solutions/<part>/<part>.ipynb``."""
    return Path(root) / SOURCE_DIR / part / f"{part}.ipynb"


def write_solutions(root: str | Path = REPO_ROOT, parts=PARTS, log=print) -> list[Path]:
    """Build each part's solution notebook from its template and write it under ``root/solutions``.

    A part whose template module is missing is skipped with a message. Returns the paths written.
    """
    written = []
    for part in parts:
        cells = load_template(part)
        if cells is None:
            log(f"skipping {part}: no template course/notebooks/{part}.py yet")
            continue
        path = solution_path(root, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(notebook_json(build_notebook(cells)), encoding="utf-8")
        written.append(path)
    return written
