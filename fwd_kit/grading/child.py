"""The student's process: runs the solution cells of one submission and answers the grader's requests.

Started by :class:`autograder.sandbox.Sandbox` (inside bubblewrap where the machine allows, see
:mod:`autograder.isolation`) with ``SCRATCH READ_FD WRITE_FD``: a scrubbed environment, ``SCRATCH`` as its
working directory and only writable folder, stdout/stderr going to a file the grader holds. The first
message on ``READ_FD`` is the configuration (cells, limits, roots, the kernel layers to install). It
imports what the checks' models need, runs the assignment's own import lines (trusted, from the released
notebook), then hardens itself — no way back — before any student code runs:

- **limits** (``resource``): address space (what torch already mapped plus ``memory_mb``), file size,
  CPU seconds;
- **Landlock** and **seccomp** (:mod:`fwd_kit.grading.kernel`), when the grader found them on this machine:
  a layer the grader expects and that fails to install stops the process;
- **an audit hook** (:pep:`578`): a courtesy layer with clear messages, not the boundary — it refuses new
  processes, multiprocessing, sockets, ctypes, files outside the roots, and reaching itself through ``gc``
  or by rewriting functions' code; its state is immutable and its globals private.

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
# Hardening


BLOCKED_EVENTS = (
    "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "os.startfile", "pty.spawn",
    "subprocess.Popen", "os.kill", "os.killpg", "os.putenv", "os.unsetenv", "os.chdir", "os.fchdir",
    "socket.", "ctypes.", "urllib.Request", "webbrowser.open", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "sys._current_frames", "sys.setprofile", "sys.settrace", "sys.addaudithook",
    "resource.setrlimit", "resource.prlimit", "os.fwalk", "_posixsubprocess", "signal.pthread_kill",
)
NO_IMPORT = ("multiprocessing", "_multiprocessing", "_posixsubprocess", "concurrent.futures.process",
             "torch.multiprocessing")  # forgotten and refused after hardening: seccomp blocks them anyway
FROZEN_ATTRIBUTES = ("__code__", "__defaults__", "__kwdefaults__", "__globals__", "__closure__")
PATH_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.link",
               "os.symlink", "os.mkdir", "os.listdir", "os.scandir", "os.utime", "shutil.rmtree", "shutil.copyfile")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _normalize(path: str, cwd: str) -> str:
    """``path`` made absolute against ``cwd`` and normalized with string operations only (nothing the
    student's code could patch: no ``os.path`` function runs inside the hook)."""
    parts: list = []
    for part in (path if path.startswith("/") else cwd + "/" + path).split("/"):
        if part == "..":
            parts = parts[:-1]
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _inside(path: str, roots: tuple) -> bool:
    for root in roots:
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return True
    return False


def _allowed(path, write: bool, scratch: str, read_roots: tuple, denied: tuple, normalize, inside, _type,
             _str, _bytes, _int) -> bool:
    kind = _type(path)
    if kind is _int:
        return True  # an already open file descriptor (the kernel layers judge it)
    if kind is _bytes:
        path = path.decode("utf-8", "surrogateescape")
    elif kind is not _str:
        return False  # never call a method of an object the student's code made
    real = normalize(path, scratch)
    if inside(real, denied):
        return False
    return inside(real, (scratch,)) if write else inside(real, read_roots)


def _hook(event, args, scratch=None, read_roots=(), denied=(), allowed=None, blocked=(), no_import=(),
          frozen=(), path_events=(), write_flags=0, _type=type, _len=len, _tuple=tuple, _error=PermissionError,
          _str=str, _bytes=bytes, _int=int):
    """The audit hook's body. Its state and the builtins it uses arrive as default arguments and it looks up
    no global name: a frame or function of the hook that the student's code reaches (a traceback's frames)
    holds nothing it could change (defaults are immutable; replacing them is an audited, refused event)."""
    if event.startswith(blocked):
        raise _error(f"the grader does not allow {event} in submitted code")
    if event == "import" and args and _type(args[0]) is _str and args[0].startswith(no_import):
        raise _error(f"the grader does not allow importing {args[0]} (no new processes)")
    if event == "object.__setattr__" and _len(args) > 1 and _type(args[1]) is _str and args[1] in frozen:
        raise _error(f"the grader does not allow replacing a function's {args[1]}")
    if event == "open":
        path, mode, flags = (_tuple(args) + (None, None, None))[:3]
        write = (_type(mode) is _str and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or \
            (_type(flags) is _int and (flags & write_flags) != 0 and mode is None)
        if not allowed(path, write, scratch, read_roots, denied):
            shown = path if _type(path) is _str or _type(path) is _bytes else "a path-like object"  # no student repr
            raise _error(f"the grader does not allow opening {shown!r}"
                         f"{' for writing' if write else ''}: only the scratch folder is yours")
    elif event in path_events:
        for path in args[:2]:
            if (_type(path) is _str or _type(path) is _bytes) and not allowed(
                    path, event != "os.listdir" and event != "os.scandir", scratch, read_roots, denied):
                raise _error(f"the grader does not allow {event} on {path!r}")


def _private(function, defaults: tuple):
    """A copy of ``function`` with ``defaults`` and empty globals (no builtins either): it depends on nothing
    the student's code could patch, and a global name it used by mistake would fail closed (NameError)."""
    import types

    return types.FunctionType(function.__code__, {"__builtins__": {}}, function.__name__, defaults)


def make_audit_hook(scratch: str, read_roots, denied):
    """The hook: events in BLOCKED_EVENTS refused; files: write only in ``scratch``, read in ``read_roots``."""
    scratch = os.path.realpath(scratch)
    read_roots = tuple(os.path.realpath(r) for r in read_roots) + (scratch,)
    denied = tuple(os.path.realpath(d) for d in denied)
    normalize = _private(_normalize, ())
    inside = _private(_inside, ())
    allowed = _private(_allowed, (normalize, inside, type, str, bytes, int))
    return _private(_hook, (scratch, read_roots, denied, allowed, BLOCKED_EVENTS, NO_IMPORT, FROZEN_ATTRIBUTES,
                            PATH_EVENTS, WRITE_FLAGS, type, len, tuple, PermissionError, str, bytes, int))


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


def set_limits(limits: dict) -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the file-size limit fails instead of killing
    if limits.get("memory_mb"):
        cap = vm_size() + int(limits["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if limits.get("file_mb"):
        cap = int(limits["file_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    if limits.get("cpu_s"):
        soft = int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))
    if limits.get("processes") and os.getuid() != 0:  # root ignores RLIMIT_NPROC; seccomp refuses forks anyway
        n = int(limits["processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def harden(config: dict, scratch: str) -> list[str]:
    """Limits, Landlock, seccomp and the audit hook; after this, nothing can lift them. Returns the layers
    installed; raises when a kernel layer the grader expects cannot be installed."""
    from fwd_kit.grading import kernel

    kernel.die_with_parent(PARENT[0])
    set_limits(config.get("limits", {}))
    layers = ["rlimits"]
    expected = config.get("kernel", {})
    read_roots, denied = config.get("read_roots", []), config.get("denied", [])
    if expected.get("landlock"):
        proc = [os.path.realpath("/proc/self"), "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"]
        devices = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
        abi = kernel.install_landlock(config.get("landlock_roots", read_roots) + proc, [scratch] + devices)
        layers.append(f"landlock ABI {abi}")
    if expected.get("seccomp"):
        kernel.install_seccomp()
        layers.append("seccomp")
    for name in [m for m in sys.modules if m.startswith(NO_IMPORT)]:
        del sys.modules[name]  # importing them again raises the "import" event, which the hook refuses
    sys.dont_write_bytecode = True
    sys.addaudithook(make_audit_hook(scratch, read_roots, denied))
    return layers + ["audit hook"]


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

    def serve(self, read_fd: int, write_fd: int) -> None:
        ops = {"ping": self.op_ping, "load": self.op_load, "call": self.op_call, "new": self.op_new,
               "method": self.op_method, "signature": self.op_signature}
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


INSTRUCTOR_PACKAGES = ("reference", "autograder", "course")  # answers, hidden checks, the grader


class InstructorPackages:
    """A first finder on ``sys.meta_path`` that refuses the instructors' packages with a reason. Where the
    kernel hides them (bubblewrap) they are not there anyway; this says why an import fails."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in INSTRUCTOR_PACKAGES:
            raise ImportError(f"submitted code cannot import {name}: the course's answers and the grader stay "
                              "with the instructors (only the student kit, fwd_kit, is available)", name=name)
        return None


def refuse_instructor_packages() -> None:
    """Forget any instructor module already imported and refuse them from now on."""
    for name in [m for m in sys.modules if m.split(".")[0] in INSTRUCTOR_PACKAGES]:
        del sys.modules[name]
    sys.meta_path.insert(0, InstructorPackages())


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
    server.layers = harden(config, scratch)
    server.serve(read_fd, write_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
