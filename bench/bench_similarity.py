"""Benchmark of ``course similarity`` on a batch the size of a large course (issue 23: 200 submissions in at
most 2 minutes on this machine's two cores).

    python bench/bench_similarity.py                  # 200 Part B submissions and 2 known solutions
    python bench/bench_similarity.py --size 20        # a quick check

The batch is built first (not timed): per submission and answer cell, the solution's cell, the project's
correct alternative (``tests/submission_kit.py``) or the stub's, and in most cells a few statements of its
own inserted at random places, so that nearly every submission's code differs from every other one while
sharing long runs with many (the costly case: most pairs share fingerprints and are compared in full). The
answer cells are shuffled in some. Then it times the report as ``course similarity`` writes it — reading
and extracting the notebooks, fingerprinting and comparing, writing the page and the CSV — and prints the
load average before and after. Run it on quiet cores.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course.notebooks.build import REPO_ROOT
from course.similarity import SimilarityConfig, compare_batch, read_batch
from course.similarity_page import write_csv, write_html

sys.path.insert(0, str(REPO_ROOT / "tests"))
from submission_kit import ALTERNATIVES, RELEASE, SOLUTION, answer_cell  # noqa: E402

TARGET_S = 120.0  # issue 23: a 200-submission batch in at most two minutes
CHOICES = (("solution", 0.45), ("alternative", 0.35), ("stub", 0.20))  # where each answer cell comes from
PADDED = 0.8  # share of answered cells given statements of their own


def padded(source: str, rng: random.Random) -> str:
    """``source`` with one to three assignments of its own inserted into each function body."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            start = 1 if node.body and isinstance(node.body[0], ast.Expr) else 0
            for _ in range(rng.randint(1, 3)):
                extra = ast.parse(f"scratch_{rng.randrange(10**6)} = {rng.randrange(1000)}").body[0]
                node.body.insert(rng.randint(start, len(node.body) - 1 if len(node.body) > start else start), extra)
    return ast.unparse(tree) + "\n"


def submission(part: str, rng: random.Random):
    """One synthetic submission of ``part``: see the module docstring."""
    nb = nbformat.read(RELEASE[part], as_version=4)
    solution = nbformat.read(SOLUTION[part], as_version=4)
    alternatives = {r.target: r.source.lstrip("\n") for r in ALTERNATIVES[part]}
    slots = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    for i in slots:
        name = nb.cells[i].metadata["nbgrader"]["grade_id"]
        kind = rng.choices([k for k, _ in CHOICES], [w for _, w in CHOICES])[0]
        source = {"solution": answer_cell(solution, name).source, "alternative": alternatives.get(name),
                  "stub": None}[kind]
        if source is not None:
            nb.cells[i].source = padded(source, rng) if rng.random() < PADDED else source
    if rng.random() < 0.3:  # answer cells in another order
        cells = [nb.cells[i] for i in slots]
        rng.shuffle(cells)
        for i, cell in zip(slots, cells):
            nb.cells[i] = cell
    return nb


def build(folder: Path, part: str, size: int, seed: int) -> tuple[list[Path], Path]:
    """``size`` submissions (a folder each) and a folder of two known solutions (a notebook, a .py)."""
    paths = []
    for k in range(size):
        path = folder / f"student{k:03d}"
        path.mkdir()
        nbformat.write(submission(part, random.Random(seed + k)), path / f"{part}.ipynb")
        paths.append(path)
    known = folder / "known"
    known.mkdir()
    shutil.copy(SOLUTION[part], known / "solution.ipynb")
    (known / "alternatives.py").write_text("\n\n".join(r.source for r in ALTERNATIVES[part]), encoding="utf-8")
    return paths, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200, help="submissions in the batch (default: 200)")
    parser.add_argument("--part", choices=("partA", "partB"), default="partB", help="the assignment (default: partB)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        begin = time.perf_counter()
        paths, known = build(tmp, args.part, args.size, args.seed)
        print(f"built {args.size} {args.part} submissions in {time.perf_counter() - begin:.1f} s (not timed)")
        load = os.getloadavg()[0]
        begin = time.perf_counter()
        sources = read_batch(paths, known_dir=known)
        read_s = time.perf_counter() - begin
        result = compare_batch(sources, SimilarityConfig())
        compare_s = time.perf_counter() - begin - read_s
        write_html(result, tmp / "similarity.html")
        write_csv(result, tmp / "similarity.csv")
        total = time.perf_counter() - begin
        pairs = {(m.a.owner, m.b.owner) for m in result.flagged}
        print(f"read and extract: {read_s:.1f} s; fingerprint and compare: {compare_s:.1f} s; "
              f"write: {total - read_s - compare_s:.1f} s; total {total:.1f} s")
        print(f"{len(result.matches)} listed pair-functions, {len(result.flagged)} flagged ({len(pairs)} pairs); "
              f"page {(tmp / 'similarity.html').stat().st_size / 2**20:.1f} MB, "
              f"CSV {(tmp / 'similarity.csv').stat().st_size / 2**20:.1f} MB")
        print(f"load average (1 min) before {load:.1f}, after {os.getloadavg()[0]:.1f}")
        if args.size == 200:
            print(f"target: at most {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'NOT met'}")


if __name__ == "__main__":
    main()
