"""``course demo``: every Part A stage on a stand-in model, one PNG per deliverable; then the instructor's
loop — release, collect, grade, feedback — offline (``course.loop``)."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path


def register(subparsers) -> None:
    from course.demo import DemoConfig

    defaults = {f.name: f.default for f in fields(DemoConfig)}
    p = subparsers.add_parser("demo", help="run every Part A stage and write the figures of every deliverable")
    p.add_argument("--out", type=Path, default=defaults["out"], help="output folder (default: %(default)s)")
    p.add_argument("--model", default=defaults["model"],
                   help="stage-1 model: a hub id, a local folder, 'digit' or 'tiny' (default: best available)")
    p.add_argument("--embeds", default=defaults["embeds"], help="prompt embeddings (safetensors) for DeepFloyd")
    p.add_argument("--device", default=defaults["device"], help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="seed for every stage (default: %(default)s)")
    p.add_argument("--fast", action="store_true", help="fewer SDEdit levels and samples")
    p.add_argument("--no-upsample", dest="upsample", action="store_false", help="skip stage 2")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="skip the Part A figures")
    p.add_argument("--no-grading", dest="grading", action="store_false",
                   help="skip the instructor's loop (release, grade three submissions, feedback, summary.csv)")
    p.add_argument("--parts", default="partB", help="parts the loop releases and grades (default: %(default)s)")
    p.set_defaults(func=_run)


def unavailable_line(err) -> str:
    """One line for a hub model that could not be loaded: why, and the command that works offline."""
    return (f"course demo: cannot load {err.model_id}: {err.reason}. Run `course demo --model digit` for the "
            f"course's digit model (CPU, offline); DeepFloyd IF needs a GPU, its licence and a Hugging Face token.")


def _run(args) -> int:
    from course.demo import DemoConfig, run_demo
    from course.loop import LoopConfig, run_course_loop

    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    if not set(parts) <= {"partA", "partB"}:
        raise SystemExit(f"course demo: --parts takes partA and/or partB, got {args.parts}")
    if args.figures:
        from fwd_kit.loading import ModelUnavailable

        try:
            run_demo(DemoConfig(out=args.out, model=args.model,
                                embeds=args.embeds, device=args.device, seed=args.seed, fast=args.fast,
                                upsample=args.upsample))
        except ModelUnavailable as err:
            print(unavailable_line(err), file=sys.stderr)
            return 1
    if args.grading:
        import importlib.util

        if importlib.util.find_spec("nbgrader") is None:
            raise SystemExit("course demo: the instructor's loop releases the notebooks with nbgrader, which is not "
                             "installed: pip install 'fun-with-diffusion[notebooks]' (or run with --no-grading)")
        run_course_loop(LoopConfig(out=args.out, parts=parts))
    return 0
