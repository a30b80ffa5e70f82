"""Does training resume exactly, validate its config and write every output the course asks for?"""

import json

import pytest
import torch
from safetensors.torch import load_file

from course.cli import main
from course.commands.train import EXPERIMENT_NAMES
from reference import training

TINY = dict(offline=True, subset=64, num_hiddens=4, batch_size=16, num_ts=2, device="cpu")


def quiet(_):
    pass


def test_cli_lists_every_experiment():
    assert set(EXPERIMENT_NAMES) == set(training.EXPERIMENTS)


@pytest.mark.parametrize("field, value, words", [
    ("epochs", -1, "epochs must be a positive integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("p_uncond", 1.5, "p_uncond must be a probability"),
    ("lr", 0.0, "lr must be a positive number"),
])
def test_bad_config_values_are_rejected_with_a_sentence(field, value, words):
    with pytest.raises(ValueError, match=words):
        training.make_config("class-fm", **{field: value})


def test_course_defaults_live_in_the_configs():
    fm, ddpm, den = training.ClassFMConfig(), training.ClassDDPMConfig(), training.DenoiserConfig()
    assert (fm.batch_size, fm.num_hiddens, fm.lr, fm.epochs, fm.p_uncond, fm.guidance) == (64, 64, 1e-2, 10, 0.1, 5.0)
    assert (ddpm.batch_size, ddpm.lr, ddpm.epochs, ddpm.num_ts, ddpm.beta1, ddpm.beta2) == (128, 1e-3, 20, 300, 1e-4, 0.02)
    assert (den.sigma, den.num_hiddens, den.batch_size, den.lr, den.epochs) == (0.5, 128, 256, 1e-4, 5)


def test_resume_gives_the_same_weights_as_training_straight_through(tmp_path):
    config = training.make_config("class-fm", epochs=2, make_figures=False, **TINY)  # scheduler, dropout, shuffling
    straight = training.train(config, tmp_path / "straight", progress=False, log=quiet)
    training.train(config, tmp_path / "resumed", progress=False, log=quiet, stop_after=1)
    first = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    resumed = training.train(config, tmp_path / "resumed", resume=True, progress=False, log=quiet)
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(first[k], b[k]) for k in first)  # the second epoch did train
    assert straight["history"] == resumed["history"]


def test_resume_refuses_a_different_run(tmp_path):
    config = training.make_config("time-fm", epochs=1, make_figures=False, **TINY)
    training.train(config, tmp_path, progress=False, log=quiet)
    with pytest.raises(ValueError, match="different"):
        training.train(training.make_config("time-fm", epochs=2, make_figures=False, **{**TINY, "lr": 0.5}), tmp_path, resume=True,
                       progress=False, log=quiet)


@pytest.mark.parametrize("experiment, extra", [
    ("class-fm", ["gif"]),
    ("denoiser", ["noising.png", "ood.png"]),
    ("pure-noise", ["mean_image.png"]),
    ("time-ddpm", ["gif"]),
])
def test_cli_run_writes_checkpoint_and_figures(tmp_path, experiment, extra):
    args = ["train", experiment, "--out", str(tmp_path), "--offline", "--subset", "32", "--epochs", "1",
            "--num-hiddens", "4", "--batch-size", "16", "--device", "cpu", "--no-progress"]
    if "gif" in extra:
        args += ["--num-ts", "2"]
    assert main(args) == 0
    weights = load_file(str(tmp_path / "model.safetensors"))  # weights are safetensors
    assert "head.weight" in weights
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert {"optimizer", "scheduler", "history", "rng"} <= set(state)
    assert json.loads((tmp_path / "config.json").read_text())["experiment"] == experiment
    for name in ["loss.png", "samples_epoch01.png"] + [e for e in extra if e != "gif"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    if "gif" in extra:
        assert (tmp_path / "trajectory.gif").read_bytes()[:6] == b"GIF89a"
