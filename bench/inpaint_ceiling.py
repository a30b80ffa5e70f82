"""What limits inpainting the bottom half with the empty prompt: the sampler, the digit model or the digits?

    python bench/inpaint_ceiling.py [--per-class 10] [--resample 4] [--ceiling-only]
    python bench/inpaint_ceiling.py --region right --course-loop-only   # another half regenerated

Time convention (DDPM, as Part A): t = 0 is clean, t = 999 is pure noise.

The digit model's README reports that the bottom half of a held-out digit, regenerated with the empty prompt,
reads as the original digit 0.64 of the time (``bench/digit_model_quality.py``), against a target of 0.85.
This measures, on the same held-out digits (digits ``per_class`` … 2·``per_class`` − 1 of each class of the
offline held-out thousand; the quality benchmark uses the first ones):

1. **the ceiling**: a small CNN trained on the top halves alone (rows 14–27 of the 28×28 digit set to 0; the
   inpainting mask is rows 16–31 of the 32×32 image), its temperature fitted on 500 training digits kept
   aside. The mean probability it gives the true digit estimates E[p(true digit | top half)]: the hit rate
   of a perfect inpainter, which draws the bottom half from p(bottom | top) and so completes the top half as
   each digit with that digit's posterior probability (before the classifier's own errors);
2. **the course's loop**: ``reference.editing.inpaint``, 34 strided steps, the empty prompt in both CFG
   branches (so the unconditional model), γ = 7;
3. **more sampling**: the same loop over 100 steps (stride 10), and over the 34 steps with RePaint's
   resampling (``--resample`` passes per step: x_{t′} is noised back to t, x_t = sqrt(α)·x_{t′} +
   sqrt(1 − α)·z with the strided α = ᾱ_t/ᾱ_{t′}, and the step is taken again).

If 3 does not beat 2, more sampling does not help, and the gap to 1 is the unconditional model's.

``--region`` regenerates another half instead (top, left or right; the CNN then sees the other half), to
compare targets: a half whose kept part says more about the digit has a higher ceiling. ``--course-loop-only``
runs 2 without 3.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def held_out(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out MNIST digits (N, 1, 28, 28) uint8 and labels (N,): ``per_class`` of each class."""
    from fwd_kit.data import load_offline_mnist, to_device_tensors

    x, y = to_device_tensors(load_offline_mnist(train=False))
    rows = torch.cat([torch.nonzero(y == d)[per_class:2 * per_class, 0] for d in range(10)])
    return x[rows], y[rows]


REGIONS = ("bottom", "top", "left", "right")  # the half that is regenerated


def _half(region: str, side: int) -> tuple:
    """The index of ``region``'s half of a (N, C, side, side) tensor."""
    h = side // 2
    return {"bottom": (..., slice(h, None), slice(None)), "top": (..., slice(None, h), slice(None)),
            "left": (..., slice(None), slice(None, h)), "right": (..., slice(None), slice(h, None))}[region]


def kept_half(x: torch.Tensor, region: str = "bottom") -> torch.Tensor:
    """Digits (N, 1, 28, 28) uint8 → float in [0, 1] with only the kept half left: ``region``, the half that is
    regenerated, set to 0 (rows 14–27 for "bottom", so the top half is kept)."""
    x = x.float() / 255.0
    x[_half(region, 28)] = 0
    return x


def region_mask(region: str = "bottom") -> torch.Tensor:
    """The inpainting mask (1, 1, 32, 32): 1 on the half that is regenerated."""
    mask = torch.zeros(1, 1, 32, 32)
    mask[_half(region, 32)] = 1
    return mask


def ceiling(per_class: int, epochs: int = 15, seed: int = 0, region: str = "bottom") -> dict:
    """Train the kept-half CNN (the top half for ``region`` "bottom"); its held-out accuracy and mean calibrated
    probability of the true digit."""
    from fwd_kit.data import load_offline_mnist, to_device_tensors

    torch.manual_seed(seed)
    train_x, train_y = to_device_tensors(load_offline_mnist(train=True))
    train_x, train_y = kept_half(train_x, region), train_y.long()
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10))
    order = torch.randperm(len(train_x))
    aside, fit = order[:500], order[500:]
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    best_loss, best_state = float("inf"), None
    for _ in range(epochs):
        net.train()
        for i in range(0, len(fit), 64):
            batch = fit[i:i + 64]
            shift = tuple(int(s) for s in torch.randint(-1, 2, (2,)))  # a pixel of jitter
            loss = F.cross_entropy(net(torch.roll(train_x[batch], shift, dims=(2, 3))), train_y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            loss = F.cross_entropy(net(train_x[aside]), train_y[aside]).item()
        if loss < best_loss:
            best_loss, best_state = loss, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    x, y = held_out(per_class)
    all_x, all_y = to_device_tensors(load_offline_mnist(train=False))
    with torch.no_grad():
        logits = net(train_x[aside])
        temperatures = torch.linspace(0.5, 3.0, 26)
        losses = torch.tensor([F.cross_entropy(logits / s, train_y[aside]).item() for s in temperatures])
        temperature = temperatures[losses.argmin()].item()
        result = {}
        for label, (digits, labels) in (("these digits", (x, y)), ("all 1,000 held out", (all_x, all_y))):
            p = torch.softmax(net(kept_half(digits, region)) / temperature, dim=1)
            labels = labels.long()
            result[label] = ((p.argmax(1) == labels).float().mean().item(),
                             p[torch.arange(len(labels)), labels].mean().item())
    return dict(result, temperature=temperature)


def inpaint_resampled(unet, scheduler, x_orig, mask, uncond, timesteps, resample: int, generator) -> torch.Tensor:
    """RePaint with ``resample`` passes per strided step (the course's loop is ``resample`` = 1)."""
    from reference.denoise import cfg_noise, denoise_step, forward, gaussian_noise

    alphas_cumprod = scheduler.alphas_cumprod
    xt = gaussian_noise(x_orig.shape, generator)
    for i in range(len(timesteps) - 1):
        t, t_prev = timesteps[i], timesteps[i + 1]
        for k in range(resample):
            eps, variance = cfg_noise(unet, xt, t, uncond, uncond, 7.0)
            x_prev = denoise_step(scheduler, xt, eps, variance, t, t_prev, generator)
            x_prev = mask * x_prev + (1 - mask) * forward(x_orig, t_prev, alphas_cumprod, generator=generator)
            if k < resample - 1:  # back to t with the strided α
                alpha = alphas_cumprod[t] / alphas_cumprod[t_prev]
                xt = alpha.sqrt() * x_prev + (1 - alpha).sqrt() * gaussian_noise(x_prev.shape, generator)
        xt = x_prev
    return xt


def sampling(per_class: int, resample: int, log=print, region: str = "bottom", course_only: bool = False) -> None:
    """The course's loop, 100 steps, and RePaint's resampling (not with ``course_only``), on the held-out digits,
    ``region`` regenerated; accuracy and confusion."""
    from fwd_kit.digit_model import digits_to_images
    from fwd_kit.loading import DIGIT_EMBEDS, DIGIT_MODEL, load_prompt_embeds, load_stage1
    from reference.classifier import classify, load_classifier, to_mnist
    from reference.denoise import strided_timesteps
    from reference.editing import inpaint

    pipe = load_stage1(DIGIT_MODEL, device="cpu", dtype=torch.float32)
    uncond = load_prompt_embeds(DIGIT_EMBEDS)[""]
    classifier = load_classifier()
    x, y = held_out(per_class)
    x_orig = digits_to_images(x.float() / 255.0)
    mask = region_mask(region)  # "bottom": the bottom half, as bench/digit_model_quality.py
    log(f"the originals read right: {(classify(classifier, to_mnist(x_orig)) == y).float().mean():.2f}")
    runs = {
        "the course's loop, 34 steps (stride 30)": lambda g: inpaint(
            pipe.unet, pipe.scheduler, x_orig, mask, uncond, uncond, strided_timesteps(), generator=g),
        "one pass, 100 steps (stride 10)": lambda g: inpaint(
            pipe.unet, pipe.scheduler, x_orig, mask, uncond, uncond, strided_timesteps(stride=10), generator=g),
        f"RePaint resampling ×{resample}, 34 steps": lambda g: inpaint_resampled(
            pipe.unet, pipe.scheduler, x_orig, mask, uncond, strided_timesteps(), resample, g),
    }
    if course_only:
        runs = dict(list(runs.items())[:1])
    for label, run in runs.items():
        begin = time.process_time()
        with torch.no_grad():
            read = classify(classifier, to_mnist(run(torch.Generator().manual_seed(0))))
        confusion = torch.zeros(10, 10, dtype=torch.long)
        for true, found in zip(y.tolist(), read.tolist()):
            confusion[true, found] += 1
        log(f"{label}: reads as the original {(read == y).float().mean():.2f} "
            f"({time.process_time() - begin:.0f} CPU-s); confusion (rows: original, columns: read):\n{confusion}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, default=10, help="held-out digits per class (default 10)")
    parser.add_argument("--resample", type=int, default=4, help="RePaint passes per step (default 4)")
    parser.add_argument("--ceiling-only", action="store_true", help="the kept-half CNN only (half a minute)")
    parser.add_argument("--course-loop-only", action="store_true", help="of the sampling runs, the course's loop")
    parser.add_argument("--region", choices=REGIONS, default="bottom", help="the half regenerated (default bottom)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    found = ceiling(args.per_class, region=args.region)
    for label in ("these digits", "all 1,000 held out"):
        accuracy, mass = found[label]
        print(f"{args.region} half regenerated; the CNN of the other half on {label}: accuracy {accuracy:.3f}, "
              f"mean probability of the true digit {mass:.3f} (temperature {found['temperature']:.2f})")
    if not args.ceiling_only:
        sampling(args.per_class, args.resample, region=args.region, course_only=args.course_loop_only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
