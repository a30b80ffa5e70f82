"""``course grade SUBMISSION [SUBMISSION ...] --out DIR [--jobs N]``: grade notebooks on the CPU
(``autograder.grade``): per submission ``results.json`` (Gradescope) and ``feedback.html``; ``summary.csv``."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "grade",
        help="grade submitted notebooks against the reference, isolated, with Gradescope results and feedback",
        description="Each SUBMISSION is an .ipynb or a folder holding one. The student's functions and classes "
        "run in a sandboxed process; the checks and the reference run here. Writes OUT/<submission>/results.json "
        "and feedback.html, and OUT/summary.csv.",
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
    parser.set_defaults(func=run)


def run(args) -> int:
    from autograder.grade import grade_batch
    from autograder.sandbox import Limits

    kinds = tuple(k.strip() for k in args.tests.split(",") if k.strip())
    unknown = [k for k in kinds if k not in ("public", "hidden", "semantic")]
    if unknown or args.jobs < 1:
        raise SystemExit(f"course grade: --tests takes public, hidden and semantic and --jobs at least 1; "
                         f"got --tests {args.tests} --jobs {args.jobs}")
    limits = Limits()
    if args.call_timeout:
        limits.call_s = args.call_timeout
    if args.memory_mb:
        limits.memory_mb = args.memory_mb
    reports = grade_batch(args.submissions, args.out, part=args.part, jobs=args.jobs, limits=limits, kinds=kinds,
                          bundle=args.bundle)
    total = sum(r.score for r in reports)
    print(f"graded {len(reports)} submission(s) into {args.out} (summary.csv); total score {total:g}")
    return 0
