"""Public checks for Part B's UNet (ops, blocks, networks) and single-step denoiser, run in the notebook
right after each class or function a student writes. Flow matching and DDPM: :mod:`fwd_kit.checks.public_b_generative`.

Time conventions: flow matching t = 0 is noise, t = 1 is data; DDPM t = 0 is clean, t = T the noisiest
(the UNet is fed t/T). Digits are (N, 1, 28, 28) in [0, 1].

Classes are built small (D = 4) and checked, in this order, for output shape, parameter count,
parameter names (the reference's ``state_dict`` must load, strict) and outputs with the reference's
weights and BatchNorm statistics (calibrated, then perturbed) in eval mode. Losses run on a
:class:`~fwd_kit.checks.fixtures.Probe`, a stand-in UNet that returns its input and records what it was
given: the noise the student drew is read back and judged by its properties (N(0, I) statistics, the
loss recomputed from it), so any way of drawing it passes.

Every check takes a keyword ``seed``: 0 (the default) runs the inputs the notebooks show; another seed
runs the same logic on other inputs, channel counts, batch sizes, weights, BatchNorm statistics, times,
classes, masks, σ and generator seeds — the autograder's hidden runs.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn
import torch.nn.functional as F

from fwd_kit.checks.compare import (
    assert_close,
    assert_follows_dtype,
    assert_true,
    call_student,
    capitalized,
    close,
    describe,
    error_kind,
    linear_form,
    passed,
    public_check,
    tensor_problem,
)
from fwd_kit.checks.fixtures import (
    Probe,
    build,
    calibrate_norms,
    derived_seed,
    digits,
    generator,
    parameter_rng,
)
from fwd_kit.expected import computed, reference

ref_denoiser = reference("denoiser")  # the instructors' reference: live where installed, else stored values
ref_unet = reference("unet")

D = 4  # num_hiddens of the checks' UNets: small and fast
N_LOSS = 256  # images per loss check; standard errors: noise mean and std ~0.002, dropout share ~0.03
P_UNCOND = 0.25  # class dropout of the checks (not the default 0.1, to catch a hard-coded value)


def gaussian(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=generator(seed))


# ---------------------------------------------------------------------------------------------------
# Classes: ops, blocks, networks


def _few(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def key_report(student: nn.Module, theirs: dict) -> str:
    """Which ``state_dict`` entries are missing, unexpected or of another shape in ``student`` (vs ``theirs``)."""
    mine = student.state_dict()
    missing = [k for k in theirs if k not in mine]
    unexpected = [k for k in mine if k not in theirs]
    shapes = [f"{k} {tuple(mine[k].shape)} instead of {tuple(theirs[k].shape)}"
              for k in theirs if k in mine and mine[k].shape != theirs[k].shape]
    parts = [f"{label} {_few(items)}" for label, items in
             (("missing:", missing), ("unexpected:", unexpected), ("wrong shapes:", shapes)) if items]
    return "; ".join(parts)


@computed("module_facts")
def reference_facts(reference_cls, args: tuple, kwargs: dict, inputs: tuple, input_kwargs: dict, seed: int) -> dict:
    """The reference network built as the student's is (same arguments, same seed), its BatchNorm statistics
    set by :func:`calibrate_norms`: its eval-mode output on ``inputs``, parameter count and weights."""
    module = calibrate_norms(build(reference_cls, *args, seed=seed, **kwargs), *inputs, seed=seed, **input_kwargs)
    with torch.no_grad():
        output = module(*inputs, **input_kwargs)
    return {"output": output, "parameters": sum(p.numel() for p in module.parameters()),
            "state": dict(module.state_dict())}


def check_module(name: str, student_cls, reference_cls, args: tuple, kwargs: dict, inputs: tuple,
                 layout: str, input_kwargs: dict | None = None, seed: int = 0,
                 reference_kwargs: dict | None = None, note: str = "") -> None:
    """Build both classes with the same arguments; compare shape, parameters, names, then outputs.

    ``seed`` initialises both (``build``) and perturbs the reference's BatchNorm statistics (``calibrate_norms``).
    Questions name the class only; the constructor's arguments and the shapes (other ones on hidden inputs)
    follow them, with ``note`` (what else the inputs hold), and the grader shows hidden runs only the question.
    """
    input_kwargs = input_kwargs or {}
    call = f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})"
    student = build(student_cls, *args, seed=seed, **kwargs)
    facts = reference_facts(reference_cls, args, kwargs if reference_kwargs is None else reference_kwargs, inputs,
                            input_kwargs, seed)
    expected, n_reference, reference_state = facts["output"], facts["parameters"], facts["state"]
    assert_true(isinstance(student, nn.Module), f"Is {name} a subclass of nn.Module whose __init__ calls "
                "super().__init__()?", f"{call} made a {describe(student)}.")
    shapes = ", ".join(str(tuple(x.shape)) for x in inputs)
    with torch.no_grad():
        actual = call_student(student.eval(), name, *(x.clone() for x in inputs), **input_kwargs)
    problem = tensor_problem(actual, expected, "its output")
    if problem is not None and ("shape" in problem or not isinstance(actual, torch.Tensor)):
        raise AssertionError(f"Does {name} give its output the right shape? {call}{note} should map inputs of "
                             f"shape {shapes} to shape {tuple(expected.shape)}: {problem}.")
    n_student = sum(p.numel() for p in student.parameters())
    assert_true(n_student == n_reference, f"Does {name} hold the layers {layout}?",
                f"{call} has {n_student} parameters, but should have {n_reference}.")
    try:
        student.load_state_dict(reference_state, strict=True)
    except RuntimeError:
        raise AssertionError(f"Can the reference's weights be loaded into your {name}? Name the layers as the "
                             f"instructions do ({layout}); {call}: {key_report(student, reference_state)}.") from None
    with torch.no_grad():
        actual = call_student(student.eval(), name, *(x.clone() for x in inputs), **input_kwargs)
    assert_close(actual, expected, f"Does {name} compute {layout}?", name="its output",
                 context=f"{call}{note}, with the reference's weights and BatchNorm statistics, in eval mode")


_OP = "{conv} → norm: BatchNorm2d → act: GELU"
_UNET = ("conv_in, down1, down2, flatten, unflatten, up1, up2, conv_out, head (a plain Conv2d) and concat, "
         "wired as in the diagram")


def _module_check(name, reference_cls, case, layout, kwargs=None, input_kwargs=None):
    """A public check of class ``name``; ``case(name, seed)`` gives the constructor's args and the inputs."""

    @public_check
    def check(student_cls, *, seed: int = 0) -> None:
        args, inputs = case(name, seed)
        check_module(name, student_cls, reference_cls, args, kwargs or {}, inputs, layout, input_kwargs, seed)
        passed(f"{name}: output shape, parameter names and outputs with the reference's weights match")

    check.__name__ = f"check_{name}"
    check.__doc__ = f"Build {name} small; compare shape, parameters, state_dict names and eval outputs."
    return check


def _sizes(name: str, seed: int, public: tuple, draw) -> tuple:
    """``public`` at seed 0, else ``draw(rng)`` with the check's parameter RNG."""
    return public if seed == 0 else draw(parameter_rng(name, seed))


def in_out(rng) -> tuple[int, int]:
    """Channel counts (in, out): in from 1–6, out from 2–8 and never equal to in (with in = out a layer built
    with the wrong one of them goes unnoticed)."""
    c_in = rng.randint(1, 6)
    return c_in, rng.choice([c for c in range(2, 9) if c != c_in])


def conv_case(side: int):
    """Args (in, out) and one input (N, in, S, S): (3, 5), N = 2, S = ``side`` at seed 0; else 1–6 in and 2–8
    out channels (:func:`in_out`), N = 2–4 and S = side ± 0–4 (even)."""

    def case(name: str, seed: int):
        c_in, c_out, n, s = _sizes(name, seed, (3, 5, 2, side), lambda rng: (
            *in_out(rng), rng.randint(2, 4), side + 2 * rng.randint(-2, 2)))
        return (c_in, c_out), (gaussian(n, c_in, s, s, seed=derived_seed(seed)),)

    return case


def flatten_case(name: str, seed: int):
    n, c = _sizes(name, seed, (2, 6), lambda rng: (rng.randint(2, 4), rng.randint(2, 8)))
    return (), (gaussian(n, c, 7, 7, seed=derived_seed(seed)),)


def unflatten_case(name: str, seed: int):
    n, c = _sizes(name, seed, (2, 6), lambda rng: (rng.randint(2, 4), rng.randint(2, 8)))
    return (c,), (gaussian(n, c, 1, 1, seed=derived_seed(seed)),)


def concat_case(name: str, seed: int):
    n, c1, c2, s = _sizes(name, seed, (2, 3, 4, 5), lambda rng: (
        rng.randint(1, 3), rng.randint(1, 5), rng.randint(1, 5), rng.randint(3, 8)))
    return (), (gaussian(n, c1, s, s, seed=derived_seed(seed)), gaussian(n, c2, s, s, seed=derived_seed(seed, 1)))


def fc_case(name: str, seed: int):
    c_in, c_out, n = _sizes(name, seed, (3, 6, 4), lambda rng: (*in_out(rng), rng.randint(2, 6)))
    return (c_in, c_out), (gaussian(n, c_in, seed=derived_seed(seed)),)


def unet_case(name: str, seed: int):
    n = _sizes(name, seed, (2,), lambda rng: (rng.randint(2, 3),))[0]
    return (), (digits(n, seed),)


check_Conv = _module_check("Conv", ref_unet.Conv, conv_case(12), _OP.format(conv="conv: Conv2d(k=3, s=1, p=1)"))
check_DownConv = _module_check("DownConv", ref_unet.DownConv, conv_case(12),
                               _OP.format(conv="conv: Conv2d(k=3, s=2, p=1)"))
check_UpConv = _module_check("UpConv", ref_unet.UpConv, conv_case(6),
                             _OP.format(conv="conv: ConvTranspose2d(k=4, s=2, p=1)"))
check_Flatten = _module_check("Flatten", ref_unet.Flatten, flatten_case, "AvgPool2d(7) → GELU, giving (N, C, 1, 1)")
check_Unflatten = _module_check("Unflatten", ref_unet.Unflatten, unflatten_case,
                                _OP.format(conv="conv: ConvTranspose2d(k=7, s=7, p=0)"))
check_Concat = _module_check("Concat", ref_unet.Concat, concat_case,
                             "torch.cat of its two inputs along the channel axis, the first input first")
check_ConvBlock = _module_check("ConvBlock", ref_unet.ConvBlock, conv_case(12),
                                "conv1: Conv(in, out) → conv2: Conv(out, out)")
check_DownBlock = _module_check("DownBlock", ref_unet.DownBlock, conv_case(12),
                                "down: DownConv(in, out) → block: ConvBlock(out, out)")
check_UpBlock = _module_check("UpBlock", ref_unet.UpBlock, conv_case(6),
                              "up: UpConv(in, out) → block: ConvBlock(out, out)")
check_FCBlock = _module_check("FCBlock", ref_unet.FCBlock, fc_case,
                              "fc1: Linear(in, out) → act: GELU → fc2: Linear(out, out)")
check_UnconditionalUNet = _module_check("UnconditionalUNet", ref_unet.UnconditionalUNet, unet_case, _UNET,
                                        dict(in_channels=1, num_hiddens=D))


def unet_times(name: str, seed: int, n: int = 2) -> torch.Tensor:
    """Times (n,) in [0, 1] for the UNets: [0.2, 0.9] at seed 0, else drawn (two decimals)."""
    return torch.tensor([0.2, 0.9] if seed == 0 else
                        [round(parameter_rng(f"{name}/t", seed).uniform(0.05, 1.0), 2) for _ in range(n)])


@public_check
def check_TimeConditionalUNet(TimeConditionalUNet, *, seed: int = 0) -> None:
    """Both conditioning kinds when the class takes ``conditioning`` (FM multiplies, DDPM adds)."""
    has_kind = "conditioning" in inspect.signature(TimeConditionalUNet).parameters
    _, (x,) = unet_case("TimeConditionalUNet", seed)
    t = unet_times("TimeConditionalUNet", seed, x.shape[0])
    for kind in ("fm", "ddpm") if has_kind else ("fm",):  # without the argument: flow matching's
        kwargs = dict(in_channels=1, num_hiddens=D)
        check_module("TimeConditionalUNet", TimeConditionalUNet, ref_unet.TimeConditionalUNet, (),
                     {**kwargs, "conditioning": kind} if has_kind else kwargs, (x, t), _UNET + ", plus fc1_t and fc2_t "
                     "injecting t at the unflatten and up1 outputs", seed=seed,
                     reference_kwargs={**kwargs, "conditioning": kind})
    passed("TimeConditionalUNet: output shape, parameter names and outputs with the reference's weights match")


@public_check
def check_ClassConditionalUNet(ClassConditionalUNet, *, seed: int = 0) -> None:
    """With one-hot classes, then with a mask that drops one image's class (the second at seed 0)."""
    labels, dropped = [3, 8], 1
    if seed:
        rng = parameter_rng("ClassConditionalUNet", seed)
        labels, dropped = rng.sample(range(10), 2), rng.randint(0, 1)
    mask = torch.ones(2)
    mask[dropped] = 0
    inputs = (digits(2, seed), F.one_hot(torch.tensor(labels), 10).float(), unet_times("ClassConditionalUNet", seed))
    layout = _UNET + ", plus fc1_t, fc2_t, fc1_c, fc2_c: unflatten → c1·unflatten + t1, up1 → c2·up1 + t2"
    kwargs = dict(in_channels=1, num_classes=10, num_hiddens=D)
    check_module("ClassConditionalUNet", ClassConditionalUNet, ref_unet.ClassConditionalUNet, (), kwargs, inputs,
                 layout, seed=seed)
    shown = ", ".join(str(int(m)) for m in mask)
    check_module("ClassConditionalUNet", ClassConditionalUNet, ref_unet.ClassConditionalUNet, (), kwargs, inputs,
                 layout + " and, given a mask, c ← c·mask", input_kwargs={"mask": mask}, seed=seed,
                 note=f" with mask = [{shown}] (the {('first', 'second')[dropped]} image's class dropped)")
    passed("ClassConditionalUNet: output shape, parameter names and outputs (with and without mask) match")


# ---------------------------------------------------------------------------------------------------
# The single-step denoiser


def assert_normal(values: torch.Tensor, question: str, what: str, tol: float = 0.05) -> None:
    mean, std = float(values.mean()), float(values.std())
    assert_true(abs(mean) < tol and abs(std - 1) < tol, question, f"{what} has mean {mean:.3g} and std {std:.3g}.")


def assert_loss(name: str, loss, expected: torch.Tensor, question: str, hypotheses=()) -> None:
    """A returned loss: one number, equal to ``expected`` (recomputed from the recorded call), with gradient."""
    assert_true(isinstance(loss, torch.Tensor) and loss.numel() == 1, f"Does {name} return the loss as a "
                "one-number tensor?", f"It returned a {describe(loss)}.")
    value, target = float(loss.detach()), float(expected)
    if not abs(value - target) <= 1e-2 * abs(target) + 1e-6:  # also when the loss is NaN
        for message, alternative in hypotheses:
            if abs(value - float(alternative)) <= 1e-2 * abs(float(alternative)) + 1e-6:
                raise AssertionError(message)
        raise AssertionError(f"{question} Your loss is {value:.4g}; recomputed from what your function gave the "
                             f"UNet it should be {target:.4g}.")
    assert_true(loss.requires_grad, f"Does {name} keep the loss connected to the UNet (no .item(), .detach() or "
                "torch.no_grad())?", "The loss it returned carries no gradient.")


def only_call(name: str, probe: Probe, x_shape) -> dict:
    assert_true(len(probe.calls) == 1, f"Does {name} call the UNet once, on the whole batch?",
                f"It was called {len(probe.calls)} times.")
    call = probe.calls[0]
    assert_true(tuple(call["x"].shape) == tuple(x_shape), f"Does {name} give the UNet a batch shaped like the digits?",
                f"The UNet got {tuple(call['x'].shape)} for digits {tuple(x_shape)}.")
    return call


@public_check
def check_add_noise(add_noise, *, seed: int = 0) -> None:
    """z on given noise for two σ; fresh noise with a generator: N(0, I) and reproducible."""
    n, sigmas = _sizes("add_noise", seed, (8, (0.5, 0.2)), lambda rng: (
        rng.randint(6, 10), tuple(round(rng.uniform(0.1, 0.9), 2) for _ in range(2))))
    x, noise = digits(n, seed), gaussian(n, 1, 28, 28, seed=derived_seed(seed))
    for sigma in sigmas:
        expected = ref_denoiser.add_noise(x, sigma, noise=noise)
        actual = call_student(add_noise, "add_noise", x.clone(), sigma, noise=noise.clone())
        assert_close(actual, expected, "Does add_noise return z = x + σ·ε?", name="z",
                     context=f"With σ={sigma:g} and the noise given{linear_form(actual, {'x': x, 'ε': noise})}")
    levels = torch.linspace(0.1, 0.9, n) if seed == 0 else torch.rand(n, generator=generator(derived_seed(seed, 5)))
    question = ("With one σ per image (a tensor of shape (N,)), does add_noise scale each image's noise by its own "
                "σ (σ reshaped to (N, 1, 1, 1))?")
    try:
        per_image = call_student(add_noise, "add_noise", x.clone(), levels.clone(), noise=noise.clone())
    except (NotImplementedError, AssertionError):
        raise
    except Exception as err:  # noqa: BLE001 - a σ that does not broadcast: say which question it answers wrong
        raise AssertionError(f"{question} With σ of shape ({n},) it raised {error_kind(err)}.") from None
    assert_close(per_image, ref_denoiser.add_noise(x, levels, noise=noise), question, name="z")
    sigma, generator_seed = sigmas[0], derived_seed(seed, 7)
    first = call_student(add_noise, "add_noise", x.clone(), sigma, generator=generator(generator_seed))
    again = call_student(add_noise, "add_noise", x.clone(), sigma, generator=generator(generator_seed))
    problem = tensor_problem(first, x, "z")
    assert_true(problem is None, "When noise is None, does add_noise return z of x's shape and dtype?", f"{problem}.")
    assert_normal((first.double() - x.double()) / sigma, "When noise is None, does add_noise draw ε ~ N(0, I) "
                  "(torch.randn)?", f"With σ={sigma:g} the implied noise (z − x)/σ", tol=0.1)
    assert_true(close(again, first), "When noise is None, does add_noise draw ε with the generator it is given, so "
                "that the same seed gives the same z?", "Two calls with generators seeded alike gave different z.")
    x, noise = x.double(), noise.double()
    assert_follows_dtype(lambda: call_student(add_noise, "add_noise", x.clone(), sigma, noise=noise.clone()),
                         ref_denoiser.add_noise(x, sigma, noise=noise), "add_noise", "x's", "z")
    passed("add_noise: z matches on given noise (float32 and float64); fresh noise looks like N(0, I) and follows "
           "the generator")


@public_check
def check_denoiser_loss(denoiser_loss, *, seed: int = 0) -> None:
    """On a probe UNet: its input is x + σε with ε ~ N(0, I), and the loss is the MSE of its output to x."""
    # hidden σ: never the default 0.5, so that a hard-coded σ fails
    sigma = 0.3 if seed == 0 else parameter_rng("denoiser_loss", seed).choice((0.15, 0.2, 0.25, 0.35, 0.4, 0.6, 0.7, 0.8))
    probe, x = Probe("plain"), digits(N_LOSS, seed)
    loss = call_student(denoiser_loss, "denoiser_loss", probe, x.clone(), sigma=sigma,
                        generator=generator(derived_seed(seed)))
    z = only_call("denoiser_loss", probe, x.shape)["x"]
    assert_normal((z - x.double()) / sigma, "Is the UNet's input z = x + σ·ε, with ε ~ N(0, I) and σ = sigma?",
                  f"With σ={sigma}, the noise (z − x)/σ implied by the UNet's input")
    assert_loss("denoiser_loss", loss, F.mse_loss(z, x.double()),
                "Is the loss the mean squared error between the UNet's output and the clean digits x?",
                [("Is the target the clean digits x? Your loss compares the output with the noise.",
                  F.mse_loss(z, (z - x.double()) / sigma))])
    passed("denoiser_loss: the UNet sees x + σε and the loss is the MSE to the clean digits")


@public_check
def check_pure_noise_loss(pure_noise_loss, *, seed: int = 0) -> None:
    """On a probe UNet: its input is pure N(0, I) noise, and the loss is the MSE of its output to x."""
    probe, x = Probe("plain"), digits(N_LOSS, seed)
    loss = call_student(pure_noise_loss, "pure_noise_loss", probe, x.clone(), generator=generator(derived_seed(seed)))
    eps = only_call("pure_noise_loss", probe, x.shape)["x"]
    question = "Is the UNet's input pure noise ε ~ N(0, I), with nothing of x in it?"
    assert_normal(eps, question, "The UNet's input")
    corr = float(torch.corrcoef(torch.stack([eps.flatten(), x.double().flatten()]))[0, 1])
    assert_true(abs(corr) < 0.05, question, f"The UNet's input is correlated with x (correlation {corr:.2g}).")
    assert_loss("pure_noise_loss", loss, F.mse_loss(eps, x.double()),
                "Is the loss the mean squared error between the UNet's output and the clean digits x?")
    passed("pure_noise_loss: the UNet sees pure noise and the loss is the MSE to the clean digits")
