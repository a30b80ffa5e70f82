"""DeepFloyd IF at real size, on a CPU: the Part A solution notebook's DeepFloyd branch and ``course bundle``
run against checkpoints with IF's real configurations and random weights (``course.real_scale``).

The tiny stand-ins of the other tests cannot show a mistake that only appears at real widths (T5's
4096, 64 pooling heads, IF-I's channel counts, 64×64 and 256×256, the real parameter counts). Here:

- ``course embed`` encodes the notebook's DeepFloyd prompts with the one-layer T5 of width 4096 (its real
  path: tokenizer, ``T5EncoderModel.from_pretrained``, ``encode_prompt``), loaded by hub id from a fake
  Hugging Face cache with HF_HUB_OFFLINE=1;
- the solution notebook runs headless with MODEL = DeepFloyd/IF-I-M-v1.0, stage 2 = IF-II-M-v1.0, FAST
  and one strided step per loop (FWD_STRIDE=990): every cell runs, every public check passes, stage 2
  returns (3, 3, 256, 256);
- ``course bundle`` runs on the same checkpoints in float32, and in bfloat16 judged against the float32
  bundle within the manifest's tolerances (the bundle's own comparison rules).

Slow: building the checkpoints once (~4.7 GB under ~/.cache/fun-with-diffusion/real-scale) and minutes of
CPU per test. Run with ``python -m pytest -m slow tests/test_real_scale.py``.
"""

from __future__ import annotations

import ast
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

from course.real_scale import IF_I_M, STAGE1_ID, STAGE2_ID, ensure_real_scale_cache, hub_env, unet_parameters

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "solutions" / "partA" / "partA.ipynb"
KERNEL_ENV = {"FWD_FAST": "1", "FWD_DEVICE": "cpu", "FWD_MODEL": STAGE1_ID, "FWD_MODEL_2": STAGE2_ID,
              "FWD_STRIDE": "990", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # 1 thread: the cores are shared


def deepfloyd_prompts(nb) -> list[str]:
    """``ALL_PROMPTS`` of the notebook's DeepFloyd branch: the prompt cell's ``else`` branch and the list after it."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "ALL_PROMPTS = " in cell.source:
            tree = ast.parse(cell.source)
            branch = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "IS_DIGIT")
            listing = next(n for n in tree.body if isinstance(n, ast.Assign)
                           and any(getattr(t, "id", None) == "ALL_PROMPTS" for t in n.targets))
            namespace: dict = {}  # the branch holds only literal prompt lists
            exec(compile(ast.Module(body=[*branch.orelse, listing], type_ignores=[]), "prompts", "exec"), namespace)  # noqa: S102
            return namespace["ALL_PROMPTS"]
    raise AssertionError("the Part A notebook has no cell defining ALL_PROMPTS")


def run_course(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "course", *args], check=False, env={**os.environ, **env}, cwd=cwd,
                            capture_output=True, text=True, timeout=3 * 3600)
    assert result.returncode == 0, f"course {args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def children_peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


@pytest.fixture(scope="module")
def cache_dir():
    started = time.perf_counter()
    path = ensure_real_scale_cache()
    print(f"\nreal-scale cache {path} ready in {time.perf_counter() - started:.0f} s")
    return path


@pytest.fixture(scope="module")
def embeds_file(cache_dir, tmp_path_factory) -> Path:
    """The notebook's DeepFloyd prompts encoded by ``course embed`` with the one-layer, 4096-wide T5."""
    work = tmp_path_factory.mktemp("embed")
    prompts = deepfloyd_prompts(nbformat.read(NOTEBOOK, as_version=4))
    (work / "prompts.txt").write_text("\n".join(p for p in prompts if p) + "\n", encoding="utf-8")
    started = time.perf_counter()
    run_course(["embed", "prompts.txt", "--out", "prompt_embeds.safetensors", "--model", STAGE1_ID, "--device", "cpu"],
               hub_env(cache_dir), work)
    print(f"course embed: {len(prompts)} prompts in {time.perf_counter() - started:.0f} s")
    return work / "prompt_embeds.safetensors"


def test_course_embed_gives_t5s_real_width_for_every_prompt(embeds_file):
    from safetensors.torch import load_file

    embeds = load_file(str(embeds_file))
    prompts = deepfloyd_prompts(nbformat.read(NOTEBOOK, as_version=4))
    assert set(embeds) == set(prompts) and "" in embeds
    assert {tuple(e.shape) for e in embeds.values()} == {(1, 77, 4096)}
    assert {e.dtype for e in embeds.values()} == {torch.float16}
    assert all(torch.isfinite(e).all() for e in embeds.values())
    assert not torch.equal(embeds[""], embeds["a rocket ship"])  # the prompt reaches the encoder


PROBE = """
import resource
print("PROBE", tuple(part0_images.shape), tuple(upsampled.shape), str(DTYPE), SIZE,
      stage_1.unet.config.encoder_hid_dim, sum(p.numel() for p in stage_1.unet.parameters()),
      tuple(samples_cfg.shape), tuple(hybrids.shape), tuple(anagrams.shape), timesteps,
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_solution_notebook_deepfloyd_branch_runs_at_real_size(cache_dir, embeds_file, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    embeds_copy = tmp_path / "prompt_embeds.safetensors"  # the notebook's EMBEDS_FILE: no T5 in the kernel
    embeds_copy.write_bytes(embeds_file.read_bytes())
    mtime = embeds_copy.stat().st_mtime_ns
    for key, value in {**KERNEL_ENV, **hub_env(cache_dir)}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # read back what the notebook computed
    started = time.perf_counter()
    NotebookClient(nb, timeout=3 * 3600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"notebook: {time.perf_counter() - started:.0f} s")

    failed = {c.get("id"): f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"}
    assert failed == {}, f"cells of the Part A solution notebook failed at real size: {failed}"
    checks = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert len(checks) >= 15
    for cell in checks:
        streams = [o for o in cell.outputs if o.output_type == "stream"]
        assert not [o for o in streams if o.name == "stderr"], f"{cell.id} wrote to stderr"
        assert any(o.name == "stdout" and o.text.strip() for o in streams), f"{cell.id} printed no success line"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.output_type == "stream")
    assert f"Stage 1: {STAGE1_ID} on cpu" in text  # the DeepFloyd branch, not the digit model
    assert embeds_copy.stat().st_mtime_ns == mtime  # the notebook used course embed's file, did not re-encode

    probe = next(line for line in text.splitlines() if line.startswith("PROBE "))
    values = probe.split(" ", 1)[1]  # the shapes, dtype, size, width, parameters, timesteps and peak RSS
    print(probe)
    assert "(3, 3, 64, 64) (3, 3, 256, 256) torch.float32 64 4096" in values  # stage 2: 64² → 256²
    assert f" {unet_parameters(IF_I_M)} " in values
    assert "(2, 3, 64, 64) (3, 3, 64, 64) (3, 3, 64, 64) [990, 0]" in values


@pytest.fixture(scope="module")
def bundle_fp32(cache_dir, embeds_file, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("bundle")
    started = time.perf_counter()
    run_course(["bundle", "--model", STAGE1_ID, "--device", "cpu", "--dtype", "float32", "--embeds", str(embeds_file),
                "--out", "bundle_fp32.safetensors", "--inputs-out", "inputs.safetensors"], hub_env(cache_dir), work)
    print(f"course bundle float32: {time.perf_counter() - started:.0f} s, peak of the children "
          f"{children_peak_gib():.1f} GiB")
    return work / "bundle_fp32.safetensors"


def read_bundle(path: Path):
    from fwd_kit.bundle import FORMAT, read_file

    return read_file(path, FORMAT)


def test_course_bundle_float32_at_real_size(bundle_fp32):
    from fwd_kit.bundle import ENTRIES

    manifest, tensors = read_bundle(bundle_fp32)
    model = manifest["model"]
    assert (model["id"], model["text_width"], model["sample_size"]) == (STAGE1_ID, 4096, 64)
    assert model["parameters"] == unet_parameters(IF_I_M)
    assert (manifest["device"], manifest["dtype"]) == ("cpu", "float32")
    assert set(manifest["entries"]) == set(ENTRIES)
    for name in ENTRIES:
        out = tensors[f"output/{name}"]
        assert out.shape[-3:] == (3, 64, 64) and out.dtype == torch.float32, name
        assert torch.isfinite(out).all(), name
    assert tuple(tensors["input/prompt_1"].shape) == (1, 77, 4096)
    assert (bundle_fp32.parent / "inputs.safetensors").is_file()


def cpu_has_native_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere torch emulates it, ~30× slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: try
    return "avx512_bf16" in flags or "amx_bf16" in flags


@pytest.mark.skipif(not cpu_has_native_bfloat16(),
                    reason="this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): one "
                    "real-size UNet call takes minutes instead of seconds, the bundle hours")
def test_course_bundle_bfloat16_agrees_with_float32_within_the_manifests_tolerances(cache_dir, embeds_file,
                                                                                     bundle_fp32, tmp_path):
    """bfloat16 on a CPU: the same reference, judged against the float32 bundle by the bundle's own rules."""
    from fwd_kit.bundle import entry_tolerance, looser
    from fwd_kit.checks.compare import difference

    started = time.perf_counter()
    run_course(["bundle", "--model", STAGE1_ID, "--device", "cpu", "--dtype", "bfloat16", "--embeds", str(embeds_file),
                "--out", "bundle_bf16.safetensors"], hub_env(cache_dir), tmp_path)
    print(f"course bundle bfloat16: {time.perf_counter() - started:.0f} s")
    ref_manifest, ref = read_bundle(bundle_fp32)
    manifest, ours = read_bundle(tmp_path / "bundle_bf16.safetensors")
    assert manifest["dtype"] == "bfloat16" and manifest["inputs"] == ref_manifest["inputs"]
    bad = {}
    for name, spec in ref_manifest["entries"].items():
        tol = looser(spec["tolerance"], entry_tolerance(spec["kind"], "cpu", "bfloat16"))
        diff = difference(ours[f"output/{name}"].float(), ref[f"output/{name}"], tol["rtol"], tol["atol"])
        if diff.num_bad > int(tol["max_outside"] * diff.numel):
            bad[name] = (diff.num_bad, diff.max_abs)
    assert bad == {}, f"bfloat16 entries outside the float32 bundle's tolerances: {bad}"
