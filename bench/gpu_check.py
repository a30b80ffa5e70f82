"""DeepFloyd IF on a real GPU: load the real models, check the CUDA reference bundle against the CPU one, time
the CFG loop against ``IFPipeline``.

    python bench/gpu_check.py --out gpu_check/ [--model DeepFloyd/IF-I-XL-v1.0] [--embeds FILE] [--cpu-bundle FILE]

Needs a CUDA GPU, hub access with the DeepFloyd licence accepted (HF_TOKEN or ``huggingface_hub.login()``)
and, for the CPU bundle of IF-I-XL, about 20 GB of RAM (or pass a ``--cpu-bundle`` made before with
``course bundle --device cpu --dtype float32``). Steps, each printed with its result:

1. the derived IF-I-M / IF-II-M configs of ``course.real_scale`` against the hub's ``unet/config.json``
   (printed differences; replace the dicts where they differ);
2. prompt embeddings (``compute_prompt_embeds`` on the GPU, fp16) unless ``--embeds`` is given;
3. the CPU float32 reference bundle (``course.bundle.build_bundle``) and the CUDA float16 bundle;
4. the reference functions run on the CUDA model against the CPU bundle through the grading path
   (``export_artifacts`` then ``compare_artifacts``: the manifest's tolerances), and the CUDA bundle's
   outputs against the CPU bundle's with the same tolerances;
5. stage 2 (``load_stage2``, ``fwd_kit.upsample.upsample``) returns 256×256 images;
6. wall time of ``reference.denoise.iterative_denoise_cfg`` over the course's 34 strided timesteps vs
   ``IFPipeline(timesteps=...)`` (median of ``--repeats``, CUDA synchronised), and the largest difference
   of their images with thresholding off (a check that both computed the same thing).

Exit status 0 when every entry agrees and stage 2 works; ``main`` returns the summary dict (tests use it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PROMPTS = ("a high quality photo", "an oil painting of a snowy mountain village")


def config_differences(repo_id: str, ours: dict) -> dict:
    """{key: (ours, hub)} for the keys of ``ours`` whose value differs from the hub's ``unet/config.json``."""
    from huggingface_hub import hf_hub_download

    hub = json.loads(Path(hf_hub_download(repo_id, "unet/config.json")).read_text())
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # JSON has lists
    return {k: (norm(v), hub.get(k)) for k, v in ours.items() if norm(v) != hub.get(k)}


def bundle_disagreements(bundle_path, reference_path) -> dict:
    """{entry: (values outside, largest error)} of a bundle against a reference bundle, by the manifest's rules."""
    from fwd_kit.bundle import FORMAT, entry_tolerance, looser, read_file
    from fwd_kit.checks.compare import difference

    ref_manifest, ref = read_file(reference_path, FORMAT)
    manifest, ours = read_file(bundle_path, FORMAT)
    bad = {}
    for name, spec in ref_manifest["entries"].items():
        tol = looser(spec["tolerance"], entry_tolerance(spec["kind"], manifest["device"], manifest["dtype"]))
        diff = difference(ours[f"output/{name}"].float(), ref[f"output/{name}"].float(), tol["rtol"], tol["atol"])
        if diff.num_bad > int(tol["max_outside"] * diff.numel):
            bad[name] = (diff.num_bad, diff.max_abs)
    return bad


def time_cfg_loop(stage_1, cond, uncond, repeats: int) -> dict:
    """Our CFG loop vs ``IFPipeline`` over the 34 strided timesteps, thresholding off, same seed."""
    import torch
    from diffusers import DDPMScheduler

    from reference.denoise import iterative_denoise_cfg, strided_timesteps

    timesteps = strided_timesteps()
    stage_1.scheduler = DDPMScheduler.from_config(stage_1.scheduler.config, thresholding=False, clip_sample=False)
    stage_1.set_progress_bar_config(disable=True)
    size, device, dtype = stage_1.unet.config.sample_size, stage_1.unet.device, stage_1.unet.dtype

    def ours():
        g = torch.Generator(device).manual_seed(0)
        x = torch.randn((1, 3, size, size), generator=g, device=device, dtype=dtype)
        return iterative_denoise_cfg(stage_1.unet, stage_1.scheduler, x, 0, cond, uncond, timesteps, scale=7.0,
                                     generator=g)

    def theirs():
        g = torch.Generator(device).manual_seed(0)
        return stage_1(prompt_embeds=cond, negative_prompt_embeds=uncond, timesteps=timesteps, guidance_scale=7.0,
                       output_type="pt", generator=g).images

    def timed(fn):
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start, out

    timed(ours), timed(theirs)  # warm-up
    walls = {"ours": [], "pipeline": []}
    for _ in range(repeats):  # interleaved, so that load hits both
        t, a = timed(ours)
        walls["ours"].append(t)
        t, b = timed(theirs)
        walls["pipeline"].append(t)
    med = {k: statistics.median(v) for k, v in walls.items()}
    return dict(ours_s=med["ours"], pipeline_s=med["pipeline"], ratio=med["ours"] / med["pipeline"],
                max_abs_diff=float((a.float() - b.float()).abs().max()))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the bundles, artifacts and summary.json")
    parser.add_argument("--model", default="DeepFloyd/IF-I-XL-v1.0", help="stage-1 hub id (default: %(default)s)")
    parser.add_argument("--stage2", default="DeepFloyd/IF-II-L-v1.0", help="stage-2 hub id (default: %(default)s)")
    parser.add_argument("--embeds", type=Path, help="prompt embeddings (default: computed here on the GPU)")
    parser.add_argument("--cpu-bundle", type=Path, help="a float32 CPU bundle of --model made before")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (default: %(default)s)")
    parser.add_argument("--skip-configs", action="store_true", help="do not compare course.real_scale's configs")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False).")
    from autograder.artifacts import compare_artifacts
    from course.bundle import build_bundle, reference_functions, write_inputs_only
    from course.real_scale import IF_I_M, IF_II_M
    from fwd_kit.artifacts import export_artifacts
    from fwd_kit.loading import compute_prompt_embeds, load_prompt_embeds, load_stage1, load_stage2, save_prompt_embeds
    from fwd_kit.upsample import upsample

    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"gpu": torch.cuda.get_device_name(0), "model": args.model}

    # 1. the derived real-scale configs against the hub's
    if not args.skip_configs:
        summary["config_differences"] = {repo: config_differences(repo, ours) for repo, ours in
                                         (("DeepFloyd/IF-I-M-v1.0", IF_I_M), ("DeepFloyd/IF-II-M-v1.0", IF_II_M))}
        print("1. course.real_scale configs vs the hub:", json.dumps(summary["config_differences"]))

    # 2. prompt embeddings
    embeds_path = args.embeds or args.out / "prompt_embeds.safetensors"
    if args.embeds is None:
        save_prompt_embeds(compute_prompt_embeds(list(PROMPTS), model_id=args.model, device="cuda"), embeds_path,
                           dtype=torch.float16)
        torch.cuda.empty_cache()
    embeds = load_prompt_embeds(embeds_path)
    print(f"2. embeddings: {embeds_path} ({len(embeds)} prompts, width {next(iter(embeds.values())).shape[-1]})")

    # 3. the CPU float32 reference bundle and the CUDA float16 bundle
    prompts = tuple(p for p in PROMPTS if p in embeds) if all(p in embeds for p in PROMPTS) \
        else tuple(sorted(p for p in embeds if p))[:2]
    cpu_bundle = args.cpu_bundle
    if cpu_bundle is None:
        cpu_bundle = args.out / "bundle_cpu_float32.safetensors"
        stage_cpu = load_stage1(args.model, device="cpu", dtype=torch.float32)
        started = time.perf_counter()
        build_bundle(stage_cpu.unet, stage_cpu.scheduler, embeds, prompts, cpu_bundle, model_id=args.model)
        summary["cpu_bundle_s"] = time.perf_counter() - started
        del stage_cpu
    stage_1 = load_stage1(args.model, device="cuda", dtype=torch.float16)
    cuda_bundle = args.out / "bundle_cuda_float16.safetensors"
    started = time.perf_counter()
    build_bundle(stage_1.unet, stage_1.scheduler, embeds, prompts, cuda_bundle, model_id=args.model)
    summary["cuda_bundle_s"] = time.perf_counter() - started
    summary["cuda_peak_gib_stage1"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"3. bundles: {cpu_bundle} (CPU float32), {cuda_bundle} (CUDA float16, {summary['cuda_bundle_s']:.0f} s)")

    # 4. the grading path (export on CUDA, compare with the CPU bundle) and bundle against bundle
    inputs = write_inputs_only(cpu_bundle, args.out / "inputs_only.safetensors")
    artifacts = export_artifacts(reference_functions(), inputs, stage_1.unet, stage_1.scheduler,
                                 args.out / "artifacts_cuda.safetensors")
    results = compare_artifacts(artifacts, cpu_bundle)
    summary["artifacts_failed"] = {r.name: r.message for r in results if not r.passed}
    summary["bundle_disagreements"] = bundle_disagreements(cuda_bundle, cpu_bundle)
    print(f"4. CUDA vs CPU: {sum(r.passed for r in results)}/{len(results)} entries pass compare_artifacts; "
          f"bundle entries outside the tolerances: {summary['bundle_disagreements'] or 'none'}")
    for name, message in summary["artifacts_failed"].items():
        print(f"   {name}: {message}")

    # 5. stage 2
    stage_2 = load_stage2(args.stage2, device="cuda", dtype=torch.float16)
    images = torch.rand(1, 3, 64, 64, device="cuda", dtype=torch.float16) * 2 - 1
    up = upsample(stage_2, images, embeds[prompts[0]].cuda().half(), embeds[""].cuda().half(),
                  generator=torch.Generator("cuda").manual_seed(0))
    summary["stage2_shape"] = list(up.shape)
    summary["cuda_peak_gib_both"] = torch.cuda.max_memory_allocated() / 2**30
    print(f"5. stage 2: {tuple(up.shape)}; peak CUDA memory so far {summary['cuda_peak_gib_both']:.1f} GiB")
    del stage_2
    torch.cuda.empty_cache()

    # 6. the CFG loop against IFPipeline
    cond, uncond = embeds[prompts[0]].cuda().half(), embeds[""].cuda().half()
    summary["cfg_loop"] = time_cfg_loop(stage_1, cond, uncond, args.repeats)
    loop = summary["cfg_loop"]
    print(f"6. CFG loop, 34 strided steps: ours {loop['ours_s']:.2f} s, IFPipeline {loop['pipeline_s']:.2f} s "
          f"(ratio {loop['ratio']:.2f}); max |difference| {loop['max_abs_diff']:.3g}")

    summary["ok"] = not summary["artifacts_failed"] and not summary["bundle_disagreements"] \
        and summary["stage2_shape"][-2:] == [256, 256]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print("OK" if summary["ok"] else "FAILED", f"— summary in {args.out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
