"""The write-up page: every deliverable a notebook saved, in the assignment's order, with a checklist.

    python -m fwd_kit.writeup NOTEBOOK_OR_FOLDER --out site/

reads the notebook(s) — a ``.ipynb``, or a folder holding ``partA.ipynb`` and/or ``partB.ipynb`` — for the
written answers, and the deliverable figures they saved (:mod:`fwd_kit.figure_notes`) from
``writeup_figures/`` beside them (else ``writeup_figures_fast/``, said on the page). It writes
``site/index.html``, ``site/style.css`` and the figures in ``site/figures/`` (with their JSON notes): a
static page that works offline and on any static host, and prints to a PDF with one section per page.
At the top, a checklist names every deliverable (:mod:`fwd_kit.deliverables`) and written answer that
is missing or incomplete, e.g. "1.7.1 hand-drawn images: two hand-drawn images required, one found".
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fwd_kit.deliverables import (
    DELIVERABLES, PARTS, SECTIONS, Deliverable, Section, deliverables_of, section_of, sections_of, shortfalls,
)
from fwd_kit.figure_notes import DEFAULT_FOLDER, read_notes
from fwd_kit.writeup_html import STYLE_FILE, render_page

FAST_FOLDER = Path(f"{DEFAULT_FOLDER}_fast")  # what a FAST run saves (nbgrader's Validate, test runs)
ANSWER_STUB = "YOUR ANSWER HERE"  # nbgrader's text in an unanswered written-answer cell
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclass
class WriteupConfig:
    """What ``python -m fwd_kit.writeup`` builds, and from what."""

    source: Path  # a notebook (.ipynb), or a folder holding the notebooks (and their writeup_figures/)
    out: Path = Path("site")  # the page's folder: index.html, style.css, figures/
    figures: Path | None = None  # the saved figures (default: writeup_figures/ beside the notebooks, else _fast)
    parts: tuple[str, ...] = ()  # "A" and/or "B" (default: the parts of the notebooks and figures found)
    title: str = "Fun with diffusion — project write-up"


@dataclass(frozen=True)
class Item:
    """One line of the checklist: a deliverable or a written answer, and what it lacks."""

    anchor: str  # the id of its place on the page
    label: str  # e.g. "1.7.1 hand-drawn images"
    status: str  # "complete", "incomplete" or "missing"
    problems: tuple[str, ...] = ()
    optional: bool = False  # an optional deliverable: shown, never counted as to do
    part: str = ""  # "A" or "B"

    @property
    def to_do(self) -> bool:
        """Still to do: a required deliverable or answer that is missing or incomplete."""
        return self.status != "complete" and not self.optional

    @property
    def line(self) -> str:
        return f"{self.label}: {'; '.join(self.problems)}" if self.problems else self.label


@dataclass
class Writeup:
    """Everything the page shows: notes by deliverable id, answers by grade_id, the parts, the sources."""

    notes: dict[str, list[dict]]
    answers: dict[str, str]
    parts: tuple[str, ...]
    notebooks: list[Path] = field(default_factory=list)
    figures: Path | None = None
    unknown: list[dict] = field(default_factory=list)  # notes of ids this kit does not know


# ---------------------------------------------------------------------------------------------------
# Reading the notebooks and the figures


def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def answer_text(markdown: str) -> str:
    """A written answer without nbgrader's solution markers; "" when it is still the stub or empty."""
    lines = [line for line in markdown.splitlines() if line.strip() not in SOLUTION_MARKERS]
    text = "\n".join(lines).strip()
    return "" if text in ("", ANSWER_STUB) else text


def read_answers(notebook: str | Path) -> dict[str, str]:
    """The written answers of a notebook by grade_id (nbgrader's manually graded markdown cells; the cell
    id when the metadata is gone), each as markdown, "" when unanswered."""
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a readable Jupyter notebook ({err}).") from None
    wanted = {a for s in SECTIONS for a in s.answers}
    answers = {}
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        grade_id = (cell.get("metadata", {}).get("nbgrader", {}) or {}).get("grade_id") or cell.get("id")
        if grade_id in wanted:
            answers[grade_id] = answer_text(_cell_text(cell))
    return answers


def notebook_parts(notebook: Path, answers: dict[str, str]) -> set[str]:
    """The parts a notebook holds ("A", "B"): by its written-answer cells, else by its file name."""
    parts = {s.part for s in SECTIONS if any(a in answers for a in s.answers)}
    match = re.search(r"part[_ -]?([AB])", notebook.stem, re.IGNORECASE)
    return parts or ({match.group(1).upper()} if match else set())


def find_notebooks(source: Path) -> list[Path]:
    """``source`` itself when it is a notebook, else the notebooks directly in the folder."""
    if source.is_file():
        if source.suffix != ".ipynb":
            raise ValueError(f"{source} is not a notebook: give a .ipynb file or a folder holding your notebooks.")
        return [source]
    return sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))


def find_figures(source: Path, figures: Path | None) -> Path | None:
    """The folder of saved figures: ``figures`` if given, else writeup_figures/ (or _fast) beside the
    notebook, else ``source`` itself when it holds notes."""
    if figures is not None:
        if not figures.is_dir():
            raise ValueError(f"--figures {figures} is not a folder.")
        return figures
    folder = source.parent if source.is_file() else source
    for name in (DEFAULT_FOLDER, FAST_FOLDER):
        if (folder / name).is_dir():
            return folder / name
    return folder if source.is_dir() and read_notes(folder) else None


def collect(config: WriteupConfig) -> Writeup:
    """Read what the page shows: the answers of the notebooks, the notes of the figures, the parts."""
    source = Path(config.source)
    if not source.exists():
        raise ValueError(f"{source} does not exist: give your notebook, or the folder holding it.")
    notebooks = find_notebooks(source)
    figures = find_figures(source, config.figures)
    if not notebooks and figures is None:
        raise ValueError(f"{source} holds no notebook and no saved figures ({DEFAULT_FOLDER}/): run the "
                         "notebook first, or give the folder it ran in.")
    answers, parts = {}, set()
    for notebook in notebooks:
        found = read_answers(notebook)
        answers.update(found)
        parts |= notebook_parts(notebook, found)
    notes = read_notes(figures) if figures is not None else []
    known = {d.id for d in DELIVERABLES}
    by_id = {d.id: [n for n in notes if n["deliverable"] == d.id] for d in DELIVERABLES}
    if not parts:  # no notebook told its part: the parts of the saved figures
        parts = {n["deliverable"][0] for n in notes if n["deliverable"] in known}
    chosen = tuple(p for p in PARTS if p in (config.parts or parts))
    unknown = [n for n in notes if n["deliverable"] not in known]
    return Writeup(by_id, answers, chosen, notebooks, figures, unknown)


# ---------------------------------------------------------------------------------------------------
# The checklist


def deliverable_item(d: Deliverable, notes: list[dict]) -> Item:
    label = f"{section_of(d).number} {d.title}"
    problems = tuple(shortfalls(d, notes))
    if not problems:
        return Item(d.id, label, "complete", optional=d.optional, part=section_of(d).part)
    if not notes:
        why = "optional, not included" if d.optional else f"missing ({d.required})"
        return Item(d.id, label, "missing", (why,), d.optional, section_of(d).part)
    return Item(d.id, label, "incomplete", problems, d.optional, section_of(d).part)


def answer_item(section: Section, grade_id: str, answers: dict[str, str]) -> Item:
    label = f"{section.number} written answer ({grade_id})"
    if answers.get(grade_id):
        return Item(f"answer-{grade_id}", label, "complete", part=section.part)
    return Item(f"answer-{grade_id}", label, "missing", ("no answer in the notebook",), part=section.part)


def checklist(writeup: Writeup) -> list[Item]:
    """Every deliverable and written answer of the chosen parts, in the spec's order, with its status."""
    items = []
    for section in sections_of(writeup.parts):
        items += [deliverable_item(d, writeup.notes.get(d.id, [])) for d in deliverables_of(section)]
        items.extend(answer_item(section, a, writeup.answers) for a in section.answers)
    return items


# ---------------------------------------------------------------------------------------------------
# The site


def copy_figures(writeup: Writeup, out: Path) -> None:
    """Copy each shown figure and its note into ``out/figures/``."""
    target = out / "figures"
    target.mkdir(parents=True, exist_ok=True)
    for note in [n for notes in writeup.notes.values() for n in notes] + writeup.unknown:
        image = Path(note["path"])
        shutil.copyfile(image, target / image.name)
        sidecar = image.with_suffix(".json")
        if sidecar.is_file():
            shutil.copyfile(sidecar, target / sidecar.name)


def build_site(config: WriteupConfig) -> tuple[Path, list[Item]]:
    """Write the page into ``config.out``; returns index.html's path and the checklist."""
    writeup = collect(config)
    items = checklist(writeup)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    copy_figures(writeup, out)
    shutil.copyfile(STYLE_FILE, out / "style.css")
    index = out / "index.html"
    index.write_text(render_page(writeup, items, config.title), encoding="utf-8")
    return index, items


def summary(items: list[Item]) -> str:
    """One line: how many required items are complete, and the first few still to do."""
    required = [i for i in items if not i.optional]
    todo = [i for i in items if i.to_do]
    line = f"{len(required) - len(todo)} of {len(required)} required items complete"
    if todo:
        more = f" | … and {len(todo) - 5} more (see the checklist)" if len(todo) > 5 else ""
        line += "; to do: " + " | ".join(i.line for i in todo[:5]) + more
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fwd_kit.writeup", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, metavar="NOTEBOOK_OR_FOLDER",
                        help="your notebook (.ipynb), or the folder holding partA.ipynb / partB.ipynb")
    parser.add_argument("--out", type=Path, default=WriteupConfig.out, help="the page's folder (default: site)")
    parser.add_argument("--figures", type=Path, help="the saved figures (default: writeup_figures/ beside the "
                        "notebook, else writeup_figures_fast/)")
    parser.add_argument("--parts", default="", help="A, B or A,B (default: the parts found)")
    parser.add_argument("--title", default=WriteupConfig.title, help="the page's title")
    args = parser.parse_args(argv)
    parts = tuple(p.strip().upper() for p in args.parts.split(",") if p.strip())
    if not set(parts) <= set(PARTS):
        parser.error(f"--parts takes A and/or B, but got {args.parts!r}")
    try:
        index, items = build_site(WriteupConfig(args.source, args.out, args.figures, parts, args.title))
    except ValueError as err:
        print(f"python -m fwd_kit.writeup: {err}", file=sys.stderr)
        return 2
    print(f"wrote {index}: {summary(items)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
