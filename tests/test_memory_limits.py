"""Grading inside Gradescope's default container (issue 26): 768 MB for everything the container runs.

The Gradescope zip's ``run_autograder`` runs in a fresh memory cgroup limited as Gradescope limits a
container (tests/cgroup_kit.py; root only, skipped elsewhere). Oracle: the rubric's full marks for the
solution; for a submission that fills memory, the memory message on that test and every other test scored;
for replies just under the grader's caps, a results file; below the grader's own floor, the staff's message.
The .so files of torch may already sit in this machine's page cache (charged to another cgroup), so a
fresh container also pays for those pages; they are reclaimable, the anonymous memory is what must fit.
"""

from __future__ import annotations

import json
import os
import textwrap

import nbformat
import pytest
from cgroup_kit import run_limited, unavailable
from submission_kit import SOLUTION, answer_cell, solution_notebook
from test_gradescope import automatic, gradescope_root

from autograder.rubric import rubric

LIMIT_MB = 768  # Gradescope's default
pytestmark = pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "cgroups available")


@pytest.fixture(scope="module")
def default_zip(tmp_path_factory):
    """The zip as an instructor makes it by default (public, hidden and semantic tests)."""
    from course.gradescope import build_autograder_zip

    return build_autograder_zip(tmp_path_factory.mktemp("zip") / "autograder.zip")


def run_limited_autograder(root, limit_mb: int = LIMIT_MB) -> tuple[dict, object]:
    import sys

    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    env.pop("FWD_HIDDEN_SECRET", None)  # as on Gradescope: the secret is a file of the zip, never in the environment
    done = run_limited([str(root / "run_autograder")], limit_mb, cwd=root, env=env, timeout=600)
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8")), done


def full_marks(part: str) -> float:
    return sum(r.public + r.hidden + r.semantic for r in rubric(part).graded)


def test_the_part_b_solution_gets_full_marks_at_768_mb(default_zip, tmp_path):
    root = gradescope_root(tmp_path, default_zip, {"partB.ipynb": SOLUTION["partB"].read_bytes()})
    results, done = run_limited_autograder(root)
    failed = [t["name"] + ": " + t["output"][:200] for t in automatic(results) if t["status"] != "passed"]
    assert results["score"] == full_marks("partB"), (failed, done.stderr[-1500:])
    assert done.oom_kills == 0 and done.peak_mb < LIMIT_MB, done.peak_mb


@pytest.mark.slow
def test_the_part_a_solution_gets_full_marks_at_768_mb(default_zip, tmp_path):
    root = gradescope_root(tmp_path, default_zip, {"partA.ipynb": SOLUTION["partA"].read_bytes()})
    results, done = run_limited_autograder(root)
    failed = [t["name"] + ": " + t["output"][:200] for t in automatic(results) if t["status"] != "passed"]
    assert results["score"] == full_marks("partA"), (failed, done.stderr[-1500:])
    assert done.oom_kills == 0


MEMORY_BOMB = '''
def pure_noise_loss(unet, x, generator=None):
    kept = []
    while True:
        kept.append(torch.ones(64, 1024, 1024))  # 256 MB at a time, every page written
'''


def test_a_submission_that_fills_memory_loses_that_test_only(default_zip, tmp_path):
    nb = solution_notebook("partB")
    answer_cell(nb, "pure_noise_loss").source = textwrap.dedent(MEMORY_BOMB)
    root = gradescope_root(tmp_path, default_zip, {"partB.ipynb": nbformat.writes(nb).encode()})
    results, done = run_limited_autograder(root)
    tests = automatic(results)
    bomb = [t for t in tests if t["name"].startswith("pure_noise_loss:")]
    assert bomb and all(t["score"] == 0 and "more memory than the grader allows" in t["output"] for t in bomb), bomb
    others = [t for t in tests if not t["name"].startswith("pure_noise_loss:")]
    assert all(t["status"] == "passed" for t in others), [t["name"] for t in others if t["status"] != "passed"]


BIG_REPLIES = '''
def flow_target(x0, x1):
    return x1 - x0
def interpolate(x0, x1, t):
    big = [float(i) for i in range(75_000)]  # a JSON part near the 1 MB cap
    return [torch.ones(15, 256, 1024)] + big  # and 15 MB of tensors, under the 16 MB cap
'''


def test_replies_just_under_the_caps_are_graded_and_results_written(default_zip, tmp_path):
    nb = solution_notebook("partB")
    answer_cell(nb, "interpolate").source = textwrap.dedent(BIG_REPLIES)
    answer_cell(nb, "flow_target").source = ""
    root = gradescope_root(tmp_path, default_zip, {"partB.ipynb": nbformat.writes(nb).encode()})
    results, done = run_limited_autograder(root)
    tests = {t["name"]: t for t in automatic(results)}
    assert tests["interpolate: public check"]["status"] == "failed"  # graded: not the right answer
    assert "grader" not in tests["interpolate: public check"]["output"].lower()
    assert tests["add_noise: public check"]["status"] == "passed"  # and the others went on
    assert done.oom_kills == 0


def test_a_limit_below_the_graders_floor_is_named_to_the_staff(default_zip, tmp_path):
    from autograder.memory import FLOOR_MB

    root = gradescope_root(tmp_path, default_zip, {"partB.ipynb": SOLUTION["partB"].read_bytes()})
    results, done = run_limited_autograder(root, limit_mb=FLOOR_MB // 2)
    text = results.get("output", "") + " ".join(t["output"] for t in results.get("tests", []))
    assert f"needs {FLOOR_MB} MB" in text and "raise it in the autograder settings" in text, text[:1500]
    assert "Does your code run for very long" not in text
    assert "your code used more memory" not in text  # a process that cannot start is the limit's doing
