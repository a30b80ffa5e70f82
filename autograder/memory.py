"""The container's memory as the kernel counts it (the cgroup this grader runs in), and what to say about it.

Gradescope and Docker limit a container's memory with a cgroup: every process of the grading tree counts,
each page once. The grader reads that limit (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``), its
current use and its count of processes killed for memory, so that:

- the student's process is given only what the container has left (:func:`child_budget_mb`), so that its
  own allocations fail (a ``MemoryError`` in its code) before the container runs out. What is left is the
  limit less the memory in use **less the page cache**: the pages of torch's libraries that the container
  read count in its usage (in a fresh container, 220–320 MB of 768 for Part A with torch's CUDA build), but
  the kernel drops them, or reads them again, when memory runs short. Counting them gave the student's
  process 64 MB in a container with a cold cache, and a correct Part A solution lost 7–9 points;
- when the kernel kills the student's process anyway, the message says it used too much memory
  (:func:`out_of_memory_message`), and the other tests carry on in a fresh process;
- a limit below what grading itself needs is named to the staff, not blamed on the student (:func:`staff_note`).
"""

from __future__ import annotations

import os
from pathlib import Path

FLOOR_MB = 700  # measured: what grading a complete submission needs in all (grader, zygote, student's process)
RESERVE_MB = 96  # kept for the grader's own work beside the student's process
CGROUP = Path("/sys/fs/cgroup")


def _cgroup_dirs() -> list[Path]:
    """This process's memory cgroup folders, innermost first (v2 unified, else v1 ``memory``)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    dirs = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (CGROUP / "cgroup.controllers").exists():
            base = CGROUP
        elif "memory" in controllers.split(","):
            base = CGROUP / "memory"
        else:
            continue
        current = base / path.lstrip("/")
        while True:
            dirs.append(current)
            if current == base:
                break
            current = current.parent
    return dirs


def _read(names: tuple[str, ...]) -> list[str]:
    found = []
    for folder in _cgroup_dirs():
        for name in names:
            try:
                found.append((folder / name).read_text())
            except OSError:
                continue
    return found


def limit_mb() -> float | None:
    """The tightest memory limit over this process's cgroups, in MB; None when there is none."""
    limits = []
    for text in _read(("memory.max", "memory.limit_in_bytes")):
        text = text.strip()
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text) / 2**20)
    return min(limits) if limits else None


def usage_mb() -> float:
    """What the innermost cgroup uses now, in MB (0 when unknown)."""
    for text in _read(("memory.current", "memory.usage_in_bytes")):
        if text.strip().isdigit():
            return int(text) / 2**20
    return 0.0


def page_cache_mb() -> float:
    """The innermost cgroup's page cache (file pages, in its usage too), in MB; 0 when unknown."""
    stats = _read(("memory.stat",))  # innermost first
    fields = dict(line.split(" ", 1) for line in (stats[0] if stats else "").splitlines() if " " in line)
    for key in ("file", "total_cache"):  # cgroup v2; v1 (this cgroup and those below it)
        if fields.get(key, "").strip().isdigit():
            return int(fields[key]) / 2**20
    return 0.0


def oom_kills() -> int:
    """How many processes the kernel has killed for memory in this process's cgroups."""
    total = 0
    for text in _read(("memory.events", "memory.oom_control")):
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                total += int(value)
    return total


def child_budget_mb(wanted_mb: int) -> int:
    """Memory the student's process may add: ``wanted_mb``, or what the container has left if that is less
    (its limit less what it uses beyond the page cache, less ``RESERVE_MB``)."""
    limit = limit_mb()
    if limit is None:
        return wanted_mb
    in_use = usage_mb() - page_cache_mb()
    return int(max(64, min(wanted_mb, limit - in_use - RESERVE_MB)))


def out_of_memory_message() -> str:
    limit = limit_mb()
    if limit is not None and limit < FLOOR_MB:  # the container's setting, not the student's code
        return (f"the grading container ran out of memory: it has {limit:.0f} MB, less than the {FLOOR_MB} MB the "
                "autograder needs (a setting of the course, not a fault of your code; tell the course staff)")
    within = f" (this container has {limit:.0f} MB for everything)" if limit else ""
    return (f"your code used more memory than the grader allows{within}: does it keep very large tensors, or "
            "make a new one at every step of a loop?")


def staff_note() -> str:
    """A line for the staff when the container's limit is below what grading needs ("" when it is enough)."""
    limit = limit_mb()
    if limit is None or limit >= FLOOR_MB:
        return ""
    return (f"The autograder needs {FLOOR_MB} MB of memory; this assignment is set to {limit:.0f} MB: raise it in "
            "the autograder settings (course staff: a failed test below may come from this limit, not from the "
            "student's code).")


def protect_grader() -> None:
    """Make this process the kernel's last choice when memory runs out (root only; harmless otherwise)."""
    try:
        with open(f"/proc/{os.getpid()}/oom_score_adj", "w") as f:
            f.write("-500")
    except OSError:
        pass
