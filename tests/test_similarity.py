"""``course similarity``: which submissions share graded code beyond the stub (``course/similarity.py``).

The batch, for each part: the solution; a copy of it with every local name renamed, its comments replaced and
its answer cells in reverse order (written here with ``ast``, not with the report's own normaliser); the
stub with one solution function pasted in (Part B); the project's correct alternatives
(``tests/submission_kit.py``: another implementation of every function, written differently), one per part;
and the released stub. The renamed copy must rank first against the solution for every function, the
one-function copy must be flagged for that function only, and neither alternative nor the stub may be
flagged. A slow test opens the page in headless Chromium.
"""

from __future__ import annotations

import ast
import csv
import shutil
import subprocess
import sys

import nbformat
import pytest

from submission_kit import ALTERNATIVES, RELEASE, SOLUTION, Submission, answer_cell

ONE_FUNCTION = ("partB", "class_fm_sample")  # the function the one-function copy takes from the solution


# ---------------------------------------------------------------------------------------------------
# The batch


def local_names(tree: ast.AST) -> set[str]:
    """Parameters and names assigned inside the functions of ``tree`` (``self`` included)."""
    names = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.Lambda)):
            for node in ast.walk(fn):
                if isinstance(node, ast.arg):
                    names.add(node.arg)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
    return names


class Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_arg(self, node):
        node.arg = self.mapping.get(node.arg, node.arg)
        return node


def disguised(source: str) -> str:
    """``source`` with every local name renamed, its comments replaced by others and its layout changed."""
    tree = ast.parse(source)
    mapping = {name: f"my_{i}_{name[::-1].strip('_')}" for i, name in enumerate(sorted(local_names(tree)))}
    lines = ast.unparse(Rename(mapping).visit(tree)).splitlines()
    out = ["# my own solution, written from scratch", ""]
    for line in lines:
        if line.lstrip().startswith("return "):
            indent = line[:len(line) - len(line.lstrip())]
            out += ["", f"{indent}# and now the answer"]
        out.append(line)
    return "\n".join(out) + "\n"


def answer_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]


def renamed_copy(part: str):
    """The solution with every answer cell disguised, and the answer cells in reverse order."""
    nb = nbformat.read(SOLUTION[part], as_version=4)
    slots = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    cells = [nb.cells[i] for i in slots]
    for cell in cells:
        cell.source = disguised(cell.source)
    for i, cell in zip(slots, reversed(cells)):
        nb.cells[i] = cell
    return nb


def one_function_copy(part: str, name: str):
    """The stub with the solution's answer cell of ``name`` pasted in."""
    nb = nbformat.read(RELEASE[part], as_version=4)
    answer_cell(nb, name).source = answer_cell(nbformat.read(SOLUTION[part], as_version=4), name).source
    return nb


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict[str, object]:
    """Name → path of each submission of the batch (one folder each)."""
    root = tmp_path_factory.mktemp("batch")
    notebooks = {}
    for part in ("partA", "partB"):
        notebooks[f"solution-{part}"] = nbformat.read(SOLUTION[part], as_version=4)
        notebooks[f"renamed-{part}"] = renamed_copy(part)
        notebooks[f"alternatives-{part}"] = Submission(part, ALTERNATIVES[part]).notebook()
        notebooks[f"stub-{part}"] = nbformat.read(RELEASE[part], as_version=4)
    notebooks["one-function-partB"] = one_function_copy(*ONE_FUNCTION)
    paths = {}
    for name, nb in notebooks.items():
        folder = root / name
        folder.mkdir()
        nbformat.write(nb, folder / f"{name.rsplit('-', 1)[1]}.ipynb")
        paths[name] = folder
    return paths


@pytest.fixture(scope="module")
def report(batch, tmp_path_factory):
    from course.similarity import similarity_report

    out = tmp_path_factory.mktemp("similarity")
    result = similarity_report(list(batch.values()), out, progress=False)
    return result, out


def solution_statements(part: str, name: str) -> int:
    """Statements in the solution's definition of ``name``, without docstrings and ``def`` lines of methods."""
    tree = ast.parse(answer_cell(nbformat.read(SOLUTION[part], as_version=4), name).source)
    top = next(n for n in tree.body if getattr(n, "name", None) == name)
    docstrings = {id(n.body[0]) for n in ast.walk(top) if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return sum(isinstance(n, ast.stmt) and not isinstance(n, ast.FunctionDef) and id(n) not in docstrings
               and n is not top for n in ast.walk(top))


def pairs_of(result, owner: str, name: str) -> list:
    """The listed matches of ``name`` that involve ``owner``, most similar first."""
    found = [m for m in result.matches if m.name == name and owner in (m.a.owner, m.b.owner)]
    return sorted(found, key=lambda m: (-m.similarity, -m.shared))


def other(match, owner: str) -> str:
    return match.b.owner if match.a.owner == owner else match.a.owner


# ---------------------------------------------------------------------------------------------------
# The batch's report


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_renamed_copy_ranks_first_against_the_solution_for_every_function(report, part):
    result, _ = report
    solution, renamed = f"solution-{part}", f"renamed-{part}"
    config = result.config
    names = answer_ids(nbformat.read(SOLUTION[part], as_version=4))
    assert [n for p, n in result.functions if p == part] == names
    for name in names:
        pairs = pairs_of(result, solution, name)
        if solution in result.too_short[name]:  # nothing beyond the stub to fingerprint: a one-line body
            assert not pairs and solution_statements(part, name) == 1, name
            continue
        best = pairs[0]
        assert renamed in (best.a.owner, best.b.owner) or (
            (best.similarity, best.shared) == next((m.similarity, m.shared) for m in pairs if other(m, solution) == renamed)
            and (part, name) == ONE_FUNCTION), f"{name}: {other(best, solution)} ranks first"
        assert best.similarity >= config.threshold, name
        if solution_statements(part, name) >= 4:
            assert best.flagged, f"{name}: the renamed copy is not flagged ({best.similarity:.2f}, {best.shared})"
    assert sum(name in result.too_short and solution in result.too_short[name] for name in names) <= 1


def test_one_function_copy_is_flagged_for_that_function_only(report):
    result, _ = report
    part, name = ONE_FUNCTION
    owner = f"one-function-{part}"
    flagged = {(m.name, other(m, owner)) for m in result.flagged if owner in (m.a.owner, m.b.owner)}
    assert flagged == {(name, f"solution-{part}"), (name, f"renamed-{part}")}


def test_independent_implementations_and_the_stub_stay_below_the_threshold(report):
    result, _ = report
    quiet = [f"{kind}-{part}" for kind in ("alternatives", "stub") for part in ("partA", "partB")]
    loud = [(m.name, m.a.owner, m.b.owner, round(m.similarity, 2), m.shared) for m in result.flagged
            if {m.a.owner, m.b.owner} & set(quiet)]
    assert not loud
    assert not [m for m in result.matches if {m.a.owner, m.b.owner} & {"stub-partA", "stub-partB"}]
    # the alternatives share some code with the solution (the UNet's submodules are prescribed): listed, not flagged
    assert [m for m in result.matches if "alternatives-partB" in (m.a.owner, m.b.owner)]


def test_csv_lists_every_listed_pair_with_its_flag(report):
    result, out = report
    with open(out / "similarity.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["submission_a", "submission_b", "function", "similarity", "tokens_shared", "flagged"]
    assert len(rows) == len(result.matches)
    config = result.config
    for row in rows:
        similarity, shared = float(row["similarity"]), int(row["tokens_shared"])
        assert config.listed_from <= similarity <= 1.0
        assert row["flagged"] == ("yes" if similarity >= config.threshold and shared >= config.min_shared else "no")
    assert [float(r["similarity"]) for r in rows] == sorted((float(r["similarity"]) for r in rows), reverse=True)
    flagged = {(r["submission_a"], r["submission_b"], r["function"]) for r in rows if r["flagged"] == "yes"}
    assert ("solution-partB", "one-function-partB", "class_fm_sample") in flagged


def test_page_ranks_pairs_by_shared_code_and_opens_to_both_codes(report):
    from html.parser import HTMLParser

    result, out = report
    page = (out / "similarity.html").read_text(encoding="utf-8")

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.where, self.details, self.marks = [], None, [], 0

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "table" and attrs.get("id") == "ranked":
                self.where = "ranked"
            elif tag == "tr" and self.where == "ranked":
                self.rows.append([])
            elif tag == "details":
                self.details.append(attrs)
            elif tag == "mark":
                self.marks += 1

        def handle_endtag(self, tag):
            if tag == "table":
                self.where = None

        def handle_data(self, data):
            if self.where == "ranked" and self.rows and data.strip():
                self.rows[-1].append(data.strip())

    parsed = Cells()
    parsed.feed(page)
    ranked = parsed.rows[1:]  # after the header
    assert set(ranked[0][1:3]) == {"solution-partB", "renamed-partB"}
    assert set(ranked[1][1:3]) == {"solution-partA", "renamed-partA"}
    assert len(parsed.details) == sum(min(n, result.config.max_views) for n in
                                      [sum(m.name == name for m in result.matches) for _, name in result.functions])
    assert sum("open" in d for d in parsed.details) == 1
    assert parsed.marks > len(result.flagged)
    assert all(f"<section id='fn-{name}'>" in page for _, name in result.functions)
