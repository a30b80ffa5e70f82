"""Peak memory of each Part A stage at DeepFloyd IF's real size, measured on the CPU, and what fits on a T4.

    nice -n 19 python bench/memory_partA.py [--cache DIR] [--threads 1]

Measured, each stage in a fresh subprocess (so that one stage's memory does not hide another's), on the
real-size checkpoints of ``course.real_scale`` (real configurations, random weights; built on first use):

- ``embed``: T5 at its real width (4096) but one layer, tokenizer and ``encode_prompt`` of 3 prompts (+ "");
- ``stage1``: ``load_stage1`` (IF-I-M size) and one guided UNet call on the notebook's largest batch
  (3 images × 2 for CFG, 64×64);
- ``stage2``: ``load_stage2`` (IF-II-M size) and one upsampling step of 3 images (×2 for CFG, 256×256).

For each: the process's peak resident memory (``ru_maxrss``), its memory after the imports, the
weights' bytes, and the rest ("work": activations, allocator slack, loading buffers). Then an estimate
for a GPU in fp16: weights from the real parameter counts (IF-I-XL and IF-II-L from their verified
configs on the meta device, IF-I-L and IF-I-M from their model cards, T5-XXL's encoder at 24 layers,
8-bit = 1 byte per quantised weight, embeddings kept in fp16), activations from the CPU measurement scaled
by width and halved for fp16, plus ~0.5 GiB of CUDA context; against a Colab T4's 15 GiB. The estimate is
arithmetic, not a GPU measurement: ``bench/gpu_check.py`` measures on a real GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

GIB = 2**30
T4_GIB = 15.0  # a Colab T4: 15 GB of GPU memory as Colab reports it
CUDA_CONTEXT_GIB = 0.5  # CUDA context and cuDNN workspaces, roughly
PROMPTS = ["an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship"]


def _rss_gib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / GIB


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def _weights_gib(module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / GIB


def measure_stage(stage: str) -> dict:
    """Run one stage in this process (which must be fresh) and return its memory figures in GiB."""
    import torch

    from course.real_scale import STAGE1_ID, STAGE2_ID
    from fwd_kit.loading import compute_prompt_embeds, load_stage1, load_stage2

    after_imports = _rss_gib()
    with torch.no_grad():
        if stage == "embed":
            embeds = compute_prompt_embeds(PROMPTS, model_id=STAGE1_ID, device="cpu")
            from transformers import T5EncoderModel

            encoder = T5EncoderModel.from_pretrained(STAGE1_ID, subfolder="text_encoder", dtype=torch.float32)
            weights, shape = _weights_gib(encoder), tuple(embeds[PROMPTS[0]].shape)
        elif stage == "stage1":
            pipe = load_stage1(STAGE1_ID, device="cpu")
            unet, batch = pipe.unet, 2 * len(PROMPTS)  # CFG: unconditional and conditional halves
            xt = torch.randn(batch, 3, 64, 64)
            text = torch.randn(batch, 77, unet.config.encoder_hid_dim)
            shape = tuple(unet(xt, 500, encoder_hidden_states=text).sample.shape)
            weights = _weights_gib(unet)
        elif stage == "stage2":
            from fwd_kit.upsample import upsample

            pipe = load_stage2(STAGE2_ID, device="cpu")
            width = pipe.unet.config.encoder_hid_dim
            images = torch.rand(len(PROMPTS), 3, 64, 64) * 2 - 1
            text = torch.randn(len(PROMPTS), 77, width)
            out = upsample(pipe, images, text, torch.randn(1, 77, width).expand(len(PROMPTS), -1, -1),
                           num_inference_steps=1, generator=torch.Generator().manual_seed(0))
            shape, weights = tuple(out.shape), _weights_gib(pipe.unet)
        else:
            raise ValueError(f"stage must be embed, stage1 or stage2, but is {stage!r}.")
    peak = _peak_gib()
    return dict(stage=stage, peak=peak, after_imports=after_imports, weights=weights,
                work=max(peak - after_imports - weights, 0.0), output=list(shape))


def run_stage(stage: str, env: dict) -> dict:
    """``measure_stage`` in a fresh subprocess; its JSON line back."""
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import memory_partA as m; " \
           f"print('RESULT ' + json.dumps(m.measure_stage({stage!r})))"
    result = subprocess.run([sys.executable, "-c", code], check=False, env={**os.environ, **env}, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"stage {stage} failed:\n{result.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def gpu_estimates(measured: dict) -> list[tuple[str, float, float]]:
    """(model, fp16 weights GiB, activations GiB) per DeepFloyd model on a GPU."""
    from course.real_scale import IF_I_M, IF_I_XL, IF_II_L, IF_II_M, T5_XXL, t5_parameters, unet_parameters

    act1 = measured["stage1"]["work"] / 2  # fp16 halves the CPU fp32 activations
    act2 = measured["stage2"]["work"] / 2
    m_width, m2_width = IF_I_M["block_out_channels"][0], IF_II_M["block_out_channels"][0]
    t5_total = t5_parameters(T5_XXL)
    t5_embedding = T5_XXL["vocab_size"] * T5_XXL["d_model"]  # kept in fp16 by 8-bit loading
    rows = [
        ("IF-I-XL (4.3 B, config verified)", unet_parameters(IF_I_XL) * 2 / GIB, act1 * 704 / m_width),
        ("IF-I-L (0.9 B, model card)", 0.9e9 * 2 / GIB, act1 * 320 / m_width),  # width ~320 gives 0.94 B
        ("IF-I-M (0.4 B, model card)", 0.4e9 * 2 / GIB, act1),
        ("IF-II-L (1.2 B, config verified)", unet_parameters(IF_II_L) * 2 / GIB, act2 * 160 / m2_width),
        ("IF-II-M (0.45 B, model card)", 0.45e9 * 2 / GIB, act2),
        ("T5-XXL encoder fp16 (4.8 B)", t5_total * 2 / GIB, 0.1),
        ("T5-XXL encoder 8-bit", ((t5_total - t5_embedding) + t5_embedding * 2) / GIB, 0.1),
    ]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", help="the real-scale fake hub cache (default: course.real_scale's)")
    parser.add_argument("--threads", default="1", help="CPU threads per stage (default: %(default)s)")
    parser.add_argument("--stages", nargs="+", default=["embed", "stage1", "stage2"])
    args = parser.parse_args(argv)

    from course.real_scale import ensure_real_scale_cache, hub_env

    cache = ensure_real_scale_cache(args.cache)
    env = {**hub_env(cache), "OMP_NUM_THREADS": args.threads, "MKL_NUM_THREADS": args.threads}
    measured = {stage: run_stage(stage, env) for stage in args.stages}

    print("Measured on the CPU, float32, real-size checkpoints (course.real_scale), one subprocess per stage (GiB):")
    print(f"{'stage':<8} {'peak RSS':>9} {'imports':>8} {'weights':>8} {'work':>7}  output")
    for m in measured.values():
        print(f"{m['stage']:<8} {m['peak']:>9.2f} {m['after_imports']:>8.2f} {m['weights']:>8.2f} {m['work']:>7.2f}  "
              f"{tuple(m['output'])}")
    if not {"stage1", "stage2"} <= set(measured):
        return 0
    rows = {name: (w, a) for name, w, a in gpu_estimates(measured)}
    print("\nEstimate on a GPU in fp16 (weights from parameter counts; activations = CPU work / 2, scaled by width), "
          "GiB:")
    print(f"{'model':<34} {'weights':>8} {'activ.':>7} {'total':>7}")
    for name, (w, a) in rows.items():
        print(f"{name:<34} {w:>8.2f} {a:>7.2f} {w + a:>7.2f}")
    print(f"\nWhat fits on a Colab T4 ({T4_GIB:.0f} GiB, ~{CUDA_CONTEXT_GIB} GiB of it for the CUDA context):")
    combos = [
        ("T5-XXL 8-bit alone (encode prompts, then free it)", ["T5-XXL encoder 8-bit"]),
        ("T5-XXL fp16 alone", ["T5-XXL encoder fp16 (4.8 B)"]),
        ("IF-I-XL + IF-II-L", ["IF-I-XL (4.3 B, config verified)", "IF-II-L (1.2 B, config verified)"]),
        ("IF-I-XL + IF-II-L + T5-XXL 8-bit", ["IF-I-XL (4.3 B, config verified)", "IF-II-L (1.2 B, config verified)",
                                              "T5-XXL encoder 8-bit"]),
        ("IF-I-L + IF-II-L", ["IF-I-L (0.9 B, model card)", "IF-II-L (1.2 B, config verified)"]),
        ("IF-I-L + IF-II-L + T5-XXL 8-bit", ["IF-I-L (0.9 B, model card)", "IF-II-L (1.2 B, config verified)",
                                             "T5-XXL encoder 8-bit"]),
        ("IF-I-M + IF-II-L + T5-XXL 8-bit", ["IF-I-M (0.4 B, model card)", "IF-II-L (1.2 B, config verified)",
                                             "T5-XXL encoder 8-bit"]),
    ]
    for label, names in combos:
        total = CUDA_CONTEXT_GIB + sum(rows[n][0] for n in names) + max(rows[n][1] for n in names)
        verdict = "fits" if total <= T4_GIB * 0.95 else ("tight" if total <= T4_GIB else "does NOT fit")
        print(f"  {label:<52} {total:>6.1f} GiB  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
