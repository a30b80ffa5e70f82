"""Deliverable figures saved as they are made, for the write-up page (``python -m fwd_kit.writeup``).

The notebooks pass a :class:`Note` — which deliverable of :mod:`fwd_kit.deliverables` a figure is, its
caption, its settings (prompt, seed, noise level, epoch) — to the plotting helpers they already call
(``fwd_kit.images.show_grid``, ``fwd_kit.figures.save_figure``). The figure is then also written to the
write-up folder as ``<id>[-<key>].png`` beside a JSON sidecar ``<id>[-<key>].json``::

    {"deliverable": "A1.4-every-5th", "key": "", "image": "A1.4-every-5th.png",
     "caption": "iterative denoising, every 5th step", "items": [],
     "settings": {"i_start": 10, "t": [690, 540, 390, 240, 90, 0], "seed": 180}, "saved_at": "...", "kit": "0.1.0"}

The folder is ``writeup_figures`` in the working directory (the notebook's folder in Jupyter, ``/content``
on Colab) unless the notebook names another with :func:`writeup_folder`. Saving a figure again
overwrites it: the folder always holds the latest run of each figure.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fwd_kit import __version__
from fwd_kit.deliverables import deliverable

DEFAULT_FOLDER = Path("writeup_figures")  # relative to the working directory, i.e. beside the notebook
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


_folder = DEFAULT_FOLDER  # where deliverable figures go; the notebook sets it once with writeup_folder(...)


def writeup_folder(path: str | os.PathLike | None = None) -> Path:
    """The folder deliverable figures are saved to; with ``path``, make it that folder first.

    The folder is created when the first figure is saved. A relative path is relative to the working
    directory when a figure is saved.
    """
    global _folder
    if path is not None:
        if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
            raise ValueError(f"path must be a folder path (str or Path), but got {path!r}.")
        _folder = Path(path).expanduser()
    return _folder


@dataclass(frozen=True)
class Note:
    """What a saved figure is, for the write-up page. Make one with :func:`note`."""

    deliverable: str  # an id of fwd_kit.deliverables.DELIVERABLES, e.g. "A1.4-every-5th"
    caption: str = ""  # shown under the figure; "" = the figure's title, else the deliverable's title
    settings: dict = field(default_factory=dict)  # prompt, seed, noise level, epoch...: JSON values
    items: tuple[str, ...] = ()  # what the figure shows one of each (images, prompts, samples): counted
    key: str = ""  # tells several figures of one deliverable apart, e.g. "epoch-5"; "" for a single figure

    @property
    def stem(self) -> str:
        """The figure's file name without extension: ``<id>`` or ``<id>-<key>``."""
        return f"{self.deliverable}-{self.key}" if self.key else self.deliverable


def json_safe(value):
    """``value`` as JSON data: tuples become lists, dict keys strings, tensors numbers, paths strings.

    A tensor of more than 16 numbers becomes its shape (a setting, not data); anything else its ``str``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if hasattr(value, "numel") and hasattr(value, "tolist"):  # a torch tensor (no torch import needed)
        return json_safe(value.tolist()) if value.numel() <= 16 else f"tensor of shape {tuple(value.shape)}"
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        return json_safe(value.item())
    return str(value)


def note(deliverable_id: str, caption: str = "", items=(), key: str = "", **settings) -> Note:
    """A :class:`Note` for a figure of ``deliverable_id``, with its settings as keyword arguments.

    ``note("A1.7-own-images", items=["own 1", "own 2"], prompt=EDIT_PROMPT, i_start=[1, 3, 5], seed=SEED)``
    """
    deliverable(deliverable_id)  # a ValueError naming the known ids
    key = str(key)
    if key and not _KEY.match(key):
        raise ValueError(f"key must be letters, digits, '.', '_' or '-' (it is part of a file name), "
                         f"but got {key!r}.")
    if isinstance(items, str):
        raise ValueError(f"items must be a list of labels (one per image, prompt or sample), but got the "
                         f"string {items!r}.")
    return Note(deliverable_id, str(caption), json_safe(settings), tuple(str(i) for i in items), key)


def figure_title(fig) -> str:
    """A matplotlib figure's suptitle, else its first axes' title, else ""."""
    suptitle = getattr(fig, "_suptitle", None)  # Figure.get_suptitle() needs matplotlib 3.8
    if suptitle is not None and suptitle.get_text().strip():
        return suptitle.get_text().strip()
    titles = [ax.get_title().strip() for ax in fig.axes if ax.get_title().strip()]
    return titles[0] if titles else ""


def _write_atomically(path: Path, write) -> None:
    """``write(tmp_path)``, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def save_deliverable(fig, note: Note, folder: str | os.PathLike | None = None, dpi: int = 100) -> Path:
    """Write ``fig`` to ``<folder>/<stem>.png`` and its sidecar ``<stem>.json``; returns the image's path.

    folder: default :func:`writeup_folder`. An empty caption becomes the figure's title.
    """
    if not isinstance(note, Note):
        raise ValueError(f"deliverable must be a fwd_kit.figure_notes.Note (made with note(...)), but got "
                         f"{type(note).__name__}.")
    folder = Path(folder) if folder is not None else writeup_folder()
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / f"{note.stem}.png"
    _write_atomically(image, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    record = {"deliverable": note.deliverable, "key": note.key, "image": image.name,
              "caption": note.caption or figure_title(fig), "settings": note.settings, "items": list(note.items),
              "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "kit": __version__}
    text = json.dumps(record, indent=1, ensure_ascii=False)
    _write_atomically(folder / f"{note.stem}.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return image


def read_notes(folder: str | os.PathLike) -> list[dict]:
    """The notes saved in ``folder``, by file name: sidecar dicts with ``"path"``, the image's Path.

    JSON files that are not notes, and notes whose image is gone, are left out.
    """
    notes = []
    for sidecar in sorted(Path(folder).glob("*.json")):
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or not isinstance(record.get("deliverable"), str):
            continue
        image = sidecar.with_name(str(record.get("image") or f"{sidecar.stem}.png"))
        if image.parent == sidecar.parent and image.is_file():
            notes.append({**record, "path": image})
    return notes
