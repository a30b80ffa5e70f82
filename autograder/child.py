"""The student's process: runs the solution cells of one submission and answers the grader's requests.

Started by :class:`autograder.sandbox.Sandbox` as ``python -I -m autograder.child SCRATCH READ_FD WRITE_FD``
with a scrubbed environment, ``SCRATCH`` as its working directory and stdout/stderr going to a file
there. It imports what the checks' models need, runs the assignment's own import lines (trusted, from
the released notebook), then hardens itself — no way back — before any student code runs:

- **limits** (``resource``): address space (what torch already mapped plus ``memory_mb``), file size,
  CPU seconds;
- **an audit hook** (:pep:`578`) that refuses new processes (fork, exec, spawn, subprocess, system),
  signals to other processes, sockets, loading native libraries through ctypes, and file access outside
  the scratch folder and the installed libraries (the grader's own package, which holds the hidden
  checks, is refused explicitly).

Then it loads each solution cell when asked (so that a cell that loops forever is found and skipped)
and serves calls: ``call`` a function, ``new`` an instance of a class, ``method`` on an instance,
``signature`` of a callable. Arguments and results travel as :mod:`autograder.wire` nodes with tensors in
safetensors files in the scratch folder; only tensors on the CPU and plain data go back.

Messages on the pipes: an 8-byte big-endian length, then UTF-8 JSON.
"""

from __future__ import annotations

import inspect
import json
import os
import struct
import sys
import traceback

HEADER = struct.Struct(">Q")
MAX_MESSAGE = 16 * 1024 * 1024  # bytes of JSON in one message
CELL_PREFIX = "<solution cell "  # filename of compiled solution cells, to pick the student's traceback lines


# ---------------------------------------------------------------------------------------------------
# Messages


def read_message(fd: int) -> dict | None:
    """One message from ``fd``, or None at end of file."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes is larger than {MAX_MESSAGE}")
    body = _read_exactly(fd, size)
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_message(fd: int, message: dict) -> None:
    body = json.dumps(message).encode("utf-8")
    data = HEADER.pack(len(body)) + body
    while data:
        written = os.write(fd, data)
        data = data[written:]


# ---------------------------------------------------------------------------------------------------
# Hardening


BLOCKED_EVENTS = (
    "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "os.startfile", "pty.spawn",
    "subprocess.Popen", "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "os.chdir",
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.gethostbyname",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "urllib.Request", "webbrowser.open",
)
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.mkdir", "os.listdir", "os.scandir", "os.utime", "shutil.rmtree", "shutil.copyfile")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path: str, roots) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def make_audit_hook(scratch: str, read_roots: list[str], denied: list[str]):
    """The hook: events in BLOCKED_EVENTS refused; files: write only in ``scratch``, read in ``read_roots``."""
    scratch = os.path.realpath(scratch)
    read_roots = [os.path.realpath(r) for r in read_roots] + [scratch]
    denied = [os.path.realpath(d) for d in denied]

    def allowed(path, write: bool) -> bool:
        if isinstance(path, int):
            return True  # an already open file descriptor
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return False
        real = os.path.realpath(os.path.join(scratch, path))
        if _inside(real, denied):
            return False
        return _inside(real, [scratch]) if write else _inside(real, read_roots)

    def hook(event: str, args) -> None:
        if event.startswith(BLOCKED_EVENTS):
            raise PermissionError(f"the grader does not allow {event} in submitted code")
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            write = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and bool(flags & WRITE_FLAGS) and mode is None)
            if not allowed(path, write):
                raise PermissionError(f"the grader does not allow opening {path!r}"
                                      f"{' for writing' if write else ''}: only the scratch folder is yours")
        elif event in PATH_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes)) and not allowed(path, event not in ("os.listdir", "os.scandir")):
                    raise PermissionError(f"the grader does not allow {event} on {path!r}")

    return hook


def vm_size() -> int:
    """This process's virtual memory size in bytes (Linux), 0 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def harden(config: dict, scratch: str) -> None:
    """Limits and the audit hook; after this, nothing can lift them."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the file-size limit fails instead of killing
    limits = config.get("limits", {})
    if limits.get("memory_mb"):
        cap = vm_size() + int(limits["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if limits.get("file_mb"):
        cap = int(limits["file_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    if limits.get("cpu_s"):
        soft = int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    if limits.get("processes") and os.getuid() != 0:  # root ignores RLIMIT_NPROC; the audit hook still refuses forks
        n = int(limits["processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
    sys.dont_write_bytecode = True
    sys.addaudithook(make_audit_hook(scratch, config.get("read_roots", []), config.get("denied", [])))


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
    """Refuse results that hold tensors off the CPU (the grader's inputs are all on the CPU)."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise ValueError(f"{path} is a tensor on {value.device}, but the inputs were on cpu: keep results on "
                             "the inputs' device")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_cpu_tensors(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_cpu_tensors(v, f"{path}[{k!r}]")


class Server:
    """The request loop of the student's process."""

    def __init__(self, scratch: str, config: dict):
        self.scratch = scratch
        self.config = config
        self.namespace: dict = {"__name__": "submission"}
        self.sources: dict[str, list[str]] = {}
        self.remotes: dict[str, object] = {}
        self.counter = 0

    # tensors ---------------------------------------------------------------------------------------
    def load_tensors(self, name: str | None) -> dict:
        from safetensors.torch import load_file

        return load_file(os.path.join(self.scratch, name)) if name else {}

    def save_tensors(self, tensors: dict) -> str | None:
        from safetensors.torch import save_file

        if not tensors:
            return None
        self.counter += 1
        name = f"reply-{self.counter}.safetensors"
        save_file(tensors, os.path.join(self.scratch, name))
        return name

    # operations -----------------------------------------------------------------------------------
    def op_load(self, message: dict) -> dict:
        cell = self.config["cells"][int(message["index"])]
        filename = f"{CELL_PREFIX}{cell['label']}>"
        self.sources[filename] = cell["source"].splitlines()
        exec(compile(cell["source"], filename, "exec"), self.namespace)  # noqa: S102 - the sandbox's purpose
        return {"ok": True, "result": {"v": None}}

    def decode_arguments(self, message: dict):
        from autograder.wire import Decoder, build_module

        tensors = self.load_tensors(message.get("tensors"))
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
        from autograder.wire import Encoder

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
        if method not in ("forward", "train", "load_state_dict"):
            raise ValueError(f"method {method!r} is not served")

        def call(decoder, *a, **k):
            if method == "forward":
                return obj(*a, **k)
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

    def serve(self, read_fd: int, write_fd: int) -> None:
        ops = {"ping": lambda message: {"ok": True, "result": {"v": None}}, "load": self.op_load, "call": self.op_call, "new": self.op_new, "method": self.op_method,
               "signature": self.op_signature}
        while True:
            message = read_message(read_fd)
            if message is None or message.get("op") == "bye":
                return
            try:
                op = ops[message.get("op")]
                reply = op(message)
            except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises is reported
                if isinstance(exc, KeyboardInterrupt):
                    raise
                reply = error_reply(exc, self.sources)
            try:
                write_message(write_fd, reply)
            except (TypeError, ValueError) as exc:  # not JSON-serialisable: report instead
                write_message(write_fd, error_reply(exc, self.sources))


def main(argv: list[str]) -> int:
    scratch, read_fd, write_fd = argv[0], int(argv[1]), int(argv[2])
    os.chdir(scratch)
    with open(os.path.join(scratch, "config.json")) as f:
        config = json.load(f)
    import warnings

    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    import diffusers  # noqa: F401 - the models the checks send are diffusers models or the reference's
    from diffusers import UNet2DConditionModel  # noqa: F401

    import autograder.fixtures  # noqa: F401 - Probe, built by recipe
    import autograder.remote  # noqa: F401 - imported by wire.Encoder
    import autograder.wire  # noqa: F401
    import reference.illusions  # noqa: F401 - views sent by name
    import reference.unet  # noqa: F401
    import safetensors.torch  # noqa: F401

    server = Server(scratch, config)
    for line in config.get("preamble", []):  # the assignment's own imports (trusted)
        try:
            exec(line, server.namespace)  # noqa: S102
        except Exception:  # noqa: BLE001 - an optional import (IPython, say) may be missing here
            pass
    for name in [m for m in sys.modules if m == "autograder" or m.startswith("autograder.")]:
        if name not in ("autograder", "autograder.wire", "autograder.remote", "autograder.compare",
                        "autograder.fixtures", "autograder.child"):
            del sys.modules[name]
    harden(config, scratch)
    server.serve(read_fd, write_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
