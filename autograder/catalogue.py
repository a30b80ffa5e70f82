"""What is graded: the parts, their graded names (read from the released notebooks, the grader's copy in
``autograder/released/``), and the tests of each.

A test is one question asked of one function or class a student writes: its **public** check (the
check the notebook itself runs), the same check on **hidden** inputs (seeds from the offering's secret,
:mod:`autograder.hidden`), a **semantic** test (Part A: a digit drawn with the student's loop, read by the
MNIST classifier, :mod:`autograder.semantic`), or one entry of a GPU **artifacts** file (Part A). Every
test's points come from the course's rubric (:mod:`autograder.rubric`), as do the notebooks' nbgrader points.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.hidden import HIDDEN_RUN, ensure_secret, hidden_seed
from autograder.notebook import SubmissionError, provided_definitions, provided_imports, read_notebook
from autograder.rubric import rubric

PARTS = ("partA", "partB")
HIDDEN_VISIBILITY = "after_due_date"  # Gradescope: shown once the due date has passed
ARTIFACT_POINTS = 0.5  # points of each entry of a GPU artifacts file (evidence beside the CPU checks)
ARTIFACTS_FILE = "partA_artifacts.safetensors"  # what the Part A notebook's last cell writes
# The released student notebooks as the grader reads them: package data (so the wheel Gradescope installs has
# them), a copy of assignments/<part>/<part>.ipynb that `course release` writes (tests/test_gradescope.py
# checks that the two are the same bytes).
RELEASED_DIR = Path(__file__).resolve().parent / "released"


@dataclass
class Test:
    """One graded test: ``target`` is the student's function or class it calls."""

    number: str  # "A1.1": part letter, function index, test index
    name: str
    target: str
    kind: str  # "public", "hidden" or "semantic"
    max_score: float
    visibility: str = "visible"
    seed: int = 0


# ---------------------------------------------------------------------------------------------------
# The assignment: graded names, provided imports


@dataclass
class Assignment:
    part: str
    graded: list[str]  # every function and class students write, in notebook order
    classes: set[str]
    preamble: list[str]  # the assignment's own import lines
    allowed_imports: set[tuple[str, str]]
    provided: dict[str, list[str]]  # graded name → the assignment's definitions that follow its cell


def trusted_notebook(part: str):
    """The released student notebook of ``part``, from the grader's own copy (:data:`RELEASED_DIR`)."""
    path = RELEASED_DIR / f"{part}.ipynb"
    if not path.is_file():
        raise ValueError(f"the grader has no released notebook for {part!r} at {path}: run `course release`, "
                         "which writes it there beside assignments/.")
    return read_notebook(path)


def load_assignment(part: str) -> Assignment:
    """What the grader needs to know about ``part``, read from its trusted notebook."""
    import ast

    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    nb = trusted_notebook(part)
    graded, classes = [], set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if cell.cell_type == "code" and meta.get("solution") and grade_id:
            graded.append(grade_id)
            tree = ast.parse(cell.source)
            if any(isinstance(n, ast.ClassDef) and n.name == grade_id for n in tree.body):
                classes.add(grade_id)
    preamble, allowed = provided_imports(nb)
    return Assignment(part, graded, classes, preamble, allowed, provided_definitions(nb, graded))


def tests_for(assignment: Assignment, kinds=("public", "hidden", "semantic")) -> list[Test]:
    """The tests of an assignment: public and hidden per checked name, semantic where the rubric has one;
    each with its points from the rubric (:mod:`autograder.rubric`)."""
    from fwd_kit.checks import CHECKS

    table = rubric(assignment.part)
    checked = [n for n in assignment.graded if n in CHECKS]
    # the semantic checks import the reference's loops and torchvision: only for a part whose rubric has one
    wanted = "semantic" in kinds and any(table.of(n).semantic for n in checked)
    semantic = semantic_checks() if wanted else {}
    secret = ensure_secret(log=lambda line: print(line, file=sys.stderr)) if "hidden" in kinds else None
    letter = assignment.part[-1]
    tests = []
    for i, name in enumerate(checked, start=1):
        row = table.of(name)
        number = 1
        if "public" in kinds and row.public:
            tests.append(Test(f"{letter}{i}.{number}", f"{name}: public check", name, "public", row.public))
            number += 1
        if "hidden" in kinds and row.hidden:
            tests.append(Test(f"{letter}{i}.{number}", f"{name}: hidden inputs", name, "hidden", row.hidden,
                              HIDDEN_VISIBILITY, hidden_seed(HIDDEN_RUN, secret)))
            number += 1
        if "semantic" in kinds and row.semantic:
            if name not in semantic:
                raise RuntimeError(f"the rubric gives {name} a semantic test, but autograder.semantic has no check "
                                   "for it.")
            doc = (semantic[name].__doc__ or "semantic check").strip().splitlines()[0].rstrip(".").replace("``", "")
            tests.append(Test(f"{letter}{i}.{number}", f"{name}: {doc}", name, "semantic", row.semantic))
    return tests


def artifact_tests(part: str, first_number: int) -> list[Test]:
    """One test per entry of a reference bundle (:data:`fwd_kit.bundle.ENTRIES`): Part A only."""
    if part != "partA":
        return []
    from fwd_kit.bundle import ENTRIES

    return [Test(f"A{first_number}.{k}", f"{call.function}: your GPU artifact {name}", call.function, "artifacts",
                 ARTIFACT_POINTS) for k, (name, call) in enumerate(ENTRIES.items(), start=1)]


def semantic_checks() -> dict:
    try:
        from autograder.semantic import SEMANTIC
    except ImportError:
        return {}
    return SEMANTIC


def check_for(test: Test):
    from fwd_kit.checks import CHECKS

    return semantic_checks()[test.target] if test.kind == "semantic" else CHECKS[test.target]


def detect_part(nb, path: Path) -> str:
    """The part a notebook belongs to: by its graded cells' ids, else by its file name."""
    from fwd_kit.checks import PART_A, PART_B

    ids = {str(c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")) for c in nb.cells}
    text = "\n".join(c.get("source", "") for c in nb.cells if c.get("cell_type") == "code"
                     and isinstance(c.get("source"), str))
    score = {part: sum((n in ids) + (f"def {n}(" in text or f"class {n}(" in text) for n in names)
             for part, names in (("partA", PART_A), ("partB", PART_B))}
    if score["partA"] != score["partB"]:
        return max(score, key=score.get)
    for part in PARTS:
        if part.lower() in path.name.lower():
            return part
    raise SubmissionError("could not tell whether this is Part A or Part B: it holds none of the graded cells "
                          "(pass --part)")


def all_tests(part: str, kinds, bundle) -> list[Test]:
    """The sandbox tests of ``kinds``, then one test per bundle entry when a ``bundle`` is given (Part A)."""
    tests = tests_for(load_assignment(part), kinds)
    if bundle is not None:
        tests += artifact_tests(part, len({t.target for t in tests}) + 1)
    return tests

