"""``course grade SUBMISSION [SUBMISSION ...] --out DIR [--jobs N]``: grade notebooks on the CPU
(``autograder.grade``): per submission ``results.json`` (Gradescope) and ``feedback.html``; ``summary.csv``.

Every submission gets a folder of its own, named after it (``hw``, then ``hw-2`` for a second ``hw.ipynb``
from another folder); the same name labels its row in ``summary.csv`` and its line on the console. A
submission that cannot be graded at all (no such file, a folder without a notebook, a file that is not a
notebook) is named with the reason, and the command then exits with status 1.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from course.commands.similarity import add_options as add_similarity_options

EXIT_UNUSABLE = 1  # exit status when at least one submission could not be graded


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade",
        help="grade submitted notebooks against the reference, isolated, with Gradescope results and feedback",
        description="Each SUBMISSION is an .ipynb or a folder holding one. The student's functions and classes "
        "run in a sandboxed process; the checks and the reference run here. Writes OUT/<submission>/results.json "
        "and feedback.html, and OUT/summary.csv. Exits with status 1 when a submission could not be graded "
        "(the reason is printed).",
    )
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks or folders holding one")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (default: 1)")
    parser.add_argument("--part", choices=("partA", "partB"), help="the assignment (default: told by the notebook)")
    parser.add_argument("--tests", default="public,hidden,semantic",
                        help="kinds of tests, comma-separated (default: public,hidden,semantic)")
    parser.add_argument("--bundle", help="Part A: the full reference bundle of `course bundle`; each submission's "
                        "partA_artifacts.safetensors (beside its notebook) is compared with it, one test per entry")
    parser.add_argument("--call-timeout", type=float, help="seconds one call of student code may take (default: 60)")
    parser.add_argument("--memory-mb", type=int, help="memory the student's code may add, in MB (default: 2048)")
    parser.add_argument("--similarity", action="store_true", help="then write OUT/similarity.html and .csv: "
                        "graded code shared between submissions (`course similarity`; never a grade)")
    add_similarity_options(parser, prefix="similarity-")
    parser.set_defaults(func=run)


def output_names(paths: list) -> list[str]:
    """The folder ``grade_batch`` writes each submission to (``autograder.grade.output_names``)."""
    from autograder.reports import output_names as names

    return names(paths)


def unusable_reason(report) -> str | None:
    """Why ``report``'s submission could not be graded at all, or None when its tests ran.

    A submission the grader could not use scores every test with one and the same message, the report's own
    (``autograder.grade``: a ``SubmissionError`` or a crash); a graded one has a message per test.
    """
    if report.outcomes and any(o.output != report.output for o in report.outcomes):
        return None
    return report.output.strip() or None


def relabel_summary(path: Path, names: list[str]) -> None:
    """Write ``names`` (one per submission, in order) into the first column of ``summary.csv``."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) != len(names) + 1:
        raise ValueError(f"{path} has {len(rows) - 1} rows for {len(names)} submissions")
    for row, name in zip(rows[1:], names):
        row[0] = name
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _parse_kinds(args) -> tuple[str, ...]:
    """``--tests`` as a tuple, after checking it and ``--jobs``."""
    kinds = tuple(k.strip() for k in args.tests.split(",") if k.strip())
    unknown = [k for k in kinds if k not in ("public", "hidden", "semantic")]
    if unknown or args.jobs < 1:
        raise SystemExit(f"course grade: --tests takes public, hidden and semantic and --jobs at least 1; "
                         f"got --tests {args.tests} --jobs {args.jobs}")
    return kinds


def check_similarity(args) -> None:
    """Before grading: the similarity options make sense (their report comes after grading)."""
    from course.commands.similarity import config_of
    from course.similarity import known_files

    if args.reference_dir and not args.similarity:
        raise SystemExit("course grade: --similarity-reference-dir is used by --similarity; add --similarity")
    if args.similarity:
        config_of(args)
        if args.reference_dir:
            try:
                known_files(args.reference_dir)
            except ValueError as err:
                raise SystemExit(f"course grade: {err}") from None


def run(args) -> int:
    """Grade, print one line per submission (the reason when it could not be graded) and a total."""
    from autograder.grade import grade_batch
    from autograder.reports import submission_name
    from autograder.sandbox import Limits

    kinds = _parse_kinds(args)
    check_similarity(args)
    limits = Limits()
    if args.call_timeout:
        limits.call_s = args.call_timeout
    if args.memory_mb:
        limits.memory_mb = args.memory_mb
    paths = list(args.submissions)
    names = output_names(paths)
    finished = []

    def progress(line: str) -> None:  # grade_batch's line names the file only: show progress, not scores
        finished.append(line)
        print(f"[{len(finished)}/{len(paths)}] finished {line.rsplit(':', 1)[0]}", file=sys.stderr, flush=True)

    reports = grade_batch(paths, args.out, part=args.part, jobs=args.jobs, limits=limits, kinds=kinds,
                          bundle=args.bundle, log=progress)
    relabel_summary(Path(args.out) / "summary.csv", names)
    collided = {submission_name(p) for p, n in zip(paths, names) if n != submission_name(p)}
    unusable = 0
    for path, name, report in zip(paths, names, reports):
        source = f" ({path})" if submission_name(path) in collided else ""
        reason = unusable_reason(report)
        if reason is None:
            print(f"{name}{source}: {report.score:g} / {report.max_score:g}")
        else:
            unusable += 1
            print(f"{name}{source}: not graded. {reason}")
    if args.similarity:
        from course.commands.similarity import report as similarity_report

        similarity_report(paths, args.out, args, names)
    total = sum(r.score for r in reports)
    graded = len(reports) - unusable
    if not unusable:
        print(f"graded {graded} submission(s) into {args.out} (summary.csv); total score {total:g}")
        return 0
    print(f"graded {graded} of {len(reports)} submission(s) into {args.out} (summary.csv); total score {total:g}; "
          f"{unusable} could not be graded (reasons above; each has a results.json saying so)")
    return EXIT_UNUSABLE
