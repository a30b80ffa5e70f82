"""The grader's side of the student's process (:mod:`autograder.child`): start it, load the solution cells,
send requests with a time limit, and restart it after a crash or a timeout.

A :class:`Sandbox` is a :class:`autograder.remote.Channel`: the proxies of :mod:`autograder.remote` send
their requests through it. One process serves all the checks of a submission; when it dies or overruns
its time, it is killed (its whole process group) and the next request starts a fresh one, which loads
the cells again — except a cell that already hung while loading, which is left out.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.child import HEADER, MAX_MESSAGE, write_message
from autograder.remote import SandboxFailure

AUTOGRADER_DIR = Path(__file__).resolve().parent


@dataclass
class Limits:
    """What one submission's process may use (Gradescope's default machine: 0.5 vCPU, 768 MB)."""

    call_s: float = 60.0  # wall-clock seconds for one call of the student's code (or loading one cell)
    start_s: float = 120.0  # wall-clock seconds to start the process (importing torch and diffusers)
    memory_mb: int = 2048  # address space the student's code may add to what torch maps at start
    file_mb: int = 64  # largest file it may write, its printed output included
    cpu_s: int = 1200  # CPU seconds of one process (a backstop behind call_s)
    processes: int = 256  # RLIMIT_NPROC when not root (threads count too); forks are refused anyway
    reply_mb: int = 256  # largest tensors file read back from it


@dataclass
class Cell:
    """Code from one notebook cell to run in the student's process: ``label`` names it in tracebacks."""

    label: str
    source: str
    names: list[str] = field(default_factory=list)  # graded functions and classes it defines


def scrubbed_environment(scratch: str) -> dict:
    """The student's process sees no tokens, proxies or paths of the grader: only what it needs to run."""
    return {
        "PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "*",
        "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
    }


def read_roots() -> list[str]:
    """Folders the student's process may read: the Python installation and its libraries (and the public
    ``reference`` package, which the notebooks import), but not the grader's package."""
    import reference

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(reference.__file__).resolve().parent),
             "/usr/lib", "/usr/lib64", "/usr/share", "/lib", "/lib64", "/etc/ld.so.cache", "/dev/null",
             "/dev/urandom", "/proc/self", "/sys/devices/system/cpu", "/sys/fs/cgroup", "/proc/cpuinfo",
             "/proc/meminfo"}
    for path in sys.path:
        if path and "site-packages" in path:
            roots.add(path)
    return sorted(roots)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "did not answer"
    if returncode < 0:
        sig = -returncode
        why = {signal.SIGKILL: "killed (perhaps it ran out of memory)", signal.SIGXCPU: "stopped at its CPU-time limit",
               signal.SIGSEGV: "crashed (segmentation fault)", signal.SIGABRT: "aborted"}.get(sig, "stopped")
        return f"was {why}, signal {sig}"
    return f"exited with code {returncode} (os._exit or a crash)"


class Sandbox:
    """Runs ``cells`` (after the trusted ``preamble`` import lines) in a hardened child process."""

    def __init__(self, cells: list[Cell], preamble: list[str], limits: Limits | None = None):
        self.cells = list(cells)
        self.preamble = list(preamble)
        self.limits = limits or Limits()
        self.skipped: set[int] = set()  # cells that hung while loading: left out of every restart
        self.load_errors: dict[str, str] = {}  # cell label → what went wrong loading it (first start)
        self.load_tracebacks: dict[str, list[str]] = {}
        self.process: subprocess.Popen | None = None
        self.scratch: str | None = None
        self.starts = 0
        self.counter = 0
        self.startup_s = 0.0  # seconds spent starting processes and loading cells
        self.student_s = 0.0  # seconds spent waiting for the student's code to answer requests

    # lifecycle ------------------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the process and load the cells; problems loading a cell are kept in ``load_errors``, and a
        cell that hangs is left out (``skipped``) and the process started again without it."""
        begin = time.perf_counter()
        try:
            while not self._start_once():
                pass
        finally:
            self.startup_s += time.perf_counter() - begin

    def _start_once(self) -> bool:
        """One start; False when a cell hung and was added to ``skipped`` (start again)."""
        import json

        self.kill()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch = tempfile.mkdtemp(prefix="fwd-sandbox-")
        config = dict(preamble=self.preamble,
                      cells=[dict(label=c.label, source=c.source) for c in self.cells],
                      limits=dict(memory_mb=self.limits.memory_mb, file_mb=self.limits.file_mb,
                                  cpu_s=self.limits.cpu_s, processes=self.limits.processes),
                      read_roots=read_roots(), denied=[str(AUTOGRADER_DIR)])
        Path(self.scratch, "config.json").write_text(json.dumps(config))
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        output = open(Path(self.scratch, "output.txt"), "wb")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-m", "autograder.child", self.scratch, str(req_r), str(rep_w)],
                cwd=self.scratch, env=scrubbed_environment(self.scratch), stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, pass_fds=(req_r, rep_w), start_new_session=True)
        finally:
            output.close()
            os.close(req_r)
            os.close(rep_w)
        self.starts += 1
        try:
            self._exchange({"op": "ping"}, {}, self.limits.start_s)
        except SandboxFailure as err:
            raise SandboxFailure(f"the grader could not start the process for your code ({err}); it printed: "
                                 f"{self.output_tail(800)!r}") from None
        for index, cell in enumerate(self.cells):
            if index in self.skipped:
                continue
            try:
                reply, _ = self._exchange({"op": "load", "index": index}, {}, self.limits.call_s)
            except SandboxFailure as err:
                self.skipped.add(index)
                self.load_errors.setdefault(cell.label, f"running the cell failed: {err}")
                return False
            if not reply.get("ok"):
                error = reply.get("error") or {}
                self.load_errors.setdefault(cell.label, f"{error.get('type')}: {error.get('message')}")
                self.load_tracebacks.setdefault(cell.label, list(error.get("traceback") or []))
        return True

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
                pass
            for fd in (self.req_w, self.rep_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.process = None

    def close(self) -> None:
        if self.alive:
            try:
                write_message(self.req_w, {"op": "bye"})
                self.process.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def output_tail(self, chars: int = 2000) -> str:
        """The end of what the student's code printed (stdout and stderr)."""
        if not self.scratch:
            return ""
        path = Path(self.scratch, "output.txt")
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                f.seek(max(0, size - chars))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # requests -------------------------------------------------------------------------------------
    def request(self, message: dict, tensors: dict) -> tuple[dict, dict]:
        """Send ``message`` (with ``tensors``) and wait up to ``limits.call_s`` for the reply."""
        if not self.alive:
            self.start()
        begin = time.perf_counter()
        try:
            return self._exchange(message, tensors, self.limits.call_s)
        finally:
            self.student_s += time.perf_counter() - begin

    def _exchange(self, message: dict, tensors: dict, timeout: float) -> tuple[dict, dict]:
        from safetensors.torch import load_file, save_file

        if tensors:
            self.counter += 1
            name = f"request-{self.counter}.safetensors"
            save_file(tensors, os.path.join(self.scratch, name))
            message = dict(message, tensors=name)
        try:
            write_message(self.req_w, message)
        except OSError:
            code = self.process.poll() if self.process else None
            self.kill()
            raise SandboxFailure(f"the process running your code {describe_exit(code)}") from None
        reply = self._read_reply(timeout)
        name = reply.get("tensors")
        if not name:
            return reply, {}
        path = Path(self.scratch, str(name))
        if path.name != name or not path.is_file():
            raise SandboxFailure("the reply named a tensors file that does not exist")
        if path.stat().st_size > self.limits.reply_mb * 1024 * 1024:
            raise SandboxFailure(f"the reply holds more than {self.limits.reply_mb} MB of tensors")
        try:
            return reply, load_file(path)
        except Exception as err:  # noqa: BLE001 - a corrupted file is the student's process's fault
            raise SandboxFailure(f"the reply's tensors could not be read ({err})") from None

    def _read_reply(self, timeout: float) -> dict:
        import json

        deadline = time.monotonic() + timeout
        header = self._read_exactly(HEADER.size, deadline, timeout)
        (size,) = HEADER.unpack(header)
        if size > MAX_MESSAGE:
            self.kill()
            raise SandboxFailure(f"the reply is larger than {MAX_MESSAGE} bytes")
        body = self._read_exactly(size, deadline, timeout)
        try:
            reply = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.kill()
            raise SandboxFailure("the reply was not valid JSON") from None
        if not isinstance(reply, dict):
            raise SandboxFailure("the reply was not a JSON object")
        return reply

    def _read_exactly(self, n: int, deadline: float, timeout: float) -> bytes:
        chunks, left = [], n
        while left:
            remaining = deadline - time.monotonic()
            ready = select.select([self.rep_r], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not ready:
                self.kill()
                raise SandboxFailure(f"your code took longer than {timeout:g} s and was stopped (an endless loop? "
                                     "too many steps?)")
            chunk = os.read(self.rep_r, min(left, 1 << 20))
            if not chunk:
                code = self.process.wait(timeout=10) if self.process else None
                self.kill()
                raise SandboxFailure(f"the process running your code {describe_exit(code)}")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
