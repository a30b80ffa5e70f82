"""Benchmark of the autograder in Gradescope's default container, and of a batch of 200 with ``course grade``.

    ../shared/tools/heavy python bench/bench_grade.py                 # all of it (about 10 min on 2 cores)
    python bench/bench_grade.py --batch 0                             # the container figures only

1. **One submission in Gradescope's default container.** The zip of ``course gradescope`` (default
   settings: public, hidden and semantic tests) is unpacked as Gradescope lays it out, and its
   ``run_autograder`` runs under ``footprint --limit-mb 768 --cpus 0.5`` (a fresh memory cgroup, as Docker
   counts memory, and half a CPU): for the Part A and Part B solutions and a Part B notebook with typical
   mistakes, it prints the score, the peak memory of the whole tree, its CPU-seconds (start-up, cell
   loading and every test; they barely depend on other load) and the wall time at 0.5 CPU.
   Targets (issue 26): 768 MB; CPU-seconds ≤ 12 (Part A) and ≤ 4 (Part B).
2. **A batch**: ``course grade --jobs 2`` on ``--batch`` submissions (copies of the solutions, the stubs and
   the mistakes), its wall time, and whether every results.json is valid JSON with every test of its part
   and none "not run". Wall time means something only with the heavy slot held (``../shared/tools/heavy``).

``--against REV`` puts another commit beside the working tree, in the same run: its code (a ``git worktree``
on ``PYTHONPATH``), its zip and its solutions, graded alternately with this tree's (``--repeat`` times each),
so that the ratio holds even when the machine's speed drifts (it does, by 20% within a morning)::

    ../shared/tools/heavy python bench/bench_grade.py --batch 0 --against 70f3c39 --repeat 2

``footprint`` is the workplace's tool (``../shared/tools/footprint``, or ``--footprint PATH``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
TARGET_CPU_S = {"partA": 12.0, "partB": 4.0}
LIMIT_MB, CPUS = 768, 0.5  # Gradescope's defaults


def mistakes_notebook(folder: Path) -> Path:
    """Part B's solution with typical mistakes: a Conv without its activation, an in-place Flatten, σ² noise."""
    from submission_kit import Edit, Submission

    edits = (Edit("Conv", "", "return self.act(self.norm(self.conv(x)))", "return self.norm(self.conv(x))"),
             Edit("Flatten", "", "return self.act(self.pool(x))",
                  "y = self.act(self.pool(x))\n        x.zero_()\n        return y"),
             Edit("add_noise", "", "x + sigma * noise", "x + sigma**2 * noise"))
    path = folder / "mistakes" / "partB.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(Submission("partB", edits).notebook(), path)
    return path


def unpack(zip_path: Path, root: Path, notebook: Path) -> Path:
    """Gradescope's layout: the zip in source/, run_autograder at the root, the notebook in submission/."""
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            Path(archive.extract(info, root / "source")).chmod((info.external_attr >> 16) & 0o777)
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "run_autograder").chmod(0o755)
    (root / "submission" / notebook.name).write_bytes(notebook.read_bytes())
    return root


def in_container(footprint: str, root: Path, code: Path | None = None) -> dict:
    """run_autograder under Gradescope's limits: footprint's figures and the results' score. ``code``: a
    checkout whose packages the grader imports instead of this one's (``PYTHONPATH``)."""
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    env.pop("FWD_HIDDEN_SECRET", None)  # on Gradescope the secret is a file of the zip
    if code is not None:
        env["PYTHONPATH"] = str(code)
    done = subprocess.run([footprint, "--json", "--limit-mb", str(LIMIT_MB), "--cpus", str(CPUS), "--",
                           str(root / "run_autograder")], env=env, cwd=root, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"footprint printed no figures (exit {done.returncode}): {done.stderr[-800:]}")
    figures = json.loads(lines[-1])
    results = json.loads((root / "results" / "results.json").read_text())
    automatic = [t for t in results["tests"] if not t.get("extra_data", {}).get("manual")]
    lost = [f"{t['number']} {t['name'].split(':')[0]}: {t['output'].splitlines()[0][:160] if t['output'] else ''}"
            for t in automatic if t["score"] < t["max_score"]]
    return dict(figures, score=results["score"], max=sum(t["max_score"] for t in automatic), lost=lost)


def batch_of(folder: Path, size: int, notebooks: list[Path]) -> list[Path]:
    batch = []
    for i in range(size):
        source = notebooks[i % len(notebooks)]
        target = folder / f"s{i:03d}" / source.name
        target.parent.mkdir(parents=True)
        target.write_bytes(source.read_bytes())
        batch.append(target.parent)
    return batch


def complete(out: Path, folders: list[Path]) -> tuple[int, list[str]]:
    """How many results.json are valid and complete (every test of the part, none "not run")."""
    from autograder.catalogue import all_tests

    counts = {part: len(all_tests(part, ("public", "hidden", "semantic"), None)) for part in ("partA", "partB")}
    good, bad = 0, []
    for folder in folders:
        try:
            results = json.loads((out / folder.name / "results.json").read_text())
            tests = [t for t in results["tests"] if not t.get("extra_data", {}).get("manual")]
            part = results["extra_data"]["part"]
            ok = len(tests) == counts[part] and not any("Not run" in t["output"] for t in tests)
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        good += ok
        if not ok:
            bad.append(folder.name)
    return good, bad


def build_zip(out: Path, code: Path | None) -> Path:
    """``course gradescope``'s zip, of this checkout or (``code``) of another one."""
    if code is None:
        from course.gradescope import build_autograder_zip

        return build_autograder_zip(out)
    env = dict(os.environ, PYTHONPATH=str(code))
    subprocess.run([sys.executable, "-c", f"from course.gradescope import build_autograder_zip; "
                    f"build_autograder_zip({str(out)!r})"], env=env, check=True, capture_output=True)
    return out


def container_rows(tmp: Path, footprint: str, trees: dict, repeat: int, mistakes: Path) -> None:
    """One submission in the container, per case, per tree (alternating), ``repeat`` times; ``mistakes``: this
    tree's solution with typical mistakes, graded by each tree."""
    zips = {label: build_zip(tmp / f"autograder-{i}.zip", code) for i, (label, code) in enumerate(trees.items())}
    print(f"one submission in Gradescope's default container ({LIMIT_MB} MB, {CPUS} CPU); "
          f"targets: CPU-s ≤ {TARGET_CPU_S['partA']:g} (A), ≤ {TARGET_CPU_S['partB']:g} (B)")
    print(f"{'notebook':<16}{'code':<10}{'score':>12}{'peak MB':>9}{'CPU s':>7}{'wall s':>8}  oom")
    for k in range(repeat):
        for case in ("partA solution", "partB solution", "partB mistakes"):
            for i, (label, code) in enumerate(trees.items()):
                part = case.split()[0]
                notebook = (mistakes if case.endswith("mistakes")
                            else (code or REPO) / "solutions" / part / f"{part}.ipynb")
                root = unpack(zips[label], tmp / f"root-{k}-{i}-{case.replace(' ', '-')}", notebook)
                f = in_container(footprint, root, code)
                print(f"{case:<16}{label:<10}{f['score']:>6g}/{f['max']:<5g}{f['peak_mb']:>9.0f}{f['cpu_s']:>7.1f}"
                      f"{f['wall_s']:>8.1f}  {f['oom']}", flush=True)
                if case.endswith("solution"):  # a solution's lost points, said (the first three)
                    for line in f["lost"][:3]:
                        print(f"    lost {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=200, help="submissions in the batch (0: none; default 200)")
    parser.add_argument("--footprint", default=str(REPO.parent / "shared" / "tools" / "footprint"))
    parser.add_argument("--against", metavar="REV", help="grade a commit's code too, alternately (see above)")
    parser.add_argument("--repeat", type=int, default=1, help="container runs per case (default 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fwd-bench-") as tmp:
        tmp = Path(tmp)
        trees: dict[str, Path | None] = {"this tree": None}
        mistakes = mistakes_notebook(tmp)
        if args.against:
            other = tmp / "against"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(other), args.against],
                           check=True)
            trees = {args.against[:9]: other, "this tree": None}
        try:
            container_rows(tmp, args.footprint, trees, args.repeat, mistakes)
        finally:
            if args.against:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(trees[args.against[:9]])])
        if args.batch:
            notebooks = [REPO / "solutions" / p / f"{p}.ipynb" for p in ("partA", "partB")]
            notebooks += [REPO / "assignments" / p / f"{p}.ipynb" for p in ("partA", "partB")]
            notebooks += [mistakes]
            folders = batch_of(tmp / "batch", args.batch, notebooks)
            out = tmp / "graded"
            begin = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "course", "grade", *map(str, folders), "--out", str(out),
                                   "--jobs", "2"], capture_output=True, text=True)
            wall = time.perf_counter() - begin
            good, bad = complete(out, folders)
            print(f"course grade --jobs 2 on {len(folders)} submissions: {wall:.0f} s "
                  f"({len(folders) / wall * 60:.1f} per minute), exit {done.returncode}, "
                  f"{good}/{len(folders)} results.json valid and complete" + (f"; not: {bad[:5]}" if bad else ""))


if __name__ == "__main__":
    main()
