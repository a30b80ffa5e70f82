"""Public checks for Part A, run in the notebook right after each function a student writes.

Time convention (Part A): t = 0 is clean, t = 999 is the noisiest timestep; ``i_start`` indexes the
strided list ``timesteps`` (it is not a timestep).

``check_<name>(student_fn)`` calls the student's function with the reference signature on small seeded
inputs — (2, 3, 32, 32) images, random prompt embeddings and a tiny random IF stage-1 UNet built in
memory from ``fwd_kit.tiny`` (CPU, float32, the same on Colab and on a laptop) — and compares with the
reference run on the same inputs and the same generator. It prints one line when all is well and
raises ``AssertionError`` with a question when not; a stub's ``NotImplementedError`` passes through
unchanged, and nothing reaches stderr. The tiny UNet draws noise, not pictures: these checks test the
mechanics; the autograder's hidden checks test more.

Loops start at ``i_start = 30`` of the usual 34-step list (3 UNet steps) to stay fast; the frames of
``return_intermediates`` are checked on a run of 6–9 steps (7 at seed 0): two frames, so that the every-5th
rule shows. Every function that draws noise or calls the UNet is run once more with every input tensor and a
one-level UNet of the same interface on PyTorch's ``meta`` device (:func:`~fwd_kit.checks.compare.assert_follows_device`): a hard-coded
``"cpu"`` fails there, on a CPU. The illusions' checks are in :mod:`fwd_kit.checks.public_a_illusions`.

Every check takes a keyword ``seed``: 0 (the default) runs the inputs the notebooks show; another seed
runs the same logic on other pictures, noise, embeddings and generator seeds, and on other timesteps, a
strided list with another stride (still 3 loop steps) and another guidance scale — the autograder's
hidden runs.
"""

from __future__ import annotations

import torch

from fwd_kit.checks.compare import (
    assert_close,
    assert_follows_device,
    assert_follows_dtype,
    assert_raises_value_error,
    assert_true,
    call_student,
    close,
    describe,
    error_kind,
    linear_form,
    passed,
    public_check,
    tensor_problem,
)
from fwd_kit.checks.fixtures import (
    BATCH,
    SIZE,
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
from fwd_kit.checks.fixtures import picture_inputs as inputs
from fwd_kit.expected import alternatives_wanted, computed, reference

ref = reference("denoise")  # the instructors' reference: live where installed, else stored values
ref_editing = reference("editing")

I_START = 30  # loops run t = 90 → 60 → 30 → 0 of strided_timesteps()
SCALE = 5.0  # guidance scale of the checks (not the default 7, to catch a hard-coded γ)
LOOP_STEPS = 3  # UNet steps of every loop check, at every seed
FRAME_STEPS = 7  # UNet steps of the frames check at seed 0 (frames before steps 0 and 5); 6–9 otherwise
HIDDEN_SCALES = (3.0, 4.0, 4.5, 5.5, 6.0, 8.0, 9.0)  # γ at seed ≠ 0: never 1 (unguided) nor the default 7
HIDDEN_STRIDES = (20, 25, 33, 40, 45, 50, 60)  # strides of the loops' lists at seed ≠ 0 (990 = 33·30)


def timestep_pair(name: str, seed: int, public: tuple[int, int], noisy: range, clean: range) -> tuple[int, int]:
    """Two timesteps (noisy, nearly clean) for check ``name``: ``public`` at seed 0, else drawn from the ranges."""
    if seed == 0:
        return public
    rng = parameter_rng(name, seed)
    return rng.choice(noisy), rng.choice(clean)


def guidance_scale(name: str, seed: int) -> float:
    """γ of check ``name``: SCALE at seed 0, else one of HIDDEN_SCALES (a hard-coded γ shows either way)."""
    return SCALE if seed == 0 else parameter_rng(f"{name}/scale", seed).choice(HIDDEN_SCALES)


def loop_timesteps(name: str, seed: int) -> tuple[list[int], int]:
    """(timesteps, i_start) of a loop check: strided_timesteps() and I_START at seed 0 (t = 90 → 60 → 30 → 0);
    else a strided list with another stride (start = the largest multiple below 1000), i_start LOOP_STEPS
    entries before its end. Either way the loop makes LOOP_STEPS UNet steps, down to t = 0."""
    if seed == 0:
        return ref.strided_timesteps(), I_START
    stride = parameter_rng(f"{name}/timesteps", seed).choice(HIDDEN_STRIDES)
    timesteps = ref.strided_timesteps(start=999 // stride * stride, stride=stride)
    return timesteps, len(timesteps) - 1 - LOOP_STEPS


def frames_setup(name: str, seed: int) -> tuple[list[int], int, torch.Tensor]:
    """(timesteps, i_start, x_t) of the frames check: the loop check's strided list, started FRAME_STEPS steps
    before its end at seed 0 (t = 210 → 0), 6–9 otherwise, so that the every-5th rule shows: a second frame
    tells every 5th step from every 4th or 6th, from "after the update", from a rule counted from step 0 of the
    list rather than from i_start, and from a final frame added at the end; more steps would show nothing more."""
    timesteps, _ = loop_timesteps(name, seed)
    steps = FRAME_STEPS if seed == 0 else parameter_rng(f"{name}/frames", seed).randint(6, 9)
    i_start = len(timesteps) - 1 - steps
    inp = inputs(seed)
    xt = ref.forward(inp["x0"], timesteps[i_start], tiny_scheduler().alphas_cumprod, noise=inp["noise"])
    return timesteps, i_start, xt


@computed("clamped_x0")
def with_clamped_x0(loop, estimate_x0, args: tuple, kwargs: dict):
    """``loop(*args, **kwargs)`` of the reference with every x̂0 clamped to [-1, 1] — a choice the course
    leaves open (common, not required): a student's loop that clamps must match this one."""
    namespace = estimate_x0.__globals__  # the reference module whose loops and denoise_step look it up

    def clamped(*a, **k):
        return estimate_x0(*a, **k).clamp(-1, 1)

    namespace["estimate_x0"] = clamped
    try:
        return loop(*args, **kwargs)
    finally:
        namespace["estimate_x0"] = estimate_x0


def clamped_alternative(passed_: bool, loop, *args, **kwargs) -> list:
    """``[the reference loop with x̂0 clamped]`` when alternatives are wanted (:func:`alternatives_wanted`)."""
    return [with_clamped_x0(loop, ref.estimate_x0, args, kwargs)] if alternatives_wanted(passed_) else []


def check_loop(name: str, calls: UNetCalls, actual, expected, expected_ts: list[int], question: str,
               hypotheses=(), accepted=()) -> None:
    """A sampling loop's result: UNet called at the right timesteps, known mistakes named, then values.
    ``accepted``: results of choices the course leaves open (a clamped x̂0), which pass too."""
    assert_true(
        calls.timesteps == expected_ts,
        f"Does {name} take one step per timestep, from timesteps[i_start] down to timesteps[-2], calling the "
        f"UNet at the current t?",
        f"The UNet was called at t = {calls.timesteps}, but should see t = {expected_ts}.",
    )
    if not close(actual, expected, loose=True):
        if any(close(actual, alternative, loose=True) for alternative in accepted):
            return
        for message, alternative in hypotheses:
            if close(actual, alternative, loose=True):
                raise AssertionError(message)
    assert_close(actual, expected, question, name=f"the image {name} returned", loose=True)


# ---------------------------------------------------------------------------------------------------
# Forward process and one-step denoising


@public_check
def check_forward(forward, *, seed: int = 0) -> None:
    """x_t on given noise at two timesteps; fresh noise with a generator: N(0, I) and reproducible."""
    inp, alphas_cumprod = inputs(seed), tiny_scheduler().alphas_cumprod
    timesteps = timestep_pair("forward", seed, (500, 30), range(400, 950), range(10, 200))
    question = ("Does forward compute x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε with ᾱ_t = alphas_cumprod[t] "
                "(it scales the image as well as adding noise)?")
    for t in timesteps:
        expected = ref.forward(inp["x0"], t, alphas_cumprod, noise=inp["noise"])
        actual = call_student(forward, "forward", inp["x0"].clone(), t, alphas_cumprod, noise=inp["noise"].clone())
        hint = linear_form(actual, {"x0": inp["x0"], "ε": inp["noise"]})
        assert_close(actual, expected, question, name="x_t", context=f"At t={t} with the noise given{hint}")
    t = timesteps[0]
    alpha_bar, generator_seed = float(alphas_cumprod[t]), derived_seed(seed, 7)
    first = call_student(forward, "forward", inp["x0"].clone(), t, alphas_cumprod, generator=generator(generator_seed))
    again = call_student(forward, "forward", inp["x0"].clone(), t, alphas_cumprod, generator=generator(generator_seed))
    problem = tensor_problem(first, inp["x0"], "x_t")
    assert_true(problem is None, "When noise is None, does forward return x_t of x0's shape and dtype?", f"{problem}.")
    implied = (first.double() - alpha_bar**0.5 * inp["x0"].double()) / (1 - alpha_bar) ** 0.5
    mean, std = float(implied.mean()), float(implied.std())
    assert_true(abs(mean) < 0.1 and abs(std - 1) < 0.1,
                "When noise is None, does forward draw ε ~ N(0, I) (torch.randn, not torch.rand)?",
                f"At t={t} the implied noise (x_t − sqrt(ᾱ_t)·x0)/sqrt(1 − ᾱ_t) has mean {mean:.3g} and std {std:.3g}.")
    assert_true(close(again, first), "When noise is None, does forward draw ε with the generator it is given "
                "(torch.randn(..., generator=generator)), so that the same seed gives the same x_t?",
                "Two calls with generators seeded alike gave different results.")
    x0, noise = inp["x0"].double(), inp["noise"].double()
    assert_follows_dtype(lambda: call_student(forward, "forward", x0.clone(), t, alphas_cumprod, noise=noise.clone()),
                         ref.forward(x0, t, alphas_cumprod, noise=noise), "forward", "x0's", "x_t")
    run, course = meta_runs(forward, ref.forward, lambda: ((on_meta(inp["x0"]), t, alphas_cumprod), {}))
    assert_follows_device(run, "forward", "x0", kept="alphas_cumprod", course=course)
    passed("forward: x_t matches on given noise (float32 and float64); fresh noise looks like N(0, I) and follows "
           "the generator and x0's device")


@public_check
def check_estimate_x0(estimate_x0, *, seed: int = 0) -> None:
    """x̂0 from x_t and a noise estimate at two timesteps, compared with the reference."""
    inp, alphas_cumprod = inputs(seed), tiny_scheduler().alphas_cumprod
    timesteps = timestep_pair("estimate_x0", seed, (500, 30), range(400, 950), range(10, 200))
    eps = 0.8 * inp["noise"] + 0.2 * inp["x0"]  # a noise estimate that is not the true noise
    question = "Does estimate_x0 invert the forward process: x̂0 = (x_t − sqrt(1 − ᾱ_t)·ε̂)/sqrt(ᾱ_t)?"
    for t in timesteps:
        xt = ref.forward(inp["x0"], t, alphas_cumprod, noise=inp["noise"])
        expected = ref.estimate_x0(xt, eps, t, alphas_cumprod)
        actual = call_student(estimate_x0, "estimate_x0", xt.clone(), eps.clone(), t, alphas_cumprod)
        if close(actual, expected.clamp(-1, 1)):  # clamping x̂0 to [-1, 1]: a choice the course leaves open
            continue
        hint = linear_form(actual, {"x_t": xt, "ε̂": eps})
        assert_close(actual, expected, question, name="x̂0", context=f"At t={t}{hint}")
    xt, eps = xt.double(), eps.double()
    expected = ref.estimate_x0(xt, eps, t, alphas_cumprod)
    accepted = expected if close(actual, expected) else expected.clamp(-1, 1)  # the choice made above
    assert_follows_dtype(lambda: call_student(estimate_x0, "estimate_x0", xt.clone(), eps.clone(), t, alphas_cumprod),
                         accepted, "estimate_x0", "x_t's", "x̂0")
    run, course = meta_runs(estimate_x0, ref.estimate_x0,
                            lambda: ((on_meta(xt), on_meta(eps), t, alphas_cumprod), {}))
    assert_follows_device(run, "estimate_x0", "x_t and ε̂", kept="alphas_cumprod", course=course)
    passed(f"estimate_x0: x̂0 matches the reference at t = {timesteps[0]} and t = {timesteps[1]} (also in float64)")


@public_check
def check_one_step_denoise(one_step_denoise, *, seed: int = 0) -> None:
    """x̂0 from one UNet call on the tiny model, at two timesteps."""
    inp, alphas_cumprod, unet, reference_unet = inputs(seed), tiny_scheduler().alphas_cumprod, tiny_unet(), tiny_unet()
    timesteps = timestep_pair("one_step_denoise", seed, (750, 250), range(500, 950), range(50, 500))
    for t in timesteps:
        xt = ref.forward(inp["x0"], t, alphas_cumprod, noise=inp["noise"])
        actual = call_student(one_step_denoise, "one_step_denoise", unet, xt.clone(), t, inp["cond"].clone(),
                              alphas_cumprod)
        expected = ref.one_step_denoise(reference_unet, xt, t, inp["cond"], alphas_cumprod)
        _, variance = ref.predict_noise(reference_unet, xt, t, inp["cond"])
        from_variance = ref.estimate_x0(xt, variance, t, alphas_cumprod)
        if close(actual, expected.clamp(-1, 1)):  # clamping x̂0 to [-1, 1]: a choice the course leaves open
            continue
        if close(actual, from_variance):
            raise AssertionError("Do you take ε̂ from the UNet's first 3 output channels? Your x̂0 was "
                                 "computed from the last 3, which hold the predicted variance.")
        assert_close(actual, expected, "Does one_step_denoise estimate ε̂ with the UNet at (x_t, t, prompt) "
                     "and return x̂0 = (x_t − sqrt(1 − ᾱ_t)·ε̂)/sqrt(ᾱ_t)?", name="x̂0", context=f"At t={t}")
    run, course = meta_runs(one_step_denoise, ref.one_step_denoise, lambda: (
        (meta_unet(), on_meta(xt), t, on_meta(inp["cond"]), alphas_cumprod), {}))
    assert_follows_device(run, "one_step_denoise", "its inputs and the UNet", kept="alphas_cumprod", course=course)
    passed(f"one_step_denoise: x̂0 matches the reference on a tiny UNet at t = {timesteps[0]} and t = {timesteps[1]}")


@public_check
def check_strided_timesteps(strided_timesteps, *, seed: int = 0) -> None:
    """The default list and two other (start, stride) pairs, compared as lists of ints."""
    cases = ({}, {"start": 90, "stride": 30}, {"start": 100, "stride": 20})
    if seed:
        rng = parameter_rng("strided_timesteps", seed)
        strides = rng.sample([5, 10, 15, 20, 25, 40, 45, 50, 60, 75], 2)
        cases = ({},) + tuple({"start": s * rng.randint(2, 999 // s), "stride": s} for s in strides)
    for kwargs in cases:
        expected = ref.strided_timesteps(**kwargs)
        actual = timestep_list(call_student(strided_timesteps, "strided_timesteps", **kwargs))
        call = f"strided_timesteps({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        shown = actual if len(actual) <= 8 else actual[:3] + ["…"] + actual[-3:]
        assert_true(actual == expected, "Does strided_timesteps list start, start − stride, …, down to and including "
                    "0, noisiest first?", f"It returned {len(actual)} timesteps for {call}: "
                    f"[{', '.join(str(t) for t in shown)}].")
    start, stride = 100, 30  # the docstring promises a ValueError when start is not a multiple of stride
    if seed:
        rng = parameter_rng("strided_timesteps/bad", seed)
        stride = rng.choice([20, 25, 40, 50, 60])
        start = stride * rng.randint(2, 10) + rng.randint(1, stride - 1)
    assert_raises_value_error(strided_timesteps, "strided_timesteps", f"strided_timesteps(start={start}, "
                              f"stride={stride})", "when start is not a multiple of stride", start=start, stride=stride)
    stride = 30 if seed == 0 else parameter_rng("strided_timesteps/zero", seed).choice([5, 10, 20, 25, 40, 50])
    call = f"strided_timesteps(start=0, stride={stride})"
    question = "Does strided_timesteps accept start = 0 (a multiple of every stride) and return [0]?"
    try:
        actual = timestep_list(call_student(strided_timesteps, "strided_timesteps", start=0, stride=stride))
    except (NotImplementedError, AssertionError):
        raise
    except Exception as err:  # noqa: BLE001 - the docstring allows start = 0: any exception is wrong
        raise AssertionError(f"{question} {call} raised {error_kind(err)}; the docstring allows any non-negative "
                             "multiple of stride.") from None
    assert_true(actual == [0], question, f"{call} returned {actual}.")
    passed("strided_timesteps: 990, 960, …, 30, 0, other strides and start = 0 are right; a bad start raises "
           "ValueError")


def timestep_list(result) -> list[int]:
    """What strided_timesteps returned, as a list of ints (a tensor or a list of ints or 0-dim tensors)."""
    try:
        return [int(t) for t in (result.tolist() if hasattr(result, "tolist") else result)]
    except (TypeError, ValueError):
        raise AssertionError(f"Does strided_timesteps return a list of integer timesteps? It returned a "
                             f"{describe(result)}.") from None


@public_check
def check_denoise_step_mean(denoise_step_mean, *, seed: int = 0) -> None:
    """The A.3 mean for three (t, t′) pairs; a wrong formula is shown as its coefficients of x̂0 and x_t."""
    inp, alphas_cumprod = inputs(seed), tiny_scheduler().alphas_cumprod
    pairs = ((990, 960), (300, 270), (30, 0))
    if seed:  # a noisy, a middle and a last step (to t′ = 0), each with its own stride
        rng = parameter_rng("denoise_step_mean", seed)
        noisy, middle, last = rng.randrange(900, 1000), rng.randrange(150, 700), rng.randrange(10, 80)
        pairs = ((noisy, noisy - rng.randrange(10, 80)), (middle, middle - rng.randrange(10, 80)), (last, 0))
    x0_hat = 0.9 * inp["x0"] + 0.1 * torch.roll(inp["noise"], 1, dims=3)  # an imperfect clean estimate
    question = ("Does denoise_step_mean use the strided α_t = ᾱ_t/ᾱ_{t′} and β_t = 1 − α_t (not the scheduler's "
                "one-step values) in x_{t′} = sqrt(ᾱ_{t′})·β_t/(1 − ᾱ_t)·x̂0 + sqrt(α_t)·(1 − ᾱ_{t′})/(1 − ᾱ_t)·x_t?")
    for t, t_prev in pairs:
        xt = ref.forward(inp["x0"], t, alphas_cumprod, noise=inp["noise"])
        expected = ref.denoise_step_mean(xt, x0_hat, t, t_prev, alphas_cumprod)
        actual = call_student(denoise_step_mean, "denoise_step_mean", xt.clone(), x0_hat.clone(), t, t_prev,
                              alphas_cumprod)
        hint = linear_form(actual, {"x̂0": x0_hat, "x_t": xt})
        assert_close(actual, expected, question, name="the mean", context=f"From t={t} to t′={t_prev}{hint}")
    t, t_prev = pairs[1]
    xt, x0_hat = xt.double(), x0_hat.double()
    assert_follows_dtype(lambda: call_student(denoise_step_mean, "denoise_step_mean", xt.clone(), x0_hat.clone(), t,
                                              t_prev, alphas_cumprod),
                         ref.denoise_step_mean(xt, x0_hat, t, t_prev, alphas_cumprod), "denoise_step_mean", "x_t's",
                         "the mean")
    run, course = meta_runs(denoise_step_mean, ref.denoise_step_mean,
                            lambda: ((on_meta(xt), on_meta(x0_hat), t, t_prev, alphas_cumprod), {}))
    assert_follows_device(run, "denoise_step_mean", "x_t and x̂0", kept="alphas_cumprod", course=course)
    for bad in ((t_prev, t), (t, t)):  # the docstring promises a ValueError unless t′ < t
        assert_raises_value_error(denoise_step_mean, "denoise_step_mean", f"denoise_step_mean(xt, x0_hat, t={bad[0]}, "
                                  f"t_prev={bad[1]}, alphas_cumprod)", "when t_prev is not smaller than t",
                                  xt.clone(), x0_hat.clone(), bad[0], bad[1], alphas_cumprod)
    shown = ", ".join(f"({t}→{t_prev})" for t, t_prev in pairs)
    passed(f"denoise_step_mean: the strided update's mean matches for {shown}; t_prev ≥ t raises ValueError")


# ---------------------------------------------------------------------------------------------------
# Sampling loops and classifier-free guidance


def loop_setup(name: str, seed: int = 0, fixed_variance: bool = False):
    """Seeded inputs, the strided list and i_start (:func:`loop_timesteps`), x_t at timesteps[i_start], a fresh
    tiny UNet and a scheduler factory: ``inp, timesteps, i_start, xt, unet, scheduler``.

    The student's function gets this UNet; the reference gets another copy (``tiny_unet()``), so that
    whatever the student's code does to its model cannot change the reference's result.
    """
    inp, (timesteps, i_start) = inputs(seed), loop_timesteps(name, seed)
    alphas_cumprod = tiny_scheduler().alphas_cumprod
    xt = ref.forward(inp["x0"], timesteps[i_start], alphas_cumprod, noise=inp["noise"])
    return inp, timesteps, i_start, xt, tiny_unet(), lambda: tiny_scheduler(fixed_variance)


def check_callback(name: str, log: CallbackLog, image, timesteps: list[int], steps, after: str = "the update") -> None:
    """The calls a loop made to ``callback=log``: callback(i, t_prev, x_{t′}) once after each of ``steps`` (indices
    into ``timesteps``), in order, with t_prev = timesteps[i + 1]; the last x is the image the loop returned."""
    got, want = [(c["i"], c["t_prev"]) for c in log.calls], [(i, timesteps[i + 1]) for i in steps]
    assert_true(got == want, f"Does {name} call callback(i, t_prev, x_t′) once after each update, with the index "
                "i of the step and t_prev = timesteps[i + 1]?", f"It was called with (i, t_prev) = {got}, but "
                f"should be {want}.")
    assert_close(log.calls[-1]["x"], image, f"Does {name} give the callback the image x_t′ after {after}?",
                 name="the image given to the last callback", loose=True)


def check_with_callback(name: str, again, actual, log: CallbackLog, timesteps: list[int], steps,
                        after: str = "the update") -> None:
    """``again``: the loop run as ``actual`` was, with ``callback=log`` too: the same image, and the callback's
    calls (:func:`check_callback`)."""
    assert_close(again, actual, f"With a callback, does {name} return the same image as without one (same "
                 "generator)?", name="the image", loose=True)
    check_callback(name, log, again, timesteps, steps, after)


def frame_times(name: str, frames, steps: list[int], timesteps: list[int]) -> list[int]:
    """The frames' timesteps, which must be those of every 5th step from i_start."""
    wanted = [timesteps[i] for i in steps[::5]]
    try:
        seen = [int(t) for t, _ in frames]
    except (TypeError, ValueError, RuntimeError):
        seen = None
    assert_true(seen == wanted, f"Does {name}(..., return_intermediates=True) list (t, x_t) for every 5th step "
                "from i_start (steps 0, 5, 10, … of the loop), each taken before that step's update?",
                f"Over {len(steps)} steps from t = {timesteps[steps[0]]}, the frames hold t = {seen}, but should hold "
                f"t = {wanted}.")
    return wanted


def frames_of(name: str, result) -> tuple:
    assert_true(isinstance(result, (tuple, list)) and len(result) == 2, f"With return_intermediates=True, does "
                f"{name} return a pair (image, frames)?", f"It returned a {describe(result)}.")
    return result


def check_frames_and_callback(name: str, result, expected, xt, timesteps: list[int], i_start: int,
                              log: CallbackLog) -> None:
    """A loop run with ``return_intermediates=True`` and ``callback=log`` (the figure cells of 1.4): it returns
    (image, [(t, x_t), …]) with a frame before every 5th step from i_start, and calls callback(i, t_prev, x_{t′})
    after each update; the image is the one the loop gives without them (same generator)."""
    image, frames = frames_of(name, result)
    assert_close(image, expected, f"With return_intermediates=True and a callback, does {name} return the same "
                 "image as without them?", name="the image", loose=True)
    steps = list(range(i_start, len(timesteps) - 1))
    frame_times(name, frames, steps, timesteps)
    assert_close(frames[0][1], xt, f"Is each frame (t, x_t) of {name} the image at t, before that step's update "
                 "(the first frame is the input x_t)?", name="the first frame", loose=True)
    check_callback(name, log, image, timesteps, steps)


def check_frames_over_steps(name: str, run, timesteps: list[int], i_start: int, xt) -> None:
    """``run(log)``: the loop from x_t at timesteps[i_start] over 6–9 steps with ``return_intermediates=True``
    and ``callback=log``. Its frames are at every 5th step (more than one frame, so a rule of every 4th or 6th
    shows), the first is x_t and each later one the image the step before gave the callback."""
    log = CallbackLog()
    image, frames = frames_of(name, run(log))
    steps = list(range(i_start, len(timesteps) - 1))
    wanted = frame_times(name, frames, steps, timesteps)
    check_callback(name, log, image, timesteps, steps)
    question = (f"Is each frame (t, x_t) of {name} the image at t, before that step's update (the first frame is the "
                "input x_t)?")
    assert_close(frames[0][1], xt, question, name="the first frame", loose=True)
    for k in range(1, len(frames)):
        assert_close(frames[k][1], log.calls[5 * k - 1]["x"], question, name=f"the frame at t={wanted[k]}",
                     context="Compared with the image the step before gave the callback", loose=True)


@public_check
def check_iterative_denoise(iterative_denoise, *, seed: int = 0) -> None:
    """Three strided steps from i_start = 30 on the tiny UNet, same generator as the reference; again with
    return_intermediates and a callback."""
    inp, timesteps, i_start, xt, unet, scheduler = loop_setup("iterative_denoise", seed)
    generator_seed = derived_seed(seed)
    with recording(unet, UNetCalls()) as calls:
        actual = call_student(iterative_denoise, "iterative_denoise", unet, scheduler(), xt.clone(), i_start,
                              inp["cond"].clone(), list(timesteps), generator=generator(generator_seed))
    args = (tiny_unet(), scheduler(), xt, i_start, inp["cond"], timesteps)
    expected = ref.iterative_denoise(*args, generator=generator(generator_seed))
    accepted = clamped_alternative(close(actual, expected, loose=True), ref.iterative_denoise, *args,
                                   generator=generator(generator_seed))
    check_loop("iterative_denoise", calls, actual, expected, timesteps[i_start:-1],
               "Does each step go x_t → ε̂ and variance (UNet) → x̂0 → mean of x_{t′} (A.3) → add_variance(..., "
               "generator=generator), and does the loop return the last x_{t′}?", accepted=accepted)
    log = CallbackLog()
    result = call_student(iterative_denoise, "iterative_denoise", tiny_unet(), scheduler(), xt.clone(), i_start,
                          inp["cond"].clone(), list(timesteps), generator=generator(generator_seed), callback=log,
                          return_intermediates=True)
    check_frames_and_callback("iterative_denoise", result, actual, xt, timesteps, i_start, log)
    many, i_many, x_many = frames_setup("iterative_denoise", seed)
    check_frames_over_steps("iterative_denoise", lambda log: call_student(
        iterative_denoise, "iterative_denoise", tiny_unet(), scheduler(), x_many.clone(), i_many, inp["cond"].clone(),
        list(many), generator=generator(generator_seed), callback=log, return_intermediates=True), many, i_many, x_many)
    run, course = meta_runs(iterative_denoise, ref.iterative_denoise, lambda: (
        (meta_unet(), scheduler(), on_meta(xt), meta_start(timesteps, i_start), on_meta(inp["cond"]), list(timesteps)),
        {}))
    assert_follows_device(run, "iterative_denoise", "its inputs and the UNet", course=course)
    passed(f"iterative_denoise: 3 strided steps match the reference on a tiny UNet; the frames (every 5th of "
           f"{len(many) - 1 - i_many} steps) and the callback are right; it follows the UNet's device")


@public_check
def check_cfg_noise(cfg_noise, *, seed: int = 0) -> None:
    """The guided estimate and the conditional variance at t = 500, γ = 5."""
    inp, alphas_cumprod, unet, reference_unet = inputs(seed), tiny_scheduler().alphas_cumprod, tiny_unet(), tiny_unet()
    t = 500 if seed == 0 else parameter_rng("cfg_noise", seed).randrange(100, 950)
    scale = guidance_scale("cfg_noise", seed)
    xt = ref.forward(inp["x0"], t, alphas_cumprod, noise=inp["noise"])
    result = call_student(cfg_noise, "cfg_noise", unet, xt.clone(), t, inp["cond"].clone(), inp["uncond"].clone(),
                          scale=scale)
    expected_eps, expected_var = ref.cfg_noise(reference_unet, xt, t, inp["cond"], inp["uncond"], scale=scale)
    eps_u, var_u = ref.predict_noise(reference_unet, xt, t, inp["uncond"])
    eps_c, _ = ref.predict_noise(reference_unet, xt, t, inp["cond"])
    assert_true(isinstance(result, (tuple, list)) and len(result) == 2,
                "Does cfg_noise return a pair (guided noise estimate, predicted variance)?",
                f"It returned a {describe(result)}.")
    eps, variance = result
    hint = linear_form(eps, {"ε_u": eps_u, "ε_c": eps_c})
    assert_close(eps, expected_eps, "Does cfg_noise combine the estimates as ε_u + γ·(ε_c − ε_u), with ε_u from "
                 "the unconditional embeddings and ε_c from the prompt?", name="the guided estimate",
                 context=f"With γ={scale:g}{hint}")
    if close(variance, var_u) and not close(var_u, expected_var):
        raise AssertionError("Is the variance you return the conditional branch's (prompt_embeds)? "
                             "Yours is the unconditional branch's.")
    assert_close(variance, expected_var, "Does cfg_noise return the predicted variance (the UNet's last 3 "
                 "channels) of the conditional branch?", name="the variance")
    run, course = meta_runs(cfg_noise, ref.cfg_noise, lambda: (
        (meta_unet(), on_meta(xt), t, on_meta(inp["cond"]), on_meta(inp["uncond"])), {"scale": scale}))
    assert_follows_device(run, "cfg_noise", "its inputs and the UNet", course=course)
    passed("cfg_noise: the guided estimate and the conditional variance match the reference")


@public_check
def check_iterative_denoise_cfg(iterative_denoise_cfg, *, seed: int = 0) -> None:
    """Three CFG steps from i_start = 30 at γ = 5; a wrongly guided loop is named."""
    inp, timesteps, i_start, xt, unet, scheduler = loop_setup("iterative_denoise_cfg", seed)
    scale, generator_seed = guidance_scale("iterative_denoise_cfg", seed), derived_seed(seed)
    with recording(unet, UNetCalls()) as calls:
        actual = call_student(iterative_denoise_cfg, "iterative_denoise_cfg", unet, scheduler(), xt.clone(), i_start,
                              inp["cond"].clone(), inp["uncond"].clone(), list(timesteps), scale=scale,
                              generator=generator(generator_seed))
    reference_unet, args = tiny_unet(), (inp["cond"], inp["uncond"], timesteps)

    def reference(guidance):
        return ref.iterative_denoise_cfg(reference_unet, scheduler(), xt, i_start, *args, scale=guidance,
                                         generator=generator(generator_seed))

    expected = reference(scale)
    accepted = clamped_alternative(close(actual, expected, loose=True), ref.iterative_denoise_cfg, reference_unet,
                                   scheduler(), xt, i_start, *args, scale=scale, generator=generator(generator_seed))
    hypotheses = [] if not alternatives_wanted(close(actual, expected, loose=True)) else [
        ("Is γ applied to (ε_c − ε_u) and added to the unconditional estimate ε_u? Your loop matches guidance "
         "that starts from the conditional one.", reference(1 - scale)),
        ("Does your loop use the guidance scale it is given? It matches the unguided conditional loop (γ = 1).",
         reference(1.0)),
    ]
    check_loop("iterative_denoise_cfg", calls, actual, expected, timesteps[i_start:-1],
               "Does each step use the CFG estimate ε_u + γ·(ε_c − ε_u), the conditional branch's variance, then "
               "x̂0 → mean (A.3) → add_variance with the generator?", hypotheses, accepted)
    log = CallbackLog()
    result = call_student(iterative_denoise_cfg, "iterative_denoise_cfg", tiny_unet(), scheduler(), xt.clone(),
                          i_start, inp["cond"].clone(), inp["uncond"].clone(), list(timesteps), scale=scale,
                          generator=generator(generator_seed), callback=log, return_intermediates=True)
    check_frames_and_callback("iterative_denoise_cfg", result, actual, xt, timesteps, i_start, log)
    many, i_many, x_many = frames_setup("iterative_denoise_cfg", seed)
    check_frames_over_steps("iterative_denoise_cfg", lambda log: call_student(
        iterative_denoise_cfg, "iterative_denoise_cfg", tiny_unet(), scheduler(), x_many.clone(), i_many,
        inp["cond"].clone(), inp["uncond"].clone(), list(many), scale=scale, generator=generator(generator_seed),
        callback=log, return_intermediates=True), many, i_many, x_many)
    run, course = meta_runs(iterative_denoise_cfg, ref.iterative_denoise_cfg, lambda: (
        (meta_unet(), scheduler(), on_meta(xt), meta_start(timesteps, i_start), on_meta(inp["cond"]),
         on_meta(inp["uncond"]), list(timesteps)), {"scale": scale}))
    assert_follows_device(run, "iterative_denoise_cfg", "its inputs and the UNet", course=course)
    passed(f"iterative_denoise_cfg: 3 guided steps match the reference on a tiny UNet; the frames (every 5th of "
           f"{len(many) - 1 - i_many} steps) and the callback are right; it follows the UNet's device")


# ---------------------------------------------------------------------------------------------------
# Editing: SDEdit and inpainting


@public_check
def check_sdedit(sdedit, *, seed: int = 0) -> None:
    """Noise x_orig to timesteps[30] with the generator's first draw, then 3 CFG steps."""
    inp, timesteps, i_start, _, unet, scheduler = loop_setup("sdedit", seed)
    alphas_cumprod = tiny_scheduler().alphas_cumprod
    scale, generator_seed = guidance_scale("sdedit", seed), derived_seed(seed)
    with recording(unet, UNetCalls()) as calls:
        actual = call_student(sdedit, "sdedit", unet, scheduler(), inp["x0"].clone(), i_start, inp["cond"].clone(),
                              inp["uncond"].clone(), list(timesteps), scale=scale, generator=generator(generator_seed))
    args = (tiny_unet(), scheduler(), inp["x0"], i_start, inp["cond"], inp["uncond"], timesteps)
    expected = ref_editing.sdedit(*args, scale=scale, generator=generator(generator_seed))
    accepted = clamped_alternative(close(actual, expected, loose=True), ref_editing.sdedit, *args, scale=scale,
                                   generator=generator(generator_seed))
    start = ref.forward(inp["x0"], timesteps[i_start], alphas_cumprod, generator=generator(generator_seed))
    seen = calls.first_sample
    assert_true(seen is not None and seen.shape[1:] == start.shape[1:] and close(seen[:BATCH], start),
                "Does sdedit first noise x_orig to t = timesteps[i_start] with forward(..., generator=generator) "
                "(the generator's first draw) and start denoising from that?",
                f"With i_start={i_start}, the UNet's first input was not x_orig noised to t={timesteps[i_start]}.")
    check_loop("sdedit", calls, actual, expected, timesteps[i_start:-1],
               "Does sdedit continue with iterative_denoise_cfg from i_start, with the same prompts, scale and "
               "generator?", accepted=accepted)
    run, course = meta_runs(sdedit, ref_editing.sdedit, lambda: (
        (meta_unet(), scheduler(), on_meta(inp["x0"]), meta_start(timesteps, i_start), on_meta(inp["cond"]),
         on_meta(inp["uncond"]), list(timesteps)), {"scale": scale}))
    assert_follows_device(run, "sdedit", "its inputs and the UNet", course=course)
    passed("sdedit: noising and 3 guided steps match the reference on a tiny UNet; it follows the UNet's device")


def inpaint_mask(seed: int) -> torch.Tensor:
    """The inpainting mask (1, 1, SIZE, SIZE), 1 = regenerate, 0 = keep: rows 8–23, columns 6–19 at seed 0,
    another rectangle of 8–16 by 8–16 pixels otherwise."""
    mask = torch.zeros((1, 1, SIZE, SIZE))
    if seed == 0:
        mask[:, :, 8:24, 6:20] = 1
        return mask
    rng = parameter_rng("inpaint", seed)
    height, width = rng.randint(8, 16), rng.randint(8, 16)
    top, left = rng.randint(0, SIZE - height), rng.randint(0, SIZE - width)
    mask[:, :, top:top + height, left:left + width] = 1
    return mask


@public_check
def check_inpaint(inpaint, *, seed: int = 0) -> None:
    """Three RePaint steps (t = 90 → 0) from the generator's noise: the known pixels stay, the rest matches."""
    inp, timesteps, i_start, _, unet, scheduler = loop_setup("inpaint", seed)
    timesteps = timesteps[i_start:]  # inpaint runs the whole list it is given: [90, 60, 30, 0] at seed 0
    mask, scale, generator_seed = inpaint_mask(seed), guidance_scale("inpaint", seed), derived_seed(seed)
    with recording(unet, UNetCalls()) as calls:
        actual = call_student(inpaint, "inpaint", unet, scheduler(), inp["x0"].clone(), mask.clone(),
                              inp["cond"].clone(), inp["uncond"].clone(), list(timesteps), scale=scale,
                              generator=generator(generator_seed))
    args = (tiny_unet(), scheduler(), inp["x0"], mask, inp["cond"], inp["uncond"], timesteps)
    expected = ref_editing.inpaint(*args, scale=scale, generator=generator(generator_seed))
    accepted = clamped_alternative(close(actual, expected, loose=True), ref_editing.inpaint, *args, scale=scale,
                                   generator=generator(generator_seed))
    problem = tensor_problem(actual, expected, "the inpainted image")
    assert_true(problem is None, "Does inpaint return an image of x_orig's shape and dtype?", f"{problem}.")
    outside = ((actual.double() - inp["x0"].double()).abs() * (1 - mask)).max()
    assert_true(float(outside) < 0.1, "Does inpaint keep the original where mask = 0, i.e. after each step "
                "x_t ← m·x_t + (1 − m)·forward(x_orig, t′)?",
                f"Outside the mask the result differs from x_orig by up to {float(outside):.3g}.")
    check_loop("inpaint", calls, actual, expected, timesteps[:-1],
               "Does inpaint start from the generator's noise, and after each guided update x_t → x_{t′} replace "
               "the kept pixels by forward(x_orig, t′, generator=generator) (update noise first, then forward's)?",
               accepted=accepted)
    log = CallbackLog()
    again = call_student(inpaint, "inpaint", tiny_unet(), scheduler(), inp["x0"].clone(), mask.clone(),
                         inp["cond"].clone(), inp["uncond"].clone(), list(timesteps), scale=scale,
                         generator=generator(generator_seed), callback=log)
    check_with_callback("inpaint", again, actual, log, timesteps, range(len(timesteps) - 1),
                        after="the whole step (the update, then the kept pixels)")
    run, course = meta_runs(inpaint, ref_editing.inpaint, lambda: (
        (meta_unet(), scheduler(), on_meta(inp["x0"]), on_meta(mask), on_meta(inp["cond"]),
         on_meta(inp["uncond"]), list(timesteps[meta_start(timesteps, 0):])), {"scale": scale}))
    assert_follows_device(run, "inpaint", "its inputs and the UNet", course=course)
    passed("inpaint: the kept pixels stay and 3 RePaint steps match the reference on a tiny UNet; the callback is "
           "right; it follows the UNet's device")
