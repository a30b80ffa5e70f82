"""Grade submitted notebooks on the CPU: every function and class a student writes, checked against the
reference on the same inputs and randomness, with the student's code isolated in a sandboxed process.

For each submission: find the notebook (:mod:`autograder.notebook`), keep the definitions of the graded
functions and classes, and run the tests in two sandboxed processes (:mod:`autograder.sandbox`), one after
the other: the public and semantic tests in one whose printed output may be shown, then the hidden tests
in one whose output is never read, so that nothing a hidden input touches reaches anyone —

- **public**: the check the notebook itself runs after the function (same inputs), points as in the notebook;
- **hidden**: the same check on other inputs (a seed derived from the offering's secret, see
  :mod:`autograder.hidden`), as many points again, shown after the due date
  without inputs or numbers (only the question);
- **semantic** (Part A): a sample drawn with the student's loop by the course's digit model, read by the
  project's MNIST classifier (:mod:`autograder.semantic`).

Each mistake costs its own points once and is always charged to someone (:mod:`autograder.charges`): a
failed test of a function that calls other graded ones is judged again in the hidden tests' process, with
the course's version of it computed in the grader over the student's own helpers; it keeps its points when
it agrees and a helper is to blame, and the message names that helper. A hidden test shows only the check's question, or the type of the exception the
student's code raised — never its message, traceback or prints. The choices the course leaves open (a
clamped x̂0, which variance the illusions add, the order of random draws, …) pass every check; they are
listed in :data:`fwd_kit.checks.compare.OPEN_CHOICES`.

Write ``results.json`` (Gradescope's format) and ``feedback.html`` per submission, and for a batch a
``summary.csv``. Whatever a submission does, its results file is written and the batch goes on.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import traceback
from pathlib import Path

from autograder.catalogue import ARTIFACTS_FILE, PARTS, Test, all_tests, detect_part, load_assignment
from autograder import isolation, memory
from autograder.charges import Charges
from autograder.expectations import load_or_build
from autograder.hidden import ensure_secret
from autograder.notebook import SubmissionError, extract, find_notebook, read_notebook
from autograder.remote import SandboxFailure
from autograder.reports import (
    Outcome,
    Report,
    crashed_report,
    output_names,
    provisional_report,
    submission_name,
    write_report,
    write_summary,
    write_with_sandbox_note,
)
from autograder.rubric import written_answers
from autograder.running import check_failure, run_test
from autograder.sandbox import Limits, Sandbox
from fwd_kit import expected as expectations


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


PROGRESS_S = 1.0  # seconds between two provisional reports (grade_submission's progress)


def grade_submission(path: str | Path, part: str | None = None, limits: Limits | None = None,
                     kinds=("public", "hidden", "semantic"), total_s: float = 900.0, bundle=None,
                     progress=None) -> Report:
    """Grade one submission; never raises for anything the submission does.

    bundle: the full reference bundle of ``course bundle`` (Part A): the submission's artifacts file
    (:data:`ARTIFACTS_FILE`, beside the notebook) is compared with it, one test per entry.
    progress: called with a provisional :class:`Report` after a test (the tests done so far, the others "not
    run", and a line saying the grading was cut short), so that a kill still leaves results: after the first
    test, then at most every ``PROGRESS_S`` seconds (results.json and feedback.html after each of Part B's 56
    tests took 0.09 CPU-seconds, a fortieth of what grading it costs).
    """
    begin = time.perf_counter()
    path = Path(path)
    seconds = {"startup": 0.0, "student": 0.0, "checks": 0.0, "tests": 0.0, "total": 0.0}
    try:
        notebook_path = find_notebook(path, part)
        nb = read_notebook(notebook_path)
        part = part or detect_part(nb, notebook_path)
        assignment = load_assignment(part)  # the released notebook: no answer in it
        refusal = start_isolation(part, assignment.preamble)  # before anything of the answers or the secret
    except SubmissionError as err:
        seconds["total"] = time.perf_counter() - begin
        tests = all_tests(part, kinds, bundle) if part in PARTS else []
        message = f"This submission could not be graded: {err}."
        outcomes = [Outcome(t, 0.0, "failed", message) for t in tests]
        return Report(str(path), part, outcomes, message, seconds)
    every = all_tests(part, kinds, bundle)
    tests = [t for t in every if t.kind != "artifacts"]
    if refusal:
        message = f"This submission was not graded: {refusal} (course staff: this is the grading machine's setup)"
        return Report(str(path), part, [Outcome(t, 0.0, "failed", message) for t in every], message, seconds)
    extracted = extract(nb, assignment.graded, assignment.allowed_imports, assignment.provided)
    outcomes: list[Outcome] = []
    staff = memory.staff_note()  # a container limit below the grader's floor, said to the staff
    notes = [staff] if staff else []
    stored = stored_results(kinds, part)
    shown_tests = [t for t in tests if t.kind != "hidden"]  # in a process whose output may be shown
    sealed_tests = [t for t in tests if t.kind == "hidden"]  # after them, in one whose output is never read
    order = shown_tests + sealed_tests
    diffusers = part == "partA"
    shown = Sandbox(extracted.cells, assignment.preamble, limits, shown=True, diffusers=diffusers)
    sealed = Sandbox(extracted.cells, assignment.preamble, limits, shown=False, diffusers=diffusers)
    stubs: set[int] = set()
    last_progress = -math.inf  # when progress was last called (never yet: the first test reports)
    device_verdicts: dict = {}  # the device check's verdict per function: its hidden test reuses the public one's
    printed = ""

    def run(batch: list[Test], sandbox: Sandbox) -> None:
        nonlocal last_progress
        try:
            if batch:
                sandbox.start()
        except SandboxFailure as err:
            notes.append(f"Your code could not be started: {err}")
        for test in batch:
            if time.perf_counter() - begin > total_s:
                outcomes.append(Outcome(test, 0.0, "failed", f"Not run: grading this submission took longer than "
                                        f"{total_s:g} s in all."))
                continue
            with expectations.forced("cached", stored=stored) if stored else contextlib.nullcontext():
                outcome, stub = run_test(test, sandbox, extracted.found, extracted.problems, extracted.missing,
                                         assignment.classes, device_verdicts)
            outcomes.append(outcome)
            if stub:
                stubs.add(id(outcome))
            if progress is not None and time.perf_counter() - last_progress >= PROGRESS_S:
                progress(provisional_report(path, part, outcomes, order, seconds, tuple(notes)))
                last_progress = time.perf_counter()

    try:
        run(shown_tests, shown)
        shown.close()  # its output pipe ends with it
        printed = shown.output_tail(1500)
        run(sealed_tests, sealed)
        if time.perf_counter() - begin <= total_s:
            Charges(extracted.cells, assignment.graded, assignment.classes).settle(outcomes, sealed, check_failure,
                                                                                  stubs, extracted.found)
    finally:
        shown.close()
        sealed.close()
    rank = {id(t): i for i, t in enumerate(tests)}
    outcomes.sort(key=lambda o: rank.get(id(o.test), len(rank)))
    artifacts = [t for t in every if t.kind == "artifacts"]
    if artifacts:
        more, note = artifact_outcomes(artifacts, find_artifacts(path, notebook_path), bundle)
        outcomes += more
        notes += [note] if note else []
    startup, student = shown.startup_s + sealed.startup_s, shown.student_s + sealed.student_s
    seconds["startup"] = round(startup, 2)  # processes started, cells loaded
    seconds["student"] = round(student, 2)  # the student's code answering calls (with transfers)
    seconds["total"] = round(time.perf_counter() - begin, 2)
    seconds["tests"] = round(seconds["total"] - startup, 2)
    seconds["checks"] = round(seconds["tests"] - student, 2)  # the reference and comparisons
    if extracted.missing:
        notes.append(f"Not found in the notebook: {', '.join(extracted.missing)}.")
    if shown.skipped:
        notes.append(f"{len(shown.skipped)} cell(s) ran too long while loading and were left out.")
    if printed.strip():
        notes.append(f"What your code printed during the public tests (last lines):\n{printed}")
    if sealed_tests:
        notes.append("What your code prints during the hidden tests is never shown.")
    return Report(str(path), part, outcomes, "\n".join(notes), seconds, written_answers(nb, part))


def start_isolation(part: str, preamble=()) -> str:
    """Before anything of the answers is loaded: the zygote (forked from this still clean process, see
    :mod:`autograder.zygote`), the machine's layers; returns why grading must not start here ("" if it may)."""
    from autograder import zygote

    memory.protect_grader()
    zygote.get(diffusers=part == "partA", preamble=preamble)
    return isolation.refusal()


def stored_results(kinds, part: str | None = None) -> dict | None:
    """The reference's results on the public and hidden inputs, computed once per offering
    (:mod:`autograder.expectations`); None: compute them live."""
    if not {"public", "hidden"} & set(kinds):
        return None
    secret = ensure_secret(log=lambda line: print(line, file=sys.stderr))
    return load_or_build(secret, part, log=lambda line: print(line, file=sys.stderr))


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
    for ended in run_each(_worker_grade, tasks, jobs, deadline, preload=["autograder.preload"]):
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
