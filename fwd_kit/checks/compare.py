"""Comparison helpers shared by the public checks and the autograder: tolerances, errors and messages.

A check compares what a student's code returned (``actual``) with what the reference returned on the
same inputs and randomness (``expected``). The helpers here measure the difference (largest error, where
it is, how many elements are out of tolerance, NaNs) and turn it into a sentence; the ``assert_*``
helpers raise ``AssertionError`` whose message starts with the check's question ("Does forward scale
the image by sqrt(ᾱ_t)?") followed by what was measured. Messages give summary numbers and positions,
never whole tensors.

Tolerances depend on dtype: a comparison uses the coarsest dtype involved (fp16 GPU results against
fp32 CPU references are judged at fp16 precision). ``loose=True`` widens them for results of sampling
loops, where rounding accumulates and batched and separate UNet calls differ in the last bits.

Every call of a student's code goes through :func:`call_student`, which also checks that the call left
its tensor arguments unchanged (an in-place write costs the function that made it, not a later caller).
:func:`assert_raises_value_error` checks the ``ValueError`` a docstring promises for bad input,
:func:`assert_follows_dtype` a run on float64 inputs (a hard-coded float32 shows there) and
:func:`assert_follows_device` a run with every input and the model on PyTorch's ``meta`` device (a
hard-coded ``"cpu"`` shows there, on a CPU).

Choices the course leaves open, which every check accepts (the grader's own list, kept here so that the
checks and their messages agree with it):

- clamping x̂0 to [-1, 1] in Part A (``estimate_x0`` or the loops): the checks also compare with the
  reference run with a clamped x̂0 (:data:`OPEN_CHOICES`);
- which predicted variance the anagram and hybrid loops add: the anagram check uses a scheduler with a
  fixed variance, so any choice gives the same result; the hybrid check runs also with DeepFloyd's learned
  variance and accepts the course's choice (the average of the two prompts' conditional variances) and
  either prompt's conditional variance — not a variance guided like the noise (v_u + γ·(v_c − v_u));
- the order of random draws in the losses (judged by the statistics of what the UNet was given), one
  batched UNet call or separate calls for CFG, loops or vectorised code, Python floats or 0-dim tensors
  for coefficients, ``nn.Sequential`` or explicit ``forward`` with the same ``state_dict`` names;
- the order in which a function calls its helpers, as long as it draws from the generator in the order
  its docstring gives.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import io
import logging
import math
import warnings
from dataclasses import dataclass

import torch

# (rtol, atol) per dtype: |actual − expected| ≤ atol + rtol·|expected|, with atol scaled by the
# reference's largest magnitude (so a picture in [-1, 1] and a loss of 1e-3 are judged alike).
TOLERANCES = {
    torch.float64: (1e-7, 1e-9),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-3),
    torch.bfloat16: (3e-2, 1e-2),
}
LOOSE_FACTOR = 30  # loops: a few UNet calls, guidance scales of 5–7 and batched vs separate calls

AXIS_NAMES = {4: ("image", "channel", "row", "column"), 3: ("item", "row", "column"), 2: ("row", "column")}


def tolerance(*dtypes: torch.dtype, loose: bool = False) -> tuple[float, float]:
    """(rtol, atol) for comparing tensors of ``dtypes``: the coarsest of them (float32 for others)."""
    pairs = [TOLERANCES.get(d, TOLERANCES[torch.float32]) for d in dtypes] or [TOLERANCES[torch.float32]]
    rtol, atol = max(p[0] for p in pairs), max(p[1] for p in pairs)
    return (rtol * LOOSE_FACTOR, atol * LOOSE_FACTOR) if loose else (rtol, atol)


def describe(x) -> str:
    """A short description of a value: ``tensor (2, 3, 32, 32) float32 on cpu``, or its type."""
    if isinstance(x, torch.Tensor) or type(x).__name__ == "MetaTensor":  # MetaTensor: fwd_kit.grading.wire
        return f"tensor {tuple(x.shape)} {str(x.dtype).replace('torch.', '')} on {x.device}"
    return type(x).__name__


def format_index(where: tuple[int, ...]) -> str:
    """An index as words: ``image 0, channel 1, row 3, column 7`` for 4-D tensors, else ``index (…)``."""
    names = AXIS_NAMES.get(len(where))
    if names is None:
        return f"index {tuple(where)}" if where else "the single value"
    return ", ".join(f"{n} {i}" for n, i in zip(names, where))


def nonfinite(x: torch.Tensor) -> str | None:
    """``None`` if every value of ``x`` is finite, else a sentence: how many NaN/inf and where the first is."""
    bad = ~torch.isfinite(x.detach())
    if not bad.any():
        return None
    n_nan = int(torch.isnan(x.detach()).sum())
    n_inf = int(bad.sum()) - n_nan
    first = tuple(int(i) for i in bad.nonzero()[0]) if x.ndim else ()
    parts = [f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else ""]
    return f"it holds {' and '.join(p for p in parts if p)} value(s), the first at {format_index(first)}"


@dataclass(frozen=True)
class Difference:
    """How far ``actual`` is from ``expected``, elementwise (computed in float64 on the CPU)."""

    max_abs: float  # largest |actual − expected|
    where: tuple[int, ...]  # index of that element
    actual: float  # the student's value there
    expected: float  # the reference's value there
    num_bad: int  # elements outside the tolerance
    numel: int
    scale: float  # largest |expected|, which scales atol

    @property
    def ok(self) -> bool:
        return self.num_bad == 0

    def sentence(self) -> str:
        """``the largest difference is 0.41 (at image 0, channel 1, row 3, column 7: 0.12 instead of 0.53)``."""
        if self.ok:
            return f"the largest difference is {self.max_abs:.3g}, within tolerance"
        share = f"{self.num_bad} of {self.numel} values differ" if self.numel > 1 else "the value differs"
        return (f"{share}; the largest difference is {self.max_abs:.3g} (at {format_index(self.where)}: "
                f"{self.actual:.4g} instead of {self.expected:.4g})")


def difference(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> Difference:
    """Elementwise comparison of two same-shape tensors; ``atol`` is relative to max |expected| (≥ 1e-3)."""
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    scale = float(e.abs().max()) if e.numel() else 0.0
    err = (a - e).abs()
    bad = err > atol * max(scale, 1e-3) + rtol * e.abs()
    bad |= torch.isnan(a) != torch.isnan(e)
    if err.numel() == 0:
        return Difference(0.0, (), 0.0, 0.0, 0, 0, scale)
    flat = int(torch.nan_to_num(err, nan=math.inf).argmax())
    where = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), err.shape)) if err.ndim else ()
    return Difference(float(err.flatten()[flat]), where, float(a.flatten()[flat]), float(e.flatten()[flat]),
                      int(bad.sum()), err.numel(), scale)


def tensor_problem(value, expected: torch.Tensor, name: str = "the result", check_dtype: bool = True) -> str | None:
    """What is wrong with ``value`` before values are compared (type, shape, dtype, NaN), or ``None``."""
    if type(value).__name__ == "MetaTensor" and expected.device.type != "meta":  # fwd_kit.grading.wire
        return (f"{name} is a tensor on meta, but the inputs were on {expected.device}: keep results on the "
                "inputs' device")
    if not isinstance(value, torch.Tensor):
        return f"{name} should be a torch.Tensor like {describe(expected)}, but is a {describe(value)}"
    if tuple(value.shape) != tuple(expected.shape):
        return f"{name} has shape {tuple(value.shape)}, but should have shape {tuple(expected.shape)}"
    if check_dtype and value.dtype != expected.dtype:
        return (f"{name} has dtype {str(value.dtype).replace('torch.', '')}, but should keep "
                f"{str(expected.dtype).replace('torch.', '')} (follow the input's or the model's dtype)")
    bad = nonfinite(value)
    if bad is not None and nonfinite(expected) is None:
        return f"{name} is not finite: {bad}"
    return None


def close(actual, expected: torch.Tensor, rtol: float | None = None, atol: float | None = None,
          loose: bool = False) -> bool:
    """Whether ``actual`` is a tensor of ``expected``'s shape with values within tolerance (dtype ignored)."""
    if not isinstance(actual, torch.Tensor) or tuple(actual.shape) != tuple(expected.shape):
        return False
    d_rtol, d_atol = tolerance(actual.dtype, expected.dtype, loose=loose)
    return difference(actual, expected, d_rtol if rtol is None else rtol, d_atol if atol is None else atol).ok


_EVIDENCE: contextvars.ContextVar[list | None] = contextvars.ContextVar("fwd_evidence", default=None)


@contextlib.contextmanager
def collecting_evidence():
    """Inside, each failed :func:`assert_close` also appends ``(name, actual, expected)`` to the yielded list:
    the grader shows them as pictures on the feedback page. The checks behave the same without it."""
    box: list = []
    token = _EVIDENCE.set(box)
    try:
        yield box
    finally:
        _EVIDENCE.reset(token)


def _keep_evidence(name: str, actual, expected) -> None:
    box = _EVIDENCE.get()
    if box is not None:
        box.append((name, actual, expected))


_DEVICE_VERDICTS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("fwd_device_verdicts", default=None)


@contextlib.contextmanager
def sharing_device_verdicts(verdicts: dict):
    """Inside, :func:`assert_follows_device` judges each function once: its first verdict on a function name
    (None: it follows the device; else the failure's message) is kept in ``verdicts`` and given again, without
    a run, to every later check of that name. The grader shares one dict between a function's public and hidden
    tests: what the check asks, where the function makes its tensors, does not depend on the inputs' values
    (the meta device has none), and a loop's UNet calls cost as much there as on the CPU. A device fault still
    fails both tests, as a wrong value does; a device fault only in a branch that the hidden parameters alone
    take (another i_start, say) is no longer probed. The checks behave the same without it."""
    token = _DEVICE_VERDICTS.set(verdicts)
    try:
        yield verdicts
    finally:
        _DEVICE_VERDICTS.reset(token)


def assert_close(actual, expected: torch.Tensor, question: str, name: str = "the result",
                 rtol: float | None = None, atol: float | None = None, loose: bool = False,
                 check_dtype: bool = True, context: str = "") -> None:
    """Raise ``AssertionError("<question> <Context>. <What differs>.")`` unless ``actual`` matches ``expected``.

    ``context`` says on which input (``at t=500``); ``name`` what is compared (``x_t``). Tolerances
    default to :func:`tolerance` of both dtypes.
    """
    lead = f"{question} {capitalized(context)}. " if context else f"{question} "
    problem = tensor_problem(actual, expected, name, check_dtype)
    if problem is not None:
        _keep_evidence(name, actual, expected)
        raise AssertionError(f"{lead}{capitalized(problem)}.")
    d_rtol, d_atol = tolerance(actual.dtype, expected.dtype, loose=loose)
    diff = difference(actual, expected, d_rtol if rtol is None else rtol, d_atol if atol is None else atol)
    if not diff.ok:
        _keep_evidence(name, actual, expected)
        raise AssertionError(f"{lead}In {name}, {diff.sentence()}.")


def capitalized(text: str) -> str:
    """``text`` with its first letter upper-case (the rest untouched: ``x_t`` stays ``x_t`` after it)."""
    return text[:1].upper() + text[1:]


def assert_true(condition: bool, question: str, detail: str = "") -> None:
    """Raise ``AssertionError("<question> <detail>")`` unless ``condition``."""
    if not condition:
        raise AssertionError(f"{question} {capitalized(detail)}".strip())


# ---------------------------------------------------------------------------------------------------
# Calling the student's code: inputs left unchanged, promised errors, dtypes

OPEN_CHOICES = (
    "clamping x̂0 to [-1, 1] (Part A: in estimate_x0 or in the loops)",
    "the predicted variance added by the anagram loop (any branch's) and the hybrid loop (the average of the "
    "two prompts' conditional variances, or either prompt's; not one guided like the noise)",
    "the order of random draws in the losses, judged by the statistics of what the UNet was given",
    "one batched UNet call or separate calls for classifier-free guidance",
    "loops or vectorised code, Python floats or 0-dim tensors for coefficients",
    "nn.Sequential or an explicit forward, as long as the state_dict names are the course's",
    "the order in which a function calls its helpers (draws from the generator in the documented order)",
)

_ORDINALS = ("1st", "2nd", "3rd")


def _tensor_leaves(value, label: str, out: list, depth: int = 0) -> list:
    """``[(label, tensor, copy)]`` for every tensor in ``value`` (lists, tuples and dicts searched)."""
    if depth > 6:
        return out
    if isinstance(value, torch.Tensor):
        out.append((label, value, value.detach().clone()))
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            _tensor_leaves(item, f"{label}[{k}]", out, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _tensor_leaves(item, f"{label}[{key!r}]", out, depth + 1)
    return out


def _argument_labels(fn, n_args: int) -> list[str]:
    """Names of the first ``n_args`` positional parameters of ``fn`` where its signature shows them, else
    ``1st argument``, ``2nd argument``, … (a sandboxed student's function shows only ``*args``)."""
    import inspect

    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [f"argument {params[k]}" if k < len(params) else
            f"{_ORDINALS[k] if k < len(_ORDINALS) else f'{k + 1}th'} argument" for k in range(n_args)]


def _unchanged(before: torch.Tensor, after: torch.Tensor) -> bool:
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    try:
        return bool(torch.equal(before, after)) or bool(torch.allclose(before, after, rtol=0, atol=0, equal_nan=True))
    except RuntimeError:
        return False


def call_student(fn, name: str, *args, **kwargs):
    """``fn(*args, **kwargs)``, then an ``AssertionError`` if the call changed one of its tensor arguments.

    A function that writes into its input (``x0.mul_(...)``, ``x += ...``, ``x[...] = ...``) gives a caller
    that uses the input again a wrong answer: the mistake is charged here, to the function that made it.
    (The grader's stand-ins for sandboxed functions copy the arguments' final values back, so this works
    there too.)
    """
    labels = _argument_labels(fn, len(args)) + [f"argument {key}" for key in kwargs]
    leaves: list = []
    for label, value in zip(labels, list(args) + list(kwargs.values())):
        _tensor_leaves(value, label, leaves)
    result = fn(*args, **kwargs)
    for label, tensor, copy in leaves:
        if not _unchanged(copy, tensor.detach()):
            raise AssertionError(
                f"Does {name} leave its inputs unchanged? The call changed its {label} in place (an in-place "
                f"operation such as x.mul_(...), x += ..., x[...] = ... or x.clamp_(...)): compute new tensors "
                f"instead, so that the caller's tensors stay as they were.")
    return result


def error_kind(err: BaseException) -> str:
    """The type name of an exception the student's code raised (a sandboxed one carries it as ``kind``)."""
    kind = getattr(err, "kind", None)
    return kind if isinstance(kind, str) else type(err).__name__


def assert_raises_value_error(fn, name: str, call: str, why: str, *args, **kwargs) -> None:
    """Call ``fn`` on bad input: it must raise ``ValueError`` (its docstring promises one). ``call`` shows the
    call in the message (``strided_timesteps(start=100, stride=30)``), ``why`` the rule (``when start is not a
    multiple of stride``). The student's own message is never shown, only the type raised."""
    question = f"Does {name} raise a ValueError {why}, as its docstring says?"
    try:
        fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - any other exception is the wrong one
        if isinstance(err, ValueError) or error_kind(err) == "ValueError":
            return
        raise AssertionError(f"{question} {call} raised {error_kind(err)} instead.") from None
    raise AssertionError(f"{question} {call} returned without raising.")


def assert_follows_dtype(run, expected: torch.Tensor, name: str, what: str = "its inputs'",
                         result: str = "the result", loose: bool = False):
    """``run()`` calls the student's code on float64 inputs (or with a float64 model); its result must be
    float64 and match ``expected`` (the reference on the same inputs) at float32's tolerance: a dtype or
    device hard-coded inside the function shows here, whatever the precision of its intermediate steps."""
    question = (f"Does {name} follow {what} dtype and device (no hard-coded float32, .float(), dtype=torch.float32 "
                f"or device='cuda' inside)?")
    try:
        actual = run()
    except (NotImplementedError, AssertionError):
        raise
    except Exception as err:  # noqa: BLE001 - e.g. float32 noise fed to a float64 model
        raise AssertionError(f"{question} On float64 inputs it raised {error_kind(err)}.") from None
    rtol, atol = tolerance(torch.float32, loose=loose)
    assert_close(actual, expected, question, name=result, rtol=rtol, atol=atol, context="On float64 inputs")


DEVICE_FAULTS = (  # what PyTorch says when code mixes devices or copies data off the meta device (lower case)
    "expected device", "same device", "two devices", "cannot copy out of meta tensor", "meta and cpu",
    "cpu and meta",
)


def _tensor_devices(value, depth: int = 0) -> set[str]:
    """The device types of every tensor in ``value`` (lists, tuples and dicts searched; a MetaTensor record
    from the grader's wire counts as a tensor on ``meta``)."""
    if depth > 6:
        return set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_tensor_devices(v, depth + 1) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_tensor_devices(v, depth + 1) for v in value.values())) if value else set()
    device = getattr(value, "device", None)
    return {device.type} if isinstance(device, torch.device) and hasattr(value, "shape") else set()


def _device_fault(err: BaseException) -> bool:
    """Whether an exception says that tensors of two devices met, or that data was copied off the meta device
    (a sandboxed student's exception carries its text as ``message``)."""
    text = f"{getattr(err, 'message', '')} {err}".lower()
    return any(fault in text for fault in DEVICE_FAULTS)


def _runs_cleanly(run) -> bool:
    try:
        run()
    except Exception:  # noqa: BLE001 - any failure: the course's function given these helpers cannot run here
        return False
    return True


def assert_follows_device(run, name: str, what: str = "its inputs", kept: str = "", course=None) -> None:
    """``run()`` calls the student's code with ``what`` (its input tensors, the model) on PyTorch's ``meta``
    device (shapes without data); ``kept`` names what stays on the CPU, as in the notebook (alphas_cumprod, a
    DDPM schedule). Code that follows the device of its inputs and model runs there and returns meta tensors;
    code that hard-codes ``device="cpu"``, calls ``.cpu()`` or draws ``torch.randn(shape)`` without a device
    mixes devices and raises — on a CPU, where every other check passes, as on a GPU. Other errors (an
    operation that needs data, such as ``.item()``) are not the device's fault: the check then says nothing.
    ``course``: the course's function run the same way (where the reference is installed, see
    ``fixtures.course_call``). The fault is the function's own only when the course's runs cleanly: with the
    course's helpers it always does; when the grader binds the student's helpers into the course's functions
    (to find out whose mistake a failure is) and the course's function fails too, the fault lies in a helper,
    whose own check says so, and this check passes. The student's own message is never shown, only the
    exception's type. Inside :func:`sharing_device_verdicts`, a function already judged is not run again."""
    verdicts = _DEVICE_VERDICTS.get()
    if verdicts is not None and name in verdicts:
        verdict = verdicts[name]
    else:
        verdict = _device_verdict(run, name, what, kept, course)
        if verdicts is not None:
            verdicts[name] = verdict
    if verdict is not None:
        raise AssertionError(verdict)


def _device_verdict(run, name: str, what: str, kept: str, course) -> str | None:
    """:func:`assert_follows_device`'s judgement: None if ``run`` follows the device, else the failure's message."""
    question = (f"Does {name} follow the device of {what}, with no hard-coded device='cpu', .cpu() or "
                "torch.randn(...) without device= inside?")
    setting = f"With {what} on another device (PyTorch's meta device{f'; {kept} left on the CPU' if kept else ''})"
    fix = ("Follow the device of the inputs/model: create tensors with device=x.device (or torch.randn_like(x)) "
           "and move what you make with .to(x.device).")
    try:
        result = run()
    except Exception as err:  # noqa: BLE001 - sorted below; a stub never gets here (its check failed before)
        if _device_fault(err) and (course is None or _runs_cleanly(course)):
            return (f"{question} {setting}, it raised {error_kind(err)}: it mixed tensors of two devices or copied "
                    f"one to the CPU. {fix}")
        return None
    devices = _tensor_devices(result)
    if devices <= {"meta"}:
        return None
    return f"{question} {setting}, it returned a tensor on {', '.join(sorted(devices - {'meta'}))}. {fix}"


def fit_coefficients(y: torch.Tensor, *bases: torch.Tensor) -> list[float]:
    """Least-squares coefficients c with y ≈ Σ c_i·bases[i] (float64): what a wrong formula actually did.

    E.g. ``fit_coefficients(xt, x0, noise)`` → [0.19, 0.98] tells that x_t ≈ 0.19·x0 + 0.98·ε.
    """
    A = torch.stack([b.detach().to("cpu", torch.float64).flatten() for b in bases], dim=1)
    target = y.detach().to("cpu", torch.float64).flatten().unsqueeze(1)
    return [float(c) for c in torch.linalg.lstsq(A, target).solution.flatten()]


def linear_form(actual, bases: dict) -> str:
    """``, your result ≈ 1.43·x_t − 1.02·ε̂`` when ``actual`` is (nearly) a linear mix of ``bases``, else ``""``."""
    ref_tensor = next(iter(bases.values()))
    if tensor_problem(actual, ref_tensor, check_dtype=False) is not None:
        return ""
    coeffs = fit_coefficients(actual, *bases.values())
    fitted = sum(c * b.double() for c, b in zip(coeffs, bases.values()))
    if float((actual.double() - fitted).abs().max()) > 1e-3 * max(float(actual.abs().max()), 1.0):
        return ""
    terms = " ".join(f"{'−' if c < 0 else '+'} {abs(c):.3g}·{n}" for c, n in zip(coeffs, bases))
    return f", your result ≈ {terms.lstrip('+ ')}"


def fmt(values, digits: int = 3) -> str:
    """Numbers for a message: ``0.194, 0.981`` (a list) or ``0.194`` (one)."""
    if isinstance(values, (list, tuple)):
        return ", ".join(f"{v:.{digits}g}" for v in values)
    return f"{values:.{digits}g}"


@contextlib.contextmanager
def quiet():
    """Nothing reaches stderr inside: warnings ignored, log records below ERROR dropped, ``sys.stderr`` swallowed.

    nbgrader gives a graded cell 0 points when anything is printed to stderr, so every check runs the
    student's code and the reference inside this. Everything is restored on exit; exceptions pass through.
    """
    # logging.disable, not each library logger set to ERROR: diffusers sets its logger to WARNING the first time
    # it is used, which may be inside a check (a warning then reached its handler, bound to the real stderr),
    # and restoring a saved level undid that configuration. Inside another quiet() this changes nothing.
    previous = logging.root.manager.disable
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if previous < logging.WARNING:
            logging.disable(logging.WARNING)
        try:
            yield
        finally:
            if previous < logging.WARNING:
                logging.disable(previous)


@contextlib.contextmanager
def one_thread():
    """Run torch on one CPU thread inside (restored on exit): for the checks' tiny models one thread is
    faster than several, and it does not fight other processes for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def public_check(check):
    """Decorator for ``check_<name>(student_obj, *, seed=0)``: runs it :func:`quiet` and on :func:`one_thread`.

    ``seed`` 0 gives the inputs the notebooks show; another seed the same check on other inputs (hidden runs).
    """

    @functools.wraps(check)
    def run(student_obj, *, seed: int = 0) -> None:
        from fwd_kit.expected import running

        with running(check.__name__, seed), quiet(), one_thread():
            check(student_obj, seed=seed)

    return run


def passed(message: str) -> None:
    """Print the one success line of a check on stdout: ``✓ forward: shape, scaling and noise look right``."""
    print(f"\u2713 {message}")
