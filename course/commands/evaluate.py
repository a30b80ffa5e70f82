"""``course evaluate CHECKPOINT_DIR``: judge a class-conditioned model with the project's MNIST classifier."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="per-digit accuracy and Fréchet distance of a class-conditioned model's CFG samples",
        description="Sample each digit with classifier-free guidance, classify the samples with the "
        "project's MNIST classifier and compare them with held-out digits in its feature space.",
    )
    parser.add_argument("checkpoint", help="a folder written by `course train class-fm` or `class-ddpm`")
    parser.add_argument("--per-digit", type=int, default=20, help="samples of each digit (default: 20)")
    parser.add_argument("--guidance", type=float, help="CFG scale γ (default: the checkpoint's, 5)")
    parser.add_argument("--num-ts", type=int, help="sampling steps (default: the checkpoint's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (default: 0)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    parser.set_defaults(func=run)


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

    from reference.classifier import evaluate_checkpoint

    try:
        result = evaluate_checkpoint(args.checkpoint, samples_per_digit=args.per_digit, guidance=args.guidance,
                                     num_ts=args.num_ts, seed=args.seed, device=args.device)
    except ValueError as err:
        raise SystemExit(f"course evaluate: {err}") from None
    print(format_report(result))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0
