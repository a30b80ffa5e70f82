"""Quality of the shipped digit model, judged by the Part B classifier through the Part A loops.

    python bench/digit_model_quality.py [--model DIR] [--n 30] [--seed 0] [--out bench_out/digit_model] [--quick]

``--quick`` runs check 1 only, with n = 20 unless given: what ``course train-mini`` judges every 1,000
steps (:mod:`course.digit_quality`, the same function).

Time convention (DDPM, as Part A): t = 0 is clean, t = 999 is pure noise.

All runs use CFG γ = 7 over the course's 34 strided timesteps (990 → 0 by 30) and the reference loops
(``reference.denoise``, ``reference.editing``, ``reference.illusions``). Measured, per the issue:
  1. samples: per prompt, the fraction of ``n`` samples classified as that digit (target ≥ 90%);
  2. anagram: "six" upright / "nine" upside down — fraction whose upright view reads 6 and flipped view 9;
  3. hybrids: low-pass digit / high-pass digit — fraction whose blurred image reads as the low-pass digit
     (blur: the same Gaussian as the hybrid's low-pass, kernel 33, σ 2);
  4. SDEdit at i_start 10 of hand-drawn digits (PIL lines) with the empty prompt — stays the same digit;
  5. inpainting the bottom half of held-out digits — the result reads as the original digit, with
     the digit's prompt and with the empty prompt.
Checks 1–2 use ``n`` runs, 3–4 use max(5, n/2) per pair or drawing, 5 uses max(1, n/10) held-out
digits per class. Prints a table and writes ``samples.png`` (10 samples per digit) and ``illusions.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

HYBRID_PAIRS = ((1, 8), (0, 1), (7, 3))  # (low-pass digit, high-pass digit)
DRAWN = {  # hand-drawn strokes on a 32×32 canvas: polylines of (x, y) points
    7: [[(8, 7), (24, 7), (14, 26)]],
    1: [[(13, 10), (17, 6), (17, 26)]],
    4: [[(19, 26), (19, 6), (8, 19), (25, 19)]],
    0: [[(16, 6), (10, 10), (9, 17), (11, 24), (16, 27), (21, 24), (23, 17), (22, 10), (16, 6)]],
}


def draw_digit(strokes, size: int = 32, width: int = 3) -> torch.Tensor:
    """A hand-drawn digit (1, 3, size, size) in [-1, 1]: white PIL lines on black, like MNIST."""
    import numpy as np
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(canvas)
    for line in strokes:
        pen.line(line, fill=255, width=width, joint="curve")
    x = torch.from_numpy(np.asarray(canvas, dtype="float32") / 255.0)
    return (2 * x - 1).expand(1, 3, size, size).clone()


def quality(pipe, embeds, classifier, n: int = 30, seed: int = 0, log=print) -> dict:
    """Run the five checks; returns {name: fraction} and the images for the figures (key "_images")."""
    from fwd_kit.data import batch_images, load_offline_mnist, to_device_tensors
    from fwd_kit.digit_model import DIGIT_PROMPTS, digits_to_images
    from reference.classifier import classify, to_mnist
    from reference.denoise import gaussian_noise, sample, strided_timesteps
    from reference.editing import inpaint, sdedit
    from reference.illusions import flip_upside_down, lowpass, make_hybrids, visual_anagram

    unet, scheduler = pipe.unet, pipe.scheduler
    m = max(5, n // 2)  # runs per illusion pair / drawn digit (they cost 1.5–2× a sample)
    ts, gen = strided_timesteps(), torch.Generator("cpu").manual_seed(seed)
    uncond = embeds[""]
    read = lambda images: classify(classifier, to_mnist(images))  # noqa: E731
    results, images = {}, {}
    # 1. samples per digit prompt
    for d, prompt in enumerate(DIGIT_PROMPTS):
        x = sample(unet, scheduler, embeds[prompt], uncond, ts, num_samples=n, scale=7.0, generator=gen)
        results[f"sample {d}"] = (read(x) == d).float().mean().item()
        images[f"sample {d}"] = x[:10]
        log(f"sample {d}: {results[f'sample {d}']:.2f}")
    # 2. upside-down anagram: "six" upright, "nine" flipped
    xt = gaussian_noise((n, 3, 32, 32), gen)
    x = visual_anagram(unet, scheduler, xt, 0, embeds[DIGIT_PROMPTS[6]], embeds[DIGIT_PROMPTS[9]], uncond, ts,
                       generator=gen)
    up, flipped = read(x), read(flip_upside_down(x))
    results["anagram 6 upright"] = (up == 6).float().mean().item()
    results["anagram 9 flipped"] = (flipped == 9).float().mean().item()
    results["anagram both"] = ((up == 6) & (flipped == 9)).float().mean().item()
    images["anagram 6/9"] = x[:10]
    # 3. hybrids: the blurred image reads as the low-pass digit
    hits = []
    for low, high in HYBRID_PAIRS:
        xt = gaussian_noise((m, 3, 32, 32), gen)
        x = make_hybrids(unet, scheduler, xt, 0, embeds[DIGIT_PROMPTS[low]], embeds[DIGIT_PROMPTS[high]], uncond,
                         ts, generator=gen)
        blurred = read(lowpass(x))
        results[f"hybrid {low}/{high}: blurred reads {low}"] = (blurred == low).float().mean().item()
        results[f"hybrid {low}/{high}: sharp reads {high}"] = (read(x) == high).float().mean().item()
        hits.append(blurred == low)
        images[f"hybrid {low}/{high}"] = x[:10]
    results["hybrid all pairs: blurred reads low"] = torch.cat(hits).float().mean().item()
    # 4. SDEdit of hand-drawn digits at i_start 10 with the empty prompt
    hits = []
    for d, strokes in DRAWN.items():
        drawn = draw_digit(strokes)
        results[f"drawn {d} reads {d} (before SDEdit)"] = float(read(drawn)[0] == d)
        x = sdedit(unet, scheduler, drawn.expand(m, -1, -1, -1), 10, uncond, uncond, ts, generator=gen)
        results[f"sdedit drawn {d} at i_start 10"] = (read(x) == d).float().mean().item()
        hits.append(read(x) == d)
        images[f"sdedit {d}"] = torch.cat([drawn, x[:9]])
    results["sdedit all drawn digits"] = torch.cat(hits).float().mean().item()
    # 5. inpainting the bottom half of held-out digits (one per class, n // 10 runs each)
    held_x, held_y = to_device_tensors(load_offline_mnist(train=False))
    rows = torch.cat([torch.nonzero(held_y == d)[: max(1, n // 10), 0] for d in range(10)])
    x_orig, y = digits_to_images(batch_images(held_x, rows)), held_y[rows]
    mask = torch.zeros(1, 1, 32, 32)
    mask[:, :, 16:] = 1  # regenerate the bottom half
    for name, pe in (("digit prompt", torch.cat([embeds[DIGIT_PROMPTS[int(d)]] for d in y])), ("empty prompt", uncond)):
        x = inpaint(unet, scheduler, x_orig, mask, pe, uncond, ts, generator=gen)
        results[f"inpaint bottom half, {name}"] = (read(x) == y).float().mean().item()
        images[f"inpaint {name}"] = torch.cat([x_orig[:5] * (1 - mask) - mask, x[:5]])
    results["_images"] = images
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="pipeline directory (default: fwd_kit.loading.DIGIT_MODEL)")
    parser.add_argument("--n", type=int, default=None, help="samples per prompt / per check (default 30; --quick 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the one generator all checks draw from")
    parser.add_argument("--out", default="bench_out/digit_model", help="folder for the figures")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="the per-digit samples only (n 20 unless --n is given)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from torchvision.utils import make_grid, save_image

    from fwd_kit.loading import DIGIT_EMBEDS, DIGIT_MODEL, load_prompt_embeds, load_stage1
    from reference.classifier import load_classifier

    model = Path(args.model) if args.model else DIGIT_MODEL
    pipe = load_stage1(model, device="cpu", dtype=torch.float32)
    embeds = load_prompt_embeds(model / DIGIT_EMBEDS.name)
    start = time.time()
    if args.quick:
        from course.digit_quality import sample_accuracy

        args.n = args.n or 20
        judged = sample_accuracy(pipe.unet, pipe.scheduler, embeds, load_classifier(), n=args.n, seed=args.seed)
        for d, value in enumerate(judged["acc"].tolist()):
            print(f"sample {d:<38} {value:>8.2f}")
        print(f"{'min over digits':<45} {judged['acc'].min().item():>8.2f}\n{'blobs':<45} {judged['blob']:>8.2f}")
        print(f"quick: n = {args.n}, {time.time() - start:.0f} s")
        return 0
    args.n = args.n or 30
    results = quality(pipe, embeds, load_classifier(), n=args.n, seed=args.seed)
    images = results.pop("_images")
    print(f"\n{'check':<45} {'fraction':>8}   (n = {args.n}, CFG γ = 7, 34 strided steps, seed {args.seed})")
    for name, value in results.items():
        print(f"{name:<45} {value:>8.2f}")
    print(f"{len(results)} checks in {time.time() - start:.0f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grid = lambda keys: make_grid(torch.cat([images[k] for k in keys]).clamp(-1, 1) / 2 + 0.5, nrow=10)  # noqa: E731
    save_image(grid([f"sample {d}" for d in range(10)]), out / "samples.png")
    save_image(grid([k for k in images if not k.startswith("sample")]), out / "illusions.png")
    print(f"figures: {out / 'samples.png'} (rows: digits 0–9), {out / 'illusions.png'} (rows: "
          + ", ".join(k for k in images if not k.startswith("sample")) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
