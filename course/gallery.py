"""The class gallery: chosen deliverables of every student of a batch on one static page.

    course gallery GRADED_DIR --out gallery/ [--deliverables A1.8-anagrams,A1.9-hybrids] [--roster roster.csv]

``GRADED_DIR`` holds one folder per student: the submission (the notebook with the ``writeup_figures/`` it
saved), the student's built write-up site (``site/figures/`` keeps the notes), or a grading folder with
either inside. The figures are found anywhere in a student's folder by their notes
(:mod:`fwd_kit.figure_notes`); figures of FAST runs (``writeup_figures_fast/``) are left out.

A student is shown by name only when the staff pass a roster (CSV with the columns ``submission`` — the
student's folder name —, ``name`` and ``consent``) whose consent cell says yes; everyone else gets an
anonymous label ("student 4") that reveals neither the folder name nor its alphabetical place, and the
copied images are named after the label.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fwd_kit.deliverables import deliverable
from fwd_kit.figure_notes import read_notes
from fwd_kit.writeup_html import STYLE_FILE, esc, figure_html, natural_key, page

CONSENT_YES = {"yes", "y", "true", "1", "x", "agreed", "consent"}  # a roster's consent cell that allows the name
FAST_PART = "writeup_figures_fast"  # folders of FAST runs: not gallery material


@dataclass
class GalleryConfig:
    """What ``course gallery`` gathers, from where, and how students are named."""

    graded: Path  # one folder per student (submission, write-up site or grading folder)
    out: Path = Path("gallery")  # the page: index.html, style.css, figures/
    deliverables: tuple[str, ...] = ("A1.8-anagrams", "A1.9-hybrids")  # ids of fwd_kit.deliverables
    roster: Path | None = None  # CSV: submission, name, consent; without it every student is anonymous
    title: str = "Class gallery"


def student_folders(graded: Path) -> list[Path]:
    """The student folders of a batch (hidden folders left out), by name."""
    if not graded.is_dir():
        raise ValueError(f"{graded} is not a folder: give the batch folder holding one folder per student.")
    return sorted(p for p in graded.iterdir() if p.is_dir() and not p.name.startswith("."))


def student_notes(folder: Path) -> dict[str, dict]:
    """A student's saved figures by file stem (the newest when a stem is found twice), FAST runs left out."""
    notes = {}
    note_dirs = sorted({p.parent for p in folder.rglob("*.json")
                        if FAST_PART not in p.relative_to(folder).parts and ".ipynb_checkpoints" not in p.parts})
    for directory in note_dirs:
        for note in read_notes(directory):
            stem = Path(note["path"]).stem
            if stem not in notes or str(note.get("saved_at", "")) > str(notes[stem].get("saved_at", "")):
                notes[stem] = note
    return notes


def read_roster(path: Path) -> dict[str, str]:
    """Names that may be shown, by submission folder name: the roster's rows whose consent is yes."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
        columns = {c.strip().lower(): c for c in (rows[0].keys() if rows else [])}
    missing = [c for c in ("submission", "name", "consent") if c not in columns]
    if rows and missing:
        raise ValueError(f"the roster {path} needs the columns submission, name and consent (one row per student; "
                         f"consent yes to show the name), but it lacks {', '.join(missing)}.")
    named = {}
    for row in rows:
        submission, name = row[columns["submission"]].strip(), row[columns["name"]].strip()
        if submission and name and row[columns["consent"]].strip().lower() in CONSENT_YES:
            named[submission] = name
    return named


def anonymous_labels(names: list[str]) -> dict[str, str]:
    """"student 1" … "student N", numbered in the order of a hash of the folder names (not alphabetical)."""
    order = sorted(names, key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())
    return {name: f"student {k}" for k, name in enumerate(order, start=1)}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def build_gallery(config: GalleryConfig) -> tuple[Path, int]:
    """Write the gallery into ``config.out``; returns index.html's path and the number of figures shown."""
    chosen = [deliverable(i) for i in config.deliverables]  # a ValueError naming the known ids
    folders = student_folders(Path(config.graded))
    named = read_roster(config.roster) if config.roster else {}
    anonymous = anonymous_labels([f.name for f in folders])
    out = Path(config.out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STYLE_FILE, out / "style.css")
    cards = {d.id: [] for d in chosen}
    for folder in folders:
        label = named.get(folder.name) or anonymous[folder.name]
        for stem, note in student_notes(folder).items():
            if note["deliverable"] in cards:
                target = out / "figures" / f"{slug(label)}-{stem}.png"
                shutil.copyfile(note["path"], target)
                cards[note["deliverable"]].append((label, {**note, "path": target}))
    body, shown = [], 0
    for d in chosen:
        entries = sorted(cards[d.id], key=lambda e: (e[0], natural_key(e[1])))
        shown += len(entries)
        figures = "".join(f'<div class="card"><p class="who">{esc(label)}</p>{figure_html(note, d.title)}</div>'
                          for label, note in entries) or "<p>No student saved this deliverable.</p>"
        body.append(f'<section class="section" id="sec-{esc(d.id)}"><h2>{esc(d.title)} <code>{esc(d.id)}</code>'
                    f'</h2><div class="gallery">{figures}</div></section>')
    header = (f'<p class="meta">{len(folders)} students, {sum(f.name in named for f in folders)} shown by name '
              f"(with their consent); {shown} figures.</p>")
    index = out / "index.html"
    index.write_text(page(config.title, header, "\n".join(body)), encoding="utf-8")
    return index, shown
