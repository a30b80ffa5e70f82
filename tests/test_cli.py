"""The command line: every subcommand is registered, and the main job writes every Part A figure."""

from __future__ import annotations

import pytest

from course.cli import build_parser, main

EXPECTED_FIGURES = {
    "0_samples_5_steps", "0_samples_20_steps", "0_stage2_upsampled",
    "1.1_forward", "1.2_blur", "1.3_one_step",
    "1.4_iterative_every_5th", "1.4_iterative_comparison",
    "1.5_samples", "1.6_cfg_samples",
    "1.7_sdedit_test_image", "1.7_sdedit_own_1", "1.7_sdedit_own_2",
    "1.7.1_sdedit_web", "1.7.1_sdedit_hand_drawn_1", "1.7.1_sdedit_hand_drawn_2",
    "1.7.2_inpaint_1", "1.7.2_inpaint_2",
    "1.7.3_text_conditional_test_image", "1.7.3_text_conditional_own",
    "1.8_anagram_flip", "1.8_anagram_rot90", "1.8_anagram_negate",
    "1.9_hybrid",
}


def test_every_command_is_registered():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert {"demo", "embed", "train", "evaluate", "train-mini", "release", "grade"} <= set(choices)


def test_grade_writes_results_for_every_submission_and_checks_its_options(tmp_path, capsys):
    """``course grade`` through the CLI: a file that is not a notebook still gets its results and a row."""
    import json

    not_a_notebook = tmp_path / "essay.ipynb"
    not_a_notebook.write_text("Dear grader, …")
    assert main(["grade", str(not_a_notebook), "--out", str(tmp_path / "out"), "--part", "partB"]) == 1  # not graded
    results = json.loads((tmp_path / "out" / "essay" / "results.json").read_text())
    assert results["score"] == 0 and "not valid JSON" in results["output"] and len(results["tests"]) > 50
    assert (tmp_path / "out" / "summary.csv").read_text().count("\n") == 2
    printed = capsys.readouterr().out
    assert "essay: not graded" in printed and "not valid JSON" in printed and "1 could not be graded" in printed
    with pytest.raises(SystemExit, match="--tests takes public, hidden and semantic"):
        main(["grade", str(not_a_notebook), "--out", str(tmp_path), "--tests", "secret"])


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_demo_writes_every_part_a_figure(tmp_path):
    """The main job on the tiny stand-in: one PNG per Part A deliverable, each a real image."""
    from PIL import Image

    assert main(["demo", "--model", "tiny", "--fast", "--out", str(tmp_path), "--device", "cpu", "--no-grading"]) == 0
    written = {p.stem for p in tmp_path.glob("*.png")}
    assert written == EXPECTED_FIGURES
    for path in tmp_path.glob("*.png"):
        with Image.open(path) as im:
            assert im.size[0] > 100 and im.size[1] > 100


def test_demo_with_deepfloyd_needs_embeddings(tmp_path, tiny_model_dirs):
    with pytest.raises(ValueError, match="--embeds"):
        main(["demo", "--model", str(tiny_model_dirs["stage1"]), "--out", str(tmp_path), "--device", "cpu"])


def test_the_instructors_loop_releases_grades_and_writes_feedback(tmp_path):
    """``course demo``'s second half: release Part B, grade the solution, the stub and typical mistakes."""
    from course.loop import LoopConfig, run_course_loop

    lines = []
    reports = run_course_loop(LoopConfig(out=tmp_path, kinds=("public",)), log=lines.append)
    solution, stub, wrong = reports
    assert solution.score == solution.max_score > 0 and stub.score == 0
    lost = {o.test.target for o in wrong.outcomes if o.score < o.test.max_score}
    assert {"flow_target", "Concat"} <= lost and "Conv" not in lost and "ddpm_sample" not in lost
    assert (tmp_path / "course" / "assignments" / "partB" / "partB.ipynb").is_file()
    for name in ("solution", "student-stub", "typical-mistakes"):
        assert (tmp_path / "graded" / name / "feedback.html").is_file()
    assert len((tmp_path / "graded" / "summary.csv").read_text().splitlines()) == 4
    assert any("typical-mistakes" in line and "flow_target" in line for line in lines)
