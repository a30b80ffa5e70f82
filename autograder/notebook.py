"""Reading a submission: find the notebook, then the code of every function and class a student writes.

A submission is an ``.ipynb`` file or a folder holding one (as Gradescope and nbgrader deliver it). The
code is looked up by the nbgrader ``grade_id`` of the answer cells (``forward``, ``Conv``, …) and, since
students move, split, duplicate and retype cells (losing their metadata), also by what each code cell
defines: any cell that defines a graded name at its top level counts, and in notebook order the last
definition wins, as when the notebook runs top to bottom.

Only definitions run: from each cell that counts, the grader keeps its imports, ``def``/``class``
statements and assignments, and drops everything else (calls, loops, training, plotting), so that a
figure or a training loop in a solution cell never runs while grading. The assignment's own import lines
(from the trusted released notebook, not from the submission) run first.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
from dataclasses import dataclass, field
from pathlib import Path


from autograder.sandbox import Cell
from fwd_kit.moved import MOVED

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024  # larger files are refused (outputs of a long training run stay far below)
KEPT_STATEMENTS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
                   ast.AnnAssign)
FORBIDDEN_PACKAGES = ("autograder", "reference", "course")  # the instructors' packages: answers, hidden checks
DEF_PATTERN = re.compile(r"^(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)


class SubmissionError(ValueError):
    """The submission cannot be read as a notebook: the message says what was expected."""


@dataclass
class Extracted:
    """The code to run for one submission and what was found or missing."""

    cells: list[Cell]  # in notebook order
    found: dict[str, str]  # graded name → label of the cell that defines it last
    missing: list[str]  # graded names no cell defines
    problems: dict[str, str] = field(default_factory=dict)  # graded name → why its code is refused


def find_notebook(path: str | Path, part: str | None = None) -> Path:
    """The notebook of a submission: ``path`` itself, or the one ``.ipynb`` in the folder ``path``
    (preferring ``<part>.ipynb``, ignoring checkpoints)."""
    path = Path(path)
    if path.is_dir():
        notebooks = sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        if part:
            named = [p for p in notebooks if p.stem == part]
            notebooks = named or notebooks
        if not notebooks:
            raise SubmissionError(f"expected a Jupyter notebook (.ipynb) in the folder {path.name}, but found none")
        if len(notebooks) > 1:
            raise SubmissionError(f"expected one notebook in the folder {path.name}, but found "
                                  f"{', '.join(p.name for p in notebooks[:5])}: submit only the assignment's notebook")
        return notebooks[0]
    if not path.is_file():
        raise SubmissionError(f"expected a notebook file or a folder at {path}, but there is nothing there")
    return path


class Node(dict):
    """A notebook's JSON with attribute access, as nbformat's ``NotebookNode`` (read without importing
    nbformat, whose schema validator costs the grader almost a CPU-second per submission)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def as_node(value, depth: int = 0):
    """``value`` with every dict a :class:`Node` (a version-4 notebook needs no conversion)."""
    if depth > 64:
        raise ValueError("nested too deeply")
    if isinstance(value, dict):
        return Node((k, as_node(v, depth + 1)) for k, v in value.items())
    if isinstance(value, list):
        return [as_node(v, depth + 1) for v in value]
    return value


def _converted(data: dict):
    """A notebook of another format version, converted to version 4 by nbformat."""
    import nbformat

    return nbformat.reads(json.dumps(data), as_version=4)


def read_notebook(path: Path):
    """The notebook at ``path`` (nbformat 4), or :class:`SubmissionError` saying why it is not one."""
    size = path.stat().st_size
    if size == 0:
        raise SubmissionError(f"{path.name} is empty: expected a Jupyter notebook")
    if size > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"{path.name} is {size / 2**20:.0f} MB; expected a notebook under "
                              f"{MAX_NOTEBOOK_BYTES // 2**20} MB (clear large outputs before submitting)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise SubmissionError(f"{path.name} is not a Jupyter notebook: it is not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionError(f"{path.name} is JSON but not a Jupyter notebook: it has no list of cells")
    try:
        nb = as_node(data) if data.get("nbformat") == 4 else _converted(data)
    except Exception as err:  # noqa: BLE001 - nbformat raises several kinds
        raise SubmissionError(f"{path.name} could not be read as a notebook ({type(err).__name__}: {err})") from None
    for cell in nb.cells:  # metadata of the wrong type affects only its cell: it is dropped
        if not isinstance(cell, dict):
            continue
        if isinstance(cell.get("source"), list) and all(isinstance(line, str) for line in cell["source"]):
            cell["source"] = "".join(cell["source"])
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = Node()
        if "nbgrader" in cell.metadata and not isinstance(cell.metadata["nbgrader"], dict):
            del cell.metadata["nbgrader"]
        if not isinstance(cell.get("source"), str):
            cell["source"] = ""
    return nb


PARSE_ERRORS = (SyntaxError, ValueError, MemoryError, RecursionError)  # a cell Python cannot parse


def parse(source: str):
    """The syntax tree of a cell, or the exception that says why it has none (a syntax error, a null
    byte, an expression nested so deeply that the parser gives up)."""
    try:
        return ast.parse(source), None
    except PARSE_ERRORS as err:
        return None, err


def parse_problem(name: str, err: BaseException) -> str:
    if isinstance(err, SyntaxError):
        return f"the cell that defines {name} has a syntax error on line {err.lineno}: {err.msg}"
    return (f"the cell that defines {name} cannot be parsed ({type(err).__name__}: nested too deeply or not "
            "valid source)")


def nbgrader_metadata(cell) -> dict:
    """A cell's nbgrader metadata (empty when missing or not a mapping)."""
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def defined_names(tree: ast.Module) -> list[str]:
    """Names a module's top-level ``def``/``class`` statements and simple assignments define."""
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def lines_of(source: str, nodes) -> str:
    """The original lines of top-level ``nodes`` (decorators included), other lines blank so that line
    numbers in tracebacks match the student's cell."""
    lines = source.splitlines()
    kept: list[str] = []
    for node in nodes:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept += [""] * (start - 1 - len(kept)) + lines[start - 1:node.end_lineno]
    return "\n".join(kept) + "\n"


def kept_source(source: str, tree: ast.Module) -> str:
    """Only the definitions of a cell (imports, def, class, assignments), in their original lines."""
    return lines_of(source, [node for node in tree.body if isinstance(node, KEPT_STATEMENTS)])


def forbidden_import(tree: ast.Module, allowed: set[tuple[str, str]]) -> str | None:
    """An import of the instructors' packages (the reference's answers, the grader), if the cell has one: by an
    import statement, or by a string naming one of them (``importlib.import_module("reference.denoise")``,
    ``__import__``, ``sys.modules[...]``). The student's process cannot import them at run time either.
    A module that moved into the kit (:data:`fwd_kit.moved.MOVED`, a notebook of an earlier release) is
    named with its new home."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.split(".")[0] in FORBIDDEN_PACKAGES and node.value.replace(".", "").isidentifier():
            return f"a reference to {node.value!r} at run time"
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in FORBIDDEN_PACKAGES or (root == "reference" and (alias.name, "*") not in allowed):
                    return f"import {alias.name}{moved_to(alias.name)}"
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_PACKAGES:
                return f"from {node.module} import …{moved_to(node.module)}"
            if root == "reference":
                for alias in node.names:
                    if (node.module, alias.name) not in allowed:
                        return f"from {node.module} import {alias.name}{moved_to(node.module)}"
    return None


def moved_to(module: str) -> str:
    """Where a retired module name went (``" — moved to fwd_kit.loading"``), or ``""``."""
    return f" — moved to {MOVED[module]}" if module in MOVED else ""


def code_cells(notebook):
    """(nbgrader metadata, parsed tree or None on a syntax error) of each code cell, in order."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        yield nbgrader_metadata(cell), parse(cell.source)[0]


def provided_imports(trusted_notebook) -> tuple[list[str], set[tuple[str, str]]]:
    """The import lines of the assignment's own (non-answer, non-test) code cells, and the
    ``(module, name)`` pairs they import from ``reference`` — the helpers students may use."""
    lines, allowed = [], set()
    for meta, tree in code_cells(trusted_notebook):
        if meta.get("solution") or meta.get("grade") or tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FORBIDDEN_PACKAGES:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                lines.append(ast.unparse(node))
                if isinstance(node, ast.ImportFrom) and node.module:
                    allowed |= {(node.module, a.name) for a in node.names}
                elif isinstance(node, ast.Import):
                    allowed |= {(a.name, "*") for a in node.names}
    return lines, allowed


def provided_definitions(trusted_notebook, graded: list[str]) -> dict[str, list[str]]:
    """Definitions the assignment itself makes from students' functions, such as
    ``flip_view = (flip_upside_down, flip_upside_down)`` or a ``def denoise_step`` that calls them (its other
    names come from the provided imports): assignments without any call whose names are all
    graded names, in the trusted notebook's code cells, keyed by the graded name whose cell they follow."""
    provided: dict[str, list[str]] = {}
    last = None
    provided_names = {alias.asname or alias.name for _, tree in code_cells(trusted_notebook) if tree is not None
                      for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    for meta, tree in code_cells(trusted_notebook):
        if meta.get("solution"):
            last = meta.get("grade_id") if meta.get("grade_id") in graded else last
        if meta.get("solution") or meta.get("grade") or tree is None:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and last:  # a provided function built on students' functions
                used = global_names_used(ast.unparse(node)) - set(dir(builtins)) - provided_names
                if used <= set(graded) and used:
                    provided.setdefault(last, []).append(ast.unparse(node))
                continue
            names = [n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)] if isinstance(node, ast.Assign) else []
            calls = any(isinstance(n, ast.Call) for n in ast.walk(node.value)) if isinstance(node, ast.Assign) else True
            if last and names and not calls and set(names) <= set(graded):  # built from students' functions only
                provided.setdefault(last, []).append(ast.unparse(node))
    return provided


def global_names_used(source: str) -> set[str]:
    """Names the functions and classes of ``source`` read as globals (free names, found with ``symtable``)."""
    import symtable

    used: set[str] = set()

    def walk(table) -> None:
        if table.get_type() in ("function", "class"):
            used.update(s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced())
        for child in table.get_children():
            walk(child)

    try:
        walk(symtable.symtable(source, "<cell>", "exec"))
    except PARSE_ERRORS:
        pass
    return used


def helper_source(source: str, tree: ast.Module, wanted: set[str], allowed_imports: set[tuple[str, str]]) -> str:
    """From a cell that is not an answer cell: its imports (not those :func:`forbidden_import` refuses) and
    the ``def``/``class`` statements of ``wanted``."""
    def keep(node) -> bool:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return node.name in wanted
        return isinstance(node, (ast.Import, ast.ImportFrom)) and \
            forbidden_import(ast.Module(body=[node], type_ignores=[]), allowed_imports) is None

    return lines_of(source, [node for node in tree.body if keep(node)])


def extract(nb, graded: list[str], allowed_imports: set[tuple[str, str]],
            provided: dict[str, list[str]] | None = None) -> Extracted:
    """The cells to run for ``graded`` names, in notebook order.

    Answer cells are those whose ``grade_id`` is a graded name (also the halves of a split cell, which keep
    it) and any cell that defines a graded name at its top level (a moved, duplicated or retyped cell).
    Functions and classes they use that the student defined in other cells come along (only those
    ``def``/``class`` statements and that cell's imports). After each answer cell come the ``provided``
    definitions that follow it in the assignment.
    """
    provided = provided or {}
    parsed = []  # (index, grade_id, source, tree or None, syntax error)
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or not isinstance(cell.get("source"), str):
            continue
        grade_id = str(nbgrader_metadata(cell).get("grade_id", ""))
        if grade_id.startswith("test_"):
            continue  # the assignment's check cells: not the student's code
        parsed.append((index, grade_id, cell.source, *parse(cell.source)))

    found, problems, answers = {}, {}, {}
    for index, grade_id, source, tree, err in parsed:
        if tree is None:
            names = [n for n in DEF_PATTERN.findall(source) if n in graded]
            names += [grade_id] if grade_id in graded and grade_id not in names else []
            for name in names:
                found[name] = grade_id or f"cell {index + 1}"
                problems[name] = parse_problem(name, err)
            continue
        names = [n for n in defined_names(tree) if n in graded]
        if not names and grade_id not in graded:
            continue
        label = grade_id if grade_id in graded else f"{names[0]} (cell {index + 1})"
        bad = forbidden_import(tree, allowed_imports)
        for name in names:
            found[name] = label
            problems.pop(name, None)
            if bad:
                problems[name] = (f"the cell that defines {name} imports code the assignment does not provide "
                                  f"({bad}): write {name} yourself")
        answers[index] = Cell(label=label, source=kept_source(source, tree), names=names)

    helpers = {}  # index → the helper definitions taken from a cell that is not an answer cell
    defined = set().union(*(defined_names(parse(c.source)[0] or ast.Module(body=[], type_ignores=[]))
                            for c in answers.values())) if answers else set()
    wanted = set().union(*(global_names_used(c.source) for c in answers.values())) - defined if answers else set()
    while wanted:
        new = set()
        for index, grade_id, source, tree, _ in parsed:
            if tree is None or index in answers:
                continue
            offers = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
            take = (offers & wanted) | (helpers[index][1] if index in helpers else set())
            if take and take != (helpers[index][1] if index in helpers else set()):
                code = helper_source(source, tree, take, allowed_imports)
                helpers[index] = (code, take)
                new |= global_names_used(code)
                defined |= take
        wanted = new - defined
    cells = []
    for index, *_ in parsed:
        if index in helpers:
            cells.append(Cell(label=f"helpers (cell {index + 1})", source=helpers[index][0]))
        if index in answers:
            cells.append(answers[index])
            for name in answers[index].names:
                if provided.get(name):
                    cells.append(Cell(label=f"provided after {name}", source="\n".join(provided[name]) + "\n"))
    return Extracted(cells=cells, found=found, missing=[n for n in graded if n not in found], problems=problems)
