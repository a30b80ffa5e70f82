"""Code similarity of a batch of submissions, per graded function and class: a signal for staff, never a grade.

For every function and class students write, the code compared is the code the grader runs: the cells that
:func:`autograder.notebook.extract` finds (by ``grade_id``, or by what a moved or retyped cell defines), the
definition of the graded name, and the student's own helpers it calls. Each submission is compared with
every other one and with an optional folder of known solutions (notebooks or ``.py`` files the staff
collected); nothing in ``results.json`` or the feedback pages changes.

The code is normalised first (:mod:`course.similarity_normalise`: names, comments, docstrings, layout and the
order of definitions do not count); every k-gram of ``noise_tokens`` tokens is hashed (from the tokens'
CRC-32s, so the same code gets the same fingerprints in every run) and ``copydetect`` winnows and compares
them, as MOSS does: shared runs of ``noise_tokens`` tokens or more may be found, runs of ``guarantee_tokens``
always are. Code the assignment gives — the stub's cells, the notebook's own helpers and
provided definitions, the course kit's modules it imports — is boilerplate: its fingerprints never count.

A pair is **flagged** for a function when at least ``threshold`` of one side's fingerprinted code is found in
the other and at least ``min_shared`` tokens are shared. A function whose code leaves nothing to fingerprint
beyond the stub (a one-line body) cannot be told apart: the report says so. The report
(:mod:`course.similarity_page`) ranks the pairs by the graded code they share.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from course.similarity_normalise import Block, Unit, normalise, top_level, units_of

KNOWN_SUFFIXES = (".ipynb", ".py")  # what a folder of known solutions may hold
KNOWN_PREFIX = "known: "  # how a known solution is named in the report


@dataclass
class SimilarityConfig:
    """How code is fingerprinted and when a pair is flagged; ``course similarity`` takes these defaults."""

    noise_tokens: int = 12  # k: shorter runs of shared tokens are noise (one call with its arguments)
    guarantee_tokens: int = 16  # runs this long are always found (winnowing window: 16 - 12 + 1 = 5)
    threshold: float = 0.7  # flagged from this share of one side's fingerprinted code found in the other…
    min_shared: int = 40  # …with at least this many tokens shared (about three lines)
    listed_from: float = 0.3  # pairs below this share are left out of the page and the CSV
    max_pairs: int = 100  # rows of the page's ranked table of pairs (the CSV has them all)
    max_views: int = 40  # side-by-side views per function on the page (the CSV has them all)


@dataclass
class Source:
    """A submission or a known solution, read: its part and its units (empty when it could not be read)."""

    owner: str
    path: Path
    known: bool
    part: str | None = None
    units: dict[str, Unit] = field(default_factory=dict)
    problem: str | None = None  # why it could not be read


def python_notebook(path: Path):
    """A ``.py`` file as a notebook of one code cell, so that the grader's cell finding reads it."""
    import nbformat

    from autograder.notebook import SubmissionError

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SubmissionError(f"{path.name} is not a Python file: it is not UTF-8 text") from None
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(text)])


def read_source(path: str | Path, owner: str, part: str | None = None, known: bool = False) -> Source:
    """A submission (a notebook or a folder holding one) or a known solution (a notebook or a ``.py``)."""
    from autograder.catalogue import detect_part
    from autograder.notebook import SubmissionError, extract, find_notebook, read_notebook

    path = Path(path)
    source = Source(owner, path, known, part)
    try:
        notebook = path if known else find_notebook(path, part)
        nb = python_notebook(notebook) if notebook.suffix == ".py" else read_notebook(notebook)
        source.part = part or detect_part(nb, notebook)
        assignment = assignment_of(source.part)
        extracted = extract(nb, assignment.graded, assignment.allowed_imports, assignment.provided)
    except SubmissionError as err:
        source.problem = str(err)
        return source
    source.units = units_of(extracted, assignment.graded, owner)
    return source


_ASSIGNMENTS: dict = {}


def assignment_of(part: str):
    """:func:`autograder.catalogue.load_assignment`, read once per part."""
    from autograder.catalogue import load_assignment

    if part not in _ASSIGNMENTS:
        _ASSIGNMENTS[part] = load_assignment(part)
    return _ASSIGNMENTS[part]


def known_files(folder: str | Path) -> list[Path]:
    """The notebooks and ``.py`` files under ``folder`` (checkpoints and caches left out)."""
    from autograder.notebook import SubmissionError

    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionError(f"expected a folder of known solutions at {folder}, but there is none")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in KNOWN_SUFFIXES
                   and not {".ipynb_checkpoints", "__pycache__"} & set(p.parts))
    if not files:
        raise SubmissionError(f"the folder of known solutions {folder} holds no notebook (.ipynb) nor .py file")
    return files


def boilerplate_blocks(part: str) -> tuple[dict[str, Unit], list[Block]]:
    """Code the assignment gives, normalised: the stub's units, and as blocks the stub's graded cells, every
    definition in its other code cells (the notebook's own helpers, the provided definitions) and in the
    course kit's modules it imports."""
    from autograder.catalogue import trusted_notebook
    from autograder.notebook import extract, global_names_used

    assignment = assignment_of(part)
    graded = set(assignment.graded)
    nb = trusted_notebook(part)
    stub = extract(nb, assignment.graded, assignment.allowed_imports, assignment.provided)
    units = units_of(stub, assignment.graded, "stub")
    blocks = [b for unit in units.values() for b in unit.blocks]
    groups, notebook, modules = [], {}, set()  # groups: definitions that may call each other
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        notebook.update(top_level(cell.source))
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError):
            continue
        modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                    and n.module.split(".")[0] == "fwd_kit"}
    groups.append(notebook)
    for module in sorted(modules):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            groups.append(top_level(Path(spec.origin).read_text(encoding="utf-8")))
    for group in groups:  # each as it stands and as a student's helper (its name and its callees → ƒ)
        for name, text in group.items():
            calls = global_names_used(text) & set(group) | {name}
            blocks += [normalise(text, graded, set()), normalise(text, graded, calls - graded)]
    return units, blocks


# ---------------------------------------------------------------------------------------------------
# Fingerprints (copydetect) and comparisons


@dataclass
class Fingerprint:
    """A unit's winnowed fingerprints, with the attributes copydetect's ``compare_files`` reads."""

    k: int
    hashes: set[int]
    hash_idx: dict[int, list[int]]  # fingerprint → the token indices where its k-gram starts
    filtered_code: tuple[str, ...]  # the normalised tokens
    token_coverage: float  # tokens inside the fingerprinted k-grams
    offsets: tuple = ()  # copydetect's map from filtered to raw characters: none, the tokens are the code


class Fingerprinter:
    """Winnowed fingerprints (copydetect's ``winnow``) of k-grams of normalised tokens, the boilerplate's
    taken out. A k-gram's hash is computed from CRC-32s of its tokens, so that the same code gets the same
    fingerprints in every run (copydetect's own ``hash()`` of strings changes with Python's hash seed)."""

    def __init__(self, config: SimilarityConfig):
        self.config = config
        self.boilerplate: set[int] = set()
        self.ids: dict[str, int] = {}
        self.cache: dict[tuple[str, ...], Fingerprint | None] = {}

    def kgram_hashes(self, tokens):
        """The hash of every k-gram of ``tokens``: a numpy int64 array, each a polynomial of the tokens' CRC-32s
        modulo 2**64."""
        import zlib

        import numpy as np

        k = self.config.noise_tokens
        ids = np.array([self.ids.setdefault(t, zlib.crc32(t.encode("utf-8"))) for t in tokens], dtype=np.uint64)
        n = len(ids) - k + 1
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        hashes = np.zeros(n, dtype=np.uint64)
        for j in range(k):
            hashes = hashes * np.uint64(1_000_003) + ids[j:j + n]
        return hashes.view(np.int64)

    def add_boilerplate(self, blocks: list[Block]) -> None:
        """Every k-gram of ``blocks`` (not only the winnowed ones) is boilerplate, as in copydetect."""
        for block in blocks:
            self.boilerplate.update(self.kgram_hashes(block.tokens).tolist())

    def fingerprint(self, tokens: list[str]) -> Fingerprint | None:
        """The fingerprints of a unit's tokens without the boilerplate's; None when nothing is left."""
        from copydetect.utils import get_token_coverage, winnow

        key = tuple(tokens)
        if key not in self.cache:
            k = self.config.noise_tokens
            hashes, idx = winnow(self.kgram_hashes(key), self.config.guarantee_tokens - k + 1, remove_duplicates=False)
            where: dict[int, list[int]] = {}
            for h, i in zip(hashes.tolist(), idx.tolist()):
                if h not in self.boilerplate:
                    where.setdefault(h, []).append(i)
            self.cache[key] = Fingerprint(k, set(where), where, key, get_token_coverage(where, k, len(key))) \
                if where else None
        return self.cache[key]


@dataclass
class Match:
    """Two sources' code of one graded name, compared."""

    name: str
    a: Unit
    b: Unit
    similarity: float  # the larger of the two shares of fingerprinted code found in the other side
    shared: int  # tokens in shared runs (the smaller side's count)
    slices: tuple  # token ranges shared: (2×n array for a, 2×n array for b), rows = starts, ends
    flagged: bool = False


def compare_units(units: list[Unit], printer: Fingerprinter, known: set[str]) -> list[Match]:
    """Every pair of ``units`` (one graded name) whose fingerprints meet, except two known solutions.

    Identical normalised code is fingerprinted and compared once."""
    from copydetect.detector import compare_files

    config = printer.config
    groups: dict[tuple[str, ...], list[Unit]] = {}
    for unit in units:
        groups.setdefault(tuple(unit.tokens), []).append(unit)
    prints = [(units_, fp) for tokens, units_ in groups.items() if (fp := printer.fingerprint(tokens)) is not None]
    matches = []
    for i, (units_a, fa) in enumerate(prints):
        for units_b, fb in prints[i:]:
            if (fa is fb and len(units_a) < 2) or (fa is not fb and fa.hashes.isdisjoint(fb.hashes)):
                continue
            overlap, (share_a, share_b), (slices_a, slices_b) = compare_files(fa, fb)
            if not overlap:
                continue
            similarity = float(max(share_a, share_b))
            shared = int(min((slices_a[1] - slices_a[0]).sum(), (slices_b[1] - slices_b[0]).sum()))
            if similarity < config.listed_from:
                continue
            flagged = similarity >= config.threshold and shared >= config.min_shared
            for x, ua in enumerate(units_a):
                for ub in (units_b[x + 1:] if fa is fb else units_b):
                    if ua.owner in known and ub.owner in known:
                        continue
                    a, b, sa, sb = (ub, ua, slices_b, slices_a) if ub.owner in known else (ua, ub, slices_a, slices_b)
                    matches.append(Match(ua.name, a, b, similarity, shared, (sa, sb), flagged))
    return sorted(matches, key=lambda m: (-m.similarity, -m.shared, m.a.owner, m.b.owner))


# ---------------------------------------------------------------------------------------------------
# A batch


@dataclass
class SimilarityResult:
    """What a batch's comparison found; :mod:`course.similarity_page` writes it out."""

    sources: list[Source]  # submissions, then known solutions, in the order given
    matches: list[Match]  # every pair at or above ``config.listed_from``, per function, most similar first
    functions: list[tuple[str, str]]  # (part, graded name) compared, in the assignments' order
    compared: dict[str, int]  # graded name → how many sources have code of it to fingerprint
    too_short: dict[str, list[str]]  # graded name → sources that answered it in too few tokens to compare
    config: SimilarityConfig

    @property
    def flagged(self) -> list[Match]:
        return [m for m in self.matches if m.flagged]

    @property
    def unreadable(self) -> list[Source]:
        return [s for s in self.sources if s.problem]


def read_batch(paths, names: list[str] | None = None, known_dir: str | Path | None = None,
               part: str | None = None, progress: bool = True) -> list[Source]:
    """Submissions (named ``names``, by default as ``course grade`` names their folders), then the known
    solutions under ``known_dir``; :class:`SubmissionError` when ``known_dir`` holds none."""
    from tqdm.auto import tqdm

    from autograder.reports import output_names

    paths = [Path(p) for p in paths]
    names = names or output_names(paths)
    known = known_files(known_dir) if known_dir is not None else []
    jobs = [(p, n, False) for p, n in zip(paths, names)]
    jobs += [(p, KNOWN_PREFIX + p.relative_to(known_dir).as_posix(), True) for p in known]
    return [read_source(p, n, part, k) for p, n, k in tqdm(jobs, desc="reading code", unit="file",
                                                             disable=not progress or None)]


def compare_batch(sources: list[Source], config: SimilarityConfig | None = None,
                  progress: bool = True) -> SimilarityResult:
    """Compare every graded name across ``sources`` (each part on its own)."""
    from tqdm.auto import tqdm

    config = config or SimilarityConfig()
    printer = Fingerprinter(config)
    parts = sorted({s.part for s in sources if s.units})
    functions = [(p, n) for p in parts for n in assignment_of(p).graded]
    stubs = {}
    for p in parts:
        stubs[p], blocks = boilerplate_blocks(p)
        printer.add_boilerplate(blocks)
    known = {s.owner for s in sources if s.known}
    matches, compared, too_short = [], {}, {}
    for p, name in tqdm(functions, desc="comparing", unit="function", disable=not progress or None):
        units = [s.units[name] for s in sources if s.part == p and name in s.units]
        stub = stubs[p][name].tokens if name in stubs[p] else None
        measured = [u for u in units if printer.fingerprint(u.tokens) is not None]
        owners = {u.owner for u in measured}
        compared[name] = len(measured)
        too_short[name] = [u.owner for u in units if u.owner not in owners and u.tokens != stub]
        matches += compare_units(measured, printer, known)
    return SimilarityResult(sources, matches, functions, compared, too_short, config)


def similarity_report(paths, out: str | Path, known_dir: str | Path | None = None, part: str | None = None,
                      names: list[str] | None = None, config: SimilarityConfig | None = None,
                      progress: bool = True) -> SimilarityResult:
    """Read and compare a batch, write ``out/similarity.html`` and ``out/similarity.csv``; the result."""
    from course.similarity_page import write_csv, write_html

    result = compare_batch(read_batch(paths, names, known_dir, part, progress), config, progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_html(result, out / "similarity.html")
    write_csv(result, out / "similarity.csv")
    return result
