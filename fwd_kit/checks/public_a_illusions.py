"""Public checks for Part A's illusions: the views, visual anagrams, low/high-pass filters and hybrid images.

Time convention (Part A): t = 0 is clean, t = 999 is the noisiest timestep; ``i_start`` indexes the
strided list. Same fixtures and rules as :mod:`fwd_kit.checks.public_a`. The anagram and hybrid checks use
a scheduler with a fixed variance (``fixed_large_log``), so whichever branch's predicted variance a
student adds — the course leaves it open — gives the same result. The hybrid check then runs once more
with DeepFloyd's learned variance, where it accepts the variances the course documents as open (the
average of the two prompts' conditional variances, or either prompt's) and names one guided like the
noise. Both loops are checked with a callback, and once with every input and the UNet on PyTorch's
``meta`` device (a hard-coded device fails there). With a ``seed`` ≠ 0 the checks run on other batches,
pictures, embeddings, generator seeds, strided lists, guidance scales and filters.
"""

from __future__ import annotations

import torch

from fwd_kit.checks.compare import assert_close, assert_follows_device, call_student, close, passed, public_check
from fwd_kit.checks.fixtures import (
    IDENTITY,
    ROLL_VIEW,
    TRANSPOSE_VIEW,
    CallbackLog,
    UNetCalls,
    derived_seed,
    generator,
    meta_runs,
    meta_start,
    meta_unet,
    on_meta,
    parameter_rng,
    recording,
    tiny_scheduler,
    tiny_unet,
)
from fwd_kit.checks.public_a import check_loop, check_with_callback, clamped_alternative, guidance_scale, loop_setup
from fwd_kit.expected import alternatives_wanted, computed, reference

ref_illusions = reference("illusions")  # the instructors' reference: live where installed, else stored values
ref_denoise = reference("denoise")


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


def view_input(name: str, seed: int) -> torch.Tensor:
    """A batch in [-1, 1] whose values all differ: a ramp (2, 3, 6, 6) at seed 0, else uniform values in a
    batch of 2–3 square images of side 5–8."""
    if seed == 0:
        return torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) / 107.5 - 1
    rng = parameter_rng(name, seed)
    batch, side = rng.randint(2, 3), rng.randint(5, 8)
    return torch.rand((batch, 3, side, side), generator=generator(derived_seed(seed, 11))) * 2 - 1


def _check_view(name: str, student, reference, what: str, seed: int) -> None:
    x = view_input(name, seed)
    actual = call_student(student, name, x.clone())
    expected = reference(x)
    if not close(actual, expected):
        for label, candidate in _view_candidates(x).items():
            if close(actual, candidate):
                raise AssertionError(f"Does {name} {what} on a batch (B, C, H, W)? Your result is {label}.")
    assert_close(actual, expected, f"Does {name} {what} on a batch (B, C, H, W)?", name="the view")
    passed(f"{name}: right on a {tuple(x.shape)} batch")


@public_check
def check_flip_upside_down(flip_upside_down, *, seed: int = 0) -> None:
    _check_view("flip_upside_down", flip_upside_down, ref_illusions.flip_upside_down,
                "turn the image upside down (along the height axis)", seed)


@public_check
def check_rot90_ccw(rot90_ccw, *, seed: int = 0) -> None:
    _check_view("rot90_ccw", rot90_ccw, ref_illusions.rot90_ccw, "rotate the image a quarter-turn counter-clockwise",
                seed)


@public_check
def check_rot90_cw(rot90_cw, *, seed: int = 0) -> None:
    _check_view("rot90_cw", rot90_cw, ref_illusions.rot90_cw,
                "rotate the image a quarter-turn clockwise (undoing rot90_ccw)", seed)


@public_check
def check_negate(negate, *, seed: int = 0) -> None:
    _check_view("negate", negate, ref_illusions.negate, "invert the colours of a [-1, 1] image", seed)


@public_check
def check_visual_anagram(visual_anagram, *, seed: int = 0) -> None:
    """Three anagram steps with a transpose view and a horizontal-roll view (fixed-variance scheduler); these
    views are not among the ones students write, so a mistake in flip_upside_down is not charged here."""
    inp, timesteps, i_start, xt, unet, scheduler = loop_setup("visual_anagram", seed, fixed_variance=True)
    p1, p2, uncond = inp["cond"], inp["cond2"], inp["uncond"]
    scale, generator_seed, reference_unet = guidance_scale("visual_anagram", seed), derived_seed(seed), tiny_unet()

    def reference(view, first=p1, second=p2):
        return ref_illusions.visual_anagram(reference_unet, scheduler(), xt, i_start, first, second, uncond,
                                            timesteps, view=view, scale=scale, generator=generator(generator_seed))

    with_transpose = None  # the result with TRANSPOSE_VIEW, to compare the run with a callback with
    for view_name, view in (("a transpose view", TRANSPOSE_VIEW), ("a horizontal-roll view", ROLL_VIEW)):
        with recording(unet, UNetCalls()) as calls:
            actual = call_student(visual_anagram, "visual_anagram", unet, scheduler(), xt.clone(), i_start, p1.clone(),
                                  p2.clone(), uncond.clone(), list(timesteps), view=view, scale=scale,
                                  generator=generator(generator_seed))
        expected = reference(view)
        accepted = clamped_alternative(close(actual, expected, loose=True), ref_illusions.visual_anagram,
                                       reference_unet, scheduler(), xt, i_start, p1, p2, uncond, timesteps, view=view,
                                       scale=scale, generator=generator(generator_seed))
        hypotheses = [] if not alternatives_wanted(close(actual, expected, loose=True)) else [
            ("Do you map the second prompt's estimate back with the view's inverse before averaging? Your "
             f"result with {view_name} matches averaging it without undoing the view.",
             reference((view[0], IDENTITY))),
            ("Do you undo the view with its inverse (view[1]) rather than applying the view again? Your result "
             f"with {view_name} matches applying it twice.", reference((view[0], view[0]))),
            ("Is prompt_embeds_1 used on the upright image and prompt_embeds_2 on the viewed one? Your result "
             "matches the prompts swapped.", reference(view, p2, p1)),
        ]
        check_loop("visual_anagram", calls, actual, expected, timesteps[i_start:-1],
                   f"Does each step average the upright CFG estimate (prompt 1) with inverse(CFG estimate of view(x_t) "
                   f"with prompt 2), then take the strided update with the generator? (checked with {view_name})",
                   hypotheses, accepted)
        with_transpose = actual if view is TRANSPOSE_VIEW else with_transpose
    log = CallbackLog()
    again = call_student(visual_anagram, "visual_anagram", tiny_unet(), scheduler(), xt.clone(), i_start, p1.clone(),
                         p2.clone(), uncond.clone(), list(timesteps), view=TRANSPOSE_VIEW, scale=scale,
                         generator=generator(generator_seed), callback=log)
    check_with_callback("visual_anagram", again, with_transpose, log, timesteps, range(i_start, len(timesteps) - 1))
    run, course = meta_runs(visual_anagram, ref_illusions.visual_anagram, lambda: (
        (meta_unet(), scheduler(), on_meta(xt), meta_start(timesteps, i_start), on_meta(p1), on_meta(p2),
         on_meta(uncond), list(timesteps)), {"view": TRANSPOSE_VIEW, "scale": scale}))
    assert_follows_device(run, "visual_anagram", "its inputs and the UNet", course=course)
    passed("visual_anagram: 3 steps match the reference with a transpose view and a horizontal-roll view; the "
           "callback is right; it follows the UNet's device")


def filter_case(name: str, seed: int) -> tuple[torch.Tensor, dict]:
    """Noise on a ramp, (2, 3, S, S) with S = 48 at seed 0 (40–56 otherwise), and the non-default filter
    arguments: kernel_size 9, sigma 1.5 at seed 0, else an odd kernel of 5–21 and σ in [0.7, 3.5]."""
    side, kwargs = 48, {"kernel_size": 9, "sigma": 1.5}
    if seed:
        rng = parameter_rng(name, seed)
        side, kwargs = rng.choice((40, 44, 52, 56)), {"kernel_size": rng.randrange(5, 23, 2),
                                                      "sigma": round(rng.uniform(0.7, 3.5), 2)}
    x = torch.randn((2, 3, side, side), generator=generator(derived_seed(seed, 3))) * 0.5 + torch.linspace(-1, 1, side)
    return x, kwargs


def _check_filter(name: str, student, reference, question: str, hypotheses, seed: int) -> None:
    x, other = filter_case(name, seed)
    for kwargs in ({}, other):
        call = f"{name}(x{''.join(f', {k}={v}' for k, v in kwargs.items())})"
        actual = call_student(student, name, x.clone(), **kwargs)
        expected = reference(x, **kwargs)
        alternatives = hypotheses(x, kwargs) if alternatives_wanted(close(actual, expected)) else []
        if not close(actual, expected):
            for message, alternative in alternatives:
                if close(actual, alternative):
                    raise AssertionError(f"{message} (in {call})")
            k = kwargs.get("kernel_size", 33) // 2
            same_shape = isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            if same_shape and close(actual[..., k:-k, k:-k], expected[..., k:-k, k:-k]):
                raise AssertionError(f"{question} In {call}, the result is right away from the border but not within "
                                     f"{k} pixels of it: pad like torchvision's gaussian_blur (reflect).")
        assert_close(actual, expected, question, name=call)
    passed(f"{name}: right with the default kernel (33, σ 2) and with kernel_size={other['kernel_size']}, "
           f"sigma={other['sigma']}")


@public_check
def check_lowpass(lowpass, *, seed: int = 0) -> None:
    _check_filter("lowpass", lowpass, ref_illusions.lowpass,
                  "Does lowpass blur x with a Gaussian of the given kernel_size and sigma (TF.gaussian_blur)?",
                  lambda x, kw: [("Does lowpass keep the low frequencies (the blur), not the high ones?",
                                  ref_illusions.highpass(x, **kw))], seed)


@public_check
def check_highpass(highpass, *, seed: int = 0) -> None:
    _check_filter("highpass", highpass, ref_illusions.highpass,
                  "Does highpass return x − lowpass(x) with the same kernel_size and sigma?",
                  lambda x, kw: [("Does highpass keep the high frequencies (x minus the blur), not the blur?",
                                  ref_illusions.lowpass(x, **kw))], seed)


HYBRID_VARIANCES = {  # (prompts' variance, guided like the noise) → its name in messages
    ("average", False): "the average of the two prompts' conditional variances (the course's choice)",
    ("low", False): "prompt_embeds_low's conditional variance",
    ("high", False): "prompt_embeds_high's conditional variance",
    ("average", True): "the average of the two variances guided like the noise, v_u + γ·(v_c − v_u)",
    ("low", True): "prompt_embeds_low's variance guided like the noise, v_u + γ·(v_c − v_u)",
    ("high", True): "prompt_embeds_high's variance guided like the noise, v_u + γ·(v_c − v_u)",
}


@computed("hybrid_variance")
def with_hybrid_variance(loop, predict_noise, estimate_x0, which: str, guided: bool, clamp: bool, args: tuple,
                         kwargs: dict):
    """``loop(*args, **kwargs)`` of the reference ``make_hybrids`` (which adds the average of the two prompts'
    conditional variances) with another predicted variance (:data:`HYBRID_VARIANCES`): ``which`` prompt's
    ("average", "low" or "high"), ``guided`` like the noise, v_u + γ·(v_c − v_u) (a mistake); ``clamp``: x̂0
    clamped to [-1, 1] as well (a choice the course leaves open)."""
    namespace, denoise_namespace, scale = loop.__globals__, estimate_x0.__globals__, kwargs["scale"]

    def with_variance(*a, **k):  # the UNet's estimates of the batch (uncond, low, high), variances replaced
        eps, variance = predict_noise(*a, **k)
        v_u, v_low, v_high = variance.chunk(3)
        if guided:
            v_low, v_high = v_u + scale * (v_low - v_u), v_u + scale * (v_high - v_u)
        if which != "average":  # the loop averages the last two chunks: make both the chosen one
            v_low = v_high = v_low if which == "low" else v_high
        return eps, torch.cat([v_u, v_low, v_high])

    def clamped(*a, **k):
        return estimate_x0(*a, **k).clamp(-1, 1)

    namespace["predict_noise"] = with_variance
    if clamp:
        denoise_namespace["estimate_x0"] = clamped
    try:
        return loop(*args, **kwargs)
    finally:
        namespace["predict_noise"] = predict_noise
        denoise_namespace["estimate_x0"] = estimate_x0


def check_hybrid_variance(make_hybrids, inputs: tuple, filters: dict, scale: float, generator_seed: int) -> None:
    """make_hybrids with DeepFloyd's learned-range scheduler, where the variance added matters: the course's
    average, either prompt's conditional variance (each also with x̂0 clamped) pass; a guided one is named."""
    xt, i_start, low, high, uncond, timesteps = inputs
    reference_unet = tiny_unet()

    def run(which="average", guided=False, clamp=False):
        args = (reference_unet, tiny_scheduler(), xt, i_start, low, high, uncond, timesteps)
        kwargs = dict(scale=scale, generator=generator(generator_seed), **filters)
        if (which, guided, clamp) == ("average", False, False):
            return ref_illusions.make_hybrids(*args, **kwargs)
        return with_hybrid_variance(ref_illusions.make_hybrids, ref_illusions.predict_noise, ref_denoise.estimate_x0,
                                    which, guided, clamp, args, kwargs)

    actual = call_student(make_hybrids, "make_hybrids", tiny_unet(), tiny_scheduler(), xt.clone(), i_start,
                          low.clone(), high.clone(), uncond.clone(), list(timesteps), scale=scale,
                          generator=generator(generator_seed), **filters)
    expected = run()
    question = ("With DeepFloyd's learned variance, does make_hybrids add a predicted variance of the UNet: the "
                "average of the two prompts' conditional variances (the course's choice) or either prompt's?")
    if alternatives_wanted(close(actual, expected, loose=True)):
        accepted = [run(which, False, clamp) for which in ("average", "low", "high") for clamp in (False, True)
                    if (which, clamp) != ("average", False)]
        guided = {which: run(which, True) for which in ("average", "low", "high")}
        if close(actual, expected, loose=True) or any(close(actual, a, loose=True) for a in accepted):
            return
        for which, alternative in guided.items():
            if close(actual, alternative, loose=True):
                raise AssertionError(f"{question} Your result matches {HYBRID_VARIANCES[which, True]}: guide the "
                                     "noise estimates, not the variances.")
    assert_close(actual, expected, question, name="the image make_hybrids returned", loose=True,
                 context="With the scheduler's learned-range variance")


@public_check
def check_make_hybrids(make_hybrids, *, seed: int = 0) -> None:
    """Three hybrid steps (kernel 33, σ 2 at seed 0; other filters otherwise) with the fixed-variance scheduler,
    again with a callback, then with the learned variance (:func:`check_hybrid_variance`) and on meta tensors."""
    inp, timesteps, i_start, xt, unet, scheduler = loop_setup("make_hybrids", seed, fixed_variance=True)
    low, high, uncond = inp["cond"], inp["cond2"], inp["uncond"]
    scale, generator_seed, reference_unet = guidance_scale("make_hybrids", seed), derived_seed(seed), tiny_unet()
    filters = {}  # the defaults (33, σ 2) at seed 0
    if seed:
        rng = parameter_rng("make_hybrids/filters", seed)
        filters = {"kernel_size": rng.randrange(17, 35, 2), "sigma": round(rng.uniform(1.2, 3.0), 2)}

    def reference(first=low, second=high, guidance=scale):
        return ref_illusions.make_hybrids(reference_unet, scheduler(), xt, i_start, first, second, uncond, timesteps,
                                          scale=guidance, generator=generator(generator_seed), **filters)

    with recording(unet, UNetCalls()) as calls:
        actual = call_student(make_hybrids, "make_hybrids", unet, scheduler(), xt.clone(), i_start, low.clone(),
                              high.clone(), uncond.clone(), list(timesteps), scale=scale,
                              generator=generator(generator_seed), **filters)
    expected = reference()
    accepted = clamped_alternative(close(actual, expected, loose=True), ref_illusions.make_hybrids, reference_unet,
                                   scheduler(), xt, i_start, low, high, uncond, timesteps, scale=scale,
                                   generator=generator(generator_seed), **filters)
    hypotheses = [] if not alternatives_wanted(close(actual, expected, loose=True)) else [
        ("Do the low frequencies come from prompt_embeds_low's estimate and the high ones from "
         "prompt_embeds_high's? Your result matches them swapped.", reference(high, low)),
        ("Is each prompt's estimate guided (CFG with scale γ) before filtering? Your result matches γ = 1.",
         reference(guidance=1.0)),
    ]
    check_loop("make_hybrids", calls, actual, expected, timesteps[i_start:-1],
               "Does each step combine lowpass(CFG estimate of the low prompt) + highpass(CFG estimate of the high "
               "prompt), then take the strided update with the generator?", hypotheses, accepted)
    log = CallbackLog()
    again = call_student(make_hybrids, "make_hybrids", tiny_unet(), scheduler(), xt.clone(), i_start, low.clone(),
                         high.clone(), uncond.clone(), list(timesteps), scale=scale,
                         generator=generator(generator_seed), callback=log, **filters)
    check_with_callback("make_hybrids", again, actual, log, timesteps, range(i_start, len(timesteps) - 1))
    check_hybrid_variance(make_hybrids, (xt, i_start, low, high, uncond, timesteps), filters, scale, generator_seed)
    run, course = meta_runs(make_hybrids, ref_illusions.make_hybrids, lambda: (
        (meta_unet(), tiny_scheduler(), on_meta(xt), meta_start(timesteps, i_start), on_meta(low), on_meta(high),
         on_meta(uncond), list(timesteps)), {"scale": scale, **filters}))
    assert_follows_device(run, "make_hybrids", "its inputs and the UNet", course=course)
    passed("make_hybrids: 3 steps match the reference on a tiny UNet, with a fixed and with the learned variance; "
           "the callback is right; it follows the UNet's device")
