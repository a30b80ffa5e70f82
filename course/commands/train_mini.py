"""``course train-mini``: train the small DeepFloyd-compatible digit model (``fwd_kit.digit_model``).

With the default config and seed this reproduces the shipped weights in ``fwd_kit/digit_model``
(bit-identical on the same machine, torch version and thread count; other CPUs or torch builds may
differ in the last bits and so drift apart over training). ``--minutes`` stops early and keeps the
checkpoint; ``--resume`` continues from it exactly where it stopped. Ctrl-C ends the run with one line: the
step of the last checkpoint (written every ``DigitModelConfig.checkpoint_every`` steps) and the exact command
that resumes from it (exit status 130).
"""

from __future__ import annotations

import sys
from pathlib import Path


def checkpoint_step(out: Path) -> int | None:
    """The step the digit model's checkpoint in ``out`` was written at, or None without one."""
    import torch

    path = out / "checkpoint.pt"
    if not path.exists():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # noqa: BLE001 - a checkpoint of another layout: say only that there is one
        return -1


def interrupted_line(args) -> str:
    """One line after Ctrl-C: the checkpoint's step and the command that resumes from it."""
    from course.commands.train import command_line

    again = command_line(args.command_parser, args, drop=("--force",), keep=("--out",), flags=["--resume"])
    step = checkpoint_step(Path(args.out))
    if step is None:
        return f"course train-mini: interrupted before the first checkpoint; start again: {again}"
    where = f"its step {step}" if step >= 0 else "its last checkpoint"
    return f"course train-mini: interrupted; resume continues from {where} ({Path(args.out) / 'checkpoint.pt'}): {again}"


def run(args) -> int:
    from dataclasses import replace

    import torch
    from tqdm.auto import tqdm

    from fwd_kit.digit_model import DigitModelConfig, train_digit_model

    def tqdm_write(line: str) -> None:  # log lines that do not break the progress bar
        tqdm.write(line)

    config = DigitModelConfig()
    knobs = ("steps", "seed", "threads", "lr", "warmup_steps", "ema_decay", "batch_size", "init_from", "p_uncond")
    changes = {k: getattr(args, k) for k in knobs if getattr(args, k) is not None}
    config = replace(config, **changes)
    out = Path(args.out)
    if (out / "model_index.json").exists() and not args.resume and not args.force:
        print(f"course train-mini: {out} already holds a model; pass --force to overwrite it.", file=sys.stderr)
        return 2
    judge = None
    if args.judge_every:
        from course.digit_quality import TrainingJudge
        from fwd_kit.digit_model import make_prompt_embeds

        judge = TrainingJudge(out, make_prompt_embeds(config.text_seed), n=args.judge_n, log=tqdm_write)
        if config.init_from is not None and not judge.rows:  # the starting weights are the row to beat
            from fwd_kit.loading import load_stage1

            judge(0, load_stage1(Path(config.init_from), device="cpu", dtype=torch.float32).unet, None)
    try:
        train_digit_model(config, out, resume=args.resume, max_minutes=args.minutes, device=args.device,
                          progress=not args.no_progress, log=tqdm_write, judge=judge,
                          judge_every=args.judge_every or 1)
    except ValueError as err:
        print(f"course train-mini: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from course.commands.train import INTERRUPTED

        print(interrupted_line(args), file=sys.stderr)
        return INTERRUPTED
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-mini",
        help="train the small DeepFloyd-compatible digit model on MNIST",
        description="Train the digit model (IF stage 1's interface at 32x32, prompts 'a handwritten digit "
        "zero' ... 'nine' and '') on the offline MNIST digits and save it as a pipeline directory with its "
        "prompt embeddings. The defaults reproduce fwd_kit/digit_model.",
    )
    parser.add_argument("--out", default="digit_model", help="output pipeline directory (default: ./digit_model)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default: DigitModelConfig.steps)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes, keeping a checkpoint")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: DigitModelConfig.seed)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: DigitModelConfig.threads)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: DigitModelConfig.lr)")
    parser.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default: DigitModelConfig.warmup_steps)")
    parser.add_argument("--ema-decay", type=float, default=None, help="EMA decay of the saved weights (default: DigitModelConfig.ema_decay)")
    parser.add_argument("--batch-size", type=int, default=None, help="digits per step (default: DigitModelConfig.batch_size)")
    parser.add_argument("--p-uncond", type=float, default=None,
                        help="prompt dropout: share of digits trained with the empty prompt (default: DigitModelConfig.p_uncond)")
    parser.add_argument("--init-from", default=None, help="start from this saved digit model's weights (warm start)")
    parser.add_argument("--judge-every", type=int, default=1000,
                        help="judge the EMA weights every N steps with the MNIST classifier (CFG samples per "
                        "digit, and the empty-prompt inpainting of 100 held-out digits: a few CPU-minutes), log "
                        "them to OUT/training_log.csv and keep the best in OUT/best/ (0: never; default: 1000)")
    parser.add_argument("--judge-n", type=int, default=20, help="CFG samples per digit when judging (default: 20)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    parser.set_defaults(func=run, command_parser=parser)
