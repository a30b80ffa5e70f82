"""Shared fixtures: tiny offline DeepFloyd stand-ins, built once per session and loaded from disk.

Nothing here reaches the hub: the models are built from random weights, saved to a temporary
directory and loaded back through the same ``from_pretrained`` code the real models use.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("FWD_HIDDEN_SECRET", "tests-offering-secret")  # the hidden seeds of this test run


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory):
    """``{"stage1": Path, "stage2": Path}``: tiny IF pipelines saved with fp32 and fp16 weights."""
    from fwd_kit.tiny import save_tiny_models

    return save_tiny_models(tmp_path_factory.mktemp("tiny_if"), variants=(None, "fp16"))


@pytest.fixture(scope="session")
def stage1(tiny_model_dirs):
    """The tiny stage-1 ``IFPipeline`` (fp32, CPU), loaded from disk."""
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(tiny_model_dirs["stage1"])


@pytest.fixture(scope="session")
def stage2(tiny_model_dirs):
    """The tiny stage-2 ``IFSuperResolutionPipeline`` (fp32, CPU), loaded from disk."""
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(tiny_model_dirs["stage2"])


@pytest.fixture(scope="session")
def text_width(stage1):
    return stage1.unet.config.encoder_hid_dim


@pytest.fixture(scope="session")
def nbgrader_trips(tmp_path_factory):
    """``trip(part, students)``: nbgrader's pipeline on a temporary course of ``part``, each student autograded
    once per session whichever module asks first (``tests/nbgrader_trip.py``)."""
    from nbgrader_trip import trips

    return trips(tmp_path_factory)


@pytest.fixture(scope="session")
def solution_reports() -> dict:
    """``course grade``'s reports of the solution notebooks, by part, kept by the module that grades them first
    (``tests/test_grade_proof.py``) for the others (``tests/test_rubric.py``): each is graded once per session."""
    return {}
