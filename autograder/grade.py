"""Grade submitted notebooks on the CPU: every function and class a student writes, checked against the
reference on the same inputs and randomness, with the student's code isolated in a sandboxed process.

For each submission: find the notebook (:mod:`autograder.notebook`), keep the definitions of the graded
functions and classes, start the student's process (:mod:`autograder.sandbox`) and run the tests —

- **public**: the check the notebook itself runs after the function (same inputs), points as in the notebook;
- **hidden**: the same check on other inputs (a seed derived from the offering's secret, see
  :mod:`autograder.hidden`), as many points again, shown after the due date
  without inputs or numbers (only the question);
- **semantic** (Part A): a sample drawn with the student's loop by the course's digit model, read by the
  project's MNIST classifier (:mod:`autograder.semantic`).

Each mistake costs its own points once: a test of a function that calls other graded functions, failing
with the student's own, runs again with the course's definitions of those in a second sandboxed process
that is never shown (:mod:`autograder.course_helpers`); if it passes there it keeps its points and says
which helper to look at. A hidden test shows only the check's question, or the type of the exception the
student's code raised — never its message, traceback or prints. The choices the course leaves open (a
clamped x̂0, which variance the illusions add, the order of random draws, …) pass every check; they are
listed in :data:`fwd_kit.checks.compare.OPEN_CHOICES`.

Write ``results.json`` (Gradescope's format) and ``feedback.html`` per submission, and for a batch a
``summary.csv``. Whatever a submission does, its results file is written and the batch goes on.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from autograder.compare import collecting_evidence
from autograder.course_helpers import HelperRuns, StudentFunction, grader_cell
from autograder.expectations import HIDDEN_RUN, load_or_build
from autograder.hidden import ensure_secret, hidden_seed
from autograder.notebook import (
    SubmissionError,
    extract,
    find_notebook,
    provided_definitions,
    provided_imports,
    read_notebook,
)
from autograder.remote import (
    RemoteClass,
    RemoteFunction,
    SandboxFailure,
    StudentError,
    StudentNotImplemented,
)
from autograder.sandbox import Limits, Sandbox
from fwd_kit import expected as expectations

PARTS = ("partA", "partB")
SEMANTIC_POINTS = 2  # points of each semantic test
HIDDEN_VISIBILITY = "after_due_date"  # Gradescope: shown once the due date has passed
ARTIFACT_POINTS = 0.5  # points of each entry of a GPU artifacts file (evidence beside the CPU checks)
ARTIFACTS_FILE = "partA_artifacts.safetensors"  # what the Part A notebook's last cell writes


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


@dataclass
class Outcome:
    """The result of one test, in Gradescope's terms, plus pictures for the feedback page."""

    test: Test
    score: float
    status: str  # "passed" or "failed"
    output: str
    seconds: float = 0.0
    pictures: list = field(default_factory=list)  # [(label, tensor)] for the feedback page

    def gradescope(self) -> dict:
        return dict(name=self.test.name, number=self.test.number, score=self.score, max_score=self.test.max_score,
                    status=self.status, visibility=self.test.visibility, output=self.output,
                    output_format="text", extra_data=dict(kind=self.test.kind, seconds=round(self.seconds, 2)))


# ---------------------------------------------------------------------------------------------------
# The assignment: graded names, points, provided imports


@dataclass
class Assignment:
    part: str
    graded: list[str]  # every function and class students write, in notebook order
    classes: set[str]
    points: dict[str, float]  # graded name → points of its public check cell
    preamble: list[str]  # the assignment's own import lines
    allowed_imports: set[tuple[str, str]]
    provided: dict[str, list[str]]  # graded name → the assignment's definitions that follow its cell


def trusted_notebook(part: str):
    """The released student notebook of ``part`` (``assignments/``), or a fresh build of the template."""
    from course.notebooks.build import (
        RELEASE_DIR,
        REPO_ROOT,
        build_notebook,
        load_template,
    )

    path = REPO_ROOT / RELEASE_DIR / part / f"{part}.ipynb"
    if path.is_file():
        return read_notebook(path)
    template = load_template(part)
    if template is None:
        raise ValueError(f"no notebook template for {part!r}")
    return build_notebook(template)


def load_assignment(part: str) -> Assignment:
    """What the grader needs to know about ``part``, read from its trusted notebook."""
    import ast

    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    nb = trusted_notebook(part)
    graded, classes, points = [], set(), {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if cell.cell_type == "code" and meta.get("solution") and grade_id:
            graded.append(grade_id)
            tree = ast.parse(cell.source)
            if any(isinstance(n, ast.ClassDef) and n.name == grade_id for n in tree.body):
                classes.add(grade_id)
        elif cell.cell_type == "code" and meta.get("grade") and grade_id.startswith("test_"):
            points[grade_id[len("test_"):]] = float(meta.get("points") or 0)
    preamble, allowed = provided_imports(nb)
    return Assignment(part, graded, classes, points, preamble, allowed, provided_definitions(nb, graded))


def tests_for(assignment: Assignment, kinds=("public", "hidden", "semantic")) -> list[Test]:
    """The tests of an assignment: public and hidden per checked name, semantic where there is one."""
    from autograder.public import CHECKS

    semantic = semantic_checks() if "semantic" in kinds else {}
    secret = ensure_secret(log=lambda line: print(line, file=sys.stderr)) if "hidden" in kinds else None
    letter = assignment.part[-1]
    tests = []
    checked = [n for n in assignment.graded if n in CHECKS]
    for i, name in enumerate(checked, start=1):
        points = assignment.points.get(name, 1.0)
        number = 1
        if "public" in kinds:
            tests.append(Test(f"{letter}{i}.{number}", f"{name}: public check", name, "public", points))
            number += 1
        if "hidden" in kinds:
            tests.append(Test(f"{letter}{i}.{number}", f"{name}: hidden inputs", name, "hidden", points,
                              HIDDEN_VISIBILITY, hidden_seed(HIDDEN_RUN, secret)))
            number += 1
        if name in semantic:
            doc = (semantic[name].__doc__ or "semantic check").strip().splitlines()[0].rstrip(".").replace("``", "")
            tests.append(Test(f"{letter}{i}.{number}", f"{name}: {doc}", name, "semantic", SEMANTIC_POINTS))
    return tests


def artifact_tests(part: str, first_number: int) -> list[Test]:
    """One test per entry of a reference bundle (``course.bundle.ENTRIES``): Part A only."""
    if part != "partA":
        return []
    from course.bundle import ENTRIES

    return [Test(f"A{first_number}.{k}", f"{call.function}: your GPU artifact {name}", call.function, "artifacts",
                 ARTIFACT_POINTS) for k, (name, call) in enumerate(ENTRIES.items(), start=1)]


def artifact_outcomes(tests: list[Test], artifacts_path: Path, bundle) -> tuple[list["Outcome"], str]:
    """Compare the submitted artifacts with the bundle (in the grader: it only reads files); a note for the
    whole submission when the grader's own bundle is unusable."""
    from autograder.artifacts import compare_artifacts

    results = {r.name: r for r in compare_artifacts(artifacts_path, bundle)}
    if "bundle" in results:
        message = f"Not graded: the grader's reference bundle is unusable. {results['bundle'].message}"
        return [Outcome(t, 0.0, "failed", message) for t in tests], message
    outcomes = []
    for test in tests:
        entry = results.get(test.name.rsplit(" ", 1)[-1])
        if entry is None:
            outcomes.append(Outcome(test, 0.0, "failed", "This entry is missing from the reference bundle."))
        else:
            outcomes.append(Outcome(test, test.max_score if entry.passed else 0.0,
                                    "passed" if entry.passed else "failed", entry.message or "✓ within tolerance"))
    return outcomes, ""


def find_artifacts(path: Path, notebook_path: Path | None) -> Path:
    """The artifacts file of a submission: beside its notebook, else anywhere in the submitted folder."""
    if notebook_path is not None and (notebook_path.parent / ARTIFACTS_FILE).is_file():
        return notebook_path.parent / ARTIFACTS_FILE
    if path.is_dir():
        found = sorted(path.rglob(ARTIFACTS_FILE))
        if found:
            return found[0]
    return (notebook_path.parent if notebook_path is not None else path) / ARTIFACTS_FILE


def semantic_checks() -> dict:
    try:
        from autograder.semantic import SEMANTIC
    except ImportError:
        return {}
    return SEMANTIC


def check_for(test: Test):
    from autograder.public import CHECKS

    return semantic_checks()[test.target] if test.kind == "semantic" else CHECKS[test.target]


# ---------------------------------------------------------------------------------------------------
# Running the tests


def pictures(evidence: list) -> list[tuple[str, bytes]]:
    """PNG pictures of the first image-shaped comparison that failed: the student's image, the reference's,
    and the absolute difference (brighter = further off), each of image 0 in the batch."""
    import numpy as np
    import torch
    from PIL import Image

    for name, actual, expected in evidence:
        if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)):
            continue
        if actual.shape != expected.shape or expected.ndim != 4 or expected.shape[1] not in (1, 3):
            continue
        a, e = actual[0].detach().double().cpu(), expected[0].detach().double().cpu()
        a = torch.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(e.min()), float(e.max())
        span = max(high - low, 1e-8)
        diff = (a - e).abs()
        panels = [("yours", ((a - low) / span).clamp(0, 1)), ("expected", (e - low) / span),
                  ("difference", diff / max(float(diff.max()), 1e-8))]
        images = []
        for label, img in panels:
            array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if array.shape[2] == 1:
                array = array[:, :, 0]
            picture = Image.fromarray(array)
            scale = max(1, 128 // max(picture.size))
            picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            images.append((f"{name}: {label}", buffer.getvalue()))
        return images
    return []


def first_question(message: str) -> str:
    """The question a message starts with (up to its first '?'): all a hidden test reveals. The checks put the
    question first and every input, number and value the student's code produced after it."""
    cut = message.find("?")
    return message[:cut + 1] if cut >= 0 else "The result differs from the expected one."


def exception_name(kind: str) -> str:
    """The type of an exception the student's code raised, as a hidden test may show it: a built-in exception's
    name, else "an exception of its own type" (a class the student wrote could carry any text in its name)."""
    import builtins

    obj = getattr(builtins, kind, None) if isinstance(kind, str) and kind.isidentifier() else None
    return kind if isinstance(obj, type) and issubclass(obj, BaseException) else "an exception of its own type"


def run_test(test: Test, sandbox: Sandbox, found, problems: dict, missing: list, classes: set,
             helpers: HelperRuns | None = None) -> Outcome:
    """Run one test; every way it can fail becomes a message on this test only.

    A hidden test's message is only the check's question, or the type of the exception the student's code
    raised: never the student's own text (exception messages, tracebacks, prints) nor a hidden input. With
    ``helpers``, a failing test of a function that calls other graded functions runs again with the course's
    definitions of those (:mod:`autograder.course_helpers`); if it passes there, it keeps its points and its
    message names the helpers to look at.
    """
    start = time.perf_counter()
    target = test.target
    hidden = test.kind == "hidden"

    def failed(message: str) -> Outcome:
        return Outcome(test, 0.0, "failed", message, time.perf_counter() - start)

    if target in missing:
        return failed(f"No cell defines {target}: did you delete or rename it? The assignment expects "
                      f"{'class' if target in classes else 'def'} {target} in the answer cell whose grade_id is "
                      f"{target}.")
    if target in problems:
        if hidden:
            return failed(f"On hidden inputs: {target} could not be checked; its public test says why.")
        return failed(f"{problems[target][0].upper()}{problems[target][1:]}.")
    label = found[target]
    if label in sandbox.load_errors:
        if hidden:
            return failed(f"On hidden inputs: the cell that defines {target} could not run; its public test says why.")
        lines = sandbox.load_tracebacks.get(label, [])
        return failed(f"Running the cell that defines {target} failed: {sandbox.load_errors[label]}"
                      + ("\n" + "\n".join(lines) if lines else ""))
    outcome, own_stub = _attempt(test, sandbox, label, classes, start)
    if outcome.status == "passed" or helpers is None or own_stub or not helpers.helpers_of(target):
        if outcome.status != "passed" and helpers is not None and test.kind != "semantic":
            helpers.failed.add(target)
        return outcome
    second = helpers.sandbox_for(target)  # the course's definitions of everything but target
    again = _attempt(test, second, label, classes, start, quiet=True)[0] if second is not None else None
    if again is None or again.status != "passed":
        if test.kind != "semantic":
            helpers.failed.add(target)
        return outcome
    text = "✓ passed on hidden inputs" if hidden else again.output
    return Outcome(test, test.max_score, "passed", f"{text}\n{helpers.note(target)}", time.perf_counter() - start)


def _attempt(test: Test, sandbox: Sandbox, label: str, classes: set, start: float,
             quiet: bool = False) -> tuple[Outcome, bool]:
    """One run of the test's check on the student's ``test.target`` in ``sandbox``: (outcome, whether it failed
    on a NotImplementedError raised in the target's own cell). ``quiet``: the student's output is not kept."""
    target, hidden = test.target, test.kind == "hidden"

    def failed(message: str) -> Outcome:
        return Outcome(test, 0.0, "failed", message, time.perf_counter() - start)

    if target in classes:
        proxy = RemoteClass(sandbox, target)
    elif grader_helpers_loaded(sandbox):
        proxy = StudentFunction(sandbox, target)
    else:
        proxy = RemoteFunction(sandbox, target)
    check = check_for(test)
    printed = io.StringIO()
    evidence: list = []
    try:
        with sandbox.hidden_output(hidden or quiet), contextlib.redirect_stdout(printed), \
                collecting_evidence() as evidence:
            check(proxy, seed=test.seed) if test.seed else check(proxy)
    except StudentNotImplemented as err:
        own = bool(err.lines) and err.lines[-1].startswith(f"cell {label},")
        return failed(f"{target} is not implemented yet: it still raises NotImplementedError. Replace the stub's "
                      "raise with your code."), own
    except StudentError as err:
        if hidden:
            return failed(f"On hidden inputs: your {target} raised {exception_name(err.kind)} (for hidden inputs, "
                          "its message and traceback are not shown). Does it work on inputs of other sizes and "
                          "values, as its docstring allows?"), False
        where = ("\nWhere, in your code:\n  " + "\n  ".join(err.lines)) if err.lines else ""
        return failed(f"Your {target} raised {err.kind}: {err.message}{where}"), False
    except SandboxFailure as err:
        if hidden:
            return failed(f"On hidden inputs: the check of {target} could not finish (your code ran too long, used "
                          "too much memory, stopped, or sent back something the grader cannot read). Does it "
                          "finish quickly on inputs of other sizes?"), False
        return failed(f"While checking {target}, {err}."), False
    except AssertionError as err:
        message = str(err) or "The result differs from the expected one."
        if hidden:
            return failed(f"On hidden inputs: {first_question(message)}"), False
        outcome = failed(message)
        outcome.pictures = pictures(evidence) if test.kind == "public" else []
        return outcome, False
    except Exception as err:  # noqa: BLE001 - e.g. a result of a type the check could not use
        if hidden:
            return failed(f"On hidden inputs: the check could not use what your {target} gave back "
                          f"({type(err).__name__}). Does it return what its docstring says?"), False
        return failed(f"The check could not use what your {target} gave back ({type(err).__name__}: {err}). "
                      "Does it return what its docstring says, of the right type and shape?"), False
    text = printed.getvalue().strip()
    if hidden:
        text = "✓ passed on hidden inputs"
    return Outcome(test, test.max_score, "passed", text or "✓ passed", time.perf_counter() - start), False


def grader_helpers_loaded(sandbox) -> bool:
    """Whether ``sandbox`` loaded the grader's helper cell (:func:`autograder.course_helpers.grader_cell`)."""
    from autograder.course_helpers import GRADER_LABEL

    return any(getattr(c, "label", None) == GRADER_LABEL for c in getattr(sandbox, "cells", ())) \
        and GRADER_LABEL not in getattr(sandbox, "load_errors", {})


@dataclass
class Report:
    """Everything known about one graded submission."""

    submission: str
    part: str | None
    outcomes: list[Outcome]
    output: str  # a message for the whole submission (Gradescope's top-level output)
    seconds: dict  # timings: start-up, tests, total

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outcomes)

    @property
    def max_score(self) -> float:
        return sum(o.test.max_score for o in self.outcomes)

    def results(self) -> dict:
        return dict(score=self.score, execution_time=round(self.seconds.get("total", 0.0), 2), output=self.output,
                    visibility="visible", stdout_visibility="hidden",
                    tests=[o.gradescope() for o in self.outcomes],
                    extra_data=dict(part=self.part, max_score=self.max_score, seconds=self.seconds))


def detect_part(nb, path: Path) -> str:
    """The part a notebook belongs to: by its graded cells' ids, else by its file name."""
    from autograder.public import PART_A, PART_B

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


def grade_submission(path: str | Path, part: str | None = None, limits: Limits | None = None,
                     kinds=("public", "hidden", "semantic"), total_s: float = 900.0, bundle=None,
                     progress=None) -> Report:
    """Grade one submission; never raises for anything the submission does.

    bundle: the full reference bundle of ``course bundle`` (Part A): the submission's artifacts file
    (:data:`ARTIFACTS_FILE`, beside the notebook) is compared with it, one test per entry.
    progress: called with a provisional :class:`Report` after every test (the tests done so far, the others
    "not run", and a line saying the grading was cut short), so that a kill still leaves results.
    """
    begin = time.perf_counter()
    path = Path(path)
    seconds = {"startup": 0.0, "student": 0.0, "checks": 0.0, "tests": 0.0, "total": 0.0}
    try:
        notebook_path = find_notebook(path, part)
        nb = read_notebook(notebook_path)
        part = part or detect_part(nb, notebook_path)
        assignment = load_assignment(part)
    except SubmissionError as err:
        seconds["total"] = time.perf_counter() - begin
        tests = all_tests(part, kinds, bundle) if part in PARTS else []
        message = f"This submission could not be graded: {err}."
        outcomes = [Outcome(t, 0.0, "failed", message) for t in tests]
        return Report(str(path), part, outcomes, message, seconds)
    every = all_tests(part, kinds, bundle)
    tests = [t for t in every if t.kind != "artifacts"]
    extracted = extract(nb, assignment.graded, assignment.allowed_imports, assignment.provided)
    outcomes: list[Outcome] = []
    notes = []
    stored = stored_results(kinds, part)
    sandbox = Sandbox(extracted.cells + [grader_cell()], assignment.preamble, limits)
    helpers = HelperRuns(extracted.cells, assignment.preamble, assignment.graded, limits)  # started on first need
    try:
        try:
            if tests:
                sandbox.start()
        except SandboxFailure as err:
            notes.append(f"Your code could not be started: {err}")
        seconds["startup"] = sandbox.startup_s
        for test in tests:
            if time.perf_counter() - begin > total_s:
                outcomes.append(Outcome(test, 0.0, "failed", f"Not run: grading this submission took longer than "
                                        f"{total_s:g} s in all."))
                continue
            with expectations.forced("cached", stored=stored) if stored else contextlib.nullcontext():
                outcome = run_test(test, sandbox, extracted.found, extracted.problems, extracted.missing,
                                   assignment.classes, helpers)
            outcomes.append(outcome)
            if progress is not None:
                progress(provisional_report(path, part, outcomes, tests, seconds))
        printed = sandbox.output_tail(1500)
    finally:
        sandbox.close()
        helpers.close()
    artifacts = [t for t in every if t.kind == "artifacts"]
    if artifacts:
        more, note = artifact_outcomes(artifacts, find_artifacts(path, notebook_path), bundle)
        outcomes += more
        notes += [note] if note else []
    seconds["startup"] = round(sandbox.startup_s, 2)  # processes started, cells loaded
    seconds["student"] = round(sandbox.student_s, 2)  # the student's code answering calls (with transfers)
    seconds["total"] = round(time.perf_counter() - begin, 2)
    seconds["tests"] = round(seconds["total"] - sandbox.startup_s, 2)
    seconds["checks"] = round(seconds["tests"] - sandbox.student_s, 2)  # the reference and comparisons
    if extracted.missing:
        notes.append(f"Not found in the notebook: {', '.join(extracted.missing)}.")
    if sandbox.skipped:
        notes.append(f"{len(sandbox.skipped)} cell(s) ran too long while loading and were left out.")
    if printed.strip():
        notes.append(f"What your code printed while being graded (last lines):\n{printed}")
    return Report(str(path), part, outcomes, "\n".join(notes), seconds)


def stored_results(kinds, part: str | None = None) -> dict | None:
    """The reference's results on the public and hidden inputs, computed once per offering
    (:mod:`autograder.expectations`); None: compute them live."""
    if not {"public", "hidden"} & set(kinds):
        return None
    secret = ensure_secret(log=lambda line: print(line, file=sys.stderr))
    return load_or_build(secret, part, log=lambda line: print(line, file=sys.stderr))


def provisional_report(path, part: str, done: list[Outcome], tests: list[Test], seconds: dict) -> Report:
    """What is known mid-grading: the tests done, the rest "not run", and why the run may have ended early."""
    cut = (f"Grading was cut short after {len(done)} of {len(tests)} tests (the grader was stopped, or ran out "
           "of time or memory): the tests below that say \"not run\" were never started. Tell the course staff.")
    rest = [Outcome(t, 0.0, "failed", "Not run: grading was cut short before this test.") for t in tests[len(done):]]
    return Report(str(path), part, list(done) + rest, cut, dict(seconds))


def crashed_report(path: str | Path, part: str | None, message: str, kinds=("public", "hidden", "semantic"),
                   bundle=None) -> Report:
    """The report written when grading itself failed: every test scores 0 with the reason."""
    try:
        tests = all_tests(part, kinds, bundle) if part in PARTS else []
    except Exception:  # noqa: BLE001
        tests = []
    outcomes = [Outcome(t, 0.0, "failed", message) for t in tests]
    return Report(str(path), part, outcomes, message, {"total": 0.0})


# ---------------------------------------------------------------------------------------------------
# Output: results.json, feedback.html, summary.csv


def submission_name(path: str | Path) -> str:
    path = Path(path)
    return path.stem if path.suffix == ".ipynb" else path.name


def output_names(paths) -> list[str]:
    """The folder each submission's files go to, in order: its name, then ``name-2``, ``name-3``… on clashes."""
    names, seen = [], set()
    for path in paths:
        name = submission_name(path)
        unique, k = name, 2
        while unique in seen:
            unique, k = f"{name}-{k}", k + 1
        seen.add(unique)
        names.append(unique)
    return names


def write_report(report: Report, out_dir: str | Path) -> Path:
    """``results.json`` and ``feedback.html`` in ``out_dir``; returns the results path."""
    from autograder.wire import finite_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    _atomic_text(results, json.dumps(finite_json(report.results()), indent=2, ensure_ascii=False))
    _atomic_text(out_dir / "feedback.html", feedback_html(report))
    return results


def _atomic_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a kill never leaves half a results file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def feedback_html(report: Report) -> str:
    """A page a student can read: each test, its score and what went wrong."""
    rows = []
    for o in report.outcomes:
        mark = "✓" if o.status == "passed" else "✗"
        hidden = " <em>(hidden inputs: shown after the due date)</em>" if o.test.visibility != "visible" else ""
        figures = "".join(
            f"<figure><img alt='{html.escape(label)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
            f"<figcaption>{html.escape(label)}</figcaption></figure>" for label, png in o.pictures)
        rows.append(f"<tr class='{o.status}'><td>{html.escape(o.test.number)}</td><td>{mark} "
                    f"{html.escape(o.test.name)}{hidden}</td><td>{o.score:g} / {o.test.max_score:g}</td>"
                    f"<td><pre>{html.escape(o.output)}</pre>{figures}</td></tr>")
    title = f"Feedback: {html.escape(submission_name(report.submission))} ({html.escape(str(report.part))})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} tr.passed td:nth-child(2){{color:#176f2c}}
tr.failed td:nth-child(2){{color:#a4001d}} pre{{white-space:pre-wrap;margin:0;max-width:60em}}
figure{{display:inline-block;margin:6px 12px 0 0}} img{{image-rendering:pixelated}}</style></head>
<body><h1>{title}</h1>
<p>Score: <strong>{report.score:g} / {report.max_score:g}</strong></p>
{f"<pre>{html.escape(report.output)}</pre>" if report.output else ""}
<table><tr><th>#</th><th>Check</th><th>Score</th><th>Message</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def write_summary(reports: list[Report], path: str | Path) -> Path:
    """One row per submission, one column per test (its score), plus the total."""
    path = Path(path)
    names: list[str] = []
    for report in reports:
        names += [o.test.name for o in report.outcomes if o.test.name not in names]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "part", "score", "max_score", *names])
        for report in reports:
            scores = {o.test.name: o.score for o in report.outcomes}
            writer.writerow([submission_name(report.submission), report.part, f"{report.score:g}",
                             f"{report.max_score:g}", *[scores.get(n, "") for n in names]])
    return path


def _grade_and_write(path: str, out_dir: str, part: str | None, limits: Limits | None, kinds, bundle=None) -> Report:
    """Grade one submission and write its files; a failure of the grader itself is written down too."""
    try:
        report = grade_submission(path, part, limits, kinds, bundle=bundle,
                                  progress=lambda partial: write_report(partial, out_dir))
    except Exception as err:  # noqa: BLE001 - the batch goes on
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        report = crashed_report(path, part, f"The grader failed on this submission ({detail}); "
                                            "tell the course staff.", kinds, bundle)
    write_with_sandbox_note(report, out_dir)
    return report


def write_with_sandbox_note(report: Report, out_dir: str | Path) -> None:
    """``write_report``, then ``extra_data.sandbox`` in results.json: the layers that confined the code."""
    from autograder import isolation

    results = write_report(report, out_dir)
    data = json.loads(results.read_text(encoding="utf-8"))
    data.setdefault("extra_data", {})["sandbox"] = isolation.report_once()
    _atomic_text(results, json.dumps(data, indent=2, ensure_ascii=False))


def _worker_grade(path: str, out_dir: str, part: str | None, limits: Limits | None, kinds, bundle) -> Report:
    """In a submission's own process: the layers were already logged by the batch."""
    from autograder import isolation

    isolation.mark_reported()
    return _grade_and_write(path, out_dir, part, limits, kinds, bundle)


WORKER_GRACE_S = 300.0  # seconds a submission's process may take beyond its sandbox's deadline (reference, files)


def grade_batch(paths: list[str | Path], out: str | Path, part: str | None = None, jobs: int = 1,
                limits: Limits | None = None, kinds=("public", "hidden", "semantic"), log=print,
                bundle=None) -> list[Report]:
    """Grade ``paths`` into ``out/<submission>/`` and write ``out/summary.csv``.

    Each submission is graded in a process of its own (``jobs`` at once) with its own deadline: one that
    dies or overruns gets a results file saying so, and the others are not affected. Every process the
    submission's code ran in has ended before its results are written (see :mod:`autograder.sandbox`).
    """
    from autograder import isolation
    from autograder.supervise import run_each

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    isolation.report_once()  # once per batch, on stderr: the layers, and any this machine lacks
    dirs = [out / name for name in output_names(paths)]
    reports: list[Report | None] = [None] * len(paths)
    tasks = [(str(p), str(d), part, limits, kinds, bundle) for p, d in zip(paths, dirs)]
    deadline = (limits or Limits()).total_s + WORKER_GRACE_S
    for ended in run_each(_worker_grade, tasks, jobs, deadline, preload=["autograder.grade"]):
        i = ended.index
        if isinstance(ended.result, Report):
            reports[i] = ended.result
        else:
            reports[i] = crashed_report(paths[i], part, f"The grader could not finish this submission: "
                                        f"{ended.problem or 'no report came back'}. Tell the course staff.",
                                        kinds, bundle)
            write_with_sandbox_note(reports[i], dirs[i])
        log(f"{submission_name(paths[i])}: {reports[i].score:g} / {reports[i].max_score:g}")
    write_summary(reports, out / "summary.csv")
    return reports
