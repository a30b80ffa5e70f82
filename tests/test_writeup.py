"""The write-up page (``python -m fwd_kit.writeup``) and the class gallery (``course gallery``).

Oracles: the solution notebooks themselves — run headless on the digit model and the offline MNIST
(FAST, one strided step per loop, their check cells left out: the checks are tested elsewhere), they must
save a figure with its note for every deliverable of ``fwd_kit.deliverables``; the page parsed back (every
deliverable has its place and an image there, every link and image resolves); a folder saved through the
kit's own API that meets every requirement (an empty checklist) and the same folder with one thing taken
away (exactly that item, in the issue's words); a real headless Chromium (slow).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from course.notebooks.build import REPO_ROOT, solution_path
from fwd_kit.deliverables import BY_ID, DELIVERABLES, SECTIONS, deliverable, shortfalls
from fwd_kit.figure_notes import json_safe, note, read_notes, save_deliverable, writeup_folder
from fwd_kit.writeup import ANSWER_STUB, WriteupConfig, answer_text, build_site, main
from fwd_kit.writeup_html import markdown_html

NOTEBOOK_ENV = {"FWD_FAST": "1", "FWD_STRIDE": "990", "FWD_OFFLINE_MNIST": "1", "FWD_DEVICE": "cpu",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ANSWERS = [a for s in SECTIONS for a in s.answers]


# ---------------------------------------------------------------------------------------------------
# Reading a page back


class Page(HTMLParser):
    """Ids, links, images by the ids of the elements around them, and the checklist's lines."""

    VOID = {"img", "link", "meta", "br", "hr", "input"}

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.links, self.scripts = set(), [], 0
        self.images: dict[str | None, list[str]] = {}
        self.checklist: list[tuple[str, str]] = []  # (li class, text)
        self._open: list[tuple[str, dict]] = []
        self._li: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            assert a["id"] not in self.ids, f"the id {a['id']} repeats"
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if key in a:
                self.links.append(a[key])
        self.scripts += tag == "script"
        if tag == "img":
            for _, outer in reversed(self._open):
                if outer.get("id"):
                    self.images.setdefault(outer["id"], []).append(a["src"])
        if tag == "li" and any(o.get("id") == "checklist" for _, o in self._open):
            self._li = [a.get("class", "")]
        if tag not in self.VOID:
            self._open.append((tag, a))

    def handle_endtag(self, tag):
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break
        if tag == "li" and self._li is not None:
            self.checklist.append((self._li[0], "".join(self._li[1:]).strip()))
            self._li = None

    def handle_data(self, data):
        if self._li is not None:
            self._li.append(data)

    def to_do(self) -> set[str]:
        """The checklist's lines still to do (required, missing or incomplete), mark left out."""
        return {text.lstrip("✓◐✗ ").strip() for kind, text in self.checklist
                if "optional" not in kind.split() and "complete" not in kind.split()}


def read_page(index: Path) -> Page:
    return Page(index.read_text(encoding="utf-8"))


def broken_links(index: Path) -> list[str]:
    page = read_page(index)
    broken = []
    for link in page.links:
        if link.startswith("#"):
            if link[1:] not in page.ids:
                broken.append(link)
        elif re.match(r"^[a-z]+:", link) or not (index.parent / link).is_file():
            broken.append(link)  # offline: no scheme at all (http:, data:, file:) and the file is there
    return broken


# ---------------------------------------------------------------------------------------------------
# The notebooks save every deliverable


def run_without_checks(notebook: Path, workdir: Path) -> nbformat.NotebookNode:
    """Execute every cell of ``notebook`` but its check cells, in ``workdir``; fail on any error."""
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in NOTEBOOK_ENV.items():
            mp.setenv(key, value)
        NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(workdir)}}).execute()
    failed = {c.id: f"{o.ename}: {o.evalue}" for c in nb.cells for o in c.get("outputs", [])
              if o.output_type == "error"}
    assert failed == {}, f"cells of {notebook.name} failed: {failed}"
    return nb


@pytest.fixture(scope="module")
def student_folder(tmp_path_factory) -> Path:
    """A folder as a student leaves it: partA.ipynb, partB.ipynb and what their runs saved (~25 s)."""
    folder = tmp_path_factory.mktemp("student")
    for part in ("partA", "partB"):
        path = solution_path(REPO_ROOT, part)
        run_without_checks(path, folder)
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def site(student_folder, tmp_path_factory) -> Path:
    index, _ = build_site(WriteupConfig(student_folder, tmp_path_factory.mktemp("site")))
    return index


def test_the_solution_notebooks_save_every_deliverable_with_its_note(student_folder):
    folder = student_folder / "writeup_figures_fast"  # FAST runs keep out of the real folder
    assert not (student_folder / "writeup_figures").exists()
    notes = read_notes(folder)
    assert {n["deliverable"] for n in notes} == set(BY_ID), "a deliverable the notebooks do not save (or unknown)"
    for n in notes:
        assert Path(n["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert n["caption"], f"{n['image']} has no caption"
        assert "seed" in n["settings"] or "epochs" in n["settings"] or "lr" in n["settings"], n
    by_stem = {Path(n["path"]).stem: n for n in notes}
    assert by_stem["A1.7.1-hand-drawn"]["items"] == ["drawing 1", "drawing 2"]
    assert by_stem["A0-samples-steps-2"]["settings"]["steps"] == 2
    assert by_stem["B2.6-class-grid-epoch-1"]["settings"]["epoch"] == 1
    assert by_stem["A1.5-samples"]["settings"]["prompt"] == "a handwritten digit two"


def test_the_page_has_a_place_and_an_image_for_every_deliverable(site):
    page = read_page(site)
    for d in DELIVERABLES:
        assert d.id in page.ids, f"no element for {d.id}"
        assert page.images.get(d.id), f"no image in the section of {d.id}"
        assert all(src.startswith("figures/") and (site.parent / src).is_file() for src in page.images[d.id])
    assert {f"sec-{s.key}" for s in SECTIONS} <= page.ids
    text = site.read_text(encoding="utf-8")
    order = [text.index(f'id="{d.id}"') for d in DELIVERABLES]
    assert order == sorted(order), "the sections are not in the spec's order"
    assert "FAST run" in text  # the page says where its figures come from


def test_the_page_has_no_broken_link_no_script_and_one_stylesheet(site):
    assert broken_links(site) == []
    page = read_page(site)
    assert page.scripts == 0
    assert [link for link in page.links if link.endswith(".css")] == ["style.css"]
    assert "break-before: page" in (site.parent / "style.css").read_text()


def test_the_checklist_of_a_fast_run_says_what_it_lacks(site):
    todo = read_page(site).to_do()
    assert "1.5 samples without guidance: five samples required, two found" in todo
    assert "2.1–2.3 time-conditioned samples: epoch 1, 5, 10 required, 5, 10 missing" in todo
    assert "1.2 written answer (reflect_blur): no answer in the notebook" in todo  # Part A has no model answers
    assert not any("cfg_effect" in line for line in todo)  # Part B's model answers are read


@pytest.mark.parametrize("removed", ["A1.9-hybrids", "B2.5-class-loss"])
def test_a_folder_without_one_deliverable_gets_exactly_that_item(student_folder, site, removed, tmp_path):
    folder = tmp_path / "student"
    shutil.copytree(student_folder, folder)
    for path in (folder / "writeup_figures_fast").glob(f"{removed}.*"):
        path.unlink()
    index, _ = build_site(WriteupConfig(folder, tmp_path / "site"))
    d = deliverable(removed)
    number = next(s.number for s in SECTIONS if s.key == d.section)
    assert read_page(index).to_do() - read_page(site).to_do() == {f"{number} {d.title}: missing ({d.required})"}
    assert read_page(site).to_do() <= read_page(index).to_do()
    assert broken_links(index) == []


def test_a_notebook_without_one_answer_gets_exactly_that_item(student_folder, tmp_path):
    base, _ = build_site(WriteupConfig(student_folder / "partB.ipynb", tmp_path / "base"))
    assert 'id="sec-A1.1"' not in base.read_text()  # one notebook given: its part only
    folder = tmp_path / "student"
    shutil.copytree(student_folder, folder)
    nb = nbformat.read(folder / "partB.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "cfg_effect"]
    cell.source = ANSWER_STUB
    nbformat.write(nb, folder / "partB.ipynb")
    index, _ = build_site(WriteupConfig(folder / "partB.ipynb", tmp_path / "site"))
    added = read_page(index).to_do() - read_page(base).to_do()
    assert added == {"2.4–2.6 written answer (cfg_effect): no answer in the notebook"}
    assert read_page(base).to_do() <= read_page(index).to_do()


# ---------------------------------------------------------------------------------------------------
# A complete folder, saved through the kit's API


def save_complete(folder: Path) -> None:
    """A note for every deliverable that meets its requirement (tiny blank figures)."""
    from matplotlib.figure import Figure

    for d in DELIVERABLES:
        values = list(d.values[1]) if d.values else [None]
        distinct = range(d.distinct[1]) if d.distinct else [None]
        for k, (value, other) in enumerate((v, o) for v in values for o in distinct):
            settings = {d.values[0]: value} if d.values else {}
            if d.distinct:
                settings[d.distinct[0]] = other
            if d.at_least:
                settings[d.at_least[0]] = d.at_least[1]
            figure = Figure(figsize=(1, 1))
            figure.suptitle(f"{d.title} {k}")
            save_deliverable(figure, note(d.id, items=[f"item {i}" for i in range(d.count)], key=f"v{k}",
                                          **settings), folder)


def answered_notebook(path: Path, answers: dict[str, str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(text, metadata={"nbgrader": {"grade_id": gid, "grade": True,
                                                                          "solution": True}})
                for gid, text in answers.items()]
    nbformat.write(nb, path)


@pytest.fixture
def complete_folder(tmp_path) -> Path:
    folder = tmp_path / "complete"
    save_complete(folder / "writeup_figures")
    answered_notebook(folder / "mine.ipynb", {a: f"My answer to **{a}**." for a in ANSWERS})
    return folder


def test_a_complete_folder_has_an_empty_checklist(complete_folder, tmp_path):
    index, items = build_site(WriteupConfig(complete_folder, tmp_path / "site"))
    assert [i.line for i in items if i.to_do] == []
    page = read_page(index)
    assert page.to_do() == set() and "all done" in index.read_text()
    assert "My answer to <strong>reflect_blur</strong>." in index.read_text()
    assert broken_links(index) == []


@pytest.mark.parametrize("take, expected", [
    ("B2.3-time-samples-v1", "2.1–2.3 time-conditioned samples: epoch 1, 5, 10 required, 5 missing"),
    ("A0-samples-v1", "0 pipeline samples: two values of steps required, one found"),
    ("B2.5-class-loss-v0", "2.4–2.6 training loss: missing (the class-conditioned UNet's training loss curve)"),
])
def test_taking_one_figure_away_names_exactly_it(complete_folder, tmp_path, take, expected):
    for path in (complete_folder / "writeup_figures").glob(f"{take}.*"):
        path.unlink()
    index, _ = build_site(WriteupConfig(complete_folder, tmp_path / "site"))
    assert read_page(index).to_do() == {expected}


def test_one_hand_drawn_image_where_two_are_required(complete_folder, tmp_path):
    from matplotlib.figure import Figure

    figures = complete_folder / "writeup_figures"
    for path in figures.glob("A1.7.1-hand-drawn-*"):
        path.unlink()
    save_deliverable(Figure(figsize=(1, 1)), note("A1.7.1-hand-drawn", items=["drawing 1"],
                                                  i_start=[1, 3, 5, 7, 10, 20]), figures)
    index, _ = build_site(WriteupConfig(complete_folder, tmp_path / "site"))
    assert read_page(index).to_do() == {"1.7.1 hand-drawn images: two hand-drawn images required, one found"}


def test_an_unanswered_cell_shows_a_placeholder(complete_folder, tmp_path):
    answered_notebook(complete_folder / "mine.ipynb", {a: ANSWER_STUB if a == "reflect_hybrids" else "ok"
                                                       for a in ANSWERS})
    index, _ = build_site(WriteupConfig(complete_folder / "mine.ipynb", tmp_path / "site"))
    assert read_page(index).to_do() == {"1.9 written answer (reflect_hybrids): no answer in the notebook"}
    assert "No written answer yet" in index.read_text()


# ---------------------------------------------------------------------------------------------------
# Small pieces


def test_shortfalls_speak_in_sentences():
    hand = deliverable("A1.7.1-hand-drawn")
    one = {"items": ["drawing 1"], "settings": {"i_start": [5, 10, 20]}}
    assert shortfalls(hand, []) == ["missing"]
    assert shortfalls(hand, [one]) == ["two hand-drawn images required, one found",
                                       "i_start 1, 3, 5, 7, 10, 20 required, 1, 3, 7 missing"]
    grid = deliverable("B2.6-class-grid")
    notes = [{"settings": {"epoch": e, "samples_per_digit": 1}} for e in (1, 5, 10)]
    assert shortfalls(grid, notes) == ["samples_per_digit of at least 4 required, 1 found"]
    assert shortfalls(deliverable("B1.2-noising"), [{"settings": {"sigma": [0, 0.2, 0.4, 0.5, 0.6, 0.8, 1]}}]) == []


def test_note_refuses_what_it_cannot_save():
    with pytest.raises(ValueError, match="A1.4-every-5th"):
        note("A1.4-every5th")
    with pytest.raises(ValueError, match="file name"):
        note("A1.4-every-5th", key="epoch 5/..")
    with pytest.raises(ValueError, match="list of labels"):
        note("A1.5-samples", items="sample 1")
    with pytest.raises(ValueError, match="Note"):
        save_deliverable(object(), "A1.5-samples")


def test_settings_become_json():
    import torch

    safe = json_safe({"blur": {250: (5, 1.0)}, "t": torch.tensor(690), "x": torch.zeros(3, 64, 64), "p": Path("a")})
    assert safe == {"blur": {"250": [5, 1.0]}, "t": 690, "x": "tensor of shape (3, 64, 64)", "p": "a"}
    assert json.loads(json.dumps(safe)) == safe


def test_answers_are_escaped_and_stripped_of_markers():
    assert answer_text("### BEGIN SOLUTION\nIt works.\n### END SOLUTION") == "It works."
    assert answer_text(" YOUR ANSWER HERE \n") == ""
    rendered = markdown_html("<script>alert(1)</script> and *x* < **y**\n\n- one\n- two")
    assert "<script>" not in rendered and "&lt;script&gt;" in rendered
    assert "<em>x</em> &lt; <strong>y</strong>" in rendered and "<ul><li>one</li><li>two</li></ul>" in rendered


def test_show_grid_saves_a_deliverable_to_the_chosen_folder(tmp_path, monkeypatch):
    import torch

    from fwd_kit.images import save_grid

    monkeypatch.chdir(tmp_path)
    before = writeup_folder()
    try:
        writeup_folder("figs")
        save_grid(torch.zeros(2, 3, 8, 8), tmp_path / "grid.png", suptitle="two grey squares",
                  deliverable=note("A1.9-hybrids", items=["a / b", "c / d"], seed=3))
    finally:
        writeup_folder(before)
    (saved,) = read_notes(tmp_path / "figs")
    assert (saved["caption"], saved["items"], saved["settings"]) == ("two grey squares", ["a / b", "c / d"],
                                                                     {"seed": 3})


def test_the_command_line_explains_a_bad_path(tmp_path, capsys):
    assert main([str(tmp_path / "nope.ipynb"), "--out", str(tmp_path / "site")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "run the notebook first" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# The class gallery


def test_the_gallery_names_only_students_who_agreed(tmp_path):
    from matplotlib.figure import Figure

    from course.cli import main as course

    batch = tmp_path / "batch"
    for student in ("alice_smith", "bob_jones", "carol_wu"):
        tiny = Figure(figsize=(1, 1))
        save_deliverable(tiny, note("A1.9-hybrids", items=["a / b", "c / d"]), batch / student / "writeup_figures")
        save_deliverable(tiny, note("A1.8-anagrams", items=["p / q", "r / s"]), batch / student / "site" / "figures")
        save_deliverable(tiny, note("A1.5-samples"), batch / student / "writeup_figures")  # not chosen
    save_deliverable(tiny, note("A1.9-hybrids"), batch / "carol_wu" / "writeup_figures_fast")  # a FAST run
    roster = tmp_path / "roster.csv"
    with open(roster, "w", newline="") as f:
        csv.writer(f).writerows([["submission", "name", "consent"], ["alice_smith", "Alice Smith", "yes"],
                                 ["bob_jones", "Bob Jones", "no"]])
    assert course(["gallery", str(batch), "--out", str(tmp_path / "gallery"), "--roster", str(roster)]) == 0
    index = tmp_path / "gallery" / "index.html"
    text = index.read_text()
    files = " ".join(p.name for p in (tmp_path / "gallery" / "figures").iterdir())
    assert "Alice Smith" in text and "alice-smith-A1.9-hybrids.png" in files
    for secret in ("Bob", "bob", "carol", "Carol", "jones", "wu"):
        assert secret not in text and secret not in files
    assert text.count("student ") >= 4  # two anonymous students, two deliverables each
    page = read_page(index)
    assert len(page.images["sec-A1.9-hybrids"]) == 3 and len(page.images["sec-A1.8-anagrams"]) == 3
    assert "sec-A1.5-samples" not in page.ids
    assert broken_links(index) == []
    with pytest.raises(SystemExit, match="not a deliverable"):
        course(["gallery", str(batch), "--out", str(tmp_path / "g2"), "--deliverables", "A1.9-hybrid"])
    bad = tmp_path / "bad.csv"
    bad.write_text("student,name\nalice_smith,Alice Smith\n")
    with pytest.raises(SystemExit, match="consent"):
        course(["gallery", str(batch), "--out", str(tmp_path / "g3"), "--roster", str(bad)])


# ---------------------------------------------------------------------------------------------------
# In a real browser


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(profile)})


@pytest.mark.slow
def test_the_page_renders_and_prints_in_chromium(site, tmp_path):
    out = Path(os.environ.get("FWD_WRITEUP_SHOTS", tmp_path))  # set it to keep the files and look at them
    out.mkdir(parents=True, exist_ok=True)
    shot, pdf = out / "writeup.png", out / "writeup.pdf"
    url = site.resolve().as_uri()
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, profile=tmp_path / "p1")
    chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url, profile=tmp_path / "p2")
    assert shot.is_file() and shot.stat().st_size > 50_000, "the screenshot is missing or blank"
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("L").getcolors(1 << 16) or []) > 50  # text and figures, not one flat colour
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(data) > 100_000
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert pages > len(SECTIONS), f"{pages} pages: the sections should each start a page"
