"""Training the Part B models: one config per experiment, one loop, checkpoints that resume exactly.

Time conventions follow the stage being trained: flow matching has t = 0 noise and t = 1 data;
DDPM has t = 0 clean and t = T − 1 pure noise (see ``reference.flow_matching`` and ``reference.ddpm``).

The loop keeps the whole (small) dataset on the device as uint8 and draws batches by indexing a
seeded permutation (faster than a ``DataLoader`` for MNIST; bench/bench_partB.py measures it). Noise is
drawn fresh for every batch from a seeded generator. After every epoch it writes to ``out_dir``:

    model.safetensors   the weights                       config.json   the experiment and its config
    state.pt            optimizer, LR scheduler, epoch, step, loss history and every RNG state
    loss.png            loss per step and per-epoch mean  samples_epochNN.png / trajectory.gif / ...

``train(config, resume=True)`` continues exactly where the last checkpoint stopped: training E epochs
straight or E1 epochs, stopping, then resuming to E gives bit-identical weights (tests/test_training.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from fwd_kit import data as digits
from fwd_kit.configs import (
    ClassDDPMConfig,
    ClassFMConfig,
    DenoiserConfig,
    PureNoiseConfig,
    TimeDDPMConfig,
    TimeFMConfig,
    TrainConfig,
    resolve_device,
)
from fwd_kit.configs import make_config as _make_config
from reference import figures

# Presets: named overrides of an experiment's defaults (the course defaults stay untouched).


# ---------------------------------------------------------------------------------------------------
# What differs between experiments: the network, the loss of one batch, the figures after an epoch


def _ddpm_schedule(cfg, device) -> dict:
    from reference.ddpm import ddpm_schedule

    return {k: v.to(device) for k, v in ddpm_schedule(cfg.beta1, cfg.beta2, cfg.num_ts).items()}


def _loss(name: str, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, cfg, generator) -> torch.Tensor:
    """The loss of one batch x (B, 1, 28, 28) in [0, 1] with labels (B,), noise drawn from ``generator``."""
    if name == "denoiser":
        from reference.denoiser import denoiser_loss

        return denoiser_loss(model, x, sigma=cfg.sigma, generator=generator)
    if name == "pure-noise":
        from reference.denoiser import pure_noise_loss

        return pure_noise_loss(model, x, generator=generator)
    if name == "time-fm":
        from reference.flow_matching import time_fm_forward

        return time_fm_forward(model, x, generator=generator)
    if name == "class-fm":
        from reference.flow_matching import class_fm_forward

        return class_fm_forward(model, x, labels, p_uncond=cfg.p_uncond, generator=generator)
    from reference.ddpm import class_ddpm_forward, ddpm_forward

    schedule = _ddpm_schedule(cfg, x.device)
    if name == "time-ddpm":
        return ddpm_forward(model, schedule, x, num_ts=cfg.num_ts, generator=generator)
    return class_ddpm_forward(model, schedule, x, labels, p_uncond=cfg.p_uncond, num_ts=cfg.num_ts, generator=generator)


def sample_digits(name: str, model: nn.Module, cfg, generator: torch.Generator, labels: torch.Tensor | None = None,
                  num_ts: int | None = None, guidance: float | None = None, return_trajectory: bool = False):
    """Samples (N, 1, 28, 28) of a generative experiment; class experiments need ``labels`` (N,) in 0–9.

    ``num_ts`` and ``guidance`` default to the config's. With ``return_trajectory`` returns
    ``(samples, frames)`` as the samplers do.
    """
    num_ts = cfg.num_ts if num_ts is None else num_ts
    guidance = getattr(cfg, "guidance", 0.0) if guidance is None else guidance
    device = next(model.parameters()).device
    if labels is not None:
        labels = torch.as_tensor(labels, device=device)
    with torch.no_grad():
        if name == "time-fm":
            from reference.flow_matching import time_fm_sample

            return time_fm_sample(model, cfg.num_samples, (28, 28), num_ts, generator, return_trajectory)
        if name == "class-fm":
            from reference.flow_matching import class_fm_sample

            return class_fm_sample(model, labels, (28, 28), num_ts, guidance, generator, return_trajectory)
        from reference.ddpm import class_ddpm_sample, ddpm_sample

        schedule = _ddpm_schedule(cfg, device)
        if name == "time-ddpm":
            return ddpm_sample(model, schedule, cfg.num_samples, (28, 28), num_ts, generator, return_trajectory)
        return class_ddpm_sample(model, schedule, labels, (28, 28), num_ts, guidance, generator, return_trajectory)


def _build(name: str, cfg) -> nn.Module:
    from reference.unet import (
        ClassConditionalUNet,
        TimeConditionalUNet,
        UnconditionalUNet,
    )

    if name in ("denoiser", "pure-noise"):
        return UnconditionalUNet(1, cfg.num_hiddens)
    kind = "fm" if name.endswith("fm") else "ddpm"
    if name.startswith("time"):
        return TimeConditionalUNet(1, cfg.num_hiddens, conditioning=kind)
    return ClassConditionalUNet(1, 10, cfg.num_hiddens, conditioning=kind)


@dataclass(frozen=True)
class Experiment:
    """How to train one experiment: its config class, network, batch loss and figures."""

    config_cls: type
    build_model: Callable  # (name, config) -> nn.Module
    loss: Callable  # (name, model, x, labels, config, generator) -> scalar loss
    figures: Callable  # (name, model, config, out_dir, epoch, final, train_images) -> None


EXPERIMENTS: dict[str, Experiment] = {
    "denoiser": Experiment(DenoiserConfig, _build, _loss, figures.denoiser_figures),
    "pure-noise": Experiment(PureNoiseConfig, _build, _loss, figures.denoiser_figures),
    "time-fm": Experiment(TimeFMConfig, _build, _loss, partial(figures.generative_figures, sample=sample_digits)),
    "class-fm": Experiment(ClassFMConfig, _build, _loss, partial(figures.generative_figures, sample=sample_digits)),
    "time-ddpm": Experiment(TimeDDPMConfig, _build, _loss, partial(figures.generative_figures, sample=sample_digits)),
    "class-ddpm": Experiment(ClassDDPMConfig, _build, _loss, partial(figures.generative_figures, sample=sample_digits)),
}


def experiment_name(config: TrainConfig) -> str:
    """The EXPERIMENTS key of a config object (by its exact class)."""
    for name, experiment in EXPERIMENTS.items():
        if type(config) is experiment.config_cls:
            return name
    raise ValueError(f"config must be one of the experiment configs, but is a {type(config).__name__}.")


def make_config(name: str, preset: str | None = None, **overrides) -> TrainConfig:
    """The config of experiment ``name`` (see :func:`fwd_kit.configs.make_config`); checks it is trained here."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)}, but got {name!r}.")
    return _make_config(name, preset, **overrides)


# ---------------------------------------------------------------------------------------------------
# The loop and its checkpoints

WEIGHTS, STATE, CONFIG = "model.safetensors", "state.pt", "config.json"




def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file and rename: an interrupted save never leaves a broken checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


@contextlib.contextmanager
def _ctrl_c_after():
    """Ctrl-C (SIGINT) inside the block takes effect when it ends: a checkpoint's two files are written as a
    pair. Outside the main thread (where Python delivers no signals) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *received: caught.append(received))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])  # Python's own handler raises KeyboardInterrupt here


def save_checkpoint(out: Path, name: str, config, model, optimizer, scheduler, history: dict, rngs: dict) -> None:
    """Weights to ``model.safetensors``; optimizer, scheduler, history and RNG states to ``state.pt``.

    Ctrl-C during the save waits until both files are written (they always belong to the same epoch)."""
    with _ctrl_c_after():
        _save_checkpoint(out, name, config, model, optimizer, scheduler, history, rngs)


def _save_checkpoint(out: Path, name: str, config, model, optimizer, scheduler, history: dict, rngs: dict) -> None:
    """The two writes of :func:`save_checkpoint`."""
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    _atomic(out / WEIGHTS, lambda p: save_file(weights, p, metadata={"experiment": name}))
    state = {
        "experiment": name,
        "config": asdict(config),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": history,
        "rng": {"torch_cpu": torch.get_rng_state(), **{k: g.get_state() for k, g in rngs.items()}},
    }
    _atomic(out / STATE, lambda p: torch.save(state, p))


def load_model(checkpoint_dir: str | Path, device: str = "auto") -> tuple[nn.Module, TrainConfig, str]:
    """``(model in eval mode, config, experiment name)`` from a training folder."""
    folder = Path(checkpoint_dir)
    if not (folder / CONFIG).exists() or not (folder / WEIGHTS).exists():
        raise ValueError(f"{folder} is not a training folder: it needs {CONFIG} and {WEIGHTS} (written by `course train`).")
    saved = json.loads((folder / CONFIG).read_text())
    name = saved.pop("experiment")
    config = EXPERIMENTS[name].config_cls(**saved)
    model = EXPERIMENTS[name].build_model(name, config)
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model.to(resolve_device(device)).eval(), config, name


def _same_run(saved: dict, config: TrainConfig) -> None:
    """Resuming must continue the same run: only device, epochs and out_dir may change."""
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(asdict(config)))  # tuples → lists
    differ = [k for k in current if k not in ("device", "epochs", "out_dir") and saved.get(k) != current[k]]
    if differ:
        raise ValueError(f"cannot resume: the checkpoint was trained with different {differ}; "
                         f"use the same settings or another --out folder.")


def train(config: TrainConfig, out_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print, stop_after: int | None = None) -> dict:
    """Train ``config``'s experiment, checkpointing and drawing figures after every epoch.

    Returns ``{"model", "history", "out_dir"}``; ``history`` holds ``step_losses`` (one per step),
    ``steps_per_epoch`` and ``epoch_losses`` (means). ``resume=True`` continues from ``out_dir``'s
    checkpoint when there is one (bit-exact: same weights as training straight through).
    ``stop_after`` ends the run after that epoch, as an interruption would (resume later).
    """
    from tqdm.auto import tqdm

    name = experiment_name(config)
    experiment = EXPERIMENTS[name]
    out = Path(out_dir if out_dir is not None else config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    dataset = digits.load_mnist(config.data_root, train=True, offline=config.offline)
    if config.subset is not None:
        dataset = digits.subset(dataset, min(config.subset, len(dataset)), seed=config.seed)
    log(digits.describe(dataset))
    images, labels = digits.to_device_tensors(dataset, device)  # uint8 (N, 1, 28, 28), int64 (N,)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format

    with torch.random.fork_rng(devices=[]):  # seeded initial weights, caller's global RNG untouched
        torch.manual_seed(config.seed)
        model = experiment.build_model(name, config)
    model = model.to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = (torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / config.epochs))
                 if config.use_scheduler else None)
    rngs = {"order": torch.Generator().manual_seed(config.seed),  # data order (CPU)
            "noise": torch.Generator(device=device).manual_seed(config.seed + 1)}  # noise, t, class dropout
    history = {"step_losses": [], "steps_per_epoch": [], "epoch_losses": []}

    start = 1
    if resume and (out / STATE).exists():
        state = torch.load(out / STATE, map_location="cpu", weights_only=True)
        _same_run(state["config"], config)
        model.load_state_dict(load_file(str(out / WEIGHTS), device=str(device)))
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch_cpu"])
        for key, gen in rngs.items():
            gen.set_state(state["rng"][key])
        history = state["history"]
        start = len(history["epoch_losses"]) + 1
        log(f"resuming {name} from {out} after epoch {start - 1}")
    elif resume:
        log(f"nothing to resume in {out}: starting {name} from scratch")
    (out / CONFIG).write_text(json.dumps({"experiment": name, **asdict(config)}, indent=2))

    n = images.shape[0]
    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(start, last + 1):
        model.train()
        order = torch.randperm(n, generator=rngs["order"]).to(device)  # 1. shuffle the training split
        losses = []
        bar = tqdm(range(0, n, config.batch_size), desc=f"{name} epoch {epoch}/{config.epochs}",
                   disable=not progress, leave=True)
        for first in bar:
            rows = order[first : first + config.batch_size]
            x = digits.batch_images(images, rows).contiguous(memory_format=memory_format)  # 2. (B, 1, 28, 28)
            loss = experiment.loss(name, model, x, labels[rows], config, rngs["noise"])  # 3. fresh noise
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # 4. gradient step
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if scheduler is not None:
            scheduler.step()  # 5. once per epoch
        history["step_losses"] += losses
        history["steps_per_epoch"].append(len(losses))
        history["epoch_losses"].append(sum(losses) / len(losses))
        save_checkpoint(out, name, config, model, optimizer, scheduler, history, rngs)
        figures.save_figure(figures.loss_curve(history["step_losses"], history["steps_per_epoch"], f"{name} loss"),
                            out / "loss.png")
        if config.make_figures and (epoch in config.sample_epochs or epoch == config.epochs):
            experiment.figures(name, model, config, out, epoch, epoch == config.epochs, images)
        log(f"epoch {epoch}: mean loss {history['epoch_losses'][-1]:.5f}")
    return {"model": model, "history": history, "out_dir": out}
