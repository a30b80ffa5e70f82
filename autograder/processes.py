"""What surrounds a student's process on the grader's side (:mod:`autograder.sandbox`): its environment,
how its end is told, its process tree, the files it left in shared folders, and its printed output."""

from __future__ import annotations

import os
import shutil
import signal
import threading

from autograder import isolation

OUTPUT_KEPT = 64 * 1024  # bytes of a shown process's printed output the grader keeps (the last ones)
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")  # where a child without namespaces could leave files behind


def scrubbed_environment(scratch: str) -> dict:
    """The student's process sees no tokens, proxies or paths of the grader: only what it needs to run."""
    return {
        "PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "*",
        "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
    }


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "did not answer"
    if returncode < 0:
        sig = -returncode
        why = {signal.SIGKILL: "killed (perhaps it ran out of memory)", signal.SIGXCPU: "stopped at its CPU-time limit",
               signal.SIGSEGV: "crashed (segmentation fault)", signal.SIGABRT: "aborted",
               signal.SIGSYS: "stopped for a forbidden system call"}.get(sig, "stopped")
        return f"was {why}, signal {sig}"
    if returncode > 128 and isolation.host().namespaces:  # the namespace's first fork: 128 + the signal
        return describe_exit(128 - returncode)
    return f"exited with code {returncode} (os._exit or a crash)"


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc/<pid>/task/*/children``), parents first."""
    tree, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tree.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    queue += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return tree


def remove_files_of(uid: int, folders=SHARED_TMP) -> None:
    """Delete what a child running as ``uid`` left in the machine's shared folders (no namespaces)."""
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass


class Output:
    """A thread that drains a child's output pipe and keeps its last :data:`OUTPUT_KEPT` bytes."""

    def __init__(self, fd: int):
        self.fd, self.data, self.lock = fd, bytearray(), threading.Lock()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            with self.lock:
                self.data += chunk
                del self.data[:-OUTPUT_KEPT]
        os.close(self.fd)

    def text(self, chars: int) -> str:
        self.thread.join(timeout=2)
        with self.lock:
            return bytes(self.data).decode("utf-8", "replace")[-chars:]
