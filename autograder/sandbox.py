"""The grader's side of the student's process (:mod:`fwd_kit.grading.child`): have the zygote fork it
(:mod:`autograder.zygote`; it confines itself as :mod:`autograder.isolation` detected), load the solution
cells, send requests with a time limit, and restart it after a crash or a timeout.

A :class:`Sandbox` is a :class:`autograder.remote.Channel`: the proxies of :mod:`autograder.remote` send
their requests through it. One process serves all the checks of a submission; when it dies or overruns
its time, its whole process tree is killed and the next request starts a fresh one, which loads the
cells again — except a cell that already hung while loading, which is left out. One deadline
(``Limits.total_s``) covers everything of a submission: starts, loading cells and every call.

Nothing the student's process writes to files is read back: its configuration goes down the request
pipe, replies and their tensors (safetensors bytes, size-capped) come up the reply pipe, and its printed
output comes up a third pipe that a thread of the grader drains (the last
:data:`autograder.processes.OUTPUT_KEPT` bytes are kept). A sandbox that is not ``shown`` (the hidden tests') sends its output to ``/dev/null``: what a
process that has seen a hidden input prints is never read. Every byte a reply carries is untrusted: any
failure to read or decode it is a :class:`~autograder.remote.SandboxFailure` of this submission.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from autograder import isolation, memory
from autograder.processes import Output, describe_exit, process_tree, remove_files_of, scrubbed_environment
from autograder.remote import SandboxFailure
from fwd_kit.grading.child import HEADER, encode_message

REPLY_JSON_MB = 1  # largest JSON part of a reply (its tensors apart, Limits.reply_mb); the solutions send 0.02 MB


@dataclass
class Limits:
    """What one submission's process may use (Gradescope's default machine: 0.5 vCPU, 768 MB)."""

    call_s: float = 60.0  # wall-clock seconds for one call of the student's code (or loading one cell)
    start_s: float = 120.0  # wall-clock seconds to start the process (a fork of the zygote: well under one)
    total_s: float = 900.0  # wall-clock seconds for the whole submission: starts, cells and calls together
    memory_mb: int = 2048  # memory the student's code may add (less where the container has less to give)
    file_mb: int = 64  # largest file it may write
    scratch_mb: int = 64  # total bytes of its scratch folder (a tmpfs, which counts as memory)
    cpu_s: int = 1200  # CPU seconds of one process (a backstop behind call_s)
    processes: int = 256  # RLIMIT_NPROC when not root (threads count too); forks are refused anyway
    reply_mb: int = 16  # largest tensors of one reply read back from it (the solutions send 1.6 MB at most)


@dataclass
class Cell:
    """Code from one notebook cell to run in the student's process: ``label`` names it in tracebacks."""

    label: str
    source: str
    names: list[str] = field(default_factory=list)  # graded functions and classes it defines


class Sandbox:
    """Runs ``cells`` (after the trusted ``preamble`` import lines) in a confined child process.

    ``shown``: what the process prints is kept for the feedback (:meth:`output_tail`); a sandbox that
    serves hidden tests is not shown. ``diffusers``: the checks send diffusers models (Part A).
    """

    def __init__(self, cells: list[Cell], preamble: list[str], limits: Limits | None = None, shown: bool = True,
                 diffusers: bool = True):
        self.cells = list(cells)
        self.preamble = list(preamble)
        self.limits = limits or Limits()
        self.shown, self.diffusers = shown, diffusers
        self.deadline = time.monotonic() + self.limits.total_s  # one deadline for the whole submission
        self.skipped: set[int] = set()  # cells that hung while loading: left out of every restart
        self.load_errors: dict[str, str] = {}  # cell label → what went wrong loading it (first start)
        self.load_tracebacks: dict[str, list[str]] = {}
        self.layers: list[str] = []  # the confinement the child reported installing
        self.process = None  # a zygote.Forked
        self.output: Output | None = None
        self.outputs: list[Output] = []  # one per start: all of them are shown, in order
        self.claim = None  # the uid this child runs as (isolation.UidClaim)
        self.scratch: str | None = None  # the child's folder on this machine (None with namespaces)
        self.starts = 0
        self.startup_s = 0.0  # seconds spent starting processes and loading cells
        self.student_s = 0.0  # seconds spent waiting for the student's code to answer requests
        self.oom_kills = memory.oom_kills()  # the container's count before this sandbox: a rise is ours
        isolation.report_once()

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

    def _time_left(self, limit: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.kill()
            raise SandboxFailure(f"grading your code took longer than {self.limits.total_s:g} s in all (loading "
                                 "the cells included), so the rest was not run")
        return min(limit, left)

    def _config(self) -> dict:
        h = isolation.host()
        roots, hidden = isolation.read_roots(), isolation.hidden_dirs()
        limits = self.limits
        return dict(preamble=self.preamble, cells=[dict(label=c.label, source=c.source) for c in self.cells],
                    limits=dict(memory_mb=memory.child_budget_mb(limits.memory_mb), file_mb=limits.file_mb,
                                cpu_s=limits.cpu_s, processes=limits.processes),
                    read_roots=roots, landlock_roots=isolation.landlock_roots(roots, hidden), denied=hidden,
                    kernel=dict(seccomp=h.seccomp, landlock=h.landlock_abi > 0), diffusers=self.diffusers)

    def _spec(self) -> dict:
        """How the child confines itself (:func:`autograder.confine.confine`), with a uid claimed for it."""
        h = isolation.host()
        if h.refusal:
            raise SandboxFailure(f"the grader refuses to run code on this machine: {h.refusal}")
        self.claim = isolation.claim_uid() if h.drop_uid else None
        uid = self.claim.uid if self.claim else None
        spec = dict(namespaces=h.namespaces, uid=uid, scratch_bytes=self.limits.scratch_mb * 1024 * 1024)
        if h.namespaces:
            spec.update(isolation.root_layout())
            scratch = isolation.SCRATCH
        else:
            self.scratch = tempfile.mkdtemp(prefix="fwd-scratch-")
            if uid is not None:
                os.chown(self.scratch, uid, uid)
            spec["scratch"] = scratch = self.scratch
        spec["environment"] = scrubbed_environment(scratch)
        return spec

    def _start_once(self) -> bool:
        """One start; False when a cell hung and was added to ``skipped`` (start again)."""
        from autograder import zygote

        self.kill()
        self._time_left(self.limits.start_s)  # past the submission's deadline: no new process
        spec = self._spec()
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        out_r, out_w = os.pipe() if self.shown else (None, os.open(os.devnull, os.O_WRONLY))
        try:
            self.process = zygote.get(self.diffusers).spawn(spec, req_r, rep_w, out_w)
        except (OSError, RuntimeError) as err:
            for fd in (req_r, rep_w, out_w, out_r, self.req_w, self.rep_r):
                if fd is not None:
                    os.close(fd)
            raise SandboxFailure(f"the grader could not start the process for your code ({err})") from None
        finally:
            for fd in (req_r, rep_w, out_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if out_r is not None:
            self.output = Output(out_r)
            self.outputs.append(self.output)
        os.set_blocking(self.req_w, False)
        self.starts += 1
        try:
            limit = self._time_left(self.limits.start_s)
            self._write(encode_message(self._config()), time.monotonic() + limit, limit)
            reply, _ = self._exchange({"op": "ping"}, {}, self._time_left(self.limits.start_s))
        except SandboxFailure as err:
            raise SandboxFailure(f"the grader could not start the process for your code ({err}); it printed: "
                                 f"{self.output_tail(800)!r}") from None
        self.layers = [str(layer) for layer in reply.get("layers") or []][:10]
        for index, cell in enumerate(self.cells):
            if index in self.skipped:
                continue
            try:
                reply, _ = self._exchange({"op": "load", "index": index}, {}, self._time_left(self.limits.call_s))
            except SandboxFailure as err:
                self.skipped.add(index)
                self.load_errors.setdefault(cell.label, f"running the cell failed: {err}")
                if time.monotonic() >= self.deadline:
                    self.skipped.update(range(index, len(self.cells)))
                    return True
                return False
            if not reply.get("ok"):
                error = reply.get("error") or {}
                self.load_errors.setdefault(cell.label, f"{error.get('type')}: {error.get('message')}")
                self.load_tracebacks.setdefault(cell.label, [str(line) for line in error.get("traceback") or []])
        return True

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Kill the process and everything it started, wait until none of them is left, and clean up after
        it (its uid is free again; without namespaces, what it left in the shared temporary folders goes)."""
        if self.process is not None:
            tree = process_tree(self.process.pid) if self.process.poll() is None else []
            for pid in tree:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that survives SIGKILL
                pass
            end = time.monotonic() + 5
            while any(os.path.exists(f"/proc/{pid}") for pid in tree[1:]) and time.monotonic() < end:
                time.sleep(0.02)  # the PID namespace's processes die with its first process
            for fd in (self.req_w, self.rep_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.process = None
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        if self.claim is not None:
            if not isolation.host().namespaces:
                remove_files_of(self.claim.uid)
            self.claim.release()
            self.claim = None

    def close(self) -> None:
        if self.alive:
            try:
                self._write(encode_message({"op": "bye"}), time.monotonic() + 2, 2)
                self.process.wait(timeout=2)
            except (OSError, SandboxFailure, subprocess.TimeoutExpired):
                pass
        self.kill()

    def output_tail(self, chars: int = 2000) -> str:
        """The end of what the student's code printed (stdout and stderr, every start of the process); ""
        for a sandbox that is not shown."""
        return "".join(o.text(chars) for o in self.outputs)[-chars:]

    def ran_out_of_memory(self) -> bool:
        """Whether the container's memory ran out (the kernel killed a process) since this sandbox began."""
        return memory.oom_kills() > self.oom_kills

    # requests -------------------------------------------------------------------------------------
    def request(self, message: dict, tensors: dict) -> tuple[dict, dict]:
        """Send ``message`` (with ``tensors``) and wait up to ``limits.call_s`` for the reply."""
        if not self.alive:
            self.start()
        begin = time.perf_counter()
        try:
            reply, tensors = self._exchange(message, tensors, self._time_left(self.limits.call_s))
        finally:
            self.student_s += time.perf_counter() - begin
        if reply.get("leaked_threads"):
            self.kill()  # threads the call left running must not touch later tests: a fresh process
        return reply, tensors

    def _exchange(self, message: dict, tensors: dict, timeout: float) -> tuple[dict, dict]:
        from safetensors.torch import load, save

        deadline = time.monotonic() + timeout
        self._write(encode_message(dict(message, tensors=bool(tensors)), save(tensors) if tensors else b""),
                    deadline, timeout)
        reply = self._read_reply(deadline, timeout)
        blob = self._read_frame(self.limits.reply_mb * 1024 * 1024, deadline, timeout, "tensors")
        if not blob:
            return reply, {}
        try:
            return reply, load(blob)
        except Exception as err:  # noqa: BLE001 - corrupted bytes are the student's process's fault
            self.kill()
            raise SandboxFailure(f"the reply's tensors could not be read ({type(err).__name__})") from None

    def _write(self, data: bytes, deadline: float, timeout: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            ready = select.select([], [self.req_w], [], max(0.0, remaining))[1] if remaining > 0 else []
            if not ready:
                self._time_left(0.0 if time.monotonic() >= self.deadline - 0.05 else timeout)
                self.kill()
                raise SandboxFailure(f"your code took longer than {timeout:g} s and was stopped")
            try:
                view = view[os.write(self.req_w, view[:1 << 16]):]
            except BlockingIOError:
                continue
            except OSError:
                code = self.process.poll() if self.process else None
                self.kill()
                raise SandboxFailure(f"the process running your code {describe_exit(code)}") from None

    def _read_reply(self, deadline: float, timeout: float) -> dict:
        body = self._read_frame(REPLY_JSON_MB * 2**20, deadline, timeout, "reply")
        try:
            reply = json.loads(body.decode("utf-8"))
        except Exception as err:  # noqa: BLE001 - bad UTF-8, bad JSON, nesting too deep, too large: all its
            self.kill()
            raise SandboxFailure(f"the reply could not be read ({type(err).__name__})") from None
        if not isinstance(reply, dict):
            self.kill()
            raise SandboxFailure("the reply was not a JSON object")
        return reply

    def _read_frame(self, limit: int, deadline: float, timeout: float, what: str) -> bytes:
        (size,) = HEADER.unpack(self._read_exactly(HEADER.size, deadline, timeout))
        if size > limit:
            self.kill()
            raise SandboxFailure(f"the {what} is larger than {limit // 2**20} MB")
        return self._read_exactly(size, deadline, timeout)

    def _read_exactly(self, n: int, deadline: float, timeout: float) -> bytes:
        chunks, left = [], n
        while left:
            remaining = deadline - time.monotonic()
            ready = select.select([self.rep_r], [], [], max(0.0, remaining))[0] if remaining > 0 else []
            if not ready:
                self._time_left(0.0 if time.monotonic() >= self.deadline - 0.05 else timeout)
                self.kill()
                raise SandboxFailure(f"your code took longer than {timeout:g} s and was stopped (an endless loop? "
                                     "too many steps?)")
            chunk = os.read(self.rep_r, min(left, 1 << 20))
            if not chunk:
                try:
                    code = self.process.wait(timeout=10) if self.process else None
                except subprocess.TimeoutExpired:
                    code = None
                self.kill()
                if self.ran_out_of_memory():
                    raise SandboxFailure(memory.out_of_memory_message())
                raise SandboxFailure(f"the process running your code {describe_exit(code)}")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
