"""The grader reads the reference's results from the offering's stored file instead of recomputing them for
every submission (issue 13), and that changes no verdict.

Oracle: the same submission graded with the stored results and with the live reference (the cache switched
off) gets the same status on every test; with the file, the solution's grading computes no reference call
live (every lookup hits); the file holds the public seed and the offering's hidden seed.
"""

from __future__ import annotations

import os

import pytest
from submission_kit import Edit, Submission

import autograder.grade
from autograder.expectations import HIDDEN_RUN, load_or_build
from autograder.grade import grade_submission
from autograder.hidden import hidden_seed
from fwd_kit import expected

KINDS = ("public", "hidden")


@pytest.fixture(scope="module")
def stored():
    found = load_or_build(os.environ["FWD_HIDDEN_SECRET"], "partB")
    assert found is not None
    return found


def test_the_file_holds_the_public_and_the_hidden_seed(stored):
    seed = hidden_seed(HIDDEN_RUN, os.environ["FWD_HIDDEN_SECRET"])
    assert stored["manifest"]["seeds"] == [0, seed]
    assert "check_add_noise" in stored["checks"] and f"check_add_noise@{seed}" in stored["checks"]
    assert "check_forward" not in stored["checks"]  # Part A's checks are in Part A's file


def test_the_solution_is_graded_from_the_file_alone(stored, tmp_path):
    before = expected.counts()
    report = grade_submission(Submission("partB").write(tmp_path), kinds=KINDS)
    after = expected.counts()
    assert report.score == report.max_score > 0
    assert after["hits"] > before["hits"] and after["misses"] == before["misses"]


def test_stored_results_change_no_verdict(stored, tmp_path, monkeypatch):
    mistakes = Submission("partB", (
        Edit("add_noise", "σ² instead of σ", "sigma * noise", "sigma**2 * noise"),
        Edit("flow_target", "the wrong direction", "x1 - x0", "x0 - x1"),
    ))
    path = mistakes.write(tmp_path)
    cached = grade_submission(path, kinds=KINDS)
    monkeypatch.setattr(autograder.grade, "stored_results", lambda kinds, part=None: None)
    live = grade_submission(path, kinds=KINDS)
    assert [(o.test.number, o.status) for o in cached.outcomes] == [(o.test.number, o.status) for o in live.outcomes]
    assert 0 < cached.score < cached.max_score
