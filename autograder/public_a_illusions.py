"""Public checks for Part A's illusions: the views, visual anagrams, low/high-pass filters and hybrid images.

Time convention (Part A): t = 0 is clean, t = 999 is the noisiest timestep; ``i_start`` indexes the
strided list. Same fixtures and rules as :mod:`autograder.public_a`. The anagram and hybrid checks use
a scheduler with a fixed variance (``fixed_large_log``), so whichever branch's predicted variance a
student adds — the course leaves it open — gives the same result.
"""

from __future__ import annotations

import torch

from autograder.compare import assert_close, close, passed, public_check
from autograder.fixtures import UNetCalls, generator, recording, tiny_unet
from autograder.public_a import I_START, SCALE, check_loop, loop_setup
from reference import illusions as ref_illusions


def _view_candidates(x: torch.Tensor) -> dict:
    return {
        "an upside-down flip (rows reversed)": torch.flip(x, dims=[2]),
        "a left-right mirror (columns reversed)": torch.flip(x, dims=[3]),
        "a 180° rotation": torch.flip(x, dims=[2, 3]),
        "a counter-clockwise quarter-turn": torch.rot90(x, 1, dims=(2, 3)),
        "a clockwise quarter-turn": torch.rot90(x, -1, dims=(2, 3)),
        "a transpose (rows and columns swapped)": x.transpose(2, 3),
        "the unchanged image": x,
        "1 − x": 1 - x,
        "−x": -x,
        "a flip of the batch axis": torch.flip(x, dims=[0]),
        "a flip of the channel axis": torch.flip(x, dims=[1]),
    }


def _check_view(name: str, student, reference, what: str) -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) / 107.5 - 1  # in [-1, 1]
    actual = student(x.clone())
    expected = reference(x)
    if not close(actual, expected):
        for label, candidate in _view_candidates(x).items():
            if close(actual, candidate):
                raise AssertionError(f"Does {name} {what} on a batch (B, C, H, W)? Your result is {label}.")
    assert_close(actual, expected, f"Does {name} {what} on a batch (B, C, H, W)?", name="the view")
    passed(f"{name}: right on a (2, 3, 6, 6) batch")


@public_check
def check_flip_upside_down(flip_upside_down) -> None:
    _check_view("flip_upside_down", flip_upside_down, ref_illusions.flip_upside_down,
                "turn the image upside down (along the height axis)")


@public_check
def check_rot90_ccw(rot90_ccw) -> None:
    _check_view("rot90_ccw", rot90_ccw, ref_illusions.rot90_ccw, "rotate the image a quarter-turn counter-clockwise")


@public_check
def check_rot90_cw(rot90_cw) -> None:
    _check_view("rot90_cw", rot90_cw, ref_illusions.rot90_cw,
                "rotate the image a quarter-turn clockwise (undoing rot90_ccw)")


@public_check
def check_negate(negate) -> None:
    _check_view("negate", negate, ref_illusions.negate, "invert the colours of a [-1, 1] image")


@public_check
def check_visual_anagram(visual_anagram) -> None:
    """Three anagram steps with the flip view and with the quarter-turn view (fixed-variance scheduler)."""
    inp, timesteps, xt, unet, scheduler = loop_setup(fixed_variance=True)
    p1, p2, uncond = inp["cond"], inp["cond2"], inp["uncond"]
    reference_unet = tiny_unet()

    def reference(view, first=p1, second=p2):
        return ref_illusions.visual_anagram(reference_unet, scheduler(), xt, I_START, first, second, uncond,
                                            timesteps, view=view, scale=SCALE, generator=generator())

    for view_name, view in (("flip_view", ref_illusions.flip_view), ("rot90_view", ref_illusions.rot90_view)):
        with recording(unet, UNetCalls()) as calls:
            actual = visual_anagram(unet, scheduler(), xt.clone(), I_START, p1.clone(), p2.clone(), uncond.clone(),
                                    list(timesteps), view=view, scale=SCALE, generator=generator())
        expected = reference(view)
        hypotheses = [] if close(actual, expected, loose=True) else [
            ("Do you map the second prompt's estimate back with the view's inverse before averaging? Your "
             f"result with {view_name} matches averaging it without undoing the view.",
             reference((view[0], ref_illusions.identity))),
            ("Do you undo the view with its inverse (view[1]) rather than applying the view again? Your result "
             f"with {view_name} matches applying it twice.", reference((view[0], view[0]))),
            ("Is prompt_embeds_1 used on the upright image and prompt_embeds_2 on the viewed one? Your result "
             "matches the prompts swapped.", reference(view, p2, p1)),
        ]
        check_loop("visual_anagram", calls, actual, expected, timesteps[I_START:-1],
                   f"Does each step average the upright CFG estimate (prompt 1) with inverse(CFG estimate of view(x_t) "
                   f"with prompt 2), then take the strided update with the generator? (checked with {view_name})",
                   hypotheses)
    passed("visual_anagram: 3 steps match the reference with the flip and the quarter-turn views")


def _check_filter(name: str, student, reference, question: str, hypotheses) -> None:
    g = generator(3)
    x = torch.randn((2, 3, 48, 48), generator=g) * 0.5 + torch.linspace(-1, 1, 48)  # noise on a ramp
    for kwargs in ({}, {"kernel_size": 9, "sigma": 1.5}):
        call = f"{name}(x{''.join(f', {k}={v}' for k, v in kwargs.items())})"
        actual = student(x.clone(), **kwargs)
        expected = reference(x, **kwargs)
        if not close(actual, expected):
            for message, alternative in hypotheses(x, kwargs):
                if close(actual, alternative):
                    raise AssertionError(f"{message} (in {call})")
            k = kwargs.get("kernel_size", 33) // 2
            same_shape = isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            if same_shape and close(actual[..., k:-k, k:-k], expected[..., k:-k, k:-k]):
                raise AssertionError(f"{question} In {call}, the result is right away from the border but not within "
                                     f"{k} pixels of it: pad like torchvision's gaussian_blur (reflect).")
        assert_close(actual, expected, question, name=call)
    passed(f"{name}: right with the default kernel (33, σ 2) and with kernel_size=9, sigma=1.5")


@public_check
def check_lowpass(lowpass) -> None:
    _check_filter("lowpass", lowpass, ref_illusions.lowpass,
                  "Does lowpass blur x with a Gaussian of the given kernel_size and sigma (TF.gaussian_blur)?",
                  lambda x, kw: [("Does lowpass keep the low frequencies (the blur), not the high ones?",
                                  ref_illusions.highpass(x, **kw))])


@public_check
def check_highpass(highpass) -> None:
    _check_filter("highpass", highpass, ref_illusions.highpass,
                  "Does highpass return x − lowpass(x) with the same kernel_size and sigma?",
                  lambda x, kw: [("Does highpass keep the high frequencies (x minus the blur), not the blur?",
                                  ref_illusions.lowpass(x, **kw))])


@public_check
def check_make_hybrids(make_hybrids) -> None:
    """Three hybrid steps (kernel 33, σ 2) with the fixed-variance scheduler."""
    inp, timesteps, xt, unet, scheduler = loop_setup(fixed_variance=True)
    low, high, uncond = inp["cond"], inp["cond2"], inp["uncond"]
    reference_unet = tiny_unet()

    def reference(first=low, second=high, scale=SCALE):
        return ref_illusions.make_hybrids(reference_unet, scheduler(), xt, I_START, first, second, uncond, timesteps,
                                          scale=scale, generator=generator())

    with recording(unet, UNetCalls()) as calls:
        actual = make_hybrids(unet, scheduler(), xt.clone(), I_START, low.clone(), high.clone(), uncond.clone(),
                              list(timesteps), scale=SCALE, generator=generator())
    expected = reference()
    hypotheses = [] if close(actual, expected, loose=True) else [
        ("Do the low frequencies come from prompt_embeds_low's estimate and the high ones from "
         "prompt_embeds_high's? Your result matches them swapped.", reference(high, low)),
        ("Is each prompt's estimate guided (CFG with scale γ) before filtering? Your result matches γ = 1.",
         reference(scale=1.0)),
    ]
    check_loop("make_hybrids", calls, actual, expected, timesteps[I_START:-1],
               "Does each step combine lowpass(CFG estimate of the low prompt) + highpass(CFG estimate of the high "
               "prompt), then take the strided update with the generator?", hypotheses)
    passed("make_hybrids: 3 steps match the reference on a tiny UNet")
