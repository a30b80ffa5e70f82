"""``course grade`` on the console: does an instructor learn, without opening results.json, which submissions
could not be graded and why, and can two submissions with the same file name be told apart?"""

from __future__ import annotations

import csv
import json

from course.cli import main


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_unusable_submissions_are_named_with_their_reason_and_the_command_fails(tmp_path, capsys):
    """A missing file, an empty folder, a file that is not JSON and a cut-off notebook with the same file
    name as another: each gets a line with its reason, its own folder and row, and the exit status is 1."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "alice" / "hw.ipynb").write_text('{"cells": [')  # cut off mid-file
    (tmp_path / "bob" / "hw.ipynb").write_text("my answers are on paper")
    inputs = [tmp_path / "alice" / "hw.ipynb", tmp_path / "bob" / "hw.ipynb", tmp_path / "empty",
              tmp_path / "missing.ipynb"]
    out = tmp_path / "graded"
    status = main(["grade", *map(str, inputs), "--out", str(out)])
    printed = capsys.readouterr().out
    assert status == 1
    lines = {line.split(":", 1)[0]: line for line in printed.splitlines() if ":" in line}
    assert {f"hw ({inputs[0]})", f"hw-2 ({inputs[1]})", "empty", "missing"} <= set(lines)
    assert "not valid JSON" in lines[f"hw ({inputs[0]})"] and "not valid JSON" in lines[f"hw-2 ({inputs[1]})"]
    assert "found none" in lines["empty"] and "nothing there" in lines["missing"]
    assert all("not graded" in line for line in lines.values() if line.startswith(("hw", "empty", "missing")))
    assert "0 / 0" not in printed and "4 could not be graded" in printed
    rows = _rows(out / "summary.csv")
    assert [r["submission"] for r in rows] == ["hw", "hw-2", "empty", "missing"]
    for name in ("hw", "hw-2", "empty", "missing"):  # each row has its own folder, which says why
        results = json.loads((out / name / "results.json").read_text())
        assert results["score"] == 0 and "could not be graded" in results["output"]


def _report(outcome_messages, output):
    from autograder.catalogue import Test
    from autograder.reports import Outcome, Report

    tests = [Test(f"B1.{k}", f"check {k}", "f", "public", 1.0) for k in range(len(outcome_messages))]
    outcomes = [Outcome(t, 0.0, "failed", m) for t, m in zip(tests, outcome_messages)]
    return Report("sub.ipynb", "partB", outcomes, output, {})


def test_a_report_is_unusable_only_when_no_test_had_its_own_message():
    from course.commands.grade import unusable_reason

    assert unusable_reason(_report(["Is x the noise?", "Is t in [0, 1]?"], "")) is None
    assert unusable_reason(_report(["Is x the noise?"], "Not found in the notebook: g.")) is None
    why = "This submission could not be graded: x.ipynb is empty."
    assert unusable_reason(_report([why, why], why)) == why
    assert unusable_reason(_report([], why)) == why
    assert unusable_reason(_report([], "")) is None


def test_when_every_submission_is_graded_the_command_succeeds(tmp_path, monkeypatch, capsys):
    """All graded (grade_batch replaced by one that returns graded reports): status 0, one score line each."""
    import autograder.grade as grade
    from autograder.reports import submission_name, write_summary

    def fake_batch(paths, out, log=print, **_):
        reports = [_report(["✓ passed", "Is t in [0, 1]?"], "") for _ in paths]
        for report in reports:
            report.outcomes[0].score = 1.0
        write_summary(reports, tmp_path / "summary.csv")
        for path in paths:
            log(f"{submission_name(path)}: 1 / 2")
        return reports

    monkeypatch.setattr(grade, "grade_batch", fake_batch)
    status = main(["grade", "a/hw.ipynb", "b/hw.ipynb", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert status == 0
    assert "hw (a/hw.ipynb): 1 / 2" in captured.out and "hw-2 (b/hw.ipynb): 1 / 2" in captured.out
    assert "[2/2] finished" in captured.err
    assert [r["submission"] for r in _rows(tmp_path / "summary.csv")] == ["hw", "hw-2"]
