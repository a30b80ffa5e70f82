"""Stand-ins, on the grader's side, for the functions and classes a student wrote, which live in a sandboxed
process (:mod:`autograder.sandbox`).

The checks of :mod:`fwd_kit.checks` and :mod:`autograder.semantic` take the student's function or class
and call it. Given a :class:`RemoteFunction` or :class:`RemoteClass` instead, every call is sent to the
student's process with its arguments (tensors, numbers, generators, the checks' models — see
:mod:`fwd_kit.grading.wire`), runs there, and only data comes back. The reference runs here, in the trusted
process, and so does every comparison.

What the student's code did to the models it was given comes back too: every call of a model that a
check records (a diffusers UNet with a recording hook, a :class:`~fwd_kit.checks.fixtures.Probe`) is replayed
on the grader's copy of the model with the same inputs and mode, so the checks read what they would have
read in one process. Generators come back in the state the student's code left them.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict

import torch
import torch.nn as nn

from fwd_kit.grading.wire import Decoder, Encoder


class StudentError(Exception):
    """The student's code raised: ``kind`` is the exception's type name, ``lines`` the student's own traceback."""

    def __init__(self, kind: str, message: str, lines: list[str] | None = None):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind, self.message, self.lines = kind, message, list(lines or [])


class StudentNotImplemented(StudentError, NotImplementedError):
    """The student's function still raises ``NotImplementedError`` (the stub)."""


class SandboxFailure(Exception):
    """The student's process did not answer: it timed out, was killed, exited, or sent something invalid."""


def _records_calls(module: nn.Module) -> bool:
    """Whether a check reads what ``module`` was called with (hooks on it, or a recording stand-in)."""
    return bool(module._forward_pre_hooks or module._forward_hooks or hasattr(module, "calls"))


MAX_REPLAYED_CALLS = 4096  # recorded model calls replayed after one call of the student's code
MAX_REPLAYED_MB = 32  # megabytes of tensors those calls may refer to (a tensor counts once per reference)
MAX_REPLAY_S = 300.0  # seconds the grader spends replaying them


def _tensor_bytes(node, tensors: dict, depth: int = 0) -> int:
    """Bytes of the tensors a wire node refers to, each reference counted (what replaying it costs)."""
    if depth > 32 or not isinstance(node, (dict, list)):
        return 0
    if isinstance(node, list):
        return sum(_tensor_bytes(n, tensors, depth + 1) for n in node)
    key = node.get("tensor")
    if isinstance(key, str) and len(node) <= 2:
        t = tensors.get(key)
        return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0
    return sum(_tensor_bytes(n, tensors, depth + 1) for n in node.values())


def check_replay_budget(calls, tensors: dict) -> None:
    """Refuse recorded calls that would cost the grader more than the caps above to replay."""
    if not isinstance(calls, dict) or not all(isinstance(r, list) for r in calls.values()):
        raise SandboxFailure("the student's process sent recorded calls the grader cannot read")
    count = sum(len(records) for records in calls.values())
    if count > MAX_REPLAYED_CALLS:
        raise SandboxFailure(f"your code called the models it was given {count} times; the grader replays at most "
                             f"{MAX_REPLAYED_CALLS}")
    size = sum(_tensor_bytes(r, tensors) for records in calls.values() for r in records)
    if size > MAX_REPLAYED_MB * 2**20:
        raise SandboxFailure(f"your code's calls of the models it was given carry {size / 2**20:.0f} MB of tensors; "
                             f"the grader replays at most {MAX_REPLAYED_MB} MB")


def _hooks_only(module: nn.Module) -> bool:
    """Whether replaying a call of ``module`` needs only its forward pre-hooks: no hook reads the output, it
    records nothing itself, and its forward changes no buffer (no batch-norm running statistics)."""
    return not (module._forward_hooks or hasattr(module, "calls")
                or any(name.endswith("running_mean") for name, _ in module.named_buffers()))


def _skip_forward(*args, **kwargs) -> None:
    return None


def _replay(module: nn.Module, records: list[dict], final_training: bool, deadline: float) -> None:
    """Call ``module`` as the student's code called its twin, so that hooks and recorders see the same inputs.

    Where only forward pre-hooks read the call (:func:`_hooks_only`: a UNet a check records), the call goes
    through ``module.__call__`` with the forward itself skipped: the hooks see the same (module, args,
    kwargs), and the grader does not run the model a second time for nothing (a third of Part A's checks).
    """
    skip = _hooks_only(module)
    with torch.no_grad():
        for record in records:
            if time.monotonic() > deadline:
                raise SandboxFailure(f"replaying your code's model calls took longer than {MAX_REPLAY_S:g} s")
            module.train(record["training"])
            if skip:
                module.forward = _skip_forward  # an instance attribute: __call__ runs the hooks, then this
            try:
                module(*record["args"], **record["kwargs"])
            finally:
                if skip:
                    del module.forward
    module.train(final_training)


class Channel:
    """What the proxies need from a sandbox: ``request(message, tensors) -> (reply, tensors)``."""

    def request(self, message: dict, tensors: dict) -> tuple[dict, dict]:  # pragma: no cover - interface
        raise NotImplementedError


def _call(channel, message: dict, args: tuple, kwargs: dict):
    """Send one operation with arguments; decode the result; replay recorded model calls; update generators.
    Whatever the reply holds, a failure to read it is a :class:`SandboxFailure` (never the grader's crash)."""
    encoder = Encoder()
    message = dict(message, args=encoder.encode(list(args)), kwargs=encoder.encode(dict(kwargs)),
                   modules=encoder.modules,
                   record=[mid for mid, m in encoder.sent_modules.items() if _records_calls(m)])
    reply, tensors = channel.request(message, encoder.tensors)
    try:
        if not reply.get("ok"):
            error = reply.get("error") or {}
            kind, text = str(error.get("type", "Error"))[:200], str(error.get("message", ""))[:2000]
            lines = [str(line)[:500] for line in list(error.get("traceback") or [])[:40]]
        else:
            kind = None
    except Exception as err:  # noqa: BLE001 - a reply of another shape
        raise SandboxFailure(f"the student's process sent a reply the grader cannot read ({type(err).__name__})") \
            from None
    if kind is not None:
        cls = StudentNotImplemented if kind == "NotImplementedError" else StudentError
        raise cls(kind, text, lines)
    try:
        decoder = Decoder(tensors, allow_objects=False)
        calls = reply.get("calls") or {}
        check_replay_budget(calls, tensors)
        deadline = time.monotonic() + MAX_REPLAY_S
        result = decoder.decode(reply["result"])
        for module_id, records in calls.items():
            module = encoder.sent_modules[module_id]
            for r in records:  # one record at a time: the decoded tensors of all records never coexist
                _replay(module, [dict(args=decoder.decode(r["args"]), kwargs=decoder.decode(r["kwargs"]),
                                      training=bool(r["training"]))], module.training, deadline)
            module.train(bool(reply.get("training", {}).get(module_id, module.training)))
        for key, state_key in (reply.get("generators") or {}).items():
            encoder.generators[key].set_state(decoder.tensor(state_key).to(torch.uint8))
    except (SandboxFailure, AssertionError):  # an assertion: a check's recorder judging a replayed call
        raise
    except Exception as err:  # noqa: BLE001 - nesting too deep, wrong types, sizes, anything: the reply's fault
        raise SandboxFailure(f"the student's process sent a reply the grader cannot read ({type(err).__name__})") \
            from None
    return reply, result


def _copy_back(original, after, depth: int = 0) -> None:
    """Write the final values ``after`` (from the student's process) into the grader's tensors ``original``."""
    if depth > 6:
        return
    if isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
        with torch.no_grad():
            try:
                if original.shape != after.shape:
                    original.resize_(after.shape)
                if not torch.equal(original, after.to(original.dtype)):
                    original.copy_(after)
            except RuntimeError:  # a tensor that cannot be written (e.g. a leaf that requires grad): leave it
                pass
    elif isinstance(original, (list, tuple)) and isinstance(after, list):
        for o, a in zip(original, after):
            _copy_back(o, a, depth + 1)
    elif isinstance(original, dict) and isinstance(after, dict):
        for key, value in original.items():
            if str(key) in after:
                _copy_back(value, after[str(key)], depth + 1)


def _call_copying_back(channel, message: dict, args: tuple, kwargs: dict):
    """:func:`_call`, after which the tensor arguments hold the values the student's code left in them (an
    in-place write shows, as it would in the notebook: :func:`fwd_kit.checks.compare.call_student`)."""
    _, result = _call(channel, dict(message, copy_back=True), args, kwargs)
    if not (isinstance(result, list) and len(result) == 3):
        raise SandboxFailure("the student's process sent a reply the grader cannot read")
    value, args_after, kwargs_after = result
    _copy_back(list(args), args_after)
    _copy_back(dict(kwargs), kwargs_after)
    return value


def shield(channel, names) -> None:
    """Give the notebook's ``names`` copies of their tensor arguments from now on (``op_shield`` of
    :mod:`fwd_kit.grading.child`)."""
    _call(channel, {"op": "shield", "names": sorted(names)}, (), {})


class RemoteFunction:
    """The student's function ``name``: calling it runs it in the sandbox and returns what it returned; its
    tensor arguments then hold what the student's code left in them."""

    def __init__(self, channel, name: str):
        self._channel, self.__name__ = channel, name

    def __call__(self, *args, **kwargs):
        return _call_copying_back(self._channel, {"op": "call", "name": self.__name__}, args, kwargs)

    def __repr__(self) -> str:
        return f"<student function {self.__name__}>"


class RemoteObject:
    """Something the student's class made that is not an ``nn.Module``: only its type name is known."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


RemoteObject.__name__ = "RemoteObject"


class RemoteClass:
    """The student's class ``name``: calling it builds an instance in the sandbox (a :class:`RemoteModule`)."""

    def __init__(self, channel, name: str):
        self._channel, self.__name__ = channel, name
        self._signature = None

    @property
    def __signature__(self) -> inspect.Signature:
        if self._signature is None:
            reply, params = _call(self._channel, {"op": "signature", "name": self.__name__}, (), {})
            try:
                self._signature = inspect.Signature([
                    inspect.Parameter(str(name), getattr(inspect.Parameter, str(kind)),
                                      **({"default": None} if has_default else {}))
                    for name, kind, has_default in params])
            except (TypeError, ValueError, AttributeError):
                raise SandboxFailure(f"the signature of {self.__name__} could not be read") from None
        return self._signature

    def __call__(self, *args, **kwargs):
        reply, info = _call(self._channel, {"op": "new", "name": self.__name__}, args, kwargs)
        if not info.get("is_module"):
            return RemoteObject(info.get("type", "object"))
        return RemoteModule(self._channel, info)

    def __repr__(self) -> str:
        return f"<student class {self.__name__}>"


class _Mirror(nn.Module):
    """A submodule of a :class:`RemoteModule`'s mirror: meta parameters and buffers of the right names, shapes
    and dtypes, so that a module of the grader holding a RemoteModule counts, names and loads its weights."""

    def _load_from_state_dict(self, *args, **kwargs):
        import warnings

        with warnings.catch_warnings():  # loading into meta tensors is a no-op: only names and shapes are checked
            warnings.simplefilter("ignore")
            super()._load_from_state_dict(*args, **kwargs)


class RemoteModule(nn.Module):
    """An instance of a student's ``nn.Module`` class, living in the sandbox.

    Supports what the checks use: calling it (``forward``; in-place writes to its arguments show), ``train``
    / ``eval``, ``parameters`` (a mirror of meta tensors: structure only), ``state_dict`` (the values, read
    from the sandbox) and ``load_state_dict`` (sent there) — also as a submodule of a module of the grader's.
    """

    def __init__(self, channel, info: dict):
        super().__init__()
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_info", info)
        object.__setattr__(self, "_handle", info["handle"])
        self.training = bool(info.get("training", True))
        object.__setattr__(self, "type_name", info.get("type", "Module"))
        self._mirror(info)

    def _mirror(self, info: dict) -> None:
        from fwd_kit.grading.wire import dtype_from_name

        params = {str(entry[0]) for entry in info.get("params", [])}
        try:
            for name, shape, dtype in info.get("state", []):
                *path, leaf = str(name).split(".")
                owner = self
                for part in path:
                    if part not in owner._modules:
                        owner.add_module(part, _Mirror())
                    owner = owner._modules[part]
                tensor = torch.empty([int(n) for n in shape], dtype=dtype_from_name(str(dtype)), device="meta")
                if name in params:
                    owner.register_parameter(leaf, nn.Parameter(tensor, requires_grad=False))
                else:
                    owner.register_buffer(leaf, tensor)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError):
            self._modules.clear()  # names nn.Module refuses: no mirror (counts and names then differ)
            self._parameters.clear()
            self._buffers.clear()

    def _method(self, method: str, *args, **kwargs):
        reply, result = _call(self._channel, {"op": "method", "handle": self._handle, "method": method}, args, kwargs)
        if reply.get("info"):
            object.__setattr__(self, "_info", dict(self._info, **reply["info"]))
        return result

    def forward(self, *args, **kwargs):
        return _call_copying_back(self._channel, {"op": "method", "handle": self._handle, "method": "forward"},
                                  args, kwargs)

    def train(self, mode: bool = True):
        self._method("train", bool(mode))
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        values = self._method("state_dict")
        if not isinstance(values, dict):
            raise SandboxFailure("the student's module sent a state_dict the grader cannot read")
        destination = OrderedDict() if destination is None else destination
        for key, value in values.items():
            destination[prefix + str(key)] = value
        return destination

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        mine = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        try:
            self._method("load_state_dict", mine, strict=False)
        except StudentError as err:
            error_msgs.append(f"{self.type_name}: {err}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        try:
            return self._method("load_state_dict", dict(state_dict), strict=strict)
        except StudentError as err:
            if err.kind == "RuntimeError":
                raise RuntimeError(err.message) from None
            raise

    def __repr__(self) -> str:
        return f"<student {self.type_name} instance>"
