"""A memory cgroup for a test's command, as Docker and Gradescope make one for a container (root only).

:func:`run_limited` runs a command in a fresh cgroup with a hard memory limit and reports the tree's peak
(every process the command starts, each page once) and whether the kernel killed one of them. cgroup v1
(``/sys/fs/cgroup/memory``) or v2 (a writable unified hierarchy); :func:`unavailable` says why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def unavailable() -> str:
    """Why no memory cgroup can be made here ("" when one can)."""
    if os.geteuid() != 0:
        return "making a memory cgroup needs root"
    if os.access(V1, os.W_OK) or ((V2 / "cgroup.controllers").exists() and os.access(V2, os.W_OK)):
        return ""
    return "no writable memory cgroup (v1 or v2) on this machine"


@dataclass
class Limited:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float
    oom_kills: int


def _read_int(path: Path, key: str | None = None) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    if key is None:
        return int(text.strip() or 0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def run_limited(command: list[str], limit_mb: int, timeout: float = 600, **popen) -> Limited:
    """Run ``command`` in a new memory cgroup limited to ``limit_mb`` (no swap beyond it)."""
    tag = f"fwd-test-{os.getpid()}-{time.monotonic_ns()}"
    v1 = os.access(V1, os.W_OK)
    folder = (V1 if v1 else V2) / tag
    folder.mkdir()
    try:
        if v1:
            (folder / "memory.limit_in_bytes").write_text(str(limit_mb << 20))
            try:
                (folder / "memory.memsw.limit_in_bytes").write_text(str(limit_mb << 20))
            except OSError:
                pass  # no swap accounting: the limit above is the one that counts
        else:
            (folder / "memory.max").write_text(str(limit_mb << 20))
            (folder / "memory.swap.max").write_text("0")

        def enter() -> None:
            (folder / "cgroup.procs").write_text(str(os.getpid()))

        done = subprocess.run(command, preexec_fn=enter, capture_output=True, text=True, timeout=timeout, **popen)
        peak = _read_int(folder / ("memory.max_usage_in_bytes" if v1 else "memory.peak")) / 2**20
        kills = _read_int(folder / ("memory.oom_control" if v1 else "memory.events"), "oom_kill")
        return Limited(done.returncode, done.stdout, done.stderr, peak, kills)
    finally:
        for _ in range(50):
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        else:
            shutil.rmtree(folder, ignore_errors=True)
