"""Expected values of the public checks: computed by the instructors' reference, stored as data in the kit.

The public checks (:mod:`fwd_kit.checks`) compare a student's output with what the course's reference
implementation gives on the same inputs. The reference itself never ships to students, so a check
reaches it through :func:`reference`, a stand-in for a module of the instructors' ``reference`` package:

- **live** — where ``reference`` is installed (the instructors' machine, the grader, ``course release``)
  a call runs the real function; while :func:`recording` is active its result is also kept;
- **replay** — in the student kit, a call returns the result ``course release`` stored for the same
  inputs, found by the inputs' fingerprint (shapes, dtypes and weighted sums of every tensor, the
  state of every generator, the other arguments as they are). Only the notebooks' own inputs (check
  seed 0) are stored; a check run on other inputs says that those are the graders'.
- **cached** — the grader's mode: a stored result when there is one (the grader's own file also holds
  the hidden seeds' results, see ``autograder.expectations``), else the live reference.

The stored file ``data/expectations.safetensors`` holds the results as tensors and, in its metadata, a
manifest: for every check the calls in the order they were made (label, fingerprint, result), and how
they were made (torch version, device, dtype, the fixtures' model fingerprint). Tolerances are the
checks' own (``fwd_kit.checks.compare``): the stored values are compared exactly as live ones would be.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import json
import math
from pathlib import Path

import torch
import torch.nn as nn

EXPECTATIONS = Path(__file__).resolve().parent / "data" / "expectations.safetensors"
FORMAT = 1  # version of the manifest's layout
REL_TOL, ABS_TOL = 1e-5, 1e-6  # how close two fingerprints' numbers must be to name the same input


class HiddenInputsError(RuntimeError):
    """A check was asked for inputs whose expected values only the graders have."""


class MissingExpectation(RuntimeError):
    """The kit holds no stored result for a reference call (the check's inputs differ from the stored ones)."""


# ---------------------------------------------------------------------------------------------------
# Where the checks stand: which check runs, live or replay, recording or not

_state = {"check": None, "seed": 0, "force": None, "tape": None, "stored": None, "record_seeds": (0,),
          "hits": 0, "misses": 0}
_MISSING = object()


def live() -> bool:
    """True where the instructors' ``reference`` package is importable (unless a test forces a mode)."""
    if _state["force"] is not None:
        return _state["force"] in ("live", "cached")
    return _reference_installed()


def tape_key(check: str, seed: int) -> str:
    """Where a check's calls are stored: its name at seed 0 (the kit's), ``name@seed`` otherwise."""
    return check if seed == 0 else f"{check}@{seed}"


@functools.lru_cache(maxsize=1)
def _reference_installed() -> bool:
    try:
        return importlib.util.find_spec("reference") is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def running(check: str, seed: int):
    """While inside, reference calls belong to ``check`` at ``seed`` (set by ``public_check``)."""
    if seed != 0 and not live():
        raise HiddenInputsError(
            f"{check}(..., seed={seed}) would run on hidden inputs, whose expected values only the graders "
            f"have. In your notebook, call {check} without a seed.")
    previous = _state["check"], _state["seed"]
    _state["check"], _state["seed"] = check, seed
    try:
        yield
    finally:
        _state["check"], _state["seed"] = previous


@contextlib.contextmanager
def forced(mode: str, stored: dict | None = None):
    """Force ``"live"``, ``"replay"`` or ``"cached"`` (tests, ``course release``, the grader); ``stored``
    replaces the kit's file."""
    if mode not in ("live", "replay", "cached"):
        raise ValueError(f"mode must be 'live', 'replay' or 'cached', but got {mode!r}.")
    previous = _state["force"], _state["stored"]
    _state["force"] = mode
    if stored is not None:
        _state["stored"] = stored
    try:
        yield
    finally:
        _state["force"], _state["stored"] = previous


@contextlib.contextmanager
def recording(seeds=(0,)):
    """Run live and keep every reference call of a check run at one of ``seeds``; yields the tape
    {tape_key(check, seed): [entries]}."""
    tape: dict[str, list] = {}
    _state["record_seeds"] = tuple(seeds)
    previous = _state["tape"]
    _state["tape"] = tape
    try:
        with forced("live"):
            yield tape
    finally:
        _state["tape"], _state["record_seeds"] = previous, (0,)


# ---------------------------------------------------------------------------------------------------
# Fingerprints of a call's inputs


def fingerprint(value, depth: int = 0):
    """A JSON-able summary of ``value`` that tells the checks' inputs apart (see the module docstring)."""
    if depth > 12:
        raise ValueError("arguments nested too deeply to fingerprint")
    if isinstance(value, ReferenceFunction):
        return ["R", value.label]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return ["f", value]
    if isinstance(value, torch.Tensor):
        x = value.detach().to("cpu", torch.float64).reshape(-1)
        w = torch.linspace(1.0, 2.0, x.numel(), dtype=torch.float64) if x.numel() else x
        return ["T", list(value.shape), str(value.dtype).replace("torch.", ""), float(x.sum()), float(x.abs().sum()),
                float((x * w).sum())]
    if isinstance(value, torch.Generator):
        return ["G", hashlib.sha1(value.get_state().numpy().tobytes()).hexdigest()]
    if isinstance(value, (list, tuple)):
        return ["L", [fingerprint(v, depth + 1) for v in value]]
    if isinstance(value, dict):
        return ["D", {str(k): fingerprint(v, depth + 1) for k, v in value.items()}]
    if isinstance(value, (torch.dtype, torch.device)):
        return ["S", str(value)]
    if isinstance(value, nn.Module):
        return ["M", type(value).__name__, [fingerprint(t, depth + 1) for t in value.state_dict().values()]]
    if hasattr(value, "config") and type(value).__module__.startswith("diffusers.schedulers"):
        # the variance type tells DeepFloyd's learned-range scheduler from the fixed-variance one of the checks
        return ["C", type(value).__name__, len(value.alphas_cumprod), str(value.config.get("variance_type"))]
    if isinstance(value, functools.partial):
        return ["P", getattr(value.func, "__name__", repr(value.func)), fingerprint(list(value.args), depth + 1),
                fingerprint(dict(value.keywords), depth + 1)]
    if callable(value):
        return ["F", f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', type(value).__name__)}"]
    raise TypeError(f"cannot fingerprint a {type(value).__name__}")


def same(a, b) -> bool:
    """Two fingerprints name the same input: equal structure, numbers within REL_TOL / ABS_TOL."""
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or isinstance(a, bool):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= ABS_TOL + REL_TOL * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# ---------------------------------------------------------------------------------------------------
# The stand-ins the checks call


class ReferenceFunction:
    """``reference.<module>.<name>`` seen from a check: runs it live, or replays its stored result."""

    def __init__(self, module: str, name: str, compute=None):
        self.module, self.name = module, name
        self.label = f"{module}.{name}"
        self._compute = compute  # for computed(): the instructors' function that uses the reference

    def __repr__(self) -> str:
        return f"<reference {self.label}>"

    def target(self):
        """The real object (live mode only)."""
        if self._compute is not None:
            return self._compute
        return getattr(importlib.import_module(f"reference.{self.module}"), self.name)

    def __call__(self, *args, **kwargs):
        key = fingerprint([list(args), dict(sorted(kwargs.items()))])
        if not live():
            return _replay(self.label, key)
        if _state["force"] == "cached":
            found = _lookup(self.label, key)
            if found is not _MISSING:
                _state["hits"] += 1
                return found
            _state["misses"] += 1
        result = self.target()(*_unwrap(args), **_unwrap(kwargs))
        tape = _state["tape"]
        if tape is not None and _state["check"] is not None and _state["seed"] in _state["record_seeds"]:
            entries = tape.setdefault(tape_key(_state["check"], _state["seed"]), [])
            if not any(e["label"] == self.label and same(e["key"], key) for e in entries):
                entries.append({"label": self.label, "key": key, "result": _detach(result)})
        return result


class ReferenceModule:
    """A module of the instructors' ``reference`` package, seen from a check (attributes are functions)."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> ReferenceFunction:
        if name.startswith("__"):
            raise AttributeError(name)
        return ReferenceFunction(self._module, name)

    def __repr__(self) -> str:
        return f"<reference module {self._module}>"


def reference(module: str) -> ReferenceModule:
    """The stand-in of ``reference.<module>`` that the checks call (``ref = reference("denoise")``)."""
    return ReferenceModule(module)


def alternatives_wanted(passed: bool) -> bool:
    """Whether a check should compute the reference's results for known mistakes: when the student's result
    was wrong, and always while recording (so that the kit holds them for students who need them)."""
    return not passed or _state["tape"] is not None


def computed(label: str):
    """Decorator: a check's helper that computes expected values with the reference (live) is stored and
    replayed as one call, e.g. a reference network's output, parameter count and weights."""

    def wrap(fn):
        return functools.wraps(fn)(ReferenceFunction("computed", label, compute=fn))

    return wrap


def _unwrap(value):
    if isinstance(value, ReferenceFunction):
        return value.target()
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _detach(value):
    """A copy of a result to store: tensors detached and cloned on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------------
# The stored file


def save(tape: dict, path: str | Path, manifest: dict) -> Path:
    """Write ``tape`` (from :func:`recording`) and ``manifest`` to a safetensors file."""
    from safetensors.torch import save_file

    from fwd_kit.grading.wire import Encoder

    encoder = Encoder(prefix="e")
    checks = {name: [{"label": e["label"], "key": e["key"], "result": encoder.encode(e["result"])} for e in entries]
              for name, entries in sorted(tape.items())}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": str(FORMAT), "manifest": json.dumps(manifest, sort_keys=True),
            "checks": json.dumps(checks, allow_nan=True)}  # key order matters: a node's kind comes first
    save_file(encoder.tensors or {"empty": torch.zeros(0)}, str(path), metadata=meta)
    return path


def load(path: str | Path = EXPECTATIONS) -> dict:
    """``{"manifest": {...}, "checks": {check: [entries]}, "tensors": {...}}`` from a stored file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MissingExpectation(f"The kit's expected values are missing ({path}): reinstall the course kit.")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != str(FORMAT):
        raise MissingExpectation(f"{path} has format {meta.get('format')!r}, this kit reads {FORMAT}: reinstall the kit.")
    return {"manifest": json.loads(meta["manifest"]), "checks": json.loads(meta["checks"]), "tensors": tensors}


def counts() -> dict:
    """How many reference calls the cached mode answered from the stored file, and how many it computed."""
    return {"hits": _state["hits"], "misses": _state["misses"]}


def _stored() -> dict:
    if _state["stored"] is None:
        _state["stored"] = load()
    return _state["stored"]


def _lookup(label: str, key):
    """The stored result of ``label`` on inputs ``key`` in the running check, or _MISSING."""
    from fwd_kit.grading.wire import Decoder

    stored = _stored()
    for entry in stored["checks"].get(tape_key(_state["check"], _state["seed"]), []):
        if entry["label"] == label and same(entry["key"], key):
            return Decoder(stored["tensors"]).decode(entry["result"])
    return _MISSING


def _replay(label: str, key):
    check = _state["check"]
    if check is None:
        raise MissingExpectation(f"reference.{label} is not in the kit: it is called only inside a public check.")
    found = _lookup(label, key)
    if found is not _MISSING:
        return found
    manifest = _stored()["manifest"]
    raise MissingExpectation(
        f"{check}: the kit holds no expected value of {label} for these inputs. The check's inputs are made "
        f"afresh on your machine (torch {torch.__version__}); the stored ones were made with torch "
        f"{manifest.get('torch')} on {manifest.get('device')}. If the inputs differ, tell your instructors.")
