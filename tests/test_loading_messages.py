"""What loading a model prints: is the console (and the student's notebook) free of library noise, and does a
hub id that cannot be reached end in one line saying what to run instead?"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fwd_kit import loading


def test_loading_the_digit_model_prints_nothing_about_accelerate(capfd):
    """diffusers warns on every load when ``accelerate`` is missing (a red box in the notebook); not with us."""
    capfd.readouterr()
    pipe = loading.load_stage1(loading.DIGIT_MODEL, device="cpu", dtype=torch.float32)
    printed = capfd.readouterr()
    assert pipe.unet is not None
    for stream in (printed.out, printed.err):
        assert "accelerate" not in stream and "low_cpu_mem_usage" not in stream
        assert "Loading pipeline components" not in stream


def test_the_loading_bar_setting_is_restored_after_a_load():
    """Quieting the load must not switch off the progress bars of a student's later sampling loop."""
    from diffusers.utils import logging as diffusers_logging

    assert diffusers_logging.is_progress_bar_enabled()
    loading.load_stage1(loading.DIGIT_MODEL, device="cpu", dtype=torch.float32)
    assert diffusers_logging.is_progress_bar_enabled()


def test_an_unreachable_hub_id_raises_model_unavailable_with_help(tmp_path, monkeypatch):
    """Offline and not cached: the library says so at once (``ModelUnavailable``, an ``OSError``)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(loading.ModelUnavailable) as info:
        loading.load_stage1("DeepFloyd/IF-I-M-v1.0", device="cpu", cache_dir=tmp_path)
    assert isinstance(info.value, OSError) and "HF_HUB_OFFLINE" in info.value.reason
    assert "DIGIT_MODEL" in str(info.value) and "licence" in str(info.value)


def test_course_demo_with_an_unreachable_hub_id_prints_one_line_and_fails(tmp_path):
    """``course demo --model <hub id>`` offline: exit status 1, one line suggesting --model digit, no traceback."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    done = subprocess.run([sys.executable, "-m", "course", "demo", "--model", "DeepFloyd/IF-I-XL-v1.0", "--out",
                           str(tmp_path / "demo"), "--device", "cpu", "--no-grading"],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1
    assert len(lines) == 1, lines
    assert "DeepFloyd/IF-I-XL-v1.0" in lines[0] and "--model digit" in lines[0] and "Traceback" not in lines[0]
