"""DeepFloyd IF on a real GPU (``bench/gpu_check.py``): the real models load, the CUDA float16 reference
agrees with the CPU float32 bundle within the manifest's tolerances (through ``export_artifacts`` and
``compare_artifacts``, the grading path), stage 2 makes 256×256 images, and the CFG loop is timed against
``IFPipeline``.

Needs a CUDA GPU and hub access with the DeepFloyd licence accepted; skipped otherwise, saying which is
missing. Run with ``python -m pytest -m gpu tests/test_gpu_check.py -s`` (about 20 GB of RAM for the CPU
bundle of IF-I-XL; set FWD_GPU_CHECK_CPU_BUNDLE to a bundle made before to skip it).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu

REPO_ROOT = Path(__file__).resolve().parents[1]


def missing_requirement() -> str | None:
    """Why the GPU check cannot run here, or ``None``."""
    if not torch.cuda.is_available():
        return "needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        return "needs the Hugging Face hub to download DeepFloyd IF, but HF_HUB_OFFLINE is set"
    if not (os.environ.get("HF_TOKEN") or get_token()):
        return "needs a Hugging Face token with the DeepFloyd licence accepted (HF_TOKEN or huggingface_hub.login())"
    return None


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_deepfloyd_on_cuda_matches_the_cpu_bundle_and_runs_stage_2(tmp_path):
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    args = ["--out", str(tmp_path)]
    if os.environ.get("FWD_GPU_CHECK_CPU_BUNDLE"):
        args += ["--cpu-bundle", os.environ["FWD_GPU_CHECK_CPU_BUNDLE"]]
    summary = load_gpu_check().main(args)
    assert summary["artifacts_failed"] == {}, summary["artifacts_failed"]
    assert summary["bundle_disagreements"] == {}, summary["bundle_disagreements"]
    assert summary["stage2_shape"] == [1, 3, 256, 256]
    assert summary["cfg_loop"]["ratio"] < 1.5  # our loop is no slower than the pipeline's (within noise)
