"""Submissions the project writes itself to prove that the grader grades (``tests/test_grade_proof.py``).

A submission here is the solution notebook with some answer cells edited: a **mistake** replaces one
line of a solution cell (``Edit``: the old text must occur exactly once in that cell, so an edit cannot
silently miss after the notebook changes); an **alternative** replaces a whole answer cell with another
correct implementation.

A mistake in a function loses the points of that function's own tests only. The graded functions that
call it, directly or not, in the student's own code (``CALLS`` lists, per graded name, the graded names
its solution cell uses, checked against the notebooks by the tests; :func:`broken_by` closes it) fail
their checks with the student's helper, are judged again against the course's composite over the same
helpers (``autograder.charges``), keep their points and name the helper to look at. The checks themselves
call only the function they grade, with reference models and views as arguments (``visual_anagram``
gets the reference's views, the samplers get reference UNets), so nothing else propagates.
"""

from __future__ import annotations

import ast
import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SOLUTION = {part: REPO / "solutions" / part / f"{part}.ipynb" for part in ("partA", "partB")}
RELEASE = {part: REPO / "assignments" / part / f"{part}.ipynb" for part in ("partA", "partB")}

# graded name → the graded names its answer cell calls (or builds, for classes)
CALLS = {
    "partA": {
        "forward": set(),
        "estimate_x0": set(),
        "one_step_denoise": {"estimate_x0"},
        "strided_timesteps": set(),
        "denoise_step_mean": set(),
        "iterative_denoise": {"estimate_x0", "denoise_step_mean"},
        "cfg_noise": set(),
        "iterative_denoise_cfg": {"cfg_noise", "estimate_x0", "denoise_step_mean"},
        "sdedit": {"forward", "iterative_denoise_cfg"},
        "inpaint": {"cfg_noise", "forward"},
        "flip_upside_down": set(),
        "visual_anagram": {"cfg_noise"},  # its default view is flip_view, but the checks pass their own views
        "lowpass": set(),
        "highpass": {"lowpass"},
        "make_hybrids": {"lowpass", "highpass"},
        "rot90_ccw": set(),
        "rot90_cw": set(),
        "negate": set(),
    },
    "partB": {
        "Conv": set(),
        "DownConv": set(),
        "UpConv": set(),
        "Flatten": set(),
        "Unflatten": set(),
        "Concat": set(),
        "ConvBlock": {"Conv"},
        "DownBlock": {"DownConv", "ConvBlock"},
        "UpBlock": {"UpConv", "ConvBlock"},
        "FCBlock": set(),
        "UnconditionalUNet": {"ConvBlock", "DownBlock", "Flatten", "Unflatten", "UpBlock", "Concat"},
        "add_noise": set(),
        "denoiser_loss": {"add_noise"},
        "pure_noise_loss": set(),
        "interpolate": set(),
        "flow_target": set(),
        "TimeConditionalUNet": {"ConvBlock", "DownBlock", "Flatten", "Unflatten", "UpBlock", "Concat", "FCBlock"},
        "time_fm_forward": {"interpolate", "flow_target"},
        "time_fm_sample": set(),
        "ClassConditionalUNet": {"ConvBlock", "DownBlock", "Flatten", "Unflatten", "UpBlock", "Concat", "FCBlock"},
        "class_fm_forward": {"interpolate", "flow_target"},
        "class_fm_sample": set(),
        "ddpm_schedule": set(),
        "ddpm_forward": set(),
        "ddpm_step": set(),
        "ddpm_sample": {"ddpm_step"},
        "class_ddpm_forward": set(),
        "class_ddpm_sample": {"ddpm_step"},
    },
}


def broken_by(part: str, name: str) -> set[str]:
    """``name`` and every graded name that calls it, directly or through others: whose tests a mistake in
    ``name`` must fail."""
    broken, grew = {name}, True
    while grew:
        callers = {caller for caller, callees in CALLS[part].items() if callees & broken}
        grew = not callers <= broken
        broken |= callers
    return broken


# ---------------------------------------------------------------------------------------------------
# Notebooks


@functools.lru_cache(maxsize=None)
def _read(path: Path):
    return nbformat.read(path, as_version=4)


def solution_notebook(part: str):
    """A fresh copy of the solution notebook of ``part``."""
    return copy.deepcopy(_read(SOLUTION[part]))


def answer_cell(nb, grade_id: str):
    """The one answer (solution) cell whose nbgrader grade_id is ``grade_id``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
             and c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(cells) == 1, f"expected one answer cell with grade_id {grade_id!r}, found {len(cells)}"
    return cells[0]


def answer_source(part: str, grade_id: str) -> str:
    return answer_cell(_read(SOLUTION[part]), grade_id).source


def defined_in_answers(part: str) -> dict[str, set[str]]:
    """Per answer cell (grade_id): the other answer cells' names it refers to, read from the solution's code."""
    nb = _read(SOLUTION[part])
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.cell_type == "code"
           and c.metadata.get("nbgrader", {}).get("solution")]
    uses = {}
    for grade_id in ids:
        tree = ast.parse(answer_cell(nb, grade_id).source)
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        uses[grade_id] = (names & set(ids)) - {grade_id}
    return uses


@dataclass(frozen=True)
class Edit:
    """A mistake: in the answer cell ``target``, the text ``old`` (exactly once there) becomes ``new``.

    ``says``: words the public test's message must contain (the question that names the mistake).
    ``spares``: callers that never take the mistaken path (their tests must still pass).
    ``raises``: the mistake is an exception; its callers' tests fail too, each naming it (what a caller does
    after the call is unseen: keeping their points would pay a caller that only calls a broken helper).
    """

    target: str
    what: str
    old: str
    new: str
    says: str = ""
    spares: tuple = ()
    raises: bool = False

    def breaks(self, part: str) -> set[str]:
        """The graded names whose tests this mistake must fail."""
        return broken_by(part, self.target) - set(self.spares)

    def apply(self, nb) -> None:
        cell = answer_cell(nb, self.target)
        count = cell.source.count(self.old)
        assert count == 1, f"{self.target}: {self.old!r} occurs {count} times in its answer cell, expected once"
        cell.source = cell.source.replace(self.old, self.new)


@dataclass(frozen=True)
class Rewrite:
    """A correct alternative: the answer cell ``target`` replaced by ``source``."""

    target: str
    what: str
    source: str

    def apply(self, nb) -> None:
        cell = answer_cell(nb, self.target)
        source = self.source.lstrip("\n")
        assert cell.source != source
        cell.source = source


@dataclass(frozen=True)
class Submission:
    """A solution notebook with ``changes`` applied, graded with ``kinds``."""

    part: str
    changes: tuple = field(default=())

    def notebook(self):
        nb = solution_notebook(self.part)
        for change in self.changes:
            change.apply(nb)
        return nb

    def write(self, folder: Path) -> Path:
        path = Path(folder) / f"{self.part}.ipynb"
        nbformat.write(self.notebook(), path)
        return path


# ---------------------------------------------------------------------------------------------------
# Correct alternatives: other ways to write each answer, all of which must score full marks

_A = (
    Rewrite("forward", "a loop over the batch, math.sqrt, torch.randn", '''
import math


def forward(x0, t, alphas_cumprod, noise=None, generator=None):
    """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε, one image at a time."""
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    alpha_bar = float(alphas_cumprod[t])
    images = []
    for image, eps in zip(x0, noise):
        images.append(math.sqrt(alpha_bar) * image + math.sqrt(1 - alpha_bar) * eps)
    return torch.stack(images)
'''),
    Rewrite("estimate_x0", "torch.sqrt of a tensor, x̂0 clamped to [-1, 1] (optional in the course; every loop of "
            "this notebook then uses the clamped estimate)", '''
def estimate_x0(xt, eps, t, alphas_cumprod):
    alpha_bar = alphas_cumprod[t].to(xt.dtype)
    return ((xt - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)).clamp(-1, 1)
'''),
    Rewrite("one_step_denoise", "the UNet called directly, ε̂ sliced from its output", '''
def one_step_denoise(unet, xt, t, prompt_embeds, alphas_cumprod):
    embeds = prompt_embeds.expand(xt.shape[0], -1, -1)
    with torch.no_grad():
        output = unet(xt, t, encoder_hidden_states=embeds).sample  # (B, 6, H, W)
    return estimate_x0(xt, output[:, :3], t, alphas_cumprod)
'''),
    Rewrite("strided_timesteps", "a list comprehension", '''
def strided_timesteps(start=990, stride=30):
    if stride <= 0 or start < 0 or start % stride != 0:
        raise ValueError("start must be a non-negative multiple of a positive stride.")
    return [start - k * stride for k in range(start // stride + 1)]
'''),
    Rewrite("denoise_step_mean", "Python floats and one fraction", '''
import math


def denoise_step_mean(xt, x0_hat, t, t_prev, alphas_cumprod):
    if not t_prev < t:
        raise ValueError(f"t_prev must be smaller than t, but got t={t}, t_prev={t_prev}.")
    alpha_bar, alpha_bar_prev = float(alphas_cumprod[t]), float(alphas_cumprod[t_prev])
    alpha = alpha_bar / alpha_bar_prev
    beta = 1 - alpha
    return (math.sqrt(alpha_bar_prev) * beta * x0_hat + math.sqrt(alpha) * (1 - alpha_bar_prev) * xt) / (1 - alpha_bar)
'''),
    Rewrite("iterative_denoise", "a loop over zipped timestep pairs", '''
def iterative_denoise(unet, scheduler, xt, i_start, prompt_embeds, timesteps, generator=None, callback=None,
                      return_intermediates=False):
    set_strided_timesteps(scheduler, timesteps)
    frames = []
    pairs = list(zip(timesteps[i_start:-1], timesteps[i_start + 1:]))
    for k, (t, t_prev) in enumerate(pairs):
        if return_intermediates and k % 5 == 0:
            frames.append((t, xt))
        eps, variance = predict_noise(unet, xt, t, prompt_embeds)
        x0_hat = estimate_x0(xt, eps, t, scheduler.alphas_cumprod)
        mean = denoise_step_mean(xt, x0_hat, t, t_prev, scheduler.alphas_cumprod)
        xt = add_variance(scheduler, variance, t, mean, generator)
        if callback is not None:
            callback(i_start + k, t_prev, xt)
    return (xt, frames) if return_intermediates else xt
'''),
    Rewrite("cfg_noise", "two UNet calls and (1 − γ)·ε_u + γ·ε_c", '''
@torch.no_grad()
def cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale=7.0):
    eps_cond, variance_cond = predict_noise(unet, xt, t, prompt_embeds)
    eps_uncond, _ = predict_noise(unet, xt, t, uncond_prompt_embeds)
    return (1 - scale) * eps_uncond + scale * eps_cond, variance_cond
'''),
    Rewrite("iterative_denoise_cfg", "a while loop and the provided denoise_step", '''
def iterative_denoise_cfg(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
                          generator=None, callback=None, return_intermediates=False):
    set_strided_timesteps(scheduler, timesteps)
    frames, i = [], i_start
    while i < len(timesteps) - 1:
        t, t_prev = timesteps[i], timesteps[i + 1]
        if return_intermediates and (i - i_start) % 5 == 0:
            frames.append((t, xt))
        eps, variance = cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale=scale)
        xt = denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)
        i += 1
    return (xt, frames) if return_intermediates else xt
'''),
    Rewrite("sdedit", "the noising written out instead of calling forward", '''
def sdedit(unet, scheduler, x_orig, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
           generator=None):
    alpha_bar = scheduler.alphas_cumprod[timesteps[i_start]].to(x_orig.dtype)
    eps = torch.randn(x_orig.shape, generator=generator, device=x_orig.device, dtype=x_orig.dtype)
    xt = alpha_bar.sqrt() * x_orig + (1 - alpha_bar).sqrt() * eps
    return iterative_denoise_cfg(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps,
                                 scale, generator)
'''),
    Rewrite("inpaint", "torch.where on the mask", '''
def inpaint(unet, scheduler, x_orig, mask, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
            generator=None, xt=None, callback=None):
    set_strided_timesteps(scheduler, timesteps)
    if xt is None:
        xt = torch.randn(x_orig.shape, generator=generator, device=x_orig.device, dtype=x_orig.dtype)
    keep = mask == 0
    for i, (t, t_prev) in enumerate(zip(timesteps[:-1], timesteps[1:])):
        eps, variance = cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)
        xt = denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
        known = forward(x_orig, t_prev, scheduler.alphas_cumprod, generator=generator)
        xt = torch.where(keep, known, xt)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt
'''),
    Rewrite("flip_upside_down", "x.flip(-2)", '''
def flip_upside_down(x):
    return x.flip(-2)
'''),
    Rewrite("visual_anagram", "one CFG call per branch", '''
def visual_anagram(unet, scheduler, xt, i_start, prompt_embeds_1, prompt_embeds_2, uncond_prompt_embeds, timesteps,
                   view=flip_view, scale=7.0, generator=None, callback=None):
    view_fn, inverse_fn = view
    set_strided_timesteps(scheduler, timesteps)
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        eps_1, variance = cfg_noise(unet, xt, t, prompt_embeds_1, uncond_prompt_embeds, scale)
        eps_2, _ = cfg_noise(unet, view_fn(xt), t, prompt_embeds_2, uncond_prompt_embeds, scale)
        eps = 0.5 * (eps_1 + inverse_fn(eps_2))
        xt = denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt
'''),
    Rewrite("lowpass", "a hand-built Gaussian kernel, reflect padding and a depthwise conv2d", '''
import torch.nn.functional as F


def lowpass(x, kernel_size=33, sigma=2.0):
    half = (kernel_size - 1) / 2
    offsets = torch.linspace(-half, half, kernel_size, dtype=x.dtype)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    weights = weights / weights.sum()
    kernel = (weights[:, None] * weights[None, :]).expand(x.shape[1], 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), kernel, groups=x.shape[1])
'''),
    Rewrite("highpass", "TF.gaussian_blur with list arguments", '''
def highpass(x, kernel_size=33, sigma=2.0):
    return x - TF.gaussian_blur(x, [kernel_size, kernel_size], [sigma, sigma])
'''),
    Rewrite("make_hybrids", "one CFG call per prompt, its helpers called in another order (the high prompt "
            "first, highpass before lowpass)", '''
def make_hybrids(unet, scheduler, xt, i_start, prompt_embeds_low, prompt_embeds_high, uncond_prompt_embeds,
                 timesteps, scale=7.0, kernel_size=33, sigma=2.0, generator=None, callback=None):
    set_strided_timesteps(scheduler, timesteps)
    for i in range(i_start, len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        eps_high, variance_high = cfg_noise(unet, xt, t, prompt_embeds_high, uncond_prompt_embeds, scale)
        eps_low, variance_low = cfg_noise(unet, xt, t, prompt_embeds_low, uncond_prompt_embeds, scale)
        high = highpass(eps_high, kernel_size, sigma)
        eps = lowpass(eps_low, kernel_size, sigma) + high
        xt = denoise_step(scheduler, xt, eps, 0.5 * (variance_low + variance_high), t, t_prev, generator)
        if callback is not None:
            callback(i, t_prev, xt)
    return xt
'''),
    Rewrite("rot90_ccw", "a transpose, then the rows reversed", '''
def rot90_ccw(x):
    return x.transpose(-2, -1).flip(-2)
'''),
    Rewrite("rot90_cw", "three counter-clockwise quarter-turns", '''
def rot90_cw(x):
    return torch.rot90(x, 3, [2, 3])
'''),
    Rewrite("negate", "torch.neg", '''
def negate(x):
    return torch.neg(x)
'''),
)

_UNET_PARTS = '''        D = num_hiddens
        self.in_channels = in_channels
        self.conv_in = ConvBlock(in_channels, D)
        self.down1 = DownBlock(D, D)
        self.down2 = DownBlock(D, 2 * D)
        self.flatten = Flatten()
        self.unflatten = Unflatten(2 * D)
        self.up1 = UpBlock(4 * D, D)
        self.up2 = UpBlock(2 * D, D)
        self.conv_out = ConvBlock(2 * D, D)
        self.head = nn.Conv2d(D, in_channels, 3, padding=1)
'''

_B = (
    Rewrite("Conv", "an nn.Sequential with named layers", '''
from collections import OrderedDict


class Conv(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(OrderedDict(conv=nn.Conv2d(in_channels, out_channels, 3, 1, 1),
                                     norm=nn.BatchNorm2d(out_channels), act=nn.GELU()))
'''),
    Rewrite("DownConv", "F.gelu in forward", '''
class DownConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return F.gelu(self.norm(self.conv(x)))
'''),
    Rewrite("UpConv", "positional arguments", '''
class UpConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv, self.norm, self.act = nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1), \\
            nn.BatchNorm2d(out_channels), nn.GELU()

    def forward(self, x):
        y = self.conv(x)
        y = self.norm(y)
        return self.act(y)
'''),
    Rewrite("Flatten", "AdaptiveAvgPool2d(1)", '''
class Flatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.pool(x))
'''),
    Rewrite("Unflatten", "an nn.Sequential with named layers", '''
from collections import OrderedDict


class Unflatten(nn.Sequential):
    def __init__(self, in_channels):
        super().__init__(OrderedDict(conv=nn.ConvTranspose2d(in_channels, in_channels, 7, stride=7),
                                     norm=nn.BatchNorm2d(in_channels), act=nn.GELU()))
'''),
    Rewrite("Concat", "torch.concat with a tuple", '''
class Concat(nn.Module):
    def forward(self, x, y):
        return torch.concat((x, y), 1)
'''),
    Rewrite("ConvBlock", "an nn.Sequential with named blocks", '''
from collections import OrderedDict


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(OrderedDict(conv1=Conv(in_channels, out_channels), conv2=Conv(out_channels, out_channels)))
'''),
    Rewrite("DownBlock", "an nn.Sequential with named blocks", '''
from collections import OrderedDict


class DownBlock(nn.Sequential):
    def __init__(self, in_channels, out_channels):
        super().__init__(OrderedDict(down=DownConv(in_channels, out_channels),
                                     block=ConvBlock(out_channels, out_channels)))
'''),
    Rewrite("UpBlock", "one step per line", '''
class UpBlock(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.up = UpConv(in_channels, out_channels)
        self.block = ConvBlock(out_channels, out_channels)

    def forward(self, x):
        x = self.up(x)
        return self.block(x)
'''),
    Rewrite("FCBlock", "an nn.Sequential with named layers", '''
from collections import OrderedDict


class FCBlock(nn.Sequential):
    def __init__(self, in_features, out_features):
        super().__init__(OrderedDict(fc1=nn.Linear(in_features, out_features), act=nn.GELU(),
                                     fc2=nn.Linear(out_features, out_features)))
'''),
    Rewrite("UnconditionalUNet", "torch.cat instead of a Concat module", f'''
class UnconditionalUNet(nn.Module):
    def __init__(self, in_channels=1, num_hiddens=128):
        super().__init__()
{_UNET_PARTS}
    def forward(self, x):
        e1 = self.conv_in(x)
        e2 = self.down1(e1)
        e3 = self.down2(e2)
        u0 = self.unflatten(self.flatten(e3))
        u1 = self.up1(torch.cat([e3, u0], dim=1))
        u2 = self.up2(torch.cat([e2, u1], dim=1))
        return self.head(self.conv_out(torch.cat([e1, u2], dim=1)))
'''),
    Rewrite("TimeConditionalUNet", "an if per conditioning kind and [:, :, None, None]", f'''
class TimeConditionalUNet(nn.Module):
    def __init__(self, in_channels=1, num_hiddens=64, conditioning="fm"):
        super().__init__()
{_UNET_PARTS}        self.concat = Concat()
        self.conditioning = conditioning
        self.fc1_t = FCBlock(1, 2 * D)
        self.fc2_t = FCBlock(1, D)

    def forward(self, x, t):
        t = t.reshape(x.shape[0], 1).to(x.dtype)
        t1, t2 = self.fc1_t(t)[:, :, None, None], self.fc2_t(t)[:, :, None, None]
        e1 = self.conv_in(x)
        e2 = self.down1(e1)
        e3 = self.down2(e2)
        u0 = self.unflatten(self.flatten(e3))
        if self.conditioning == "fm":
            u0 = u0 * t1
        else:
            u0 = u0 + t1
        u1 = self.up1(self.concat(e3, u0))
        if self.conditioning == "fm":
            u1 = u1 * t2
        else:
            u1 = u1 + t2
        u2 = self.up2(self.concat(e2, u1))
        return self.head(self.conv_out(self.concat(e1, u2)))
'''),
    Rewrite("ClassConditionalUNet", "the mask applied with view, modulation written out", f'''
class ClassConditionalUNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, num_hiddens=64, conditioning="fm"):
        super().__init__()
{_UNET_PARTS}        self.concat = Concat()
        self.num_classes = num_classes
        self.conditioning = conditioning
        self.fc1_t = FCBlock(1, 2 * D)
        self.fc2_t = FCBlock(1, D)
        self.fc1_c = FCBlock(num_classes, 2 * D)
        self.fc2_c = FCBlock(num_classes, D)

    def forward(self, x, c, t, mask=None):
        if mask is not None:
            c = c * mask.view(-1, 1).to(c.dtype)
        t = t.reshape(-1, 1).to(x.dtype)
        n = x.shape[0]
        e1 = self.conv_in(x)
        e2 = self.down1(e1)
        e3 = self.down2(e2)
        u0 = self.unflatten(self.flatten(e3))
        u0 = self.fc1_c(c).view(n, -1, 1, 1) * u0 + self.fc1_t(t).view(n, -1, 1, 1)
        u1 = self.up1(self.concat(e3, u0))
        u1 = self.fc2_c(c).view(n, -1, 1, 1) * u1 + self.fc2_t(t).view(n, -1, 1, 1)
        u2 = self.up2(self.concat(e2, u1))
        return self.head(self.conv_out(self.concat(e1, u2)))
'''),
    Rewrite("add_noise", "σ reshaped with view", '''
def add_noise(x, sigma, noise=None, generator=None):
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    sigma = torch.as_tensor(sigma, dtype=x.dtype)
    if sigma.ndim == 1:
        sigma = sigma.view(-1, 1, 1, 1)
    return x + noise * sigma
'''),
    Rewrite("denoiser_loss", "the noise drawn inline and the MSE written out", '''
def denoiser_loss(unet, x, sigma=0.5, generator=None):
    z = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return ((unet(z) - x) ** 2).mean()
'''),
    Rewrite("pure_noise_loss", "the MSE written out", '''
def pure_noise_loss(unet, x, generator=None):
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (unet(eps) - x).pow(2).mean()
'''),
    Rewrite("interpolate", "torch.lerp", '''
def interpolate(x0, x1, t):
    return torch.lerp(x0, x1, t.view(-1, 1, 1, 1))
'''),
    Rewrite("flow_target", "−(x0 − x1)", '''
def flow_target(x0, x1):
    return -(x0 - x1)
'''),
    Rewrite("time_fm_forward", "the noise drawn before the times", '''
def time_fm_forward(unet, x1, generator=None):
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
    t = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype)
    return F.mse_loss(unet(interpolate(x0, x1, t), t), flow_target(x0, x1))
'''),
    Rewrite("time_fm_sample", "unet.eval() and the step size as a factor", '''
def time_fm_sample(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None, return_trajectory=False):
    unet.eval()
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    x = torch.randn((num_samples, 1, img_wh[1], img_wh[0]), generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    dt = 1.0 / num_ts
    with torch.no_grad():
        for i in range(num_ts):
            x = x + dt * unet(x, torch.full((num_samples,), i * dt, device=device, dtype=dtype))
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
'''),
    Rewrite("class_fm_forward", "torch.where for the dropped classes", '''
def class_fm_forward(unet, x1, labels, p_uncond=0.1, generator=None):
    n = x1.shape[0]
    c = F.one_hot(torch.as_tensor(labels), 10).to(x1.dtype)
    dropped = torch.rand(n, generator=generator) < p_uncond
    c = torch.where(dropped[:, None], torch.zeros_like(c), c)
    t = torch.rand(n, generator=generator, dtype=x1.dtype)
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
    return F.mse_loss(unet(interpolate(x0, x1, t), c, t), flow_target(x0, x1))
'''),
    Rewrite("class_fm_sample", "two UNet calls per step and torch.lerp", '''
def class_fm_sample(unet, labels, img_wh=(28, 28), num_ts=300, guidance_scale=5.0, generator=None,
                    return_trajectory=False):
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    c = F.one_hot(torch.as_tensor(labels), 10).to(device, dtype)
    n = c.shape[0]
    x = torch.randn((n, 1, img_wh[1], img_wh[0]), generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for i in range(num_ts):
            t = torch.full((n,), i / num_ts, device=device, dtype=dtype)
            u_cond = unet(x, c, t)
            u_uncond = unet(x, torch.zeros_like(c), t)
            x = x + torch.lerp(u_uncond, u_cond, guidance_scale) / num_ts
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
'''),
    Rewrite("ddpm_schedule", "ᾱ as exp(cumsum(log α))", '''
def ddpm_schedule(beta1=1e-4, beta2=0.02, num_ts=300):
    betas = torch.linspace(beta1, beta2, num_ts)
    alphas = 1.0 - betas
    return {"betas": betas, "alphas": alphas, "alpha_bars": torch.exp(torch.cumsum(torch.log(alphas), dim=0))}
'''),
    Rewrite("ddpm_forward", "t drawn as 1 + randint(T), float32 schedule", '''
def ddpm_forward(unet, schedule, x0, num_ts=300, generator=None):
    n = x0.shape[0]
    t = 1 + torch.randint(num_ts, (n,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    alpha_bar = schedule["alpha_bars"][t - 1].view(n, 1, 1, 1)
    xt = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    return F.mse_loss(unet(xt, t / num_ts), eps)
'''),
    Rewrite("ddpm_step", "powers of one half instead of math.sqrt", '''
def ddpm_step(s, t, xt, eps_hat, z):
    beta, alpha, alpha_bar = float(s["betas"][t - 1]), float(s["alphas"][t - 1]), float(s["alpha_bars"][t - 1])
    alpha_bar_prev = float(s["alpha_bars"][t - 2]) if t >= 2 else 1.0
    x0_hat = (xt - (1 - alpha_bar) ** 0.5 * eps_hat) / alpha_bar ** 0.5
    mean = (alpha_bar_prev ** 0.5 * beta * x0_hat + alpha ** 0.5 * (1 - alpha_bar_prev) * xt) / (1 - alpha_bar)
    if z is not None:
        mean = mean + beta ** 0.5 * z
    return mean
'''),
    Rewrite("ddpm_sample", "reversed(range(...)), unet.eval(), z drawn after the UNet call", '''
def ddpm_sample(unet, schedule, num_samples, img_wh=(28, 28), num_ts=300, generator=None, return_trajectory=False):
    s = _schedule64(schedule, num_ts)
    unet.eval()
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    shape = (num_samples, 1, img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    with torch.no_grad():
        for t in reversed(range(1, num_ts + 1)):
            eps_hat = unet(x, torch.full((num_samples,), t / num_ts, device=device, dtype=dtype))
            z = torch.randn(shape, generator=generator, device=device, dtype=dtype) if t > 1 else None
            x = ddpm_step(s, t, x, eps_hat, z)
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
'''),
    Rewrite("class_ddpm_forward", "its own class dropout with a Bernoulli mask", '''
def class_ddpm_forward(unet, schedule, x0, labels, p_uncond=0.1, num_ts=300, generator=None):
    n = x0.shape[0]
    keep = (torch.rand(n, generator=generator) >= p_uncond).to(x0.dtype)
    c = F.one_hot(torch.as_tensor(labels), 10).to(x0.dtype) * keep[:, None]
    t = torch.randint(1, num_ts + 1, (n,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    alpha_bar = _schedule64(schedule, num_ts)["alpha_bars"][t - 1].view(n, 1, 1, 1).to(x0.dtype)
    xt = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    return ((unet(xt, c, t / num_ts) - eps) ** 2).mean()
'''),
    Rewrite("class_ddpm_sample", "two UNet calls per step", '''
def class_ddpm_sample(unet, schedule, labels, img_wh=(28, 28), num_ts=300, guidance_scale=5.0, generator=None,
                      return_trajectory=False):
    s = _schedule64(schedule, num_ts)
    device, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    c = F.one_hot(torch.as_tensor(labels), 10).to(device, dtype)
    n = c.shape[0]
    shape = (n, 1, img_wh[1], img_wh[0])
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    trajectory = [x]
    with eval_mode(unet), torch.no_grad():
        for t in range(num_ts, 0, -1):
            z = torch.randn(shape, generator=generator, device=device, dtype=dtype) if t > 1 else None
            t_in = torch.full((n,), t / num_ts, device=device, dtype=dtype)
            eps_cond, eps_uncond = unet(x, c, t_in), unet(x, torch.zeros_like(c), t_in)
            x = ddpm_step(s, t, x, eps_uncond + guidance_scale * (eps_cond - eps_uncond), z)
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x
'''),
)

ALTERNATIVES = {"partA": _A, "partB": _B}
