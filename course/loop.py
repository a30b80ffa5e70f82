"""The instructor's loop, offline on a CPU: release the assignment, collect submissions, grade, give feedback.

:func:`run_course_loop` releases the student notebooks with nbgrader into ``OUT/course/`` (solutions
rebuilt from the templates, student versions generated), collects three submissions — the solution, the
untouched student notebook and a submission with typical mistakes — grades them with ``course grade``'s
machinery into ``OUT/graded/`` (a ``results.json`` and ``feedback.html`` each, and ``summary.csv``) and
prints the scores. ``course demo`` runs it after the Part A figures.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

# Typical mistakes of the wrong submission: (grade_id, line of the solution, what the student wrote instead).
MISTAKES = {
    "partB": [
        ("flow_target", "return x1 - x0", "return x0 - x1  # the velocity from data to noise"),
        ("Concat", "return torch.cat([x, y], dim=1)", "return torch.cat([y, x], dim=1)  # inputs swapped"),
    ],
    "partA": [
        ("negate", "return -x", "return 1 - x  # as if images were in [0, 1]"),
    ],
}


@dataclass
class LoopConfig:
    out: Path = Path("out/demo")  # folder: course/ (released), submissions/, graded/
    parts: tuple[str, ...] = ("partB",)  # assignments to release and grade (partB grades fastest)
    jobs: int = 2  # submissions graded in parallel
    kinds: tuple[str, ...] = ("public", "hidden", "semantic")  # kinds of tests


def wrong_submission(solution: Path, part: str, out: Path) -> Path:
    """The solution notebook with the part's :data:`MISTAKES` written in (each must apply)."""
    import nbformat

    nb = nbformat.read(solution, as_version=4)
    for grade_id, old, new in MISTAKES[part]:
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        if old not in cell.source:
            raise ValueError(f"the solution of {grade_id} no longer contains {old!r}; update course.loop.MISTAKES")
        cell.source = cell.source.replace(old, new)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return out


def run_course_loop(config: LoopConfig, log=print) -> list:
    """Release, collect, grade; returns the graded reports (``autograder.reports.Report``)."""
    from autograder.grade import grade_batch
    from course.notebooks.release import release

    start = time.perf_counter()
    course_root = config.out / "course"
    released = release(course_root, parts=config.parts, log=lambda *_: None)
    log(f"released {', '.join(p.name for p in released)} into {course_root / 'assignments'} "
        f"({time.perf_counter() - start:.0f} s)")
    submissions = []
    for part in config.parts:
        folder = config.out / "submissions" / part
        solution = course_root / "solutions" / part / f"{part}.ipynb"
        for name, source in (("solution", solution), ("student-stub", course_root / "assignments" / part / f"{part}.ipynb")):
            target = folder / name / f"{part}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            submissions.append(target.parent)
        submissions.append(wrong_submission(solution, part, folder / "typical-mistakes" / f"{part}.ipynb").parent)
    graded = config.out / "graded"
    reports = grade_batch(submissions, graded, jobs=config.jobs, kinds=config.kinds, log=lambda *_: None)
    for path, report in zip(submissions, reports):
        lost = sorted({o.test.target for o in report.outcomes if o.score < o.test.max_score})
        detail = f"; lost points on {', '.join(lost[:6])}{' …' if len(lost) > 6 else ''}" if lost else ""
        log(f"graded {path.parent.name}/{path.name}: {report.score:g} / {report.max_score:g}{detail}")
    log(f"feedback pages in {graded}/*/feedback.html, scores in {graded / 'summary.csv'} "
        f"({time.perf_counter() - start:.0f} s for the loop)")
    return reports
