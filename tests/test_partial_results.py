"""A grading killed mid-run leaves the tests it finished in results.json, and says it was cut short (issue 13).

Oracle: the results file read after a SIGKILL of the whole grading (as Gradescope kills a run over its
limit) is valid JSON in Gradescope's format, holds at least one finished test with its real verdict, marks
every other test "not run", and its top-level output says the grading was cut short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from submission_kit import SOLUTION


def test_a_killed_grading_leaves_the_finished_tests(tmp_path):
    submission = tmp_path / "alice.ipynb"
    submission.write_bytes(SOLUTION["partB"].read_bytes())
    out = tmp_path / "graded"
    grading = subprocess.Popen([sys.executable, "-m", "course", "grade", str(submission), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    results = out / "alice" / "results.json"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and grading.poll() is None:
            if results.is_file():
                passed = [t for t in json.loads(results.read_text())["tests"] if t["status"] == "passed"]
                if len(passed) >= 3:
                    break
            time.sleep(0.2)
        assert grading.poll() is None, "the grading ended before it could be killed mid-run"
    finally:
        os.killpg(grading.pid, signal.SIGKILL)
        grading.wait()
    data = json.loads(results.read_text())  # valid JSON: written through a rename
    statuses = [t["status"] for t in data["tests"]]
    not_run = [t for t in data["tests"] if t["output"].startswith("Not run: grading was cut short")]
    assert statuses.count("passed") >= 3 and not_run, statuses
    assert len(data["tests"]) == statuses.count("passed") + len(not_run)  # the solution fails nothing
    assert all(t["score"] == 0 for t in not_run)
    assert "cut short after" in data["output"] and f"of {len(data['tests'])} tests" in data["output"]
    assert Path(out / "alice" / "feedback.html").is_file()
