"""The HTML of the write-up page (``fwd_kit.writeup``): plain HTML and one CSS file, no JavaScript.

Written answers are markdown; :func:`markdown_html` renders the little of it answers use (paragraphs,
lists, headings, code, **bold**, *emphasis*); formulas stay as typed ($...$).
"""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path

from fwd_kit.deliverables import PARTS, Deliverable, Section, deliverables_of, sections_of

STYLE_FILE = Path(__file__).resolve().parent / "data" / "writeup.css"
LIST_ITEM = re.compile(r"^([-*+]|\d+[.)])\s+")  # "- item", "* item", "1. item"
MARK = {"complete": "✓", "incomplete": "◐", "missing": "✗"}


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escaped text with `code`, **bold** and *emphasis*."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{esc(part[1:-1])}</code>")
            continue
        part = esc(part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", part)
        out.append(part)
    return "".join(out)


def markdown_html(text: str) -> str:
    """A written answer's markdown as HTML: blocks split by blank lines (``` fences kept whole)."""
    out, lines, k = [], text.splitlines(), 0
    while k < len(lines):
        if lines[k].strip().startswith("```"):
            end = next((j for j in range(k + 1, len(lines)) if lines[j].strip().startswith("```")), len(lines))
            out.append(f"<pre><code>{esc(chr(10).join(lines[k + 1:end]))}</code></pre>")
            k = end + 1
            continue
        block = []
        while k < len(lines) and lines[k].strip() and not lines[k].strip().startswith("```"):
            block.append(lines[k].strip())
            k += 1
        if not block:
            k += 1
        elif all(LIST_ITEM.match(b) for b in block):
            tag = "ol" if block[0][0].isdigit() else "ul"
            rows = "".join(f"<li>{_inline(LIST_ITEM.sub('', b))}</li>" for b in block)
            out.append(f"<{tag}>{rows}</{tag}>")
        elif block[0].startswith("#"):
            out.append(f"<h4>{_inline(block[0].lstrip('#').strip())}</h4>")
            if block[1:]:
                out.append(f"<p>{_inline(' '.join(block[1:]))}</p>")
        else:
            out.append(f"<p>{_inline(' '.join(block))}</p>")
    return "\n".join(out)


def settings_text(settings: dict) -> str:
    """``prompt: a rocket ship · seed: 180 · i_start: 5, 10, 20``."""
    def shown(value):
        if isinstance(value, dict):
            return "; ".join(f"{k}: {shown(v)}" for k, v in value.items())
        if isinstance(value, list):
            return ", ".join(shown(v) for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return repr(value) if value == "" else str(value)
    return " · ".join(f"{k}: {shown(v)}" for k, v in settings.items())


def figure_html(note: dict, fallback_caption: str) -> str:
    image = Path(note["path"]).name
    caption = note.get("caption") or fallback_caption
    settings = settings_text(note.get("settings") or {})
    detail = f'<span class="settings">{esc(settings)}</span>' if settings else ""
    return (f'<figure><img src="figures/{esc(image)}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)}{detail}</figcaption></figure>")


def natural_key(note: dict):
    """Sort figures of a deliverable by key with numbers as numbers (epoch-5 before epoch-10)."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(note.get("key", "")))]


def deliverable_html(d: Deliverable, notes: list[dict], item) -> str:
    tag = " (optional)" if d.optional else ""
    lines = [f'<article class="deliverable {item.status}" id="{esc(d.id)}">',
             f'<h3><span class="mark">{MARK[item.status]}</span> {esc(d.title)}{tag} <code>{esc(d.id)}</code></h3>',
             f'<p class="required">Required: {esc(d.required)}.</p>']
    if item.problems:
        lines.append(f'<p class="problems">{esc("; ".join(item.problems))}</p>')
    lines += [figure_html(n, d.title) for n in sorted(notes, key=natural_key)]
    lines.append("</article>")
    return "\n".join(lines)


def answer_html(grade_id: str, answers: dict[str, str]) -> str:
    text = answers.get(grade_id, "")
    if text:
        return f'<div class="answer" id="answer-{esc(grade_id)}">{markdown_html(text)}</div>'
    return (f'<div class="answer placeholder" id="answer-{esc(grade_id)}">No written answer yet: write it in the '
            f"notebook's answer cell <code>{esc(grade_id)}</code>, save the notebook and build the page again.</div>")


def section_html(section: Section, writeup, items_by_anchor) -> str:
    body = [f'<section class="section" id="sec-{esc(section.key)}">',
            f"<h2>{esc(section.number)} {esc(section.title)}</h2>"]
    body += [answer_html(a, writeup.answers) for a in section.answers]
    body += [deliverable_html(d, writeup.notes.get(d.id, []), items_by_anchor[d.id]) for d in deliverables_of(section)]
    body.append("</section>")
    return "\n".join(body)


def checklist_html(items) -> str:
    """The checklist: per part, every item with its mark, a link to its place and what it lacks."""
    lists = []
    for part in dict.fromkeys(i.part for i in items):
        rows = []
        for item in (i for i in items if i.part == part):
            kind = f"{item.status} optional" if item.optional else item.status
            problems = f': <span class="why">{esc("; ".join(item.problems))}</span>' if item.problems else ""
            rows.append(f'<li class="{kind}"><span class="mark">{MARK[item.status]}</span> '
                        f'<a href="#{esc(item.anchor)}">{esc(item.label)}</a>{problems}</li>')
        lists.append(f'<h3>{esc(PARTS.get(part, part))}</h3><ul>{"".join(rows)}</ul>')
    todo = sum(i.to_do for i in items)
    required = sum(not i.optional for i in items)
    state = "all done" if not todo else f"{todo} to do"
    return (f'<nav class="checklist" id="checklist"><h2>Checklist — {esc(state)}</h2>'
            f'<p class="summary">{required - todo} of {required} required deliverables and written answers '
            f'complete; optional ones are marked as such.</p>{"".join(lists)}</nav>')


def page(title: str, header: str, body: str) -> str:
    """A whole HTML document with the one stylesheet, style.css, beside it."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{esc(title)}</title>\n<link rel="stylesheet" href="style.css">\n</head>\n<body>\n'
            f'<header>\n<h1>{esc(title)}</h1>\n{header}\n</header>\n<main>\n{body}\n</main>\n</body>\n</html>\n')


def render_page(writeup, items, title: str) -> str:
    """The write-up's index.html: header, checklist, then one section per course section, by part."""
    sources = ", ".join(p.name for p in writeup.notebooks) or "no notebook"
    figures = f"{writeup.figures.name}/" if writeup.figures else "no figures folder"
    count = sum(len(n) for n in writeup.notes.values())
    header = [f'<p class="meta">Made with <code>python -m fwd_kit.writeup</code> from {esc(sources)} and {count} '
              f"figures in {esc(figures)} on {date.today().isoformat()}.</p>"]
    if writeup.figures is not None and writeup.figures.name.endswith("_fast"):
        header.append('<p class="banner">These figures come from a FAST run (smaller models, fewer samples and '
                      "levels): fine for checking the page, not for handing in. Run the notebooks with "
                      "FAST = False.</p>")
    by_anchor = {i.anchor: i for i in items}
    body = [checklist_html(items)]
    for part in writeup.parts:
        body.append(f'<h2 class="part">{esc(PARTS[part])}</h2>')
        body += [section_html(s, writeup, by_anchor) for s in sections_of((part,))]
    if writeup.unknown:
        body.append('<section class="section" id="sec-other"><h2>Other figures</h2>')
        body += [figure_html(n, n["deliverable"]) for n in writeup.unknown]
        body.append("</section>")
    return page(title, "\n".join(header), "\n".join(body))
