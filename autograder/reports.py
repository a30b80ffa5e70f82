"""What a graded submission's reader sees: each test's outcome, the report of a submission, and the files
written from it — ``results.json`` (Gradescope's format), ``feedback.html`` and a batch's ``summary.csv``.

The written answers of the rubric (:mod:`autograder.rubric`) are graded by hand: ``results.json`` lists each
as a test worth 0 of 0 automatic points with ``extra_data`` ``{"manual": true, "points": N}`` (so the
automatic score and total stay the rubric's automatic ones), the feedback page shows each question with the
student's answer, and ``summary.csv`` has an empty column per answer for the staff to fill.

Every file is written through a temporary file and a rename, so a kill never leaves half a file.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from autograder.catalogue import PARTS, Test, all_tests
from autograder.rubric import Written, rubric


@dataclass
class Outcome:
    """The result of one test, in Gradescope's terms, plus pictures for the feedback page."""

    test: Test
    score: float
    status: str  # "passed" or "failed"
    output: str
    seconds: float = 0.0
    pictures: list = field(default_factory=list)  # [(label, tensor)] for the feedback page

    def gradescope(self) -> dict:
        return dict(name=self.test.name, number=self.test.number, score=self.score, max_score=self.test.max_score,
                    status=self.status, visibility=self.test.visibility, output=self.output,
                    output_format="text", extra_data=dict(kind=self.test.kind, seconds=round(self.seconds, 2)))


@dataclass
class Report:
    """Everything known about one graded submission."""

    submission: str
    part: str | None
    outcomes: list[Outcome]
    output: str  # a message for the whole submission (Gradescope's top-level output)
    seconds: dict  # timings: start-up, tests, total
    written: dict[str, str] | None = None  # written answer grade_id → the student's text (None: not read)

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outcomes)

    @property
    def max_score(self) -> float:
        return sum(o.test.max_score for o in self.outcomes)

    def written_rows(self) -> list[tuple[Written, str]]:
        """The rubric's written answers of this part with the student's text; none where the notebook was not
        read (a file that is not a notebook, a grading cut short)."""
        if self.part not in PARTS or self.written is None:
            return []
        return [(w, self.written.get(w.grade_id, "")) for w in rubric(self.part).written]

    def results(self) -> dict:
        manual = [manual_entry(self.part, k, w, text) for k, (w, text) in enumerate(self.written_rows(), start=1)]
        return dict(score=self.score, execution_time=round(self.seconds.get("total", 0.0), 2), output=self.output,
                    visibility="visible", stdout_visibility="hidden",
                    tests=[o.gradescope() for o in self.outcomes] + manual,
                    extra_data=dict(part=self.part, max_score=self.max_score, seconds=self.seconds,
                                    manual_points=sum(w.points for w, _ in self.written_rows())))


def answer_shown(text: str) -> str:
    return text or "(no answer written)"


def manual_entry(part: str, k: int, w: Written, text: str) -> dict:
    """A written answer in results.json: 0 of 0 automatic points (the score stays the automatic one), its
    rubric points in ``extra_data`` for the person who grades it, the question and the answer as output."""
    return dict(name=f"{w.grade_id}: written answer, {w.section} ({w.points:g} points, graded by hand)",
                number=f"{part[-1]}W.{k}", score=0.0, max_score=0.0, visibility="visible",
                output=f"Question: {w.asks}\n\nAnswer:\n{answer_shown(text)}", output_format="text",
                extra_data=dict(kind="written", manual=True, points=w.points, grade_id=w.grade_id))


def pictures(evidence: list) -> list[tuple[str, bytes]]:
    """PNG pictures of the first image-shaped comparison that failed: the student's image, the reference's,
    and the absolute difference (brighter = further off), each of image 0 in the batch."""
    import numpy as np
    import torch
    from PIL import Image

    for name, actual, expected in evidence:
        if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)):
            continue
        if actual.shape != expected.shape or expected.ndim != 4 or expected.shape[1] not in (1, 3):
            continue
        a, e = actual[0].detach().double().cpu(), expected[0].detach().double().cpu()
        a = torch.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(e.min()), float(e.max())
        span = max(high - low, 1e-8)
        diff = (a - e).abs()
        panels = [("yours", ((a - low) / span).clamp(0, 1)), ("expected", (e - low) / span),
                  ("difference", diff / max(float(diff.max()), 1e-8))]
        images = []
        for label, img in panels:
            array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            if array.shape[2] == 1:
                array = array[:, :, 0]
            picture = Image.fromarray(array)
            scale = max(1, 128 // max(picture.size))
            picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            images.append((f"{name}: {label}", buffer.getvalue()))
        return images
    return []


def provisional_report(path, part: str, done: list[Outcome], tests: list[Test], seconds: dict,
                       notes: tuple[str, ...] = ()) -> Report:
    """What is known mid-grading: the tests done, the rest "not run", and why the run may have ended early;
    ``notes``: what grading has noted so far (a container limit below the grader's floor, for the staff)."""
    cut = (f"Grading was cut short after {len(done)} of {len(tests)} tests (the grader was stopped, or ran out "
           "of time or memory): the tests below that say \"not run\" were never started. Tell the course staff.")
    cut = " ".join((*notes, cut))
    rest = [Outcome(t, 0.0, "failed", "Not run: grading was cut short before this test.") for t in tests[len(done):]]
    return Report(str(path), part, list(done) + rest, cut, dict(seconds))


def crashed_report(path: str | Path, part: str | None, message: str, kinds=("public", "hidden", "semantic"),
                   bundle=None) -> Report:
    """The report written when grading itself failed: every test scores 0 with the reason."""
    try:
        tests = all_tests(part, kinds, bundle) if part in PARTS else []
    except Exception:  # noqa: BLE001
        tests = []
    outcomes = [Outcome(t, 0.0, "failed", message) for t in tests]
    return Report(str(path), part, outcomes, message, {"total": 0.0})


# ---------------------------------------------------------------------------------------------------
# Output: results.json, feedback.html, summary.csv


def submission_name(path: str | Path) -> str:
    path = Path(path)
    return path.stem if path.suffix == ".ipynb" else path.name


def output_names(paths) -> list[str]:
    """The folder each submission's files go to, in order: its name, then ``name-2``, ``name-3``… on clashes."""
    names, seen = [], set()
    for path in paths:
        name = submission_name(path)
        unique, k = name, 2
        while unique in seen:
            unique, k = f"{name}-{k}", k + 1
        seen.add(unique)
        names.append(unique)
    return names


def write_report(report: Report, out_dir: str | Path) -> Path:
    """``results.json`` and ``feedback.html`` in ``out_dir``; returns the results path."""
    from fwd_kit.grading.wire import finite_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    _atomic_text(results, json.dumps(finite_json(report.results()), indent=2, ensure_ascii=False))
    _atomic_text(out_dir / "feedback.html", feedback_html(report))
    return results


def _atomic_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a kill never leaves half a results file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def feedback_html(report: Report) -> str:
    """A page a student can read: each test, its score and what went wrong."""
    rows = []
    for o in report.outcomes:
        mark = "✓" if o.status == "passed" else "✗"
        hidden = " <em>(hidden inputs: shown after the due date)</em>" if o.test.visibility != "visible" else ""
        figures = "".join(
            f"<figure><img alt='{html.escape(label)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
            f"<figcaption>{html.escape(label)}</figcaption></figure>" for label, png in o.pictures)
        rows.append(f"<tr class='{o.status}'><td>{html.escape(o.test.number)}</td><td>{mark} "
                    f"{html.escape(o.test.name)}{hidden}</td><td>{o.score:g} / {o.test.max_score:g}</td>"
                    f"<td><pre>{html.escape(o.output)}</pre>{figures}</td></tr>")
    written = "\n".join(
        f"<tr class='written'><td>{html.escape(w.section)}</td><td><code>{html.escape(w.grade_id)}</code></td>"
        f"<td>{w.points:g}</td><td><p>{html.escape(w.asks)}</p><pre class='answer'>"
        f"{html.escape(answer_shown(text))}</pre></td></tr>" for w, text in report.written_rows())
    if written:
        manual = sum(w.points for w, _ in report.written_rows())
        written = (f"<h2>Written answers, graded by hand ({manual:g} points, not in the score above)</h2>\n"
                   "<table><tr><th>Section</th><th>Answer</th><th>Points</th><th>Question and your answer</th></tr>"
                   f"\n{written}\n</table>\n")
    title = f"Feedback: {html.escape(submission_name(report.submission))} ({html.escape(str(report.part))})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}} tr.passed td:nth-child(2){{color:#176f2c}}
tr.failed td:nth-child(2){{color:#a4001d}} pre{{white-space:pre-wrap;margin:0;max-width:60em}}
figure{{display:inline-block;margin:6px 12px 0 0}} img{{image-rendering:pixelated}}
pre.answer{{border-left:3px solid #ccc;padding-left:8px}}</style></head>
<body><h1>{title}</h1>
<p>Score: <strong>{report.score:g} / {report.max_score:g}</strong></p>
{f"<pre>{html.escape(report.output)}</pre>" if report.output else ""}
<table><tr><th>#</th><th>Check</th><th>Score</th><th>Message</th></tr>
{chr(10).join(rows)}
</table>
{written}</body></html>
"""


def write_summary(reports: list[Report], path: str | Path) -> Path:
    """One row per submission, one column per test (its score), plus the total; then an empty column per
    written answer of the rubric (``<grade_id> (written, /N)``) for the staff to fill in."""
    path = Path(path)
    names: list[str] = []
    written: list[str] = []
    for report in reports:
        names += [o.test.name for o in report.outcomes if o.test.name not in names]
        answers = rubric(report.part).written if report.part in PARTS else ()
        written += [written_column(w) for w in answers if written_column(w) not in written]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "part", "score", "max_score", *names, *written])
        for report in reports:
            scores = {o.test.name: o.score for o in report.outcomes}
            writer.writerow([submission_name(report.submission), report.part, f"{report.score:g}",
                             f"{report.max_score:g}", *[scores.get(n, "") for n in names], *[""] * len(written)])
    return path


def written_column(w: Written) -> str:
    """summary.csv's column for a written answer: its grade_id and points."""
    return f"{w.grade_id} (written, /{w.points:g})"


def write_with_sandbox_note(report: Report, out_dir: str | Path) -> None:
    """``write_report``, then ``extra_data.sandbox`` in results.json: the layers that confined the code."""
    from autograder import isolation

    results = write_report(report, out_dir)
    data = json.loads(results.read_text(encoding="utf-8"))
    data.setdefault("extra_data", {})["sandbox"] = isolation.report_once()
    _atomic_text(results, json.dumps(data, indent=2, ensure_ascii=False))

