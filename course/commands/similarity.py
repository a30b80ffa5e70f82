"""``course similarity SUBMISSION [SUBMISSION ...] --out DIR [--reference-dir KNOWN]``: which submissions share
graded code with each other or with known solutions (``course.similarity``): ``DIR/similarity.html`` (pairs
ranked by shared code, both codes side by side) and ``DIR/similarity.csv``. A signal for staff, never a grade.

Submissions are named as ``course grade`` names their folders. A submission that cannot be read (no such
file, a folder without a notebook, not a notebook) is named with the reason, and the command then exits with
status 1; a missing or empty ``--reference-dir`` stops it before any work.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_UNUSABLE = 1  # exit status when at least one submission could not be read


def add_options(parser, prefix: str = "") -> None:
    """The options of the report (``prefix`` names them under ``course grade``), defaults from
    :class:`course.similarity.SimilarityConfig`."""
    from course.similarity import SimilarityConfig

    config = SimilarityConfig()
    parser.add_argument(f"--{prefix}reference-dir", metavar="KNOWN", dest="reference_dir",
                        help="a folder of known solutions (notebooks or .py files) to compare every submission with")
    parser.add_argument(f"--{prefix}threshold", type=float, default=config.threshold, dest="threshold",
                        help=f"flag a pair from this share of one side's code found in the other "
                        f"(default: {config.threshold})")
    parser.add_argument(f"--{prefix}min-shared", type=int, default=config.min_shared, dest="min_shared",
                        help=f"and at least this many tokens shared (default: {config.min_shared})")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "similarity",
        help="code similarity of a batch per graded function: pairs ranked, both codes side by side",
        description="Each SUBMISSION is an .ipynb or a folder holding one. Every graded function and class, as "
        "the grader extracts it, is compared across the batch and with --reference-dir's known solutions, after "
        "normalising names, comments, layout and the order of definitions; the stub's code and the course's "
        "helpers never count. Writes OUT/similarity.html and OUT/similarity.csv. A signal for staff, never a "
        "grade. Exits with status 1 when a submission could not be read (the reason is printed).",
    )
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebooks or folders holding one")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--part", choices=("partA", "partB"), help="the assignment (default: told by each notebook)")
    add_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def check_installed() -> None:
    """copydetect is an instructor's extra: say how to install it when it is missing."""
    import importlib.util

    if importlib.util.find_spec("copydetect") is None:
        raise SystemExit("course similarity needs the copydetect package: "
                         "pip install 'fun-with-diffusion[similarity]' (or pip install copydetect)")


def config_of(args):
    """The :class:`SimilarityConfig` of the parsed options, after checking them."""
    from course.similarity import SimilarityConfig

    check_installed()
    if not 0.0 < args.threshold <= 1.0 or args.min_shared < 0:
        raise SystemExit(f"course similarity: the threshold is a share in (0, 1] and --min-shared at least 0; "
                         f"got {args.threshold} and {args.min_shared}")
    return SimilarityConfig(threshold=args.threshold, min_shared=args.min_shared)


def report(paths, out, args, names=None) -> int:
    """Write the report, print what it found; the number of submissions that could not be read."""
    from autograder.notebook import SubmissionError
    from course.similarity import similarity_report

    try:
        result = similarity_report(paths, out, args.reference_dir, args.part, names, config_of(args),
                                   progress=not getattr(args, "no_progress", False))
    except SubmissionError as err:
        raise SystemExit(f"course similarity: {err}") from None
    for source in result.unreadable:
        print(f"{source.owner}: not compared. {source.problem}", file=sys.stderr)
    pairs = {(m.a.owner, m.b.owner) for m in result.flagged}
    print(f"similarity: {len(pairs)} pair(s) flagged, for {len(result.flagged)} function(s) in all, among "
          f"{len(result.sources) - len(result.unreadable)} source(s) compared; see {Path(out) / 'similarity.html'} "
          f"and similarity.csv")
    return len(result.unreadable)


def run(args) -> int:
    return EXIT_UNUSABLE if report(args.submissions, args.out, args) else 0
