"""The student's process: runs the solution cells of one submission and answers the grader's requests.

Started by :class:`autograder.sandbox.Sandbox` (inside bubblewrap where the machine allows, see
:mod:`autograder.isolation`) with ``SCRATCH READ_FD WRITE_FD``: a scrubbed environment, ``SCRATCH`` as its
working directory and only writable folder, stdout/stderr going to a file the grader holds. The first
message on ``READ_FD`` is the configuration (cells, limits, roots, the kernel layers to install). It
imports what the checks' models need, refuses the instructors' packages, runs the assignment's own import
lines (trusted, from the released notebook), then hardens itself — limits, Landlock, seccomp, an audit hook,
no way back — before any student code runs (:mod:`fwd_kit.grading.harden`).

Then it loads each solution cell when asked (so that a cell that loops forever is found and skipped)
and serves calls: ``call`` a function, ``new`` an instance of a class, ``method`` on an instance,
``signature`` of a callable. Arguments and results travel as :mod:`fwd_kit.grading.wire` nodes; their
tensors cross the pipes as safetensors bytes after the JSON (nothing is read back from files the student's
code could write); only tensors on the CPU, the shapes of tensors on the meta device and plain data go back.

A message on the pipes: an 8-byte big-endian length and UTF-8 JSON, then an 8-byte length and the
tensors' safetensors bytes (length 0: none).
"""

from __future__ import annotations

import inspect
import json
import os
import struct
import sys
import threading
import traceback

from fwd_kit.grading.harden import harden, refuse_instructor_packages

HEADER = struct.Struct(">Q")
MAX_MESSAGE = 16 * 1024 * 1024  # bytes of JSON in one message
MAX_CONFIG = 256 * 1024 * 1024  # bytes of the first message (the cells' sources)
MAX_REQUEST_TENSORS = 4 * 1024 ** 3  # bytes of tensors in one request from the grader
PARENT = [os.getppid()]  # the process that started this one, read before anything else runs
CELL_PREFIX = "<solution cell "  # filename of compiled solution cells, to pick the student's traceback lines


# ---------------------------------------------------------------------------------------------------
# Messages


def read_message(fd: int, limit: int = MAX_MESSAGE, blob_limit: int = MAX_REQUEST_TENSORS):
    """``(message, tensor bytes)`` from ``fd``, or None at end of file."""
    body = _read_frame(fd, limit)
    blob = _read_frame(fd, blob_limit) if body is not None else None
    if blob is None:
        return None
    return json.loads(body.decode("utf-8")), blob


def _read_frame(fd: int, limit: int) -> bytes | None:
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise ValueError(f"message of {size} bytes is larger than {limit}")
    return _read_exactly(fd, size)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def encode_message(message: dict, blob: bytes = b"") -> bytes:
    body = json.dumps(message).encode("utf-8")
    return HEADER.pack(len(body)) + body + HEADER.pack(len(blob)) + blob


def write_message(fd: int, message: dict, blob: bytes = b"") -> None:
    write_all(fd, encode_message(message, blob))


# ---------------------------------------------------------------------------------------------------
# Running the student's code


def student_traceback(exc: BaseException, sources: dict[str, list[str]]) -> list[str]:
    """The traceback lines that point into solution cells: ``cell forward, line 4: x = ...``."""
    lines = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(CELL_PREFIX):
            cell = frame.filename[len(CELL_PREFIX):].rstrip(">")
            text = sources.get(frame.filename, [])
            code = text[frame.lineno - 1].strip() if frame.lineno and 0 < frame.lineno <= len(text) else ""
            lines.append(f"cell {cell}, line {frame.lineno}, in {frame.name}: {code}")
    return lines[-12:]


def error_reply(exc: BaseException, sources) -> dict:
    kind = type(exc).__name__
    message = str(exc)
    if isinstance(exc, SystemExit):
        message = f"the code called sys.exit({exc.code!r})"
    return {"ok": False, "error": {"type": kind, "message": message[:2000], "traceback": student_traceback(exc, sources)}}


def check_cpu_tensors(value, path: str = "the result") -> None:
    """Refuse results that hold tensors off the CPU (the grader's inputs are on the CPU, or on the meta
    device, which holds no data, for the device check)."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.device.type not in ("cpu", "meta"):
            raise ValueError(f"{path} is a tensor on {value.device}, but the inputs were on cpu: keep results on "
                             "the inputs' device")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_cpu_tensors(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_cpu_tensors(v, f"{path}[{k!r}]")


def tensors_in(value, depth: int = 0):
    """``value`` with every tensor kept and everything else None (lists, tuples and dicts followed 6 deep)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach() if value.device.type == "cpu" else None
    if depth < 6 and isinstance(value, (list, tuple)):
        return [tensors_in(v, depth + 1) for v in value]
    if depth < 6 and isinstance(value, dict):
        return {str(k): tensors_in(v, depth + 1) for k, v in value.items()}
    return None


def copies(value, depth: int = 0):
    """``value`` with every tensor cloned (lists, tuples and dicts followed 6 deep)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.clone()
    if depth < 6 and isinstance(value, (list, tuple)):
        return type(value)(copies(v, depth + 1) for v in value) if type(value) in (list, tuple) else value
    if depth < 6 and isinstance(value, dict):
        return {k: copies(v, depth + 1) for k, v in value.items()}
    return value


def shielded(obj):
    """``obj`` (a function, or an ``nn.Module`` class) called with copies of its tensor arguments."""
    import functools

    import torch.nn as nn

    if isinstance(obj, type) and issubclass(obj, nn.Module):
        def __call__(self, *args, **kwargs):
            return obj.__call__(self, *copies(args), **copies(kwargs))

        return type(obj.__name__, (obj,), {"__call__": __call__, "__module__": obj.__module__,
                                           "__qualname__": obj.__qualname__})
    if callable(obj) and not isinstance(obj, type):
        @functools.wraps(obj)
        def call(*args, **kwargs):
            return obj(*copies(args), **copies(kwargs))

        return call
    return obj


class Server:
    """The request loop of the student's process."""

    def __init__(self, scratch: str, config: dict):
        self.scratch = scratch
        self.config = config
        self.namespace: dict = {"__name__": "submission"}
        self.sources: dict[str, list[str]] = {}
        self.remotes: dict[str, object] = {}
        self.request_blob = b""  # the tensors of the request being served
        self.reply_blob = b""  # the tensors of its reply
        self.layers: list[str] = []  # the confinement installed (reported to the grader by "ping")

    # tensors ---------------------------------------------------------------------------------------
    def load_tensors(self) -> dict:
        """The tensors that came with the current request (safetensors bytes after its JSON)."""
        from safetensors.torch import load

        return load(self.request_blob) if self.request_blob else {}

    def save_tensors(self, tensors: dict) -> bool:
        """Keep ``tensors`` to send after the reply's JSON; whether there are any."""
        from safetensors.torch import save

        self.reply_blob = save(tensors) if tensors else b""
        return bool(tensors)

    # operations -----------------------------------------------------------------------------------
    def op_load(self, message: dict) -> dict:
        cell = self.config["cells"][int(message["index"])]
        filename = f"{CELL_PREFIX}{cell['label']}>"
        self.sources[filename] = cell["source"].splitlines()
        exec(compile(cell["source"], filename, "exec"), self.namespace)  # noqa: S102 - the sandbox's purpose
        return {"ok": True, "result": {"v": None}}

    def decode_arguments(self, message: dict):
        from fwd_kit.grading.wire import Decoder, build_module

        tensors = self.load_tensors()
        decoder = Decoder(tensors, remotes=self.remotes)
        modules = {}
        for module_id, recipe in (message.get("modules") or {}).items():
            modules[module_id] = build_module(recipe, decoder)
        decoder.modules = modules
        args = decoder.decode(message["args"])
        kwargs = decoder.decode(message["kwargs"])
        return decoder, modules, args, kwargs

    def run(self, message: dict, target) -> dict:
        """Call ``target(*args, **kwargs)`` with recording on the modules the grader asked for."""
        from fwd_kit.grading.wire import Encoder

        decoder, modules, args, kwargs = self.decode_arguments(message)
        records: dict[str, list] = {mid: [] for mid in message.get("record", []) if mid in modules}
        handles = []
        for module_id, log in records.items():
            def hook(module, a, kw, log=log):
                log.append((a, kw, module.training))
            handles.append(modules[module_id].register_forward_pre_hook(hook, with_kwargs=True))
        try:
            result = target(decoder, *args, **kwargs)
        finally:
            for h in handles:
                h.remove()
        check_cpu_tensors(result)
        if message.get("copy_back"):  # the arguments' tensors after the call: the grader sees in-place writes
            result = [result, tensors_in(list(args)), tensors_in(dict(kwargs))]
        encoder = Encoder(prefix="r")
        reply = {"ok": True, "result": encoder.encode(result)}
        reply["calls"] = {mid: [dict(args=encoder.encode(list(a)), kwargs=encoder.encode(dict(kw)), training=tr)
                                for a, kw, tr in log] for mid, log in records.items()}
        reply["training"] = {mid: bool(m.training) for mid, m in modules.items()}
        reply["generators"] = {key: encoder.tensor_key(g.get_state()) for key, g in decoder.generators.items()}
        reply["tensors"] = self.save_tensors(encoder.tensors)
        return reply

    def lookup(self, name: str):
        if name not in self.namespace:
            raise NameError(f"{name} is not defined in your notebook")
        return self.namespace[name]

    def op_call(self, message: dict) -> dict:
        fn = self.lookup(message["name"])
        if not callable(fn):
            raise TypeError(f"{message['name']} should be a function, but is a {type(fn).__name__}")
        return self.run(message, lambda decoder, *a, **k: fn(*a, **k))

    def module_info(self, handle: str, obj) -> dict:
        return {"handle": handle, "is_module": True, "type": type(obj).__name__, "training": bool(obj.training),
                "params": [[n, list(p.shape), str(p.dtype).replace("torch.", "")] for n, p in obj.named_parameters()],
                "state": [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in obj.state_dict().items()]}

    def op_new(self, message: dict) -> dict:
        import torch
        import torch.nn as nn

        cls = self.lookup(message["name"])
        if not isinstance(cls, type):
            raise TypeError(f"{message['name']} should be a class, but is a {type(cls).__name__}")

        def build(decoder, *a, **k):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                obj = cls(*a, **k)
            if not isinstance(obj, nn.Module):
                return {"is_module": False, "type": type(obj).__name__}
            handle = f"h{len(self.remotes)}"
            self.remotes[handle] = obj
            return self.module_info(handle, obj)

        return self.run(message, build)

    def op_method(self, message: dict) -> dict:
        handle, method = message["handle"], message["method"]
        obj = self.remotes[handle]
        if method not in ("forward", "train", "load_state_dict", "state_dict"):
            raise ValueError(f"method {method!r} is not served")

        def call(decoder, *a, **k):
            if method == "forward":
                return obj(*a, **k)
            if method == "state_dict":
                return {str(key): value.detach() for key, value in obj.state_dict().items()}
            if method == "train":
                obj.train(*a)
                return None
            obj.load_state_dict(*a, **k)
            return None

        reply = self.run(message, call)
        reply["info"] = self.module_info(handle, obj)
        return reply

    def op_signature(self, message: dict) -> dict:
        params = inspect.signature(self.lookup(message["name"])).parameters.values()
        value = [[p.name, p.kind.name, p.default is not inspect.Parameter.empty] for p in params]
        return {"ok": True, "result": {"list": [{"list": [{"v": n}, {"v": k}, {"v": d}]} for n, k, d in value]}}

    def op_ping(self, message: dict) -> dict:
        return {"ok": True, "result": {"v": None}, "layers": self.layers}

    def op_shield(self, message: dict) -> dict:
        """From now on, the notebook's ``names`` receive copies of their tensor arguments: an in-place write
        in a helper no longer reaches its caller (the grader's second look at a composite, where a helper's
        in-place mistake is charged to the helper's own test: :mod:`autograder.charges`)."""
        for name in message.get("names", []):
            if name in self.namespace:
                self.namespace[name] = shielded(self.namespace[name])
        return {"ok": True, "result": {"v": None}}

    def serve(self, read_fd: int, write_fd: int) -> None:
        ops = {"ping": self.op_ping, "load": self.op_load, "call": self.op_call, "new": self.op_new,
               "method": self.op_method, "signature": self.op_signature, "shield": self.op_shield}
        while True:
            received = read_message(read_fd)
            if received is None or received[0].get("op") == "bye":
                return
            message, self.request_blob = received
            self.reply_blob = b""
            threads = set(threading.enumerate())
            try:
                op = ops[message.get("op")]
                reply = op(message)
            except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises is reported
                if isinstance(exc, KeyboardInterrupt):
                    raise
                reply, self.reply_blob = error_reply(exc, self.sources), b""
            leaked = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
            if leaked:  # the grader starts a fresh process before the next request: no test sees them
                reply["leaked_threads"] = len(leaked)
            try:
                data = encode_message(reply, self.reply_blob)
            except (TypeError, ValueError) as exc:  # not JSON-serialisable: report instead
                data = encode_message(error_reply(exc, self.sources))
            self.request_blob = self.reply_blob = b""
            write_all(write_fd, data)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(argv: list[str], forked: bool = False) -> int:
    """Serve the grader: ``argv`` is ``SCRATCH READ_FD WRITE_FD``. ``forked``: this process was forked by the
    grader's zygote after the imports below (they are then no-ops) and after its confinement."""
    scratch, read_fd, write_fd = argv[0], int(argv[1]), int(argv[2])
    if forked:
        PARENT[0] = os.getppid()
    os.chdir(scratch)
    received = read_message(read_fd, MAX_CONFIG, 0)  # the configuration comes first, on the pipe
    if received is None:
        return 2
    config = received[0]
    import warnings

    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import safetensors.torch  # noqa: F401

    import fwd_kit.checks.fixtures  # noqa: F401 - Probe and SamplerNet, built by recipe
    import fwd_kit.grading.wire  # noqa: F401

    if config.get("diffusers", True):
        from diffusers import UNet2DConditionModel  # noqa: F401 - Part A's checks send diffusers models
    refuse_instructor_packages()
    server = Server(scratch, config)
    for line in config.get("preamble", []):  # the assignment's own imports (trusted)
        try:
            exec(line, server.namespace)  # noqa: S102
        except Exception:  # noqa: BLE001 - an optional import (IPython, say) may be missing here
            pass
    server.layers = harden(config, scratch, PARENT[0])
    server.serve(read_fd, write_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
