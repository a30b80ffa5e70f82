"""Part A sampling loops vs diffusers, side by side in one run, on the tiny offline stage-1 pipeline.

    python bench/bench_partA.py [--repeats 3] [--size 64] [--batch 1] [--seed 0]

Time convention (DDPM / Part A): t = 0 is clean, t = 999 is the noisiest timestep.

Measured (median wall time over ``--repeats`` interleaved runs, so that machine load hits both sides):
  (a) ``reference.denoise.iterative_denoise_cfg`` over the 34 strided timesteps (990 → 0 by 30) vs
      ``IFPipeline`` with the same timesteps, seed and thresholding off (the pipeline also runs its
      extra step at t = 0, so it does 34 UNet calls to our 33); the max |difference| of the images at
      t = 0 is printed as a check that both computed the same thing;
  (b) the CFG noise estimate over the same 34 steps: one batched ``cfg_noise`` call (batch 2B) per step
      vs two separate UNet calls (``predict_noise`` for uncond and cond) per step.
Ratios are ours / theirs (a) and batched / separate (b): below 1 means faster. The CPU-time ratio
(this process only) is printed next to the wall-time ratio: on a shared machine it is the steadier one. The tiny UNet's
pictures are noise; the numbers measure loop overhead and batching, not image quality.
"""

from __future__ import annotations

import argparse
import statistics
import time


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (after one warm-up)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (DeepFloyd stage 1: 64)")
    parser.add_argument("--batch", type=int, default=1, help="images per run")
    parser.add_argument("--seed", type=int, default=0, help="generator seed shared by both sides")
    args = parser.parse_args(argv)

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import DDPMScheduler, IFPipeline

    from fwd_kit.tiny import tiny_stage1_pipeline
    from reference.denoise import cfg_noise, predict_noise, sample, strided_timesteps

    stage1 = tiny_stage1_pipeline()
    config = stage1.scheduler.config
    pipe = IFPipeline(**{**stage1.components,
                         "scheduler": DDPMScheduler.from_config(config, thresholding=False, clip_sample=False)})
    pipe.set_progress_bar_config(disable=True)
    scheduler = DDPMScheduler.from_config(config, thresholding=False, clip_sample=False)
    unet, ts, width = stage1.unet, strided_timesteps(), stage1.unet.config.encoder_hid_dim
    g = torch.Generator().manual_seed(1234)
    cond, uncond = torch.randn(1, 77, width, generator=g), torch.randn(1, 77, width, generator=g)
    cond_b, uncond_b = cond.expand(args.batch, -1, -1), uncond.expand(args.batch, -1, -1)

    def ours():
        return sample(unet, scheduler, cond_b, uncond_b, ts, num_samples=args.batch, scale=7.0, size=args.size,
                      generator=torch.Generator().manual_seed(args.seed))

    frames = {}

    def theirs():
        return pipe(prompt_embeds=cond_b, negative_prompt_embeds=uncond_b, timesteps=ts, guidance_scale=7.0,
                    height=args.size, width=args.size, generator=torch.Generator().manual_seed(args.seed),
                    output_type="pt", callback=lambda i, t, x: frames.__setitem__(i, x)).images

    xt = torch.randn(args.batch, 3, args.size, args.size, generator=g)

    def batched():
        for t in ts:
            cfg_noise(unet, xt, t, cond, uncond, 7.0)

    def separate():
        for t in ts:
            eps_u, _ = predict_noise(unet, xt, t, uncond)
            eps_c, _ = predict_noise(unet, xt, t, cond)
            eps_u + 7.0 * (eps_c - eps_u)

    # warm-up and the equivalence check
    image = ours()
    theirs()
    difference = (image - frames[len(ts) - 2]).abs().max().item()  # the pipeline's image at t = 0
    batched(), separate()
    times = {name: [] for name in ("ours", "theirs", "batched", "separate")}
    for _ in range(args.repeats):  # interleaved, so load changes hit both sides alike
        for name, fn in (("ours", ours), ("theirs", theirs), ("batched", batched), ("separate", separate)):
            times[name].append(timed(fn))
    wall = {name: statistics.median(w for w, _ in values) for name, values in times.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in times.items()}

    print(f"tiny stage-1 UNet, {args.batch}×3×{args.size}×{args.size}, 34 strided steps, CFG γ=7, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'comparison':<52} {'ours s':>8} {'ref s':>8} {'wall ratio':>10} {'CPU ratio':>10}")
    for label, a, b in (("(a) iterative_denoise_cfg vs IFPipeline", "ours", "theirs"),
                        ("(b) batched cfg_noise vs 2 separate UNet calls/step", "batched", "separate")):
        print(f"{label:<52} {wall[a]:8.3f} {wall[b]:8.3f} {wall[a] / wall[b]:10.3f} {cpu[a] / cpu[b]:10.3f}")
    print(f"check: max |ours − IFPipeline| at t = 0: {difference:.3g}")


if __name__ == "__main__":
    main()
