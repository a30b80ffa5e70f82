"""``course release``: rebuild the solution notebooks from the templates and release the student
notebooks with nbgrader (``course.notebooks.release``)."""

from __future__ import annotations

PARTS = ("partA", "partB")  # = course.notebooks.build.PARTS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "release",
        help="rebuild solutions/ from the templates and generate the student notebooks in assignments/",
        description="Build solutions/<part>/<part>.ipynb from course/notebooks/<part>.py (solutions lifted "
        "from reference/), then run nbgrader generate_assignment for each part into assignments/ (and, without "
        "--root and --out, copy each into autograder/released/, the copy the grader reads); record the "
        "public checks' expected values into the student kit (fwd_kit) and build its wheel into --kit-dist.",
    )
    parser.add_argument("parts", nargs="*", metavar="PART", help="partA and/or partB (default: both)")
    parser.add_argument("--root", help="course root holding solutions/ and assignments/ (default: the repository)")
    parser.add_argument("--out", help="release folder (default: ROOT/assignments)")
    parser.add_argument("--no-build", dest="build", action="store_false",
                        help="release the solution notebooks as they are, without rebuilding them")
    parser.add_argument("--kit-dist", default="dist",
                        help="folder for the student kit's wheel (default: ./dist); students install only that")
    parser.add_argument("--no-kit", dest="kit", action="store_false",
                        help="do not record the kit's expected values nor build its wheel")
    parser.add_argument("--keep-gradebook", action="store_true",
                        help="keep nbgrader's gradebook.db in ROOT (default: a temporary one)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from autograder.catalogue import RELEASED_DIR
    from course.notebooks.build import REPO_ROOT
    from course.notebooks.release import release

    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"course release: parts must be among {', '.join(PARTS)}, but got {', '.join(unknown)}.")
    own = args.root is None and args.out is None  # the course's own release: the grader reads a copy of it
    try:
        released = release(args.root or REPO_ROOT, args.out, tuple(args.parts) or PARTS, regenerate=args.build,
                           keep_gradebook=args.keep_gradebook, grader_dir=RELEASED_DIR if own else None)
        if args.kit and released:
            from course.kit import release_kit

            release_kit(args.kit_dist)
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"course release: {err}") from None
    return 0 if released else 1
