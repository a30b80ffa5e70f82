"""``course gradescope --out autograder.zip``: the zip to upload as a Gradescope assignment's "Autograder"
(``course.gradescope``): setup.sh (CPU torch, the course wheel), run_autograder and the grading settings."""

from __future__ import annotations

from course.gradescope import GradescopeSettings

DEFAULTS = GradescopeSettings()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gradescope",
        help="build the Gradescope autograder zip: setup.sh (CPU-only torch, the course wheel) and run_autograder",
        description="Write a zip to upload as a Gradescope assignment's autograder. setup.sh installs torch and "
        "torchvision for the CPU (the versions installed here unless --torch/--torchvision) and the course package "
        "as a wheel built from this checkout; run_autograder grades the submitted notebook like course grade and "
        "always writes /autograder/results/results.json (AUTOGRADER_ROOT overrides /autograder).",
    )
    parser.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    parser.add_argument("--part", choices=("partA", "partB"),
                        help="the assignment graded (default: told by each submitted notebook)")
    parser.add_argument("--tests", default=",".join(DEFAULTS.tests),
                        help=f"kinds of tests, comma-separated (default: {','.join(DEFAULTS.tests)})")
    parser.add_argument("--memory-mb", type=int, default=DEFAULTS.memory_mb,
                        help=f"memory the student's code may add, in MB (default: {DEFAULTS.memory_mb}, for "
                        "Gradescope's 768 MB machine)")
    parser.add_argument("--call-timeout", type=float, help="seconds one call of student code may take (default: 60)")
    parser.add_argument("--total-timeout", type=float, default=DEFAULTS.total_s,
                        help=f"no test starts after this many seconds (default: {DEFAULTS.total_s:g}; Gradescope "
                        "stops the autograder at 10 minutes unless the assignment allows more)")
    parser.add_argument("--torch", help="torch version to install, CPU build (default: the version installed here)")
    parser.add_argument("--torchvision", help="torchvision version to install (default: the version installed here)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from course.gradescope import build_autograder_zip

    settings = GradescopeSettings(part=args.part, tests=tuple(k.strip() for k in args.tests.split(",") if k.strip()),
                                  memory_mb=args.memory_mb, call_s=args.call_timeout, total_s=args.total_timeout,
                                  torch=args.torch, torchvision=args.torchvision)
    try:
        out = build_autograder_zip(args.out, settings)
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"course gradescope: {err}") from None
    print(f"wrote {out}: upload it as the assignment's autograder (torch {settings.torch} for the CPU, "
          f"part {settings.part or 'told by each notebook'}, tests {','.join(settings.tests)})")
    return 0
