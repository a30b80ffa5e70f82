"""The public checks the notebooks run after each function or class a student writes.

In an nbgrader autograder-test cell::

    from fwd_kit.checks import check_forward
    check_forward(forward)

Each ``check_<name>(student_obj)`` runs the student's ``<name>`` (same name and signature as in
``reference``) on small seeded inputs on the CPU, compares with the reference, prints one line starting
with ✓ when all is well and raises ``AssertionError`` with a guiding question when not. A stub's
``NotImplementedError`` passes through unchanged; nothing is written to stderr (nbgrader scores a cell 0
when anything is). Part A checks use a tiny random IF stage-1 UNet (``fwd_kit.tiny``), Part B checks
small reference UNets and a recording stand-in; see :mod:`fwd_kit.checks.public_a`,
:mod:`fwd_kit.checks.public_a_illusions`, :mod:`fwd_kit.checks.public_b` and :mod:`fwd_kit.checks.public_b_generative`.
These checks are visible to students and modest; the autograder's hidden checks use other inputs.
"""

from __future__ import annotations

from fwd_kit.checks.public_a import (
    check_cfg_noise,
    check_denoise_step_mean,
    check_estimate_x0,
    check_forward,
    check_inpaint,
    check_iterative_denoise,
    check_iterative_denoise_cfg,
    check_one_step_denoise,
    check_sdedit,
    check_strided_timesteps,
)
from fwd_kit.checks.public_a_illusions import (
    check_flip_upside_down,
    check_highpass,
    check_lowpass,
    check_make_hybrids,
    check_negate,
    check_rot90_ccw,
    check_rot90_cw,
    check_visual_anagram,
)
from fwd_kit.checks.public_b import (
    check_add_noise,
    check_ClassConditionalUNet,
    check_Concat,
    check_Conv,
    check_ConvBlock,
    check_denoiser_loss,
    check_DownBlock,
    check_DownConv,
    check_FCBlock,
    check_Flatten,
    check_pure_noise_loss,
    check_TimeConditionalUNet,
    check_UnconditionalUNet,
    check_Unflatten,
    check_UpBlock,
    check_UpConv,
)
from fwd_kit.checks.public_b_generative import (
    check_class_ddpm_forward,
    check_class_ddpm_sample,
    check_class_fm_forward,
    check_class_fm_sample,
    check_ddpm_forward,
    check_ddpm_sample,
    check_ddpm_schedule,
    check_ddpm_step,
    check_flow_target,
    check_interpolate,
    check_time_fm_forward,
    check_time_fm_sample,
)

PART_A = (
    "forward", "estimate_x0", "one_step_denoise", "strided_timesteps", "denoise_step_mean", "iterative_denoise",
    "cfg_noise", "iterative_denoise_cfg", "sdedit", "inpaint", "flip_upside_down", "rot90_ccw", "rot90_cw",
    "negate", "visual_anagram", "lowpass", "highpass", "make_hybrids",
)
PART_B = (
    "Conv", "DownConv", "UpConv", "Flatten", "Unflatten", "Concat", "ConvBlock", "DownBlock", "UpBlock", "FCBlock",
    "UnconditionalUNet", "TimeConditionalUNet", "ClassConditionalUNet", "add_noise", "denoiser_loss",
    "pure_noise_loss", "interpolate", "flow_target", "time_fm_forward", "time_fm_sample", "class_fm_forward",
    "class_fm_sample", "ddpm_schedule", "ddpm_forward", "ddpm_step", "ddpm_sample", "class_ddpm_forward",
    "class_ddpm_sample",
)
CHECKS = {name: globals()[f"check_{name}"] for name in PART_A + PART_B}  # graded name → its public check

__all__ = [f"check_{name}" for name in PART_A + PART_B] + ["CHECKS", "PART_A", "PART_B"]
