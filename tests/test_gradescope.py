"""``course gradescope``: the zip Gradescope builds its autograder from, and ``run_autograder`` run on a local
copy of Gradescope's layout (the root overridden by AUTOGRADER_ROOT; setup.sh skipped: AUTOGRADER_PYTHON
points at the Python running these tests, which has everything setup.sh would install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from autograder.rubric import rubric
from course.cli import main

REPO = Path(__file__).resolve().parents[1]
SOLUTION_B = REPO / "solutions" / "partB" / "partB.ipynb"


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory) -> Path:
    """The zip, built through the command line, with public tests only (the hidden ones double the time)."""
    out = tmp_path_factory.mktemp("gradescope") / "autograder.zip"
    assert main(["gradescope", "--out", str(out), "--tests", "public"]) == 0
    return out


def gradescope_root(tmp_path: Path, zip_path: Path, submission: dict[str, bytes]) -> Path:
    """ROOT as Gradescope lays it out: the zip extracted into source/ with its Unix modes (as unzip keeps
    them), run_autograder copied to ROOT, the student's files in submission/, an empty results/."""
    root = tmp_path / "autograder"
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, root / "source"))
            path.chmod((info.external_attr >> 16) & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    for name, data in submission.items():
        (root / "submission" / name).write_bytes(data)
    return root


def run_autograder(root: Path, python: str = sys.executable) -> dict:
    """Run ROOT/run_autograder as Gradescope does (executable, working folder ROOT); its results.json."""
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=python)
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def notebook_points(path: Path) -> dict[str, float]:
    """Points of each public check cell (test_<name>, not its _hidden or _semantic twin), read from the
    notebook's nbgrader metadata."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    meta = [c.get("metadata", {}).get("nbgrader", {}) for c in cells if c["cell_type"] == "code"]
    return {m["grade_id"]: float(m["points"]) for m in meta if m.get("grade") and m.get("points")
            and not m["grade_id"].endswith(("_hidden", "_semantic"))}


def automatic(results: dict) -> list[dict]:
    """The automatically graded tests of a results.json (the written answers are listed for manual grading)."""
    return [t for t in results["tests"] if not t.get("extra_data", {}).get("manual")]


def test_zip_holds_the_scripts_the_settings_and_the_course_wheel(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as archive:
        names = archive.namelist()
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        wheels = [n for n in names if n.endswith(".whl")]
        assert len(wheels) == 1 and wheels[0].startswith("fun_with_diffusion-")
        assert set(names) == {"setup.sh", "run_autograder", "gradescope.json", "hidden_secret",
                              "grader_expectations.safetensors", wheels[0]}  # all at the root
        assert archive.read("hidden_secret").decode().strip() == os.environ["FWD_HIDDEN_SECRET"]  # the offering's
        setup = archive.read("setup.sh").decode()
        settings = json.loads(archive.read("gradescope.json"))
        with zipfile.ZipFile(archive.open(wheels[0])) as wheel:
            packaged = set(wheel.namelist())
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert settings["tests"] == ["public"] and settings["part"] is None
    for script in ("setup.sh", "run_autograder"):  # both are valid bash
        with zipfile.ZipFile(autograder_zip) as archive:
            checked = subprocess.run(["bash", "-n"], input=archive.read(script), capture_output=True)
        assert checked.returncode == 0, checked.stderr
    # torch and torchvision pinned to this machine's versions, CPU builds, from PyTorch's CPU index
    torch_pin = f'"torch=={version("torch").split("+")[0]}+cpu"'
    vision_pin = f'"torchvision=={version("torchvision").split("+")[0]}+cpu"'
    index_line = next(line for line in setup.splitlines() if "--index-url" in line)
    assert "https://download.pytorch.org/whl/cpu" in index_line and torch_pin in index_line and vision_pin in index_line
    install_line = next(line for line in setup.splitlines() if wheels[0] in line)
    assert torch_pin in install_line and "nbformat" in install_line and "cu1" not in setup
    # the wheel holds the grader, the released notebooks it reads, and the models
    for path in ("autograder/grade.py", "fwd_kit/grading/child.py", "course/gradescope.py",
                 "autograder/released/partA.ipynb", "autograder/released/partB.ipynb",
                 "reference/classifier_weights.safetensors", "fwd_kit/digit_model/unet/config.json",
                 "fwd_kit/data/expectations.safetensors"):
        assert path in packaged, path


def test_run_autograder_gives_the_part_b_solution_full_marks(autograder_zip, tmp_path):
    root = gradescope_root(tmp_path, autograder_zip, {"partB.ipynb": SOLUTION_B.read_bytes()})
    results = run_autograder(root)
    points = notebook_points(SOLUTION_B)
    tests = automatic(results)
    assert len(tests) == len(points) > 20
    assert {t["extra_data"]["kind"] for t in tests} == {"public"}
    assert all(t["status"] == "passed" and t["score"] == t["max_score"] for t in tests)
    assert {t["name"].split(":")[0]: t["max_score"] for t in tests} == {g.name: g.public for g in rubric("partB").graded}
    assert results["score"] == sum(t["max_score"] for t in tests) == sum(points.values())
    manual = [t for t in results["tests"] if t not in tests]  # the written answers: 0 of 0, for a person to grade
    assert [(t["extra_data"]["grade_id"], t["extra_data"]["points"]) for t in manual] == \
        [(w.grade_id, w.points) for w in rubric("partB").written]
    assert all(t["score"] == t["max_score"] == 0 and t["extra_data"]["manual"] for t in manual)
    assert results["extra_data"]["part"] == "partB" and (root / "results" / "feedback.html").is_file()


def test_run_autograder_scores_a_file_that_is_not_a_notebook_zero(autograder_zip, tmp_path):
    """With the part set in the zip's settings, every test of Part B is listed with 0 and the reason."""
    root = gradescope_root(tmp_path, autograder_zip, {"answers.txt": b"Dear grader, my answers are below."})
    settings_path = root / "source" / "gradescope.json"
    settings = json.loads(settings_path.read_text())
    settings_path.write_text(json.dumps(dict(settings, part="partB")))
    results = run_autograder(root)
    assert results["score"] == 0 and "notebook" in results["output"]
    assert len(results["tests"]) == len(notebook_points(SOLUTION_B))
    assert all(t["score"] == 0 and t["status"] == "failed" and "notebook" in t["output"] for t in results["tests"])


def test_run_autograder_writes_results_when_python_or_its_settings_fail(autograder_zip, tmp_path):
    root = gradescope_root(tmp_path, autograder_zip, {"partB.ipynb": SOLUTION_B.read_bytes()})
    results = run_autograder(root, python=str(tmp_path / "no-such-python"))
    assert results["score"] == 0 and results["tests"] == [] and "could not run" in results["output"]
    (root / "source" / "gradescope.json").write_text(json.dumps({"part": "partB", "secret": 1}))
    results = run_autograder(root)
    assert results["score"] == 0 and results["tests"] == [] and "secret" in results["output"]


def test_the_graders_copy_of_the_released_notebooks_is_the_release():
    """The grader reads the released notebooks from its own package data (autograder/released/, in the wheel
    Gradescope installs, which has no assignments/ folder); `course release` writes that copy beside
    assignments/: the two must be the same bytes."""
    from autograder.catalogue import PARTS, RELEASED_DIR

    for part in PARTS:
        released = REPO / "assignments" / part / f"{part}.ipynb"
        assert (RELEASED_DIR / f"{part}.ipynb").read_bytes() == released.read_bytes(), \
            f"autograder/released/{part}.ipynb differs from {released.relative_to(REPO)}: run `course release`"


def test_assignment_built_from_the_templates_matches_the_graders_notebooks(monkeypatch):
    """What the grader reads from its copy of the released notebooks (graded names, classes, imports,
    provided definitions) is what a fresh build of the templates gives: a template changed without a new
    release shows here."""
    import autograder.catalogue as catalogue
    from course.notebooks.build import build_notebook, load_template

    released = {part: catalogue.load_assignment(part) for part in catalogue.PARTS}
    monkeypatch.setattr(catalogue, "trusted_notebook", lambda part: build_notebook(load_template(part)))
    for part in catalogue.PARTS:
        assert catalogue.load_assignment(part) == released[part], part
