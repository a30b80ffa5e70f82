"""``course evaluate CHECKPOINT_DIR``: judge a class-conditioned model with the project's MNIST classifier.

Quick by default (:data:`QUICK_PER_DIGIT` samples of each digit); ``--full`` draws as many as
``reference.classifier.evaluate_checkpoint`` does by default. It prints the expected time after the first UNet
call and shows a progress bar; Ctrl-C ends it with one line (exit status 130).
"""

from __future__ import annotations

import sys

QUICK_PER_DIGIT = 5  # samples of each digit by default: 50 in all, a first look in seconds to a minute


def full_per_digit() -> int:
    """Samples of each digit with ``--full``: ``evaluate_checkpoint``'s own default."""
    import inspect

    from reference.classifier import evaluate_checkpoint

    return inspect.signature(evaluate_checkpoint).parameters["samples_per_digit"].default


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="per-digit accuracy and Fréchet distance of a class-conditioned model's CFG samples",
        description="Sample each digit with classifier-free guidance, classify the samples with the "
        "project's MNIST classifier and compare them with held-out digits in its feature space.",
    )
    parser.add_argument("checkpoint", help="a folder written by `course train class-fm` or `class-ddpm`")
    parser.add_argument("--per-digit", type=int, help=f"samples of each digit (default: {QUICK_PER_DIGIT}, a quick "
                        "look; --full: the full evaluation)")
    parser.add_argument("--full", action="store_true", help="the full evaluation: as many samples per digit as "
                        "reference.classifier.evaluate_checkpoint draws by default")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--guidance", type=float, help="CFG scale γ (default: the checkpoint's, 5)")
    parser.add_argument("--num-ts", type=int, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (default: 0)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    parser.set_defaults(func=run, command_parser=parser)


def format_report(result: dict) -> str:
    lines = [f"{result['experiment']} at {result['checkpoint']}: {result['num_samples']} samples, "
             f"γ={result['guidance']:g}, num_ts={result['num_ts']} ({result['sampling_s']:.1f} s sampling)",
             "digit    " + " ".join(f"{d:>5d}" for d in range(10)),
             "accuracy " + " ".join(f"{a:5.0%}" for a in result["per_digit"]),
             f"overall accuracy {result['accuracy']:.1%} (lowest digit {min(result['per_digit']):.0%})",
             f"Fréchet distance to held-out digits {result['frechet_distance']:.3f} "
             f"(real training digits, same count: {result['frechet_distance_real']:.3f})"]
    return "\n".join(lines)


def run(args) -> int:
    import json

    from tqdm.auto import tqdm

    from course.commands.train import INTERRUPTED, command_line
    from reference.classifier import evaluate_checkpoint

    if args.per_digit is not None and args.full:
        raise SystemExit("course evaluate: give --per-digit or --full, not both")
    per_digit = args.per_digit or (full_per_digit() if args.full else QUICK_PER_DIGIT)
    if not args.full and args.per_digit is None:
        print(f"course evaluate: a quick look with {per_digit} samples per digit; --full draws {full_per_digit()}",
              file=sys.stderr)
    try:
        result = evaluate_checkpoint(args.checkpoint, samples_per_digit=per_digit, guidance=args.guidance,
                                     num_ts=args.num_ts, seed=args.seed, device=args.device,
                                     progress=not args.no_progress, log=lambda line: tqdm.write(line, file=sys.stderr))
    except ValueError as err:
        raise SystemExit(f"course evaluate: {err}") from None
    except KeyboardInterrupt:
        print(f"course evaluate: interrupted, nothing written; it keeps no partial state, so run it again: "
              f"{command_line(args.command_parser, args)}", file=sys.stderr)
        return INTERRUPTED
    print(format_report(result))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0
