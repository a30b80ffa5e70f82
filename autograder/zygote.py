"""The zygote: a process that has imported torch (and, for Part A, diffusers) once, and forks every student
process of the grader from there.

Why: importing torch costs about 290 MB of memory that no two processes share (diffusers' UNet another
175 MB), and Gradescope's default container has 768 MB for everything. A forked process shares the
zygote's pages until it writes them, so the grader, the zygote and the student's process hold one copy.

Where it comes from: the grader forks it from itself while the grader is still **clean** — before it has
read the offering's secret, loaded the reference's stored results or imported ``reference`` (see
:func:`clean_reasons`): a student's process must never inherit an answer, even in memory it cannot name.
Where the grader is no longer clean (a test process that already graded), the zygote is a fresh
interpreter instead (``python -m autograder.zygote``): the same protocol, no pages shared.

Protocol, over a ``SOCK_SEQPACKET`` socket pair: ``{"op": "spawn", "spec": {...}}`` with three file
descriptors (the request pipe's read end, the reply pipe's write end, the output's write end) → ``{"pid": n}``;
``{"op": "status", "pid": n}`` → ``{"code": exit code or null while it runs}``. The forked process applies
:func:`autograder.confine.confine` and serves the grader (:func:`fwd_kit.grading.child.main`). The zygote
dies with the grader and kills its children when it goes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading

MAX_MESSAGE = 1 << 16
START_S = 120.0  # seconds a fresh-interpreter zygote may take to import torch and say it is ready


def preload(diffusers: bool, preamble=()) -> None:
    """What every student's process needs, imported before the fork (so that it is shared): torch, the kit's
    grading side, diffusers for Part A, and the assignment's own import lines (trusted: the released
    notebook's), which each process would otherwise import again (torchvision, matplotlib: about 1 CPU-second)."""
    import warnings

    warnings.simplefilter("ignore")
    import safetensors.torch  # noqa: F401
    import torch  # noqa: F401

    import fwd_kit.checks.fixtures  # noqa: F401 - Probe and SamplerNet, built by recipe
    import fwd_kit.grading.child  # noqa: F401
    import fwd_kit.grading.kernel  # noqa: F401
    import fwd_kit.grading.wire  # noqa: F401
    if diffusers:
        from diffusers import DDPMScheduler, UNet2DConditionModel  # noqa: F401
    for line in preamble:
        try:
            exec(line, {})  # noqa: S102 - the assignment's own import lines
        except Exception:  # noqa: BLE001 - an optional import (IPython, say) may be missing here
            pass


def clean_reasons() -> list[str]:
    """Why this process may not be the zygote's parent (empty: it holds nothing a student may not see)."""
    from autograder import hidden

    reasons = []
    if any(m == "reference" or m.startswith("reference.") for m in sys.modules):
        reasons.append("the reference is imported")
    if hidden.SECRET_READ:
        reasons.append("the offering's secret was read")
    if os.environ.get(hidden.SECRET_ENV):
        reasons.append("the offering's secret is in the environment")
    expected = sys.modules.get("fwd_kit.expected")
    if expected is not None and expected._state.get("stored") is not None:
        reasons.append("stored results are loaded")
    return reasons


# ---------------------------------------------------------------------------------------------------
# The zygote's side


def _serve(sock: socket.socket, root: str) -> None:
    """The zygote's loop: spawn children, report their exits; end (killing them) when the grader goes."""
    children: dict[int, int | None] = {}

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in children:
                code = os.waitstatus_to_exitcode(status)
                children[pid] = code

    try:
        while True:
            reap()
            if not select.select([sock], [], [], 0.2)[0]:
                continue
            try:
                data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
            except OSError:
                return
            if not data:
                return
            request = json.loads(data)
            if request.get("op") == "spawn":
                spec = dict(request["spec"], zygote=os.getpid(), root=root)
                pid = os.fork()
                if pid == 0:
                    _child(sock, spec, fds)
                for fd in fds:
                    os.close(fd)
                children[pid] = None
                sock.send(json.dumps({"pid": pid}).encode())
            elif request.get("op") == "status":
                reap()
                sock.send(json.dumps({"code": children.get(int(request["pid"]))}).encode())
            else:
                return
    finally:
        for pid, code in children.items():
            if code is None:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass


def _child(sock: socket.socket, spec: dict, fds: list[int]) -> None:
    """In the forked process: confine, wire the pipes, serve the grader; never returns."""
    code = 70
    try:
        sock.close()
        from autograder.startup import with_unused_packages

        with_unused_packages()  # the student's own code may import SciPy
        req_r, rep_w, out_w = fds
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        close_all_but({0, 1, 2, req_r, rep_w})
        from autograder.confine import confine

        confine(spec, keep_fds=(req_r, rep_w, 1, 2))
        os.environ.clear()
        os.environ.update(spec.get("environment") or {})
        if spec.get("probe") is not None:  # a trial child (autograder.isolation): can it read what it needs?
            for path in spec["probe"]:
                os.listdir(path)
            os._exit(0)
        from fwd_kit.grading import child

        code = child.main([os.getcwd(), str(req_r), str(rep_w)], forked=True)
    except PermissionError as err:
        code = 3 if spec.get("probe") is not None else code
        _say(err)
    except BaseException as err:  # noqa: BLE001 - said on the output, seen by the grader as a failed start
        _say(err)
    finally:
        os._exit(code)


def _say(err: BaseException) -> None:
    try:
        os.write(2, f"the sandbox could not be set up: {type(err).__name__}: {err}\n".encode())
    except OSError:
        pass


def close_all_but(keep: set[int]) -> None:
    """Close every file descriptor of this process but ``keep`` (what the grader had open stays with it)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def erase_environment() -> None:
    """Overwrite the strings of the C environment with zeros and empty ``os.environ``: the grader's variables
    (tokens, paths) are not in the memory its children inherit."""
    import ctypes

    libc = ctypes.CDLL(None)
    environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    i = 0
    while environ[i]:
        address = environ[i]
        ctypes.memset(address, 0, len(ctypes.string_at(address)))
        i += 1
    os.environ.clear()


def _prepare_zygote(sock: socket.socket) -> str:
    """In the new zygote: nothing of the grader's open files, its own session, death with the grader, an
    empty folder for the children's roots."""
    from autograder.confine import PR_SET_PDEATHSIG, _libc

    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    close_all_but({0, 1, 2, sock.fileno()})
    erase_environment()
    os.setsid()
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("500")
    except OSError:
        pass
    root = tempfile.mkdtemp(prefix="fwd-root-")
    os.chmod(root, 0o755)
    return root


def zygote_main(fd: int, diffusers: bool) -> None:
    """Entry of a fresh-interpreter zygote (``python -m autograder.zygote FD DIFFUSERS``)."""
    from autograder.startup import dynamo_on_demand, imports_unscanned, without_unused_packages

    sock = socket.socket(fileno=fd)
    without_unused_packages()
    with imports_unscanned(collect=True):  # the children's garbage collector leaves the shared pages alone
        dynamo_on_demand()
        preload(diffusers)
    root = _prepare_zygote(sock)
    sock.send(b'{"ready": true}')
    try:
        _serve(sock, root)
    finally:
        os.rmdir(root)


# ---------------------------------------------------------------------------------------------------
# The grader's side


class Zygote:
    """The grader's handle on its zygote (one per grader process, see :func:`get`)."""

    def __init__(self, diffusers: bool, preamble=()):
        self.diffusers = diffusers
        self.lock = threading.Lock()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        reasons = clean_reasons()
        self.forked = not reasons
        if self.forked:
            from autograder.startup import imports_unscanned

            # what is loaded now is never scanned again: the garbage collector copies no shared page
            with imports_unscanned(collect=True):
                preload(diffusers, preamble)
            pid = os.fork()
            if pid == 0:
                ours.close()
                code = 0
                try:
                    root = _prepare_zygote(theirs)
                    try:
                        _serve(theirs, root)
                    finally:
                        os.rmdir(root)
                except BaseException:  # noqa: BLE001
                    code = 1
                os._exit(code)
            self.pid, self.process = pid, None
        else:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "autograder.zygote", str(theirs.fileno()), "1" if diffusers else "0"],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            self.pid = self.process.pid
        theirs.close()
        self.sock = ours
        self.why_fresh = "; ".join(reasons)
        if not self.forked:
            ready = select.select([self.sock], [], [], START_S)[0]
            if not ready or not self.sock.recv(MAX_MESSAGE):
                raise RuntimeError("the grader's zygote (a fresh interpreter) did not start")

    def _ask(self, request: dict, fds=()) -> dict:
        with self.lock:
            if fds:
                socket.send_fds(self.sock, [json.dumps(request).encode()], list(fds))
            else:
                self.sock.send(json.dumps(request).encode())
            data = self.sock.recv(MAX_MESSAGE)
        if not data:
            raise RuntimeError("the grader's zygote has gone")
        return json.loads(data)

    def spawn(self, spec: dict, req_r: int, rep_w: int, out_w: int) -> "Forked":
        return Forked(self, int(self._ask({"op": "spawn", "spec": spec}, (req_r, rep_w, out_w))["pid"]))

    def status(self, pid: int):
        return self._ask({"op": "status", "pid": pid})["code"]

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return self.process is None or self.process.poll() is None

    def close(self) -> None:
        try:
            self.sock.send(b'{"op": "bye"}')
        except OSError:
            pass
        self.sock.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        else:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


class Forked:
    """A process the zygote forked: what :class:`subprocess.Popen` offers that the sandbox uses."""

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote, self.pid = zygote, pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                self.returncode = self.zygote.status(self.pid)
            except (OSError, RuntimeError):
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None):
        import time

        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode


def trial(zygote: Zygote, spec: dict, timeout: float) -> int | None:
    """Spawn a trial child (``spec["probe"]``: paths it must read once confined); its exit code, None on timeout."""
    null_r, null_w = os.open("/dev/null", os.O_RDONLY), os.open("/dev/null", os.O_WRONLY)
    try:
        child = zygote.spawn(spec, null_r, null_w, null_w)
    finally:
        os.close(null_r)
        os.close(null_w)
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        for kill in (os.killpg, os.kill):
            try:
                kill(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return None


_ZYGOTES: dict[bool, Zygote] = {}


def get(diffusers: bool = True, preamble=()) -> Zygote:
    """This grader process's zygote (one with diffusers serves Part B too); started on first use, with the
    assignment's ``preamble`` imported first where given."""
    for key in ((True,) if diffusers else (False, True)):
        z = _ZYGOTES.get(key)
        if z is not None and z.alive():
            return z
    _ZYGOTES[diffusers] = Zygote(diffusers, preamble)
    return _ZYGOTES[diffusers]


if __name__ == "__main__":
    zygote_main(int(sys.argv[1]), sys.argv[2] == "1")
