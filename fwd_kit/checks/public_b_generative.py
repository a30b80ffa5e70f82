"""Public checks for Part B's generative models: flow matching (FA25) and DDPM (FA24).

Time conventions — opposite to each other: flow matching t = 0 is noise, t = 1 is data; DDPM t = 0 is
clean, t = T the noisiest, and the UNet is fed t/T. Same rules as :mod:`fwd_kit.checks.public_b`: losses run
on a recording :class:`~fwd_kit.checks.fixtures.Probe` and are judged by what it was given (any order of
random draws passes); samplers run a small stand-in network (random BatchNorm statistics, left in train
mode) and must give the reference's samples for the same generator; each sampler and ``ddpm_step`` also runs
once with the network, the labels and x on PyTorch's ``meta`` device, no generator and the schedule on the CPU
(its entries are read as numbers), where a hard-coded ``"cpu"`` fails. With a ``seed`` ≠ 0 every check
runs on other digits, noise, times, classes, p_uncond, schedules, step counts, guidance scales and
generator seeds (the samplers' small UNet stays the same).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from fwd_kit.checks.compare import (
    assert_close,
    assert_follows_device,
    assert_follows_dtype,
    assert_true,
    call_student,
    close,
    describe,
    fmt,
    linear_form,
    passed,
    public_check,
    tolerance,
)
from fwd_kit.checks.fixtures import (
    ModuleCalls,
    Probe,
    SamplerNet,
    build,
    calibrate_norms,
    derived_seed,
    digits,
    generator,
    meta_runs,
    on_meta,
    parameter_rng,
    recording,
)
from fwd_kit.checks.public_b import (
    N_LOSS,
    P_UNCOND,
    assert_loss,
    assert_normal,
    gaussian,
    only_call,
)
from fwd_kit.expected import alternatives_wanted, reference

ref_ddpm = reference("ddpm")  # the instructors' reference: live where installed, else stored values
ref_fm = reference("flow_matching")


# ---------------------------------------------------------------------------------------------------
# Flow matching


@public_check
def check_interpolate(interpolate, *, seed: int = 0) -> None:
    """x_t for four images at t = 0, 0.3, 0.75, 1 (at seed ≠ 0: 0, 1 and two drawn times, shuffled)."""
    times = [0.0, 0.3, 0.75, 1.0]
    if seed:
        rng = parameter_rng("interpolate", seed)
        times = [0.0, 1.0] + [round(rng.uniform(0.05, 0.95), 2) for _ in range(2)]
        rng.shuffle(times)
    x0, x1, t = gaussian(4, 1, 28, 28, seed=derived_seed(seed)), digits(4, seed), torch.tensor(times)
    expected = ref_fm.interpolate(x0, x1, t)
    actual = call_student(interpolate, "interpolate", x0.clone(), x1.clone(), t.clone())
    swapped = ref_fm.interpolate(x1, x0, t) if alternatives_wanted(close(actual, expected)) else None
    if swapped is not None and not close(actual, expected) and close(actual, swapped):
        raise AssertionError("Does t = 0 give the noise x0 and t = 1 the data x1? Your path runs the other way.")
    assert_close(actual, expected, "Does interpolate compute x_t = (1 − t)·x0 + t·x1, with one t per image "
                 "broadcast over (C, H, W)?", name="x_t", context=f"With t = [{fmt(times)}]")
    x0, x1, t = x0.double(), x1.double(), t.double()
    assert_follows_dtype(lambda: call_student(interpolate, "interpolate", x0.clone(), x1.clone(), t.clone()),
                         ref_fm.interpolate(x0, x1, t), "interpolate", "x0's", "x_t")
    passed(f"interpolate: x_t matches at t = {fmt(times[:-1])} and {fmt(times[-1])} (also in float64)")


@public_check
def check_flow_target(flow_target, *, seed: int = 0) -> None:
    n = 4 if seed == 0 else parameter_rng("flow_target", seed).randint(2, 6)
    x0, x1 = gaussian(n, 1, 28, 28, seed=derived_seed(seed)), digits(n, seed)
    actual = call_student(flow_target, "flow_target", x0.clone(), x1.clone())
    assert_close(actual, ref_fm.flow_target(x0, x1), "Is the target the velocity of the straight path from the "
                 "noise x0 to the data x1?", name="u", context=linear_form(actual, {"x0": x0, "x1": x1}).lstrip(", "))
    passed("flow_target: the velocity matches")


def _check_times_fm(name: str, call: dict, n: int) -> torch.Tensor:
    t = call["t"]
    assert_true(t is not None and t.shape == (n,), f"Does {name} give the UNet one time per image?",
                f"It gave {describe(t)} for {n} images.")
    assert_true(float(t.min()) >= 0 and float(t.max()) <= 1 and float(t.std()) > 0.15,
                f"Does {name} draw t ~ U[0, 1] for each image (torch.rand)?",
                f"The times given to the UNet span [{float(t.min()):.3g}, {float(t.max()):.3g}] "
                f"with std {float(t.std()):.3g}.")
    return t


def _check_fm_loss(name: str, call: dict, loss, x1: torch.Tensor) -> None:
    """x_t = (1 − t)x0 + t·x1 with x0 ~ N(0, I); loss = MSE(output, x1 − x0), all read back from the call."""
    t = _check_times_fm(name, call, x1.shape[0]).reshape(-1, 1, 1, 1)
    xt, x1 = call["x"], x1.double()
    u = (x1 - xt) / (1 - t).clamp_min(1e-6)  # x1 − x0, with x0 = (x_t − t·x1)/(1 − t)
    x0 = x1 - u
    assert_normal(x0[t.flatten() < 0.9], "Is x_t = (1 − t)·x0 + t·x1 with noise x0 ~ N(0, I) (t = 0 is noise, "
                  "t = 1 is data)?", "The noise x0 implied by the UNet's x_t and t")
    assert_loss(name, loss, F.mse_loss(xt, u), "Is the loss the mean squared error between the UNet's output and "
                "the velocity x1 − x0?",
                [("Is the target the velocity x1 − x0 (from noise to data)? Your loss uses x0 − x1.",
                  F.mse_loss(xt, -u))])


def _check_classes(name: str, call: dict, labels: torch.Tensor, p_uncond: float) -> None:
    c, n = call["c"], labels.shape[0]
    assert_true(c is not None and tuple(c.shape) == (n, 10), f"Does {name} give the UNet one-hot class vectors "
                "c of shape (N, 10)?", f"It gave {describe(c)}.")
    kept = (c == F.one_hot(labels, 10).double()).all(dim=1)
    dropped = (c == 0).all(dim=1)
    assert_true(bool((kept | dropped).all()), "Is each class vector one_hot(label), or all zeros when dropped?",
                f"{int((~(kept | dropped)).sum())} of {n} rows are neither.")
    share = float(dropped.double().mean())
    assert_true(abs(share - p_uncond) < 0.15, f"Does {name} drop each image's class (c → 0) with probability "
                "p_uncond?", f"With p_uncond={p_uncond}, {int(dropped.sum())} of {n} classes were dropped.")


@public_check
def check_time_fm_forward(time_fm_forward, *, seed: int = 0) -> None:
    """On a probe UNet: t ~ U[0, 1], x_t on the straight path from N(0, I) noise, loss to x1 − x0."""
    probe, x1 = Probe("time"), digits(N_LOSS, seed)
    loss = call_student(time_fm_forward, "time_fm_forward", probe, x1.clone(), generator=generator(derived_seed(seed)))
    _check_fm_loss("time_fm_forward", only_call("time_fm_forward", probe, x1.shape), loss, x1)
    passed("time_fm_forward: t, x_t and the loss read back from the UNet's inputs are right")


def loss_labels(name: str, seed: int) -> tuple[torch.Tensor, float]:
    """Labels (N_LOSS,) and p_uncond of a class-conditioned loss check: 0, 1, …, 9, 0, … and P_UNCOND at seed 0;
    else random labels and p_uncond in [0.2, 0.4] (so that no dropout, share 0, stays > 0.15 away)."""
    if seed == 0:
        return torch.arange(N_LOSS) % 10, P_UNCOND
    p_uncond = round(parameter_rng(name, seed).uniform(0.2, 0.4), 2)
    return torch.randint(0, 10, (N_LOSS,), generator=generator(derived_seed(seed, 13))), p_uncond


@public_check
def check_class_fm_forward(class_fm_forward, *, seed: int = 0) -> None:
    """As time_fm_forward, plus one-hot classes dropped with probability p_uncond."""
    (labels, p_uncond), probe, x1 = loss_labels("class_fm_forward", seed), Probe("class"), digits(N_LOSS, seed)
    loss = call_student(class_fm_forward, "class_fm_forward", probe, x1.clone(), labels.clone(), p_uncond=p_uncond,
                        generator=generator(derived_seed(seed)))
    call = only_call("class_fm_forward", probe, x1.shape)
    _check_classes("class_fm_forward", call, labels, p_uncond)
    _check_fm_loss("class_fm_forward", call, loss, x1)
    passed("class_fm_forward: classes, dropout, t, x_t and the loss read back from the UNet's inputs are right")


def sampler_unet(kind: str) -> nn.Module:
    """The samplers' network: :class:`SamplerNet` (``"time"`` or ``"class"``) with BatchNorm statistics as after
    training, left in train mode (so a sampler that forgets eval mode shows).

    The same network at every seed, like Part A's tiny UNet; its outputs are bounded, so samples stay O(1)
    and the tolerance, which scales with the samples, stays tight enough to catch a wrong last step.
    """
    n = 8
    x, t = gaussian(n, 1, 28, 28, seed=5), torch.rand(n, generator=generator(5))
    inputs = (x, F.one_hot(torch.arange(n) % 10, 10).float(), t) if kind == "class" else (x, t)
    return calibrate_norms(build(SamplerNet, kind, seed=0), *inputs).train()


def sampler_case(name: str, seed: int, public: tuple[int, int, float], steps: range) -> tuple[int, int, float]:
    """(number of samples, num_ts, guidance scale) of a sampler check: ``public`` at seed 0; else 2–4 samples,
    num_ts from ``steps`` and γ in [2, 5] (never 1)."""
    if seed == 0:
        return public
    rng = parameter_rng(name, seed)
    return rng.randint(2, 4), rng.choice(steps), round(rng.uniform(2.0, 5.0), 1)


def sampler_labels(seed: int, n: int) -> torch.Tensor:
    """Class labels of a class-conditioned sampler check: [3, 7, 0] at seed 0, else n drawn labels."""
    if seed == 0:
        return torch.tensor([3, 7, 0])
    return torch.randint(0, 10, (n,), generator=generator(derived_seed(seed, 17)))


def check_sampler(name: str, calls: ModuleCalls, actual, expected, times: list[float], time_rule: str, n: int,
                  question: str, hypotheses=(), generator_seed: int = 0) -> None:
    """A sampler's result: UNet times, eval mode and the first draw checked before the samples themselves."""
    steps = []
    for call in calls.calls:
        t = call["t"]
        assert_true(t is not None and float(t.max() - t.min()) < 1e-6, f"Does {name} give the UNet the same time "
                    "for every image of a step?", f"A call got times {fmt(t.tolist()[:4]) if t is not None else None}.")
        if not steps or abs(steps[-1] - float(t[0])) > 1e-6:
            steps.append(float(t[0]))
    assert_true(len(steps) == len(times) and all(abs(a - b) < 1e-5 for a, b in zip(steps, times)),
                f"Does {name} take num_ts steps, calling the UNet at {time_rule}?",
                f"With num_ts={len(times)}, the UNet saw t = {fmt(steps[:8])}{' …' if len(steps) > 8 else ''}.")
    assert_true(not any(call["training"] for call in calls.calls), f"Is the UNet in eval mode while {name} samples "
                "(unet.eval(), so that BatchNorm uses its running statistics)?", "It was called in training mode.")
    first = torch.randn((n, 1, 28, 28), generator=generator(generator_seed))
    assert_true(close(calls.calls[0]["x"][:n], first), "Is the starting noise the generator's first draw, "
                "torch.randn((N, 1, 28, 28), generator=generator)?", "The UNet's first input was something else.")
    if not close(actual, expected, loose=True):
        for message, alternative in hypotheses:
            if close(actual, alternative, loose=True):
                raise AssertionError(message)
    assert_close(actual, expected, question, name="the samples", loose=True)


def check_trajectory(name: str, run, expected) -> None:
    """The sampler run with ``return_trajectory=True`` on a float64 copy of its network (``run()``): it must
    return (samples, [x_0, …, x_T]) — the T + 1 iterates the notebook's GIF shows — in the network's dtype,
    matching the reference's ``expected`` pair (float32's tolerance: the point here is the dtype)."""
    box = {}

    def samples():
        result = box["result"] = run()
        assert_true(isinstance(result, (tuple, list)) and len(result) == 2, f"With return_trajectory=True, does "
                    f"{name} return a pair (samples, trajectory)?", f"It returned a {describe(result)}.")
        return result[0]

    expected_samples, expected_trajectory = expected
    assert_follows_dtype(samples, expected_samples, name, "the UNet's", "the samples", loose=True)
    trajectory, n = box["result"][1], len(expected_trajectory)
    question = (f"Does {name}(..., return_trajectory=True) also return the list of the num_ts + 1 iterates x, the "
                "starting noise first and the samples last?")
    size = len(trajectory) if isinstance(trajectory, (list, tuple)) else None
    assert_true(size == n, question, f"The trajectory holds {size if size is not None else describe(trajectory)} "
                f"entries, but should hold {n}.")
    rtol, atol = tolerance(torch.float32, loose=True)
    for k in sorted({0, n // 2, n - 1}):
        assert_close(trajectory[k], expected_trajectory[k], question, name=f"iterate {k} of the trajectory",
                     rtol=rtol, atol=atol, check_dtype=False)


def _cfg_hypotheses(sample, scale: float) -> list:
    return [
        ("Is γ applied to (conditional − unconditional) and added to the unconditional estimate? Your samples "
         "match guidance that starts from the conditional one.", sample(1 - scale)),
        ("Does your sampler use the guidance scale it is given? Its samples match the unguided conditional ones.",
         sample(1.0)),
    ]


@public_check
def check_time_fm_sample(time_fm_sample, *, seed: int = 0) -> None:
    """Five Euler steps of a small stand-in network, same generator as the reference."""
    n, num_ts, _ = sampler_case("time_fm_sample", seed, (3, 5, 1.0), range(4, 7))
    unet, generator_seed = sampler_unet("time"), derived_seed(seed)
    reference_unet = copy.deepcopy(unet)
    with recording(unet, ModuleCalls(time_index=1)) as calls:
        actual = call_student(time_fm_sample, "time_fm_sample", unet, n, img_wh=(28, 28), num_ts=num_ts,
                              generator=generator(generator_seed))
    expected = ref_fm.time_fm_sample(reference_unet, n, img_wh=(28, 28), num_ts=num_ts,
                                     generator=generator(generator_seed))
    check_sampler("time_fm_sample", calls, actual, expected, [i / num_ts for i in range(num_ts)],
                  "t = i/num_ts for i = 0, …, num_ts − 1 (t = 0 is noise)", n,
                  "Does each Euler step do x ← x + (1/num_ts)·u_θ(x, t), and is the last x returned?",
                  generator_seed=generator_seed)
    unet64 = sampler_unet("time").double()
    expected = ref_fm.time_fm_sample(copy.deepcopy(unet64), n, img_wh=(28, 28), num_ts=num_ts,
                                     generator=generator(generator_seed), return_trajectory=True)
    check_trajectory("time_fm_sample", lambda: call_student(
        time_fm_sample, "time_fm_sample", unet64, n, img_wh=(28, 28), num_ts=num_ts,
        generator=generator(generator_seed), return_trajectory=True), expected)
    run, course = meta_runs(time_fm_sample, ref_fm.time_fm_sample, lambda: (
        (on_meta(sampler_unet("time")), n), {"img_wh": (28, 28), "num_ts": num_ts}))
    assert_follows_device(run, "time_fm_sample", "the UNet", course=course)
    passed(f"time_fm_sample: {num_ts} Euler steps match the reference on a small UNet (float32 and float64, "
           "with the trajectory); it follows the UNet's device")


@public_check
def check_class_fm_sample(class_fm_sample, *, seed: int = 0) -> None:
    """Four guided Euler steps (γ = 3) of a small class-conditioned stand-in network."""
    n, num_ts, scale = sampler_case("class_fm_sample", seed, (3, 4, 3.0), range(3, 6))
    unet, labels = sampler_unet("class"), sampler_labels(seed, n)
    reference_unet, generator_seed = copy.deepcopy(unet), derived_seed(seed)

    def sample(guidance):
        return ref_fm.class_fm_sample(reference_unet, labels, img_wh=(28, 28), num_ts=num_ts,
                                      guidance_scale=guidance, generator=generator(generator_seed))

    with recording(unet, ModuleCalls(time_index=2)) as calls:
        actual = call_student(class_fm_sample, "class_fm_sample", unet, labels.clone(), img_wh=(28, 28),
                              num_ts=num_ts, guidance_scale=scale, generator=generator(generator_seed))
    expected = sample(scale)
    hypotheses = [] if not alternatives_wanted(close(actual, expected, loose=True)) else _cfg_hypotheses(sample, scale)
    check_sampler("class_fm_sample", calls, actual, expected, [i / num_ts for i in range(num_ts)],
                  "t = i/num_ts for i = 0, …, num_ts − 1 (t = 0 is noise)", len(labels),
                  "Does each step use u = u_u + γ·(u_c − u_u), with u_u from the zero class vector, then "
                  "x ← x + u/num_ts?", hypotheses, generator_seed)
    unet64 = sampler_unet("class").double()
    expected = ref_fm.class_fm_sample(copy.deepcopy(unet64), labels, img_wh=(28, 28), num_ts=num_ts,
                                      guidance_scale=scale, generator=generator(generator_seed), return_trajectory=True)
    check_trajectory("class_fm_sample", lambda: call_student(
        class_fm_sample, "class_fm_sample", unet64, labels.clone(), img_wh=(28, 28), num_ts=num_ts,
        guidance_scale=scale, generator=generator(generator_seed), return_trajectory=True), expected)
    run, course = meta_runs(class_fm_sample, ref_fm.class_fm_sample, lambda: (
        (on_meta(sampler_unet("class")), on_meta(labels)), {"img_wh": (28, 28), "num_ts": num_ts,
                                                            "guidance_scale": scale}))
    assert_follows_device(run, "class_fm_sample", "the UNet and the labels", course=course)
    passed(f"class_fm_sample: {num_ts} guided Euler steps match the reference on a small UNet (float32 and float64, "
           "with the trajectory); it follows the UNet's device")


# ---------------------------------------------------------------------------------------------------
# DDPM


@public_check
def check_ddpm_schedule(ddpm_schedule, *, seed: int = 0) -> None:
    """The default schedule and a short one with other betas, entry by entry."""
    questions = {
        "betas": "Are the betas linearly spaced from beta1 to beta2, num_ts values with both ends included?",
        "alphas": "Is α_t = 1 − β_t?",
        "alpha_bars": "Is ᾱ_t the cumulative product of the alphas (torch.cumprod), so that ᾱ_1 = α_1?",
    }
    other = {"beta1": 1e-3, "beta2": 0.05, "num_ts": 10}
    if seed:
        rng = parameter_rng("ddpm_schedule", seed)
        other = {"beta1": round(rng.uniform(1e-4, 5e-3), 4), "beta2": round(rng.uniform(0.02, 0.1), 3),
                 "num_ts": rng.randint(5, 50)}
    for kwargs in ({}, other):
        call = f"ddpm_schedule({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        expected = ref_ddpm.ddpm_schedule(**kwargs)
        result = call_student(ddpm_schedule, "ddpm_schedule", **kwargs)
        assert_true(isinstance(result, dict) and all(k in result for k in questions), "Does ddpm_schedule return a "
                    "dict with the keys 'betas', 'alphas' and 'alpha_bars'?", f"{call} returned a {describe(result)}"
                    f"{' with keys ' + str(list(result)) if isinstance(result, dict) else ''}.")
        for key, question in questions.items():
            value = result[key]
            value = torch.as_tensor(value) if not isinstance(value, torch.Tensor) else value
            assert_close(value.float(), expected[key], question, name=key, context=f"In {call}")
    passed(f"ddpm_schedule: betas, alphas and alpha_bars match for the default and a {other['num_ts']}-step "
           "schedule")


def _check_ddpm_loss(name: str, call: dict, loss, x0: torch.Tensor, schedule: dict, num_ts: int) -> None:
    """t/T with t ∈ {1, …, T}; x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with ε ~ N(0, I); loss = MSE(output, ε)."""
    t_in, n = call["t"], x0.shape[0]
    assert_true(t_in is not None and t_in.shape == (n,), f"Does {name} give the UNet one time per image?",
                f"It gave {describe(t_in)} for {n} images.")
    steps = t_in * num_ts
    t = steps.round()
    assert_true(float((steps - t).abs().max()) < 1e-3 and float(t.min()) >= 1 and float(t.max()) <= num_ts
                and float(t_in.std()) > 0.15, f"Does {name} draw t uniformly from {{1, …, T}} "
                f"(torch.randint(1, T + 1, …)) and give the UNet t/T?", f"With T={num_ts}, the UNet's times "
                f"multiplied by T span [{float(steps.min()):.4g}, {float(steps.max()):.4g}].")
    alpha_bars = torch.cumprod(1 - schedule["betas"].double(), dim=0)[t.long() - 1].reshape(-1, 1, 1, 1)
    xt, x0 = call["x"], x0.double()
    eps = (xt - alpha_bars.sqrt() * x0) / (1 - alpha_bars).sqrt()
    stds = eps.flatten(1).std(dim=1)
    worst = int((stds - 1).abs().argmax())
    question = ("Is x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε with ᾱ_t = alpha_bars[t − 1] (the cumulative product, "
                "not α_t) and ε ~ N(0, I)?")
    assert_true(float((stds - 1).abs().max()) < 0.15, question, f"For an image at t={int(t[worst])}, the noise "
                f"implied by x_t, (x_t − sqrt(ᾱ_t)·x0)/sqrt(1 − ᾱ_t), has std {float(stds[worst]):.3g}.")
    assert_normal(eps, question, "The noise implied by x_t")
    assert_loss(name, loss, F.mse_loss(xt, eps), "Is the loss the mean squared error between the UNet's output "
                "and the noise ε that was added?",
                [("Is the target the noise ε (the UNet predicts ε)? Your loss compares the output with x0.",
                  F.mse_loss(xt, x0))])


def loss_num_ts(name: str, seed: int) -> int:
    """T of a DDPM loss check: the default 300 at seed 0, else 100–500 (with the default betas)."""
    return 300 if seed == 0 else parameter_rng(f"{name}/T", seed).randrange(100, 501, 10)


SHORT_T = 4  # a schedule so short that 256 draws of t surely hit every value: an off-by-one range shows


def short_schedule(name: str, seed: int) -> dict:
    """The SHORT_T-step schedule of the time-range check: default betas at seed 0, else β_T in [0.01, 0.05]."""
    beta2 = 0.02 if seed == 0 else round(parameter_rng(f"{name}/short", seed).uniform(0.01, 0.05), 3)
    return ref_ddpm.ddpm_schedule(beta2=beta2, num_ts=SHORT_T)


def _check_time_values(name: str, probe: Probe, n: int) -> None:
    """With T = SHORT_T, the times the UNet got, times T, must be exactly the set {1, …, T}."""
    t_in = only_call(name, probe, (n, 1, 28, 28))["t"]
    seen = sorted({int(v) for v in (t_in * SHORT_T).round().tolist()}) if t_in is not None else []
    assert_true(seen == list(range(1, SHORT_T + 1)), f"Does {name} draw t uniformly from {{1, …, T}} "
                "(torch.randint(1, T + 1, …)), not from {0, …, T − 1}, and give the UNet t/T?",
                f"With T={SHORT_T} and {n} images, the UNet's times multiplied by T took the values {seen}.")


@public_check
def check_ddpm_forward(ddpm_forward, *, seed: int = 0) -> None:
    """On a probe UNet with the default 300-step schedule: t, x_t and the loss read back."""
    num_ts = loss_num_ts("ddpm_forward", seed)
    probe, x0 = Probe("time"), digits(N_LOSS, seed)
    schedule = ref_ddpm.ddpm_schedule() if seed == 0 else ref_ddpm.ddpm_schedule(num_ts=num_ts)
    short = Probe("time")  # first the range of t, on a schedule so short that every value shows
    call_student(ddpm_forward, "ddpm_forward", short, short_schedule("ddpm_forward", seed), x0.clone(), num_ts=SHORT_T,
                 generator=generator(derived_seed(seed, 17)))
    _check_time_values("ddpm_forward", short, x0.shape[0])
    loss = call_student(ddpm_forward, "ddpm_forward", probe, schedule, x0.clone(), num_ts=num_ts,
                        generator=generator(derived_seed(seed)))
    _check_ddpm_loss("ddpm_forward", only_call("ddpm_forward", probe, x0.shape), loss, x0, schedule, num_ts)
    passed("ddpm_forward: t, x_t and the loss read back from the UNet's inputs are right")


@public_check
def check_class_ddpm_forward(class_ddpm_forward, *, seed: int = 0) -> None:
    """As ddpm_forward, plus one-hot classes dropped with probability p_uncond."""
    (labels, p_uncond), num_ts = loss_labels("class_ddpm_forward", seed), loss_num_ts("class_ddpm_forward", seed)
    probe, x0 = Probe("class"), digits(N_LOSS, seed)
    schedule = ref_ddpm.ddpm_schedule() if seed == 0 else ref_ddpm.ddpm_schedule(num_ts=num_ts)
    short = Probe("class")  # first the range of t (see check_ddpm_forward)
    call_student(class_ddpm_forward, "class_ddpm_forward", short, short_schedule("class_ddpm_forward", seed),
                 x0.clone(), labels.clone(), p_uncond=p_uncond, num_ts=SHORT_T,
                 generator=generator(derived_seed(seed, 17)))
    _check_time_values("class_ddpm_forward", short, x0.shape[0])
    loss = call_student(class_ddpm_forward, "class_ddpm_forward", probe, schedule, x0.clone(), labels.clone(),
                        p_uncond=p_uncond, num_ts=num_ts, generator=generator(derived_seed(seed)))
    call = only_call("class_ddpm_forward", probe, x0.shape)
    _check_classes("class_ddpm_forward", call, labels, p_uncond)
    _check_ddpm_loss("class_ddpm_forward", call, loss, x0, schedule, num_ts)
    passed("class_ddpm_forward: classes, dropout, t, x_t and the loss read back from the UNet's inputs are right")


_DDPM_STEP = ("Does each step compute x̂0 and the posterior mean with ᾱ_t and ᾱ_{t−1} (ᾱ_0 = 1), and add "
              "sqrt(β_t)·z with z drawn from the generator before the UNet call, for t > 1 only?")
SAMPLER_SCHEDULE = dict(beta1=0.01, beta2=0.2, num_ts=6)  # short, with enough noise per step to matter


def sampler_schedule(name: str, seed: int, num_ts: int) -> dict:
    """The DDPM samplers' schedule: SAMPLER_SCHEDULE at seed 0, else ``num_ts`` steps from β_1 in [0.005, 0.02]
    (so that noise wrongly added at t = 1 still shows) to β_T in [0.1, 0.3]."""
    if seed == 0:
        return ref_ddpm.ddpm_schedule(**SAMPLER_SCHEDULE)
    rng = parameter_rng(f"{name}/schedule", seed)
    return ref_ddpm.ddpm_schedule(beta1=round(rng.uniform(0.005, 0.02), 3), beta2=round(rng.uniform(0.1, 0.3), 2),
                                  num_ts=num_ts)


@public_check
def check_ddpm_step(ddpm_step, *, seed: int = 0) -> None:
    """One ancestral step at t = T, at a middle t and at t = 1 (z = None), on the float64 schedule the samplers
    pass (``_schedule64``); then in float64."""
    from fwd_kit.schedules import _schedule64

    num_ts = SAMPLER_SCHEDULE["num_ts"] if seed == 0 else parameter_rng("ddpm_step", seed).randint(5, 9)
    s = _schedule64(sampler_schedule("ddpm_step", seed, num_ts), num_ts)
    xt = gaussian(3, 1, 28, 28, seed=derived_seed(seed))
    eps_hat = 0.7 * gaussian(3, 1, 28, 28, seed=derived_seed(seed, 1)) + 0.3 * xt  # not x_t's true noise
    z = gaussian(3, 1, 28, 28, seed=derived_seed(seed, 2))
    question = ("Does ddpm_step compute x̂0 = (x_t − sqrt(1 − ᾱ_t)·ε̂)/sqrt(ᾱ_t) and x_{t−1} = sqrt(ᾱ_{t−1})·β_t/"
                "(1 − ᾱ_t)·x̂0 + sqrt(α_t)·(1 − ᾱ_{t−1})/(1 − ᾱ_t)·x_t + sqrt(β_t)·z, with β_t = betas[t − 1], "
                "ᾱ_0 = 1 and no noise when z is None?")
    for t in (num_ts, num_ts // 2, 1):
        noise = z if t > 1 else None
        expected = ref_ddpm.ddpm_step(s, t, xt, eps_hat, noise)
        actual = call_student(ddpm_step, "ddpm_step", s, t, xt.clone(), eps_hat.clone(),
                              None if noise is None else noise.clone())
        bases = {"x_t": xt, "ε̂": eps_hat, **({"z": z} if noise is not None else {})}
        assert_close(actual, expected, question, name="x_{t−1}", context=f"At t={t} of T={num_ts}"
                     f"{'' if noise is not None else ' with z = None'}{linear_form(actual, bases)}")
    t = num_ts // 2
    x64, e64, z64 = xt.double(), eps_hat.double(), z.double()
    assert_follows_dtype(lambda: call_student(ddpm_step, "ddpm_step", s, t, x64.clone(), e64.clone(), z64.clone()),
                         ref_ddpm.ddpm_step(s, t, x64, e64, z64), "ddpm_step", "x_t's", "x_{t−1}")
    run, course = meta_runs(ddpm_step, ref_ddpm.ddpm_step,
                            lambda: ((s, t, on_meta(xt), on_meta(eps_hat), on_meta(z)), {}))
    assert_follows_device(run, "ddpm_step", "x_t, ε̂ and z", kept="the schedule", course=course)
    passed(f"ddpm_step: x_(t−1) matches at t = {num_ts}, {num_ts // 2} and 1 (float32 and float64); it follows x_t's "
           "device")


@public_check
def check_ddpm_sample(ddpm_sample, *, seed: int = 0) -> None:
    """Six ancestral steps of a small stand-in network (conditioning="ddpm"), same generator as the reference."""
    n, num_ts, _ = sampler_case("ddpm_sample", seed, (3, SAMPLER_SCHEDULE["num_ts"], 1.0), range(5, 8))
    unet = sampler_unet("time")
    schedule, reference_unet, generator_seed = sampler_schedule("ddpm_sample", seed, num_ts), copy.deepcopy(unet), \
        derived_seed(seed)
    with recording(unet, ModuleCalls(time_index=1)) as calls:
        actual = call_student(ddpm_sample, "ddpm_sample", unet, schedule, n, img_wh=(28, 28), num_ts=num_ts,
                              generator=generator(generator_seed))
    expected = ref_ddpm.ddpm_sample(reference_unet, schedule, n, img_wh=(28, 28), num_ts=num_ts,
                                    generator=generator(generator_seed))
    check_sampler("ddpm_sample", calls, actual, expected, [t / num_ts for t in range(num_ts, 0, -1)],
                  "t/T for t = T, T − 1, …, 1", n, _DDPM_STEP, generator_seed=generator_seed)
    unet64 = sampler_unet("time").double()
    expected = ref_ddpm.ddpm_sample(copy.deepcopy(unet64), schedule, n, img_wh=(28, 28), num_ts=num_ts,
                                    generator=generator(generator_seed), return_trajectory=True)
    check_trajectory("ddpm_sample", lambda: call_student(
        ddpm_sample, "ddpm_sample", unet64, schedule, n, img_wh=(28, 28), num_ts=num_ts,
        generator=generator(generator_seed), return_trajectory=True), expected)
    run, course = meta_runs(ddpm_sample, ref_ddpm.ddpm_sample, lambda: (
        (on_meta(sampler_unet("time")), schedule, n), {"img_wh": (28, 28), "num_ts": num_ts}))
    assert_follows_device(run, "ddpm_sample", "the UNet", kept="the schedule", course=course)
    passed(f"ddpm_sample: {num_ts} ancestral steps match the reference on a small UNet (float32 and float64, with "
           "the trajectory); it follows the UNet's device")


@public_check
def check_class_ddpm_sample(class_ddpm_sample, *, seed: int = 0) -> None:
    """Six guided ancestral steps (γ = 3) of a small class-conditioned stand-in network."""
    n, num_ts, scale = sampler_case("class_ddpm_sample", seed, (3, SAMPLER_SCHEDULE["num_ts"], 3.0), range(5, 8))
    unet = sampler_unet("class")
    labels, schedule = sampler_labels(seed, n), sampler_schedule("class_ddpm_sample", seed, num_ts)
    reference_unet, generator_seed = copy.deepcopy(unet), derived_seed(seed)

    def sample(guidance):
        return ref_ddpm.class_ddpm_sample(reference_unet, schedule, labels, img_wh=(28, 28), num_ts=num_ts,
                                          guidance_scale=guidance, generator=generator(generator_seed))

    with recording(unet, ModuleCalls(time_index=2)) as calls:
        actual = call_student(class_ddpm_sample, "class_ddpm_sample", unet, schedule, labels.clone(), img_wh=(28, 28),
                              num_ts=num_ts, guidance_scale=scale, generator=generator(generator_seed))
    expected = sample(scale)
    hypotheses = [] if not alternatives_wanted(close(actual, expected, loose=True)) else _cfg_hypotheses(sample, scale)
    check_sampler("class_ddpm_sample", calls, actual, expected, [t / num_ts for t in range(num_ts, 0, -1)],
                  "t/T for t = T, T − 1, …, 1", len(labels),
                  "Does each step use ε̂ = ε_u + γ·(ε_c − ε_u), ε_u from the zero class vector? " + _DDPM_STEP,
                  hypotheses, generator_seed)
    unet64 = sampler_unet("class").double()
    expected = ref_ddpm.class_ddpm_sample(copy.deepcopy(unet64), schedule, labels, img_wh=(28, 28), num_ts=num_ts,
                                          guidance_scale=scale, generator=generator(generator_seed),
                                          return_trajectory=True)
    check_trajectory("class_ddpm_sample", lambda: call_student(
        class_ddpm_sample, "class_ddpm_sample", unet64, schedule, labels.clone(), img_wh=(28, 28), num_ts=num_ts,
        guidance_scale=scale, generator=generator(generator_seed), return_trajectory=True), expected)
    run, course = meta_runs(class_ddpm_sample, ref_ddpm.class_ddpm_sample, lambda: (
        (on_meta(sampler_unet("class")), schedule, on_meta(labels)), {"img_wh": (28, 28), "num_ts": num_ts,
                                                                      "guidance_scale": scale}))
    assert_follows_device(run, "class_ddpm_sample", "the UNet and the labels", kept="the schedule", course=course)
    passed(f"class_ddpm_sample: {num_ts} guided ancestral steps match the reference on a small UNet (float32 and "
           "float64, with the trajectory); it follows the UNet's device")
