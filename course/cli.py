"""``course`` — the command line. Every subcommand lives in ``course/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import sys

from course.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="fun-with-diffusion: run the reference, train the Part B models, grade submissions.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"course.commands.{name}")
        except ModuleNotFoundError as err:  # a command whose module is not written yet
            if err.name == f"course.commands.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
