"""Release the student notebooks: rebuild ``solutions/`` from the templates, then run nbgrader's
``generate_assignment`` for each part into ``assignments/`` (or another folder).

nbgrader is driven through its Python API with the settings of ``course/nbgrader_config.py`` (the same
file ``cd course && nbgrader generate_assignment partB`` reads), so both ways give the same result.
The released notebooks are rewritten in nbformat's canonical JSON without outputs, which makes the
release deterministic: ``tests/test_notebooks.py`` compares a fresh release with the committed one.
The course's own release also copies each released notebook to ``autograder/released/``, the grader's copy
(package data: the grader never reads ``assignments/`` nor imports this package).
:func:`nbgrader_api` gives the same API for the rest of nbgrader's pipeline (autograde, generate_feedback;
see ``tests/test_nbgrader_roundtrip.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import nbformat

from course.notebooks.build import (
    PARTS,
    RELEASE_DIR,
    REPO_ROOT,
    SOURCE_DIR,
    notebook_json,
    write_solutions,
)

CONFIG_DIR = Path(__file__).resolve().parents[1]  # course/, which holds nbgrader_config.py


def load_nbgrader_config(config_dir: str | Path = CONFIG_DIR):
    """The traitlets ``Config`` of ``<config_dir>/nbgrader_config.py``."""
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(config_dir) / "nbgrader_config.py"
    if not path.is_file():
        raise ValueError(f"expected nbgrader's configuration at {path}, but there is no such file.")
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


@contextlib.contextmanager
def scripts_on_path():
    """Put this Python's script folder first on PATH for a while: nbgrader's gradebook runs the
    ``alembic`` command, which a virtual environment that is not activated does not expose."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old


def nbgrader_api(root: str | Path = REPO_ROOT, release_dir: str | Path | None = None, db_url: str | None = None):
    """nbgrader's ``NbGraderAPI`` for the course rooted at ``root``, with the settings of
    ``course/nbgrader_config.py``: solutions/ as the source, ``release_dir`` (default ``root/assignments``)
    as the release, ``submitted/``, ``autograded/`` and ``feedback/`` under ``root``, and the gradebook
    ``db_url`` (default ``root/gradebook.db``). Call its methods inside :func:`scripts_on_path`."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root = Path(root).resolve()
    config = load_nbgrader_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.source_directory = SOURCE_DIR
    release_dir = Path(release_dir).resolve() if release_dir is not None else root / RELEASE_DIR
    config.CourseDirectory.release_directory = str(release_dir)  # an absolute path overrides the root
    if db_url is not None:
        config.CourseDirectory.db_url = db_url
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def succeeded(result: dict, what: str) -> dict:
    """``result`` of an ``NbGraderAPI`` call, or a RuntimeError with nbgrader's log when it failed."""
    if not result["success"]:
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('error', '')}\n{result.get('log', '')}")
    return result


def generate_assignment(part: str, root: str | Path = REPO_ROOT, release_dir: str | Path | None = None,
                        db_url: str | None = None) -> Path:
    """Run nbgrader's ``generate_assignment <part> --force`` from ``root/solutions/<part>``.

    release_dir: where ``<part>/`` is written (default ``root/assignments``); db_url: nbgrader's
    gradebook (default ``root/gradebook.db``). Returns the released folder ``<release_dir>/<part>``.
    """
    root = Path(root).resolve()
    source = root / SOURCE_DIR / part
    if not source.is_dir():
        raise ValueError(f"expected the solution notebook folder {source}; build it first with write_solutions.")
    api = nbgrader_api(root, release_dir, db_url)
    with scripts_on_path():
        succeeded(api.generate_assignment(part, force=True, create=True), f"generate_assignment {part}")
    out = Path(api.coursedir.release_directory) / part
    for path in sorted(out.glob("*.ipynb")):
        canonicalise(path)
    return out


def canonicalise(path: Path) -> None:
    """Rewrite a notebook without outputs or execution counts, in nbformat's canonical JSON."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    path.write_text(notebook_json(nb), encoding="utf-8")


def release(root: str | Path = REPO_ROOT, release_dir: str | Path | None = None, parts=PARTS,
            regenerate: bool = True, keep_gradebook: bool = False, grader_dir: str | Path | None = None,
            log=print) -> list[Path]:
    """Regenerate ``root/solutions`` from the templates (``regenerate``), then release every part that
    has a solution folder into ``release_dir`` (default ``root/assignments``).

    The gradebook nbgrader writes on the way goes to a temporary folder unless ``keep_gradebook``
    (then ``root/gradebook.db``). ``grader_dir``: where to copy each released notebook for the grader as
    well (``autograder.catalogue.RELEASED_DIR`` for the course's own release; None: nowhere). Returns the
    released part folders.
    """
    root = Path(root).resolve()
    if regenerate:
        for path in write_solutions(root, parts, log=log):
            log(f"built {path.relative_to(root)}")
    released = []
    with tempfile.TemporaryDirectory(prefix="nbgrader-db-") as scratch:
        db_url = None if keep_gradebook else f"sqlite:///{Path(scratch) / 'gradebook.db'}"
        for part in parts:
            if not (root / SOURCE_DIR / part).is_dir():
                log(f"skipping {part}: no {SOURCE_DIR}/{part}/ to release")
                continue
            out = generate_assignment(part, root, release_dir, db_url)
            log(f"released {part} → {out}")
            released.append(out)
            if grader_dir is not None:
                copy = Path(grader_dir) / f"{part}.ipynb"
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_bytes((out / f"{part}.ipynb").read_bytes())
                log(f"copied {part}.ipynb for the grader → {copy}")
    return released
