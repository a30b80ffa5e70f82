"""The similarity report's files (:mod:`course.similarity`): ``similarity.html`` and ``similarity.csv``.

The page is one self-contained file without scripts: the pairs ranked by the graded code they share, then
per function its pairs, each a ``<details>`` that opens to both codes side by side, as the students wrote
them, with the shared runs marked. The CSV lists every pair at or above ``listed_from``.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

LAYOUT = " \t\n\\(),"  # what may lie between two tokens of one marked run (whitespace, dropped punctuation)
CSV_COLUMNS = ("submission_a", "submission_b", "function", "similarity", "tokens_shared", "flagged")
STYLE = """body{font-family:sans-serif;margin:2em;max-width:110em} table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top} tr.flagged td{background:#fff1f0}
.note{color:#444;max-width:60em} details{margin:4px 0;border:1px solid #ddd;padding:2px 6px}
details.flagged>summary{color:#a4001d;font-weight:bold} summary{cursor:pointer}
.side{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:12px} .side h4{margin:6px 0}
pre{background:#f7f7f7;padding:6px;overflow-x:auto;font-size:12px;margin:0 0 6px 0}
mark{background:#ffd54f}"""


def percent(x: float) -> str:
    return f"{100 * x:.0f}%"


def marked(unit, token_slices) -> str:
    """The unit's code as written, HTML-escaped, with the tokens in ``token_slices`` (rows: starts, ends)
    inside ``<mark>``: one mark per run of consecutive tokens of one definition, broken where a comment or a
    docstring lies between two tokens (those never count)."""
    shared = sorted({i for s, e in zip(*token_slices) for i in range(int(s), int(e))})
    runs: dict[int, list[list[int]]] = {}  # block → [start, end] character ranges
    last = None
    for i in shared:
        block, start, end = unit.locate(i)
        text = unit.blocks[block].text
        if last is not None and last[0] == i - 1 and last[1] == block and \
                not text[runs[block][-1][1]:start].strip(LAYOUT):
            runs[block][-1][1] = end
        else:
            runs.setdefault(block, []).append([start, end])
        last = (i, block)
    pieces = []
    for b, block in enumerate(unit.blocks):
        text, at = block.text, 0
        for start, end in runs.get(b, []):
            pieces.append(html.escape(text[at:start]) + f"<mark>{html.escape(text[start:end])}</mark>")
            at = end
        pieces.append(html.escape(text[at:]).rstrip("\n") + "\n\n")
    return "".join(pieces).rstrip("\n")


def view(match, anchor: str, opened: bool = False) -> str:
    """One pair's ``<details>`` (``opened``: shown open): the summary line, then both codes side by side."""
    sides = "".join(f"<div><h4>{html.escape(unit.owner)}</h4><pre>{marked(unit, slices)}</pre></div>"
                    for unit, slices in zip((match.a, match.b), match.slices))
    summary = (f"{html.escape(match.a.owner)} ↔ {html.escape(match.b.owner)}: {percent(match.similarity)} similar, "
               f"{match.shared} tokens shared{' — flagged' if match.flagged else ''}")
    return (f"<details id='{anchor}' class='view{' flagged' if match.flagged else ''}'{' open' if opened else ''}>"
            f"<summary>{summary}</summary><div class='side'>{sides}</div></details>")


def ranked_pairs(matches) -> list[tuple[tuple[str, str], list]]:
    """Pairs of sources with their matches, the most shared flagged code first, then the most shared code."""
    pairs: dict[tuple[str, str], list] = {}
    for m in matches:
        pairs.setdefault((m.a.owner, m.b.owner), []).append(m)
    key = lambda item: (-sum(m.shared for m in item[1] if m.flagged), -sum(m.shared for m in item[1]),  # noqa: E731
                        item[0])
    return sorted(pairs.items(), key=key)


def pairs_table(result, anchors: dict[int, str]) -> str:
    """The ranked table of pairs; each flagged function links to its side-by-side view."""
    ranked = ranked_pairs(result.matches)
    if not ranked:
        return f"<p>No pair shares {percent(result.config.listed_from)} or more of any function's code.</p>"
    rows = []
    for rank, ((a, b), matches) in enumerate(ranked[:result.config.max_pairs], start=1):
        flagged = [m for m in matches if m.flagged]
        links = ", ".join(f"<a href='#{anchors[id(m)]}'>{html.escape(m.name)}</a>" if id(m) in anchors
                          else html.escape(m.name) for m in flagged) or "none"
        rows.append(f"<tr class='{'flagged' if flagged else 'listed'}'><td>{rank}</td><td>{html.escape(a)}</td>"
                    f"<td>{html.escape(b)}</td><td>{links}</td><td>{sum(m.shared for m in flagged)}</td>"
                    f"<td>{sum(m.shared for m in matches)}</td><td>{percent(max(m.similarity for m in matches))}</td>"
                    "</tr>")
    more = len(ranked) - result.config.max_pairs
    note = f"<p>{more} more pair(s) in similarity.csv.</p>" if more > 0 else ""
    return ("<table id='ranked'><thead><tr><th>#</th><th>submission</th><th>compared with</th>"
            "<th>functions flagged</th><th>tokens shared, flagged functions</th><th>tokens shared, listed</th>"
            "<th>highest similarity</th></tr></thead><tbody>" + "\n".join(rows) + "</tbody></table>" + note)


def function_sections(result, anchors: dict[int, str]) -> str:
    """Per graded name: its pairs (the first ``max_views`` open to their codes side by side) and the sources
    too short to compare. The first flagged view is open, as an example of what the others show."""
    example = next((anchors[id(m)] for m in result.matches if m.flagged and id(m) in anchors), None)
    by_name: dict[str, list] = {}
    for m in result.matches:
        by_name.setdefault(m.name, []).append(m)
    sections = []
    for part, name in result.functions:
        matches = by_name.get(name, [])
        short = result.too_short.get(name, [])
        listed = ", ".join(short[:10]) + (f" and {len(short) - 10} more" if len(short) > 10 else "")
        body = (f"<p class='note'>Too little code beyond the stub's to fingerprint (fewer than "
                f"{result.config.noise_tokens} tokens in a run): {html.escape(listed)}.</p>\n") if short else ""
        if not result.compared.get(name):
            body += "<p>Nothing to tell apart: no source has enough code of it beyond the stub's.</p>"
        elif not matches:
            body += f"<p>No pair shares {percent(result.config.listed_from)} or more of its code.</p>"
        else:
            shown = matches[:result.config.max_views]
            body += "\n".join(view(m, anchors[id(m)], opened=anchors[id(m)] == example) for m in shown)
            if len(matches) > len(shown):
                body += f"<p>{len(matches) - len(shown)} more pair(s) in similarity.csv.</p>"
        flagged = sum(m.flagged for m in matches)
        sections.append(f"<section id='fn-{html.escape(name)}'><h3>{html.escape(name)} <small>({part}, "
                        f"{flagged} flagged)</small></h3>\n{body}</section>")
    return "\n".join(sections)


def write_html(result, path: str | Path) -> Path:
    """``similarity.html``: how to read it, the ranked pairs, then each function's pairs side by side."""
    config = result.config
    anchors, count = {}, {}
    for m in result.matches:  # views shown: the first max_views of each function
        count[m.name] = count.get(m.name, 0) + 1
        if count[m.name] <= config.max_views:
            anchors[id(m)] = f"view-{len(anchors) + 1}"
    submissions = [s for s in result.sources if not s.known and not s.problem]
    known = [s for s in result.sources if s.known and not s.problem]
    unreadable = "".join(f"<li>{html.escape(s.owner)}: {html.escape(s.problem)}</li>" for s in result.unreadable)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Code similarity</title><style>{STYLE}</style></head>
<body><h1>Code similarity: {len(submissions)} submission(s), {len(known)} known solution(s)</h1>
<p class="note">A signal for the course staff, never a grade: nothing here changes a score or a feedback page.
Each graded function or class is compared as the grader extracts it (with the student's own helpers it calls),
after renaming local names, dropping comments, docstrings and blank lines and sorting the helpers; the stub's
code and the course's helpers never count. A pair is <strong>flagged</strong> for a function when
{percent(config.threshold)} or more of one side's fingerprinted code is found in the other and at least
{config.min_shared} tokens are shared (runs of at least {config.noise_tokens} tokens). Pairs below
{percent(config.listed_from)} are not listed.</p>
{f"<p>Not compared:</p><ul>{unreadable}</ul>" if unreadable else ""}
<h2 id="pairs">Pairs ranked by shared graded code</h2>
{pairs_table(result, anchors)}
<h2 id="functions">Per function</h2>
{function_sections(result, anchors)}
</body></html>
"""
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path


def write_csv(result, path: str | Path) -> Path:
    """``similarity.csv``: one row per listed pair and function, most similar first."""
    path = Path(path)
    rows = sorted(result.matches, key=lambda m: (-m.similarity, -m.shared, m.name, m.a.owner, m.b.owner))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for m in rows:
            writer.writerow([m.a.owner, m.b.owner, m.name, f"{m.similarity:.3f}", m.shared,
                             "yes" if m.flagged else "no"])
    return path
