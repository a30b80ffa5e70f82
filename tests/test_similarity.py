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
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------------
# Normalisation


def test_names_comments_docstrings_and_layout_do_not_count_but_the_calls_do():
    from course.similarity_normalise import normalise

    original = '''def f(x, sigma, generator=None):
    """Noise x."""
    noise = torch.randn(x.shape, generator=generator)  # ε ~ N(0, I)
    return (x + sigma * noise)
'''
    disguise = '''def f(img, s, generator=None):
    # add the noise
    eps = torch.randn(img.shape,
                      generator=generator,)

    return img + s * eps
'''
    expected = ["def", "f", "(", "v1", ",", "v2", ",", "v3", "=", "None", ")", ":", "v4", "=", "torch", ".",
                "randn", "(", "v1", ".", "shape", ",", "generator", "=", "v3", ")", "return", "v1", "+", "v2",
                "*", "v4"]
    assert normalise(original, {"f"}, set()).tokens == expected
    assert normalise(disguise, {"f"}, set()).tokens == expected
    other = normalise(disguise.replace("torch.randn", "torch.rand"), {"f"}, set()).tokens
    assert other != expected and "rand" in other


def test_each_token_points_at_the_code_as_written():
    from course.similarity_normalise import normalise

    text = 'def g(σ, x):\n    """ᾱ"""\n    return x * σ  # note\n'
    block = normalise(text, set(), set())
    assert [text[a:b] for a, b in block.spans] == ["def", "g", "(", "σ", ",", "x", ")", ":", "return", "x", "*", "σ"]
    assert block.tokens[-3:] == ["v2", "*", "v1"]


# ---------------------------------------------------------------------------------------------------
# The command line: known solutions, unreadable submissions, course grade --similarity


def helper_submission(folder):
    """Part B's stub with add_noise answered through a helper of the student's own in another cell, and
    flow_target as a lambda, too short to compare."""
    nb = nbformat.read(RELEASE["partB"], as_version=4)
    answer_cell(nb, "add_noise").source = (
        "def add_noise(x, sigma, noise=None, generator=None):\n"
        "    return _noised(x, sigma, noise if noise is not None else torch.randn(x.shape, generator=generator))\n")
    answer_cell(nb, "flow_target").source = "flow_target = lambda x0, x1: x1 - x0\n"
    nb.cells.append(nbformat.v4.new_code_cell(
        "def _noised(x, sigma, eps):\n    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)\n"
        "    return x + sigma * eps\n"))
    path = folder / "partB.ipynb"
    nbformat.write(nb, path)
    return path


def test_known_solutions_unreadable_submissions_and_helpers(batch, tmp_path, capsys):
    from course.cli import main

    solution = nbformat.read(SOLUTION["partB"], as_version=4)
    known = tmp_path / "known"
    known.mkdir()
    (known / "solution.py").write_text("\n\n".join(answer_cell(solution, n).source for n in answer_ids(solution)))
    shutil.copy(SOLUTION["partB"], known / "copy.ipynb")
    (tmp_path / "helper").mkdir()
    helper_submission(tmp_path / "helper")
    (tmp_path / "notes.ipynb").write_text("not json")
    out = tmp_path / "out"
    status = main(["similarity", str(batch["renamed-partB"]), str(tmp_path / "helper"), str(tmp_path / "missing"),
                   str(tmp_path / "notes.ipynb"), "--out", str(out), "--reference-dir", str(known), "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1
    assert "missing: not compared. expected a notebook file or a folder" in captured.err
    assert "notes: not compared. notes.ipynb is not a Jupyter notebook" in captured.err
    with open(out / "similarity.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    flagged = {r["function"] for r in rows if r["flagged"] == "yes" and
               {r["submission_a"], r["submission_b"]} == {"known: solution.py", "renamed-partB"}}
    substantial = {n for n in answer_ids(solution) if solution_statements("partB", n) >= 4}
    assert substantial <= flagged
    assert not [r for r in rows if r["submission_a"].startswith("known") and r["submission_b"].startswith("known")]
    page = (out / "similarity.html").read_text(encoding="utf-8")
    assert "2 submission(s), 2 known solution(s)" in page
    flow = page[page.index("<section id='fn-flow_target'>"):]
    assert "helper" in flow[:flow.index("</section>")]  # its one line is listed as too short to compare

    from course.similarity import read_source

    units = read_source(tmp_path / "helper", "helper").units
    assert [b.tokens[:2] for b in units["add_noise"].blocks] == [["def", "add_noise"], ["def", "ƒ"]]
    moved = nbformat.read(tmp_path / "helper" / "partB.ipynb", as_version=4)  # the helper renamed, its cell first
    helper = moved.cells.pop()
    for cell in (helper, answer_cell(moved, "add_noise")):
        cell.source = cell.source.replace("_noised", "blend")
    moved.cells.insert(0, helper)
    (tmp_path / "moved").mkdir()
    nbformat.write(moved, tmp_path / "moved" / "partB.ipynb")
    assert read_source(tmp_path / "moved", "moved").units["add_noise"].tokens == units["add_noise"].tokens


def test_a_missing_or_empty_reference_folder_stops_before_any_work(batch, tmp_path):
    from course.cli import main

    (tmp_path / "empty").mkdir()
    for folder, says in ((tmp_path / "nowhere", "expected a folder of known solutions"),
                         (tmp_path / "empty", "holds no notebook")):
        with pytest.raises(SystemExit, match=says):
            main(["similarity", str(batch["stub-partB"]), "--out", str(tmp_path / "out"), "--reference-dir", str(folder)])
        with pytest.raises(SystemExit, match=says):
            main(["grade", str(batch["stub-partB"]), "--out", str(tmp_path / "out"), "--similarity",
                  "--similarity-reference-dir", str(folder)])
    assert not (tmp_path / "out").exists()


def test_course_grade_with_similarity_writes_the_report_and_leaves_the_results_alone(batch, tmp_path, monkeypatch,
                                                                                    capsys):
    """grade_batch replaced by one that writes fixed results: the report comes after, beside them."""
    import autograder.grade as grade
    from autograder import reports
    from course.cli import main

    def fake_batch(paths, out, log=print, **_):
        out = Path(out)
        made = [reports.Report(str(p), "partB", [], "", {"total": 0.0}) for p in paths]
        for report, name in zip(made, reports.output_names(paths)):
            (out / name).mkdir(parents=True)
            (out / name / "results.json").write_text('{"score": 7}')
        reports.write_summary(made, out / "summary.csv")
        return made

    monkeypatch.setattr(grade, "grade_batch", fake_batch)
    out = tmp_path / "graded"
    status = main(["grade", str(batch["solution-partB"]), str(batch["renamed-partB"]), "--out", str(out),
                   "--similarity"])
    assert status == 0
    assert "similarity: 1 pair(s) flagged" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"solution-partB", "renamed-partB", "summary.csv", "similarity.html",
                                               "similarity.csv"}
    assert all((out / n / "results.json").read_text() == '{"score": 7}' for n in ("solution-partB", "renamed-partB"))
    with pytest.raises(SystemExit, match="add --similarity"):
        main(["grade", str(batch["stub-partB"]), "--out", str(out), "--similarity-reference-dir", str(tmp_path)])


# ---------------------------------------------------------------------------------------------------
# In a real browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000")
MARK = (255, 213, 79)  # the page's <mark> background (#ffd54f)
FLAGGED_ROW = (255, 241, 240)  # a flagged row of the ranked table (#fff1f0)


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("needs Chromium: apt-get install -y chromium")
    profile = tmp_path / "profile"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180, check=True)


def columns(path, colour):
    """Per x of a screenshot, how many of its pixels are of ``colour``."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    return (image == np.array(colour, dtype=image.dtype)).all(axis=2).sum(axis=0)


def side_by_side(counts) -> bool:
    """Marks left and right of a band of at least 6 unmarked columns in the middle fifth of the picture
    (the gap between the two codes; one code under the other would mark across the middle)."""
    width = len(counts)
    middle = range(2 * width // 5, 3 * width // 5)
    run = best = 0
    for x in middle:
        run = run + 1 if counts[x] == 0 else 0
        best = max(best, run)
    return best >= 6 and counts[:middle.start].sum() > 2000 and counts[middle.stop:].sum() > 2000


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium(report, tmp_path):
    """The DOM Chromium builds holds the ranked table; screenshots show its flagged rows and, at the open
    example view, both codes side by side with shared runs marked on each side."""
    from html.parser import HTMLParser

    result, out = report
    url = (out / "similarity.html").as_uri()
    dom = chromium(tmp_path, "--dump-dom", url).stdout

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.ranked, self.inside, self.opened = [], False, None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            self.inside = self.inside or (tag == "table" and attrs.get("id") == "ranked")
            if tag == "tr" and self.inside:
                self.ranked.append(attrs.get("class"))
            if tag == "details" and "open" in attrs:
                self.opened = attrs["id"]

        def handle_endtag(self, tag):
            self.inside = self.inside and tag != "table"

    rows = Rows()
    rows.feed(dom)
    pairs = {(m.a.owner, m.b.owner) for m in result.matches}
    flagged = {(m.a.owner, m.b.owner) for m in result.flagged}
    assert rows.ranked[1:] == ["flagged"] * len(flagged) + ["listed"] * len(pairs - flagged)
    chromium(tmp_path, f"--screenshot={tmp_path / 'top.png'}", url)
    rows_painted = columns(tmp_path / "top.png", FLAGGED_ROW)
    assert rows_painted[:len(rows_painted) // 2].sum() > 1000 and rows_painted[len(rows_painted) // 2:].sum() > 1000
    chromium(tmp_path, f"--screenshot={tmp_path / 'view.png'}", f"{url}#{rows.opened}")
    assert side_by_side(columns(tmp_path / "view.png", MARK))
