"""The student's process hardens itself — no way back — after its trusted imports and before any student
code runs (:func:`harden`, called by :func:`fwd_kit.grading.child.main`):

- **limits** (``resource``): address space (what torch already mapped plus ``memory_mb``), file size,
  CPU seconds;
- **Landlock** and **seccomp** (:mod:`fwd_kit.grading.kernel`), when the grader found them on this machine:
  a layer the grader expects and that fails to install stops the process;
- **an audit hook** (:pep:`578`): a courtesy layer with clear messages, not the boundary — it refuses new
  processes, multiprocessing, sockets, ctypes, files outside the roots, and reaching itself through ``gc``
  or by rewriting functions' code; its state is immutable and its globals private.

Before that, :func:`refuse_instructor_packages` forgets any module of the instructors' packages and puts a
finder first on ``sys.meta_path`` that refuses them with a reason.
"""

from __future__ import annotations

import os
import sys

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


def harden(config: dict, scratch: str, parent: int) -> list[str]:
    """Limits, Landlock, seccomp and the audit hook; after this, nothing can lift them. ``parent``: the
    process whose death ends this one (the grader, or the zygote that forked it). Returns the layers
    installed; raises when a kernel layer the grader expects cannot be installed."""
    from fwd_kit.grading import kernel

    kernel.die_with_parent(parent)
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
