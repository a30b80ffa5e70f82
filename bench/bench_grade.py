"""Benchmark of the autograder, side by side: the reference computed live for every submission (as before)
and the reference's results read from the offering's stored file (``autograder.expectations``).

    python bench/bench_grade.py                 # both parts' solutions, all tests; batch of 20
    python bench/bench_grade.py --batch 8       # a smaller batch

For one complete submission of each part (the solution notebook: every test runs to the end) it prints, per
mode, the wall time and its split — start-up (the student's process: importing torch and diffusers,
loading the cells), student code (waiting for the sandbox to answer, transfers included), checks (the
reference and the comparisons in the grader) — and the peak memory of the whole process tree of
``course grade`` (grader, worker and the student's process), as the sum of their proportional set sizes
(PSS: pages shared after a fork are counted once, as a container's memory limit counts them), sampled
every 0.1 s. Then it grades a mixed batch (solutions, stubs, typical mistakes, broken files) with one and
with two parallel jobs and prints the throughput of each and their ratio. Run it on quiet cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat

import autograder.grade
from autograder.grade import grade_batch, grade_submission
from course.notebooks.build import REPO_ROOT

TARGETS = {"partA": 12.0, "partB": 4.0}  # issue 13: seconds of wall time per complete submission, one core
MEMORY_TARGET_MB = 700  # issue 13: the process tree under Gradescope's default 768 MB


@contextmanager
def live_reference(on: bool):
    """While inside, grading computes the reference live (``on``) instead of reading the stored results."""
    saved = autograder.grade.stored_results
    if on:
        autograder.grade.stored_results = lambda kinds, part=None: None
    try:
        yield
    finally:
        autograder.grade.stored_results = saved


def tree_pss_mb(root: int) -> float:
    """Sum of the proportional set sizes of ``root`` and its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def peak_memory_mb(notebook: Path, kinds, live: bool) -> float:
    """Peak PSS of ``course grade NOTEBOOK`` (a subprocess tree), with or without the stored results."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if live:
        env["FWD_GRADER_EXPECTATIONS"] = "live"  # every check computes the reference
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.Popen([sys.executable, "-m", "course", "grade", str(notebook), "--out", out,
                                 "--tests", ",".join(kinds)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, tree_pss_mb(proc.pid))
            time.sleep(0.1)
    return peak


def mixed_batch(folder: Path, size: int) -> list[Path]:
    """``size`` submissions: solutions, stubs, a typical mistake per part and broken files, in turn."""
    kinds = []
    for part in ("partA", "partB"):
        kinds += [REPO_ROOT / "solutions" / part / f"{part}.ipynb", REPO_ROOT / "assignments" / part / f"{part}.ipynb"]
    wrong = nbformat.read(kinds[2], as_version=4)  # Part B's solution with a typical mistake
    for cell in wrong.cells:
        cell.source = cell.source.replace("return x + sigma * noise", "return x + sigma**2 * noise")
    (folder / "mistake.ipynb").write_text(nbformat.writes(wrong))
    (folder / "broken.ipynb").write_text("{ not a notebook")
    kinds += [folder / "mistake.ipynb", folder / "broken.ipynb"]
    batch = []
    for i in range(size):
        target = folder / f"s{i:03d}" / kinds[i % len(kinds)].name
        target.parent.mkdir()
        target.write_bytes(kinds[i % len(kinds)].read_bytes())
        batch.append(target.parent)
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20, help="submissions in the batch (default: 20)")
    parser.add_argument("--tests", default="public,hidden,semantic", help="kinds of tests (default: all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    args = parser.parse_args()
    kinds = tuple(args.tests.split(","))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    solutions = {p: REPO_ROOT / "solutions" / p / f"{p}.ipynb" for p in ("partA", "partB")}
    for part in solutions:  # build the stored results once, outside the timings
        autograder.grade.stored_results(kinds, part)

    print(f"one complete submission (tests: {', '.join(kinds)}); targets: Part A ≤ {TARGETS['partA']:g} s, "
          f"Part B ≤ {TARGETS['partB']:g} s, memory ≤ {MEMORY_TARGET_MB} MB")
    print(f"{'notebook':<9}{'reference':<10}{'score':>11}{'total s':>9}{'start-up':>10}{'student':>9}{'checks':>8}"
          f"{'peak MB':>9}")
    totals = {}
    for part, path in solutions.items():
        for live in (True, False):
            with live_reference(live):
                report = grade_submission(path, kinds=kinds)
            s = report.seconds
            peak = float("nan") if args.no_memory else peak_memory_mb(path, kinds, live)
            totals[part, live] = s["total"]
            print(f"{part:<9}{'live' if live else 'stored':<10}{report.score:>6g}/{report.max_score:<5g}"
                  f"{s['total']:>9.1f}{s['startup']:>10.1f}{s['student']:>9.1f}{s['checks']:>8.1f}{peak:>9.0f}")
        print(f"{part:<9}stored / live wall time: {totals[part, False] / totals[part, True]:.2f}")

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        batch = mixed_batch(Path(tmp), args.batch)
        for jobs in (1, 2):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                grade_batch(batch, Path(out), jobs=jobs, kinds=kinds, log=lambda *_: None)
                wall = time.perf_counter() - start
                written = sum(1 for _ in Path(out).glob("*/results.json"))
            rates[jobs] = len(batch) / wall * 60
            print(f"mixed batch of {len(batch)} with --jobs {jobs}: {wall:.1f} s, {rates[jobs]:.1f} submissions/min, "
                  f"{written} results files")
    print(f"throughput ratio jobs 2 / jobs 1: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
