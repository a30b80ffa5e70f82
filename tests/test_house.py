"""The house rules a newcomer relies on when reading the code (issue 25): does every module have one name, do
the layers point one way, and is every room of the grader small enough to read at once?

Layers, from the ground up: ``fwd_kit`` (the student kit) ← ``reference`` (the answers) ← ``autograder``
(grading) ← ``course`` (the instructor's CLI) ← ``bench``. Every check reads the sources with :mod:`ast`, so
an import inside a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from fwd_kit.moved import MOVED, MovedModules

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("fwd_kit", "reference", "autograder", "course", "bench")  # each may import only those before it
PACKAGES = LAYERS + ("tests",)
MAX_LINES = 400  # the grader's rooms: a module read at once (the house style aims at about 350)


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def imported_roots(path: Path) -> dict[str, int]:
    """The top-level package of every absolute import in ``path`` → the line of its first import."""
    roots: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            roots.setdefault(name.split(".")[0], node.lineno)
    return roots


def replaces_itself(path: Path) -> list[int]:
    """Lines of ``sys.modules[__name__] = ...`` in ``path``: a module that makes its name an alias of another."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "sys.modules" \
                        and ast.unparse(target.slice) == "__name__":
                    lines.append(node.lineno)
    return lines


def test_no_module_is_an_alias_of_another():
    aliases = [f"{p.relative_to(ROOT)}:{line}" for p in sources(*PACKAGES) for line in replaces_itself(p)]
    assert aliases == [], f"modules that replace themselves in sys.modules (import the real module instead): {aliases}"


def test_layers_point_one_way():
    """No layer imports one above it; in particular no module of autograder/ imports course."""
    upward = []
    for level, layer in enumerate(LAYERS):
        above = set(LAYERS[level + 1:])
        for path in sources(layer):
            upward += [f"{path.relative_to(ROOT)}:{line} imports {root}"
                       for root, line in imported_roots(path).items() if root in above]
    assert upward == [], "a lower layer imports a higher one (move what both need down): " + "; ".join(upward)


def test_every_room_of_the_grader_reads_at_once():
    """No module of autograder/ or of the student's side of grading (fwd_kit/grading/) is over 400 lines."""
    long = {str(p.relative_to(ROOT)): n for p in sources("autograder", "fwd_kit/grading")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines (split them by what they do): {long}"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_name_says_where_it_moved(old):
    """Each retired name has no file left, its new module imports, and importing the old name (either way)
    raises an ImportError that names the new one."""
    new = MOVED[old]
    assert not (ROOT / (old.replace(".", "/") + ".py")).exists(), f"{old} is back as a file"
    importlib.import_module(new)
    with pytest.raises(ImportError, match=f"{old} moved to {new}"):
        importlib.import_module(old)
    package, name = old.rsplit(".", 1)
    with pytest.raises(ImportError, match=f"moved to {new}"):
        exec(f"from {package} import {name}", {})  # noqa: S102 - the form a notebook would use


def test_the_moved_names_finder_is_installed_once():
    import autograder  # noqa: F401 - both packages install it
    import reference  # noqa: F401

    assert sum(isinstance(finder, MovedModules) for finder in sys.meta_path) == 1
    assert MovedModules().find_spec("reference.denoise") is None  # a real module is never its business
