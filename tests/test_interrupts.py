"""Ctrl-C in ``course train``, ``course train-mini`` and ``course evaluate``: does the user get one line with
the exact command that continues (exit status 130, no traceback), and is the checkpoint left resumable?

Interrupts are raised in-process from a patched step (KeyboardInterrupt), not timed signals."""

from __future__ import annotations

import shlex
import signal

import pytest

from course.cli import build_parser, main

TINY = ["--subset", "64", "--epochs", "2", "--batch-size", "32", "--num-hiddens", "8", "--offline", "--no-progress",
        "--device", "cpu"]


def _interrupt_on_call(monkeypatch, module, name, call_number):
    """Make ``module.name`` raise KeyboardInterrupt on its ``call_number``-th call (1-based), once."""
    original, calls = getattr(module, name), []

    def patched(*args, **kwargs):
        calls.append(1)
        if len(calls) == call_number:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, lines
    return lines[0]


def test_train_interrupted_names_the_epoch_and_the_command_that_resumes(tmp_path, monkeypatch, capsys):
    """Interrupted in epoch 2 of 2 (after epoch 1's checkpoint): 130, one line; its command resumes at epoch 2."""
    from fwd_kit import data

    out = tmp_path / "run"
    _interrupt_on_call(monkeypatch, data, "batch_images", 3)  # 2 batches per epoch: the first batch of epoch 2
    assert main(["train", "denoiser", "--out", str(out), *TINY]) == 130
    line = _one_line(capsys.readouterr().err)
    assert "holds epoch 1 of 2" in line and "restarts at epoch 2" in line
    command = line.rsplit(": ", 1)[1]
    words = shlex.split(command)
    assert words[:2] == ["course", "train"] and "--resume" in words and str(out) in words
    assert main(words[1:]) == 0  # the printed command, run as printed: same settings, so it may resume
    printed = capsys.readouterr().out
    assert f"resuming denoiser from {out} after epoch 1" in printed and "epoch 2: mean loss" in printed


def test_train_interrupted_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path, monkeypatch, capsys):
    """No --out given: the command to start again names the folder the run used."""
    from fwd_kit import data

    monkeypatch.chdir(tmp_path)
    _interrupt_on_call(monkeypatch, data, "batch_images", 1)
    assert main(["train", "denoiser", *TINY]) == 130
    line = _one_line(capsys.readouterr().err)
    assert "no checkpoint yet" in line and "--out runs/denoiser" in line and "--resume" in line


def test_a_checkpoint_save_finishes_before_ctrl_c_takes_effect(tmp_path, monkeypatch):
    """SIGINT between the weights and the state file: both are written (same epoch), then KeyboardInterrupt."""
    import torch

    from reference import training

    calls = []
    original = training.save_file

    def weights_then_signal(*args, **kwargs):
        original(*args, **kwargs)
        calls.append(1)
        signal.raise_signal(signal.SIGINT)  # to this thread (os.kill may reach another thread of the process)

    monkeypatch.setattr(training, "save_file", weights_then_signal)
    model, optimizer = torch.nn.Linear(2, 2), None
    optimizer = torch.optim.Adam(model.parameters())
    # Python's own Ctrl-C handler, as in a terminal: a process started in the background by a shell (a queued
    # test run) inherits SIGINT ignored, and Python then installs no handler at all
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            training.save_checkpoint(tmp_path, "denoiser", training.make_config("denoiser"), model, optimizer, None,
                                     {"epoch_losses": [1.0]}, {})
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, started_with)
    assert calls and (tmp_path / training.WEIGHTS).exists() and (tmp_path / training.STATE).exists()


def test_train_mini_interrupted_names_the_checkpoint_step_and_the_exact_resume_command(tmp_path, monkeypatch,
                                                                                       capsys):
    """The digit model's trainer is replaced by one that wrote a checkpoint at step 300 and is then interrupted."""
    import torch

    from fwd_kit import digit_model

    def interrupted(config, out_dir, **_):
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"step": 300, "config": {}}, out_dir / "checkpoint.pt")
        raise KeyboardInterrupt

    monkeypatch.setattr(digit_model, "train_digit_model", lambda config, out, **kw: interrupted(config, out, **kw))
    out = tmp_path / "dm"
    argv = ["train-mini", "--out", str(out), "--steps", "9000", "--lr", "0.0004", "--threads", "1", "--force",
            "--no-progress"]
    assert main(argv) == 130
    line = _one_line(capsys.readouterr().err)
    assert "step 300" in line
    words = shlex.split(line.rsplit(": ", 1)[1])
    assert words[:2] == ["course", "train-mini"] and "--resume" in words and "--force" not in words
    again, first = build_parser().parse_args(words[1:]), build_parser().parse_args(argv)
    for knob in ("out", "steps", "lr", "threads", "seed", "warmup_steps", "ema_decay", "batch_size", "init_from",
                 "device", "no_progress"):
        assert getattr(again, knob) == getattr(first, knob), knob


@pytest.fixture(scope="module")
def class_fm_checkpoint(tmp_path_factory):
    """A class-conditioned checkpoint trained for one tiny epoch (its quality does not matter here)."""
    from reference import training

    out = tmp_path_factory.mktemp("class-fm")
    config = training.make_config("class-fm", offline=True, subset=64, epochs=1, batch_size=32, num_hiddens=8,
                                  num_ts=3, make_figures=False, out_dir=str(out), device="cpu")
    training.train(config, progress=False, log=lambda *_: None)
    return out


def test_evaluate_interrupted_prints_one_line_with_the_command_to_run_again(class_fm_checkpoint, monkeypatch,
                                                                            capsys):
    from reference import training

    _interrupt_on_call(monkeypatch, training, "sample_digits", 1)
    assert main(["evaluate", str(class_fm_checkpoint), "--device", "cpu", "--no-progress"]) == 130
    err = capsys.readouterr().err
    line = _one_line(err.split("\n", 1)[1])  # after the quick-look notice
    assert line.startswith("course evaluate: interrupted")
    words = shlex.split(line.rsplit(": ", 1)[1])
    again = build_parser().parse_args(words[1:])
    assert words[:2] == ["course", "evaluate"] and again.checkpoint == str(class_fm_checkpoint)
    assert again.device == "cpu" and again.no_progress and again.per_digit is None and not again.full


def test_evaluate_is_quick_by_default_and_says_what_it_will_cost(class_fm_checkpoint, capsys):
    """Default: 5 samples per digit (50), a line with the number of UNet calls and their expected time, a bar."""
    assert main(["evaluate", str(class_fm_checkpoint), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "50 samples" in captured.out
    assert "--full" in captured.err and "1 batch(es) x 3 steps = 3 UNet calls, about" in captured.err
    assert "sampling" in captured.err and "3/3" in captured.err  # the progress bar ran to its end
