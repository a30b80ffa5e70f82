"""Small models, seeded inputs and call recorders shared by the public checks (and the autograder).

Part A: a tiny random IF stage-1 UNet built in memory from ``fwd_kit.tiny`` (CPU, float32, cached for
the session, handed out as copies), DeepFloyd's stage-1 scheduler, seeded (2, 3, 32, 32) pictures and
prompt embeddings, and :class:`UNetCalls`, which records the timesteps a diffusers UNet is called at.
Time convention there: t = 0 clean, t = 999 noisiest.

Part B: seeded digit-like images (N, 1, 28, 28) in [0, 1], reference UNets with BatchNorm statistics
as after training, perturbed (so that forgetting eval mode or misplacing a BatchNorm shows),
:class:`Probe`, a stand-in UNet that returns its input and records what it was given (so that a loss
check can read back the time, the class vector and the noise a student drew), and
:class:`ModuleCalls` for real UNets.

Nothing here touches the global random state: models are built under ``torch.random.fork_rng``.
Every input takes a ``seed``: 0 gives the inputs the notebooks' public checks use, any other seed the
same kind of input with other numbers (the autograder's hidden runs; see :func:`derived_seed`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import random

import torch
import torch.nn.functional as F
import torch.nn as nn

from fwd_kit.checks.compare import quiet
from fwd_kit.copying import fresh_copy
from fwd_kit.tiny import TEXT_WIDTH

SIZE = 32  # Part A image side: even for the checks' UNet's downsampling, > 16 for 33-tap blurs
BATCH = 2  # two images, so that batch handling (embeddings expanded to B) is exercised
TOKENS = 77  # DeepFloyd's prompt length


def generator(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``: the student's function and the reference get one each."""
    return torch.Generator().manual_seed(seed)


def derived_seed(seed: int, base: int = 0) -> int:
    """The seed of a check's random stream ``base`` (a generator, noise, a network's inputs) at check seed ``seed``.

    ``base`` itself at seed 0 — the inputs the notebooks show. Otherwise SHA-256 of the check seed and the
    stream, folded to 32 bits: a generator handed to the student's code on hidden inputs tells nothing of
    the hidden seed (a one-way function of it, which is itself 62 secret bits) or of the other streams.
    """
    if seed == 0:
        return base
    digest = hashlib.sha256(f"fun-with-diffusion/stream/{seed}/{base}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def parameter_rng(name: str, seed: int) -> random.Random:
    """A Python RNG for the scalar parameters (timesteps, σ, γ, classes, shapes) of check ``name`` at ``seed``.

    Seeded from the string ``"<name>:<seed>"``, so it is the same on every machine and Python run and
    differs between checks. The checks use it only at seed ≠ 0; at seed 0 they keep their public values.
    """
    return random.Random(f"{name}:{seed}")


# ---------------------------------------------------------------------------------------------------
# Part A


@functools.lru_cache(maxsize=1)
def _cached_unet():
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]), quiet():
        torch.manual_seed(0)
        return UNet2DConditionModel(
            sample_size=SIZE, in_channels=3, out_channels=6,  # 3 for ε, 3 for the learned-range variance
            down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
            mid_block_type="UNetMidBlock2DSimpleCrossAttn",
            up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"), block_out_channels=(8, 16),
            layers_per_block=1, cross_attention_dim=32, attention_head_dim=8, encoder_hid_dim=TEXT_WIDTH,
            encoder_hid_dim_type="text_proj", addition_embed_type="text", addition_embed_type_num_heads=2,
            cross_attention_norm="group_norm", resnet_time_scale_shift="scale_shift", act_fn="gelu",
            norm_num_groups=8,
        ).eval().requires_grad_(False)


def tiny_unet():
    """A fresh copy of the checks' tiny UNet (fp32, CPU, eval; seeded weights): a check cannot spoil the next.

    IF stage 1's interface and block types — 3 → 6 channels (ε̂ and the learned-range variance), T5 embeddings
    (B, 77, 32) through ``text_proj`` and the text addition embedding, cross-attention to the prompt at 16×16
    and in the middle block — at two levels (63 k parameters). The checks compare the student's loop with the
    reference's on it, step by step; a forward costs 14 ms of CPU, against 31 ms for IF's four levels
    (``fwd_kit.tiny.tiny_stage1_unet``), and a loop check makes dozens of them. The copy is a
    :func:`fwd_kit.copying.fresh_copy` (3 ms; building from the config and loading the weights takes 10 to 20).
    """
    return fresh_copy(_cached_unet()).eval().requires_grad_(False)


def meta_unet():
    """The device check's UNet, on PyTorch's meta device: IF stage 1's interface (3 → 6 channels, T5 embeddings
    (B, 77, 32) through ``text_proj``, a timestep, the same block types) at one level, with no more in it.

    On the meta device every operation is a Python call, and the check only asks where the student's tensors
    live, so it runs on the smallest model with the interface: one resnet per block (``layers_per_block=0``:
    the down block's downsampler, the up block's one layer), SiLU (GELU's decomposition costs more there), and
    no text addition embedding (the embeddings already meet the UNet's device in ``text_proj``). A forward of
    a batch of 2 costs 6.6 ms there; with a layer per block, GELU and the addition embedding 22 ms (as much as
    the digit model's on the CPU), and :func:`tiny_unet`'s three times that. Built there directly: no weights
    are made.
    """
    from diffusers import UNet2DConditionModel

    with quiet(), torch.device("meta"):
        return UNet2DConditionModel(
            sample_size=SIZE, in_channels=3, out_channels=6, down_block_types=("ResnetDownsampleBlock2D",),
            mid_block_type=None, up_block_types=("ResnetUpsampleBlock2D",), block_out_channels=(8,),
            layers_per_block=0, cross_attention_dim=16, attention_head_dim=8, encoder_hid_dim=TEXT_WIDTH,
            encoder_hid_dim_type="text_proj", resnet_time_scale_shift="scale_shift", act_fn="silu",
            norm_num_groups=8,
        ).eval().requires_grad_(False)


@functools.lru_cache(maxsize=2)
def _cached_scheduler(fixed_variance: bool):
    with quiet():
        from diffusers import DDPMScheduler

        from fwd_kit.tiny import stage1_scheduler

        scheduler = stage1_scheduler()
        if fixed_variance:
            scheduler = DDPMScheduler.from_config(scheduler.config, variance_type="fixed_large_log")
        return scheduler


def tiny_scheduler(fixed_variance: bool = False):
    """A fresh copy of DeepFloyd's stage-1 ``DDPMScheduler``; with ``fixed_variance`` its variance ignores the
    UNet's. (A copy costs a fifth of a millisecond, building the fixed-variance one 18 ms.)"""
    return copy.deepcopy(_cached_scheduler(fixed_variance))


@functools.lru_cache(maxsize=16)  # a few seeds per session: public (0) and hidden ones
def _picture_inputs(seed: int) -> dict:
    g = generator(1000 + seed)
    coarse = torch.rand((BATCH, 3, 8, 8), generator=g)
    x0 = (F.interpolate(coarse, size=SIZE, mode="bilinear", align_corners=False) * 2 - 1).clamp(-1, 1)
    noise = torch.randn((BATCH, 3, SIZE, SIZE), generator=g)
    embeds = {k: torch.randn((1, TOKENS, TEXT_WIDTH), generator=g) for k in ("cond", "cond2", "uncond")}
    return dict(x0=x0, noise=noise, **embeds)


def picture_inputs(seed: int = 0) -> dict:
    """Seeded Part A inputs: ``x0`` (2, 3, 32, 32) smooth pictures in [-1, 1], ``noise`` ε of that shape and
    prompt embeddings ``cond``, ``cond2``, ``uncond`` (1, 77, 32). Fresh clones on every call."""
    return {k: v.clone() for k, v in _picture_inputs(seed).items()}


# Views for the anagram checks: pairs (view, inverse) of torch functions with bound arguments, so that they
# travel to a sandboxed student process as data (``fwd_kit.grading.wire``). None is a view students write.
IDENTITY = functools.partial(torch.clone)
TRANSPOSE_VIEW = (functools.partial(torch.transpose, dim0=2, dim1=3),) * 2  # rows ↔ columns: its own inverse
ROLL_VIEW = (functools.partial(torch.roll, shifts=8, dims=3), functools.partial(torch.roll, shifts=-8, dims=3))


class UNetCalls:
    """What a diffusers UNet was called with: timesteps (consecutive repeats merged) and the first input."""

    def __init__(self):
        self.timesteps: list[int | None] = []
        self.first_sample: torch.Tensor | None = None

    def hook(self, module, args, kwargs):
        sample = args[0] if args else kwargs.get("sample")
        t = args[1] if len(args) > 1 else kwargs.get("timestep")
        t = int(t.flatten()[0]) if isinstance(t, torch.Tensor) else (None if t is None else int(t))
        if not self.timesteps or self.timesteps[-1] != t:
            self.timesteps.append(t)
        if self.first_sample is None and isinstance(sample, torch.Tensor):
            self.first_sample = sample.detach().clone()


def _as_int(value):
    try:
        return int(value)
    except (TypeError, ValueError, RuntimeError):
        return value if isinstance(value, (int, float, str)) else repr(type(value).__name__)


class CallbackLog(nn.Module):
    """A loop's ``callback``: records every call ``callback(i, t_prev, x)`` as a dict ``i``, ``t_prev``, ``x``.

    A module (with a ``calls`` list), so that a loop run in a sandboxed student process reports its calls
    back like the checks' other recorded models (``autograder.remote``); it returns None.
    """

    def __init__(self):
        super().__init__()
        self.calls: list[dict] = []
        self._wire_init = ((), {})  # see build()

    def forward(self, i=None, t_prev=None, x=None, *args, **kwargs):
        x = x.detach().to("cpu").clone() if isinstance(x, torch.Tensor) else x
        self.calls.append(dict(i=_as_int(i), t_prev=_as_int(t_prev), x=x))


def on_meta(value):
    """``value`` on PyTorch's meta device, for the device check (``compare.assert_follows_device``): a tensor
    moved there (shape and dtype, no data), a module copied there (the original is left as it was)."""
    if isinstance(value, nn.Module):
        return fresh_copy(value).to("meta")
    return value.detach().to("meta")


META_STEPS = 2  # UNet steps of a loop's device check: one that adds the variance's noise, and the last, to t = 0


def meta_start(timesteps, i_start: int) -> int:
    """i_start of a loop's device check: its last ``META_STEPS`` steps (one that draws noise, and the last
    one, which goes to t = 0 and may not), or all of them where there are fewer. A forward on the meta device
    costs as much as one on the CPU, and the check only asks where the loop makes its tensors."""
    return max(i_start, len(timesteps) - 1 - META_STEPS)


def meta_runs(student, course, make):
    """The device check's two runs (``compare.assert_follows_device``): ``make()`` gives (args, kwargs) with the
    inputs and the model on the meta device; returns (the student's call, the course's call or None), each
    on fresh copies made when it runs (the course's runs only after a device fault, and a verdict shared
    between a function's tests skips both: see ``compare.sharing_device_verdicts``)."""

    def run():
        args, kwargs = make()
        return student(*args, **kwargs)

    return run, course_call(course, make)


def course_call(function, make):
    """The course's ``function`` (a ``fwd_kit.expected.reference`` stand-in) called on ``make()``'s (args, kwargs),
    as a function of no arguments, for ``compare.assert_follows_device``; None where the reference is not
    installed (the student kit). The real function runs, not a stored result: meta tensors have no values to
    store."""
    from fwd_kit.expected import live

    if not live():
        return None

    def run():
        args, kwargs = make()
        return function.target()(*args, **kwargs)

    return run


@contextlib.contextmanager
def recording(module, calls):
    """Feed every call of ``module`` to ``calls.hook(module, args, kwargs)`` while inside; yields ``calls``."""
    handle = module.register_forward_pre_hook(calls.hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------------------------
# Part B


def digits(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` seeded digit-like images (n, 1, 28, 28) in [0, 1]: smooth blobs, not MNIST."""
    coarse = torch.rand((n, 1, 7, 7), generator=generator(2000 + seed))
    return F.interpolate(coarse, size=28, mode="bilinear", align_corners=False).clamp(0, 1)


def _norms(module: nn.Module) -> list:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def calibrate_norms(module: nn.Module, *inputs, seed: int = 0, **kwargs) -> nn.Module:
    """Give every BatchNorm of ``module`` running statistics as after training, then perturb them (in place).

    The statistics are the exact averages over one forward pass on ``inputs`` in train mode; without
    this, an untrained network in eval mode shrinks its signal layer after layer (fresh statistics are
    mean 0, variance 1) and its output hardly depends on its input. The perturbation — of the means by
    0.3 standard deviations, of the variances by a factor in [0.6, 1.5], of the affine parameters by
    0.3 — makes eval mode differ from train mode and makes the position of each BatchNorm matter.
    Returns ``module`` in eval mode.
    """
    norms = _norms(module)
    momenta = [m.momentum for m in norms]
    with torch.no_grad():
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        module.train()(*inputs, **kwargs)
        g = generator(3000 + seed)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            shape = m.running_mean.shape
            m.running_mean.add_(0.3 * m.running_var.sqrt() * torch.randn(shape, generator=g))
            m.running_var.mul_(0.6 + 0.9 * torch.rand(shape, generator=g))
            if m.affine:
                m.weight.copy_(1 + 0.3 * torch.randn(shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(shape, generator=g))
    return module.eval()


def build(cls, *args, seed: int = 0, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)`` initialised under ``torch.manual_seed(seed)`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = cls(*args, **kwargs)
    if isinstance(module, nn.Module):
        module._wire_init = (args, kwargs)  # lets the grader rebuild it in the student's process (fwd_kit.grading.wire)
    return module


def _per_sample(value, n: int) -> torch.Tensor | None:
    """A time or mask as a float64 (n,) tensor, whether given as a float, (n,) or (n, 1); None if absent."""
    if value is None:
        return None
    value = torch.as_tensor(value).detach().to("cpu", torch.float64)
    return value.expand(n).clone() if value.numel() == 1 else value.reshape(-1)


class Probe(nn.Module):
    """A stand-in UNet for loss checks: returns its input x (times a weight of 1, so that gradients flow)
    and records each call as a dict ``x``, ``t`` (float64 (N,)), ``c`` (the class vectors after the
    mask, float64 (N, K)) and ``training``.

    kind: ``"plain"`` — forward(x); ``"time"`` — forward(x, t); ``"class"`` — forward(x, c, t, mask=None),
    the reference UNets' signatures.
    """

    def __init__(self, kind: str = "plain", in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.kind = kind
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.ones(()))
        self.calls: list[dict] = []
        self._wire_init = ((kind, in_channels, num_classes), {})  # see build()

    def forward(self, x, *args, **kwargs):
        n = x.shape[0]
        call = dict(x=x.detach().to("cpu", torch.float64).clone(), t=None, c=None, training=self.training)
        if self.kind == "time":
            call["t"] = _per_sample(args[0] if args else kwargs.get("t"), n)
        elif self.kind == "class":
            c = args[0] if args else kwargs.get("c")
            t = args[1] if len(args) > 1 else kwargs.get("t")
            mask = _per_sample(args[2] if len(args) > 2 else kwargs.get("mask"), n)
            c = torch.as_tensor(c).detach().to("cpu", torch.float64)
            call["c"] = c if mask is None else c * mask.reshape(-1, 1)
            call["t"] = _per_sample(t, n)
        self.calls.append(call)
        return x * self.weight


class SamplerNet(nn.Module):
    """A small network for the sampler checks (none of the networks students write): a 3×3 convolution, the
    time (and the class vector times its mask) added per channel, BatchNorm, GELU and a 1×1 convolution,
    bounded by 2·tanh so that samples stay O(1).

    kind: ``"time"`` — forward(x, t); ``"class"`` — forward(x, c, t, mask=None), the UNets' signatures.
    x: (N, 1, 28, 28); t: a float, (N,) or (N, 1); c: (N, num_classes). Returns (N, 1, 28, 28).
    """

    def __init__(self, kind: str = "time", channels: int = 8, num_classes: int = 10):
        super().__init__()
        if kind not in ("time", "class"):
            raise ValueError(f"kind must be 'time' or 'class', but got {kind!r}.")
        self.kind = kind
        self.conv_in = nn.Conv2d(1, channels, 3, padding=1)
        self.fc_t = nn.Linear(1, channels)
        self.fc_c = nn.Linear(num_classes, channels)
        self.norm = nn.BatchNorm2d(channels)
        self.conv_out = nn.Conv2d(channels, 1, 1)

    def forward(self, x, *args, **kwargs):
        n = x.shape[0]
        if self.kind == "time":
            c, t, mask = None, (args[0] if args else kwargs.get("t")), None
        else:
            c = args[0] if args else kwargs.get("c")
            t = args[1] if len(args) > 1 else kwargs.get("t")
            mask = args[2] if len(args) > 2 else kwargs.get("mask")
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype).reshape(-1, 1).expand(n, 1)
        h = self.conv_in(x) + self.fc_t(t)[..., None, None]
        if c is not None:
            c = torch.as_tensor(c, device=x.device, dtype=x.dtype)
            if mask is not None:
                c = c * torch.as_tensor(mask, device=x.device, dtype=x.dtype).reshape(-1, 1)
            h = h + self.fc_c(c)[..., None, None]
        return 2 * torch.tanh(self.conv_out(F.gelu(self.norm(h))))


class ModuleCalls:
    """What a Part B UNet was called with: per call the input x, the time t (float64 (N,)) and the mode."""

    def __init__(self, time_index: int = 1):
        self.time_index = time_index  # position of t in forward's arguments: 1 for (x, t), 2 for (x, c, t)
        self.calls: list[dict] = []

    def hook(self, module, args, kwargs):
        x = args[0] if args else kwargs.get("x")
        t = args[self.time_index] if len(args) > self.time_index else kwargs.get("t")
        n = x.shape[0]
        self.calls.append(dict(x=x.detach().clone(), t=_per_sample(t, n), training=module.training))
