"""Wall time of the main job, ``course demo --out DIR``, as the README runs it, and of ``course demo --fast``.

    python bench/bench_demo.py                  # both runs, each into a fresh temporary folder
    python bench/bench_demo.py --only full      # only the README's command (or --only fast)

Each run is the installed ``course`` command beside this Python (``.venv/bin/course``), started as a shell
would start it, so the time includes importing torch and diffusers, the Part A figures and the instructor's
loop (release with nbgrader, grading three submissions, feedback pages). It prints the wall time, the
figures written and the machine's load average before and after (on busy cores the time says little), so
the README can quote it with its conditions. Run it on quiet cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = {"full": [], "fast": ["--fast"]}  # name → options added to `course demo --out DIR`


def course_command() -> str:
    """The ``course`` script of this environment (as the README calls it), else ``python -m course``."""
    script = Path(sys.executable).with_name("course")
    return str(script) if script.is_file() else f"{sys.executable} -m course"


def time_demo(options: list[str]) -> dict:
    """Run ``course demo --out <fresh folder> OPTIONS``; its wall time, exit status and figures written."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as out:
        command = [*course_command().split(), "demo", "--out", out, *options]
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        figures = len(list(Path(out).glob("*.png")))
    return dict(command=" ".join(["course", "demo", "--out", "DIR", *options]), seconds=seconds,
                status=done.returncode, figures=figures, load=(load_before, os.getloadavg()[0]),
                tail=(done.stdout + done.stderr)[-1500:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS), help="time one run only")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; course: {course_command()}")
    failed = 0
    for name, options in RUNS.items():
        if args.only and name != args.only:
            continue
        result = time_demo(options)
        print(f"{result['command']}: {result['seconds']:.0f} s wall, exit status {result['status']}, "
              f"{result['figures']} figures; load average {result['load'][0]:.1f} before, {result['load'][1]:.1f} after")
        if result["status"] != 0:
            failed += 1
            print(result["tail"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
