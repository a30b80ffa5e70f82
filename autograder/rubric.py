"""The course's rubric, written once: every graded function or class with its points, split between its
tests, and every written answer with its points.

Every route takes its numbers from here:

- the notebooks (``course/notebooks``): nbgrader's points on each grade cell — ``test_<name>`` (the public
  check, :attr:`Graded.public`), ``test_<name>_hidden`` (the same check on hidden inputs,
  :attr:`Graded.hidden`), ``test_<name>_semantic`` (Part A's semantic test, :attr:`Graded.semantic`) — the
  line above each answer cell that says what its points are made of, and each written answer's points;
- ``course grade`` and Gradescope (:mod:`autograder.catalogue`): one test per public, hidden and semantic
  point block, the same points; the written answers are listed in ``results.json`` for manual grading
  (0 of 0 automatic points, ``extra_data.manual``), their text on the feedback page and a column each in
  ``summary.csv`` (:mod:`autograder.reports`).

So nbgrader's autograde and ``course grade`` give a notebook the same points per function and the same
automatic total; the written answers are graded by hand on either route (nbgrader's formgrader, a
Gradescope manual question with the same points, or the summary's columns).

Not on the rubric: Part A's GPU artifacts (``course grade --bundle``, :data:`autograder.catalogue.ARTIFACT_POINTS`
each), evidence that only a course grading with a reference bundle asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

ANSWER_STUB = "YOUR ANSWER HERE"  # what nbgrader leaves in a released written-answer cell
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")  # around the model answers of solutions/


@dataclass(frozen=True)
class Graded:
    """A function or class students write, and the points of each of its tests."""

    name: str  # its answer cell's grade_id and the name it defines
    public: float  # the public check the notebook runs right after it (grade cell test_<name>)
    hidden: float  # the same check on hidden inputs, seed hidden_seed(HIDDEN_RUN) (grade cell test_<name>_hidden)
    semantic: float = 0.0  # Part A's loops: a digit drawn with them, read by the MNIST classifier (test_<name>_semantic)

    @property
    def points(self) -> float:
        return self.public + self.hidden + self.semantic

    def split(self) -> str:
        """What the points are made of, in words: "4 points: 2 for the check below, 2 for the same check on
        hidden inputs"."""
        parts = [f"{self.public:g} for the check below", f"{self.hidden:g} for the same check on hidden inputs"]
        if self.semantic:
            parts.append(f"{self.semantic:g} for a semantic test (a digit drawn with it must read as its prompt)")
        listed = ", ".join(parts[:-1]) + f"{',' if len(parts) > 2 else ''} and {parts[-1]}"
        return f"{_points(self.points)}: {listed}"


@dataclass(frozen=True)
class Written:
    """A written answer, graded by hand: nbgrader's manually graded markdown cell ``grade_id``."""

    grade_id: str
    section: str  # where the notebook asks it
    asks: str  # the question (markdown), shown above the answer cell and beside the answer on the feedback page
    points: float


@dataclass(frozen=True)
class Rubric:
    part: str
    graded: tuple[Graded, ...]  # in notebook order
    written: tuple[Written, ...]  # in notebook order

    @property
    def automatic(self) -> float:
        """Points of every public, hidden and semantic test: the automatic total on every route."""
        return sum(g.points for g in self.graded)

    @property
    def manual(self) -> float:
        """Points of the written answers, graded by hand."""
        return sum(w.points for w in self.written)

    def of(self, name: str) -> Graded:
        for row in self.graded:
            if row.name == name:
                return row
        raise KeyError(f"{name!r} is not on the rubric of {self.part}: add a Graded row to autograder/rubric.py.")

    def answer(self, grade_id: str) -> Written:
        for row in self.written:
            if row.grade_id == grade_id:
                return row
        raise KeyError(f"{grade_id!r} is not a written answer of {self.part}: add a Written row to "
                       "autograder/rubric.py.")


def _points(n: float) -> str:
    return f"{n:g} point{'' if n == 1 else 's'}"


def _g(name: str, points: float, semantic: float = 0.0) -> Graded:
    """The course's split: ``points`` for the public check and as many again for the hidden one."""
    return Graded(name, points, points, semantic)


SEMANTIC = 2.0  # points of each semantic test

PART_A = Rubric("partA", (
    _g("forward", 2),
    _g("estimate_x0", 1),
    _g("one_step_denoise", 1),
    _g("strided_timesteps", 1),
    _g("denoise_step_mean", 2),
    _g("iterative_denoise", 3),
    _g("cfg_noise", 2),
    _g("iterative_denoise_cfg", 2, SEMANTIC),
    _g("sdedit", 2),
    _g("inpaint", 3),
    _g("flip_upside_down", 1),
    _g("visual_anagram", 3, SEMANTIC),
    _g("lowpass", 1),
    _g("highpass", 1),
    _g("make_hybrids", 3, SEMANTIC),
    _g("rot90_ccw", 1),
    _g("rot90_cw", 1),
    _g("negate", 1),
), (
    Written("reflect_part0", "0 Sampling with the pipeline", "Which prompts did you use? How well does each image "
            "match its prompt, and how do the results change with the number of inference steps? Report the seed "
            "you used.", 2),
    Written("reflect_blur", "1.2 Classical denoising", "Which kernel size and σ worked best at each noise level, "
            "and why can a blur not recover the clean image?", 1),
    Written("reflect_denoising", "1.4 Iterative denoising", "Compare the Gaussian blur, the one-step estimate and "
            "iterative denoising from t = 690. Which recovers the image best, what does each get wrong, and why?", 2),
    Written("reflect_cfg", "1.6 Classifier-free guidance", "How do the CFG samples differ from those of 1.5, and "
            "why does extrapolating past the conditional estimate (γ > 1) change them that way?", 2),
    Written("reflect_sdedit", "1.7 Image-to-image translation (SDEdit)", "Describe how the edits change with i_start for "
            "the test image, your own images, the web image and your drawings. At which level does the result stop "
            "looking like the original, and why?", 2),
    Written("reflect_inpaint", "1.7.2 Inpainting", "Which masks did you choose, and how well does the inpainted "
            "region blend with the kept pixels? Did rerunning with other seeds help?", 1),
    Written("reflect_text_edit", "1.7.3 Text-conditional image-to-image", "Which prompt did you use, and at which "
            "noise levels does the result combine the prompt with the original image?", 1),
    Written("reflect_anagrams", "1.8 Visual anagrams", "Which prompt pairs did you choose, and why? Which anagrams "
            "work, and what makes a pair of prompts easy or hard to combine?", 2),
    Written("reflect_hybrids", "1.9 Hybrid images", "Which prompt pairs did you choose for the hybrids, and why? "
            "Does each image read as the low-frequency prompt from afar and as the high-frequency one up close?", 2),
    Written("reflect_bells_whistles", "Bells & whistles", "Which extra views and which logo did you make, and how "
            "well did they work?", 1),
))

PART_B = Rubric("partB", (
    _g("Conv", 1), _g("DownConv", 1), _g("UpConv", 1), _g("Flatten", 1), _g("Unflatten", 1), _g("Concat", 1),
    _g("ConvBlock", 1), _g("DownBlock", 1), _g("UpBlock", 1), _g("FCBlock", 1),
    _g("UnconditionalUNet", 2),
    _g("add_noise", 2),
    _g("denoiser_loss", 2),
    _g("pure_noise_loss", 2),
    _g("interpolate", 1),
    _g("flow_target", 1),
    _g("TimeConditionalUNet", 2),
    _g("time_fm_forward", 3),
    _g("time_fm_sample", 3),
    _g("ClassConditionalUNet", 2),
    _g("class_fm_forward", 3),
    _g("class_fm_sample", 3),
    _g("ddpm_schedule", 1),
    _g("ddpm_forward", 3),
    _g("ddpm_step", 1),
    _g("ddpm_sample", 4),
    _g("class_ddpm_forward", 3),
    _g("class_ddpm_sample", 3),
), (
    Written("pure_noise_patterns", "2. Denoising pure noise", r"""
Describe what the pure-noise denoiser produces after 1 and after 5 epochs. How do its
outputs relate to the digits 0–9, and why does a network trained with the MSE loss end up there?
(Hint: which single image minimises the average squared distance to a set of images?)
""".strip(), 3),
    Written("cfg_effect", "3. What does guidance do?", r"""
What does classifier-free guidance do to the samples? Compare the rows $\gamma = 0, 1,
5, 10$ above and explain the effect from the formula $u = u_u + \gamma(u_c - u_u)$.
""".strip(), 2),
    Written("no_scheduler", "3. Without the learning-rate scheduler", r"""
What did you change to train without the scheduler, why does it compensate for the
missing decay, and how do your samples and loss curve compare with the scheduled run?
""".strip(), 3),
))

RUBRICS = {"partA": PART_A, "partB": PART_B}


def rubric(part: str) -> Rubric:
    if part not in RUBRICS:
        raise ValueError(f"part must be one of {', '.join(RUBRICS)}, got {part!r}")
    return RUBRICS[part]


def question_markdown(row: Written) -> str:
    """The read-only cell above a written answer: its points, then the question."""
    return f"**Written answer ({_points(row.points)}, graded by hand).** {row.asks}"


# ---------------------------------------------------------------------------------------------------
# Reading the written answers of a submitted notebook


def _source(cell) -> str:
    source = cell.get("source", "") if isinstance(cell, dict) else ""
    return "".join(source) if isinstance(source, list) else source if isinstance(source, str) else ""


def answer_text(source: str) -> str:
    """What a student wrote in an answer cell: nbgrader's stub and the solution markers removed, stripped."""
    lines = [line for line in source.splitlines() if line.strip() not in SOLUTION_MARKERS]
    text = "\n".join(lines).strip()
    return "" if text == ANSWER_STUB else text


def written_answers(nb, part: str) -> dict[str, str]:
    """The text of each written answer of ``part``'s rubric in a submitted notebook, by grade_id: the cell
    whose nbgrader ``grade_id`` (or, when its metadata was lost, whose cell id) is the answer's. "" where the
    cell is missing or still holds nbgrader's stub; the last such cell wins, as the notebook reads."""
    wanted = {w.grade_id for w in rubric(part).written}
    answers = dict.fromkeys(sorted(wanted), "")
    cells = nb.get("cells", []) if isinstance(nb, dict) else getattr(nb, "cells", [])
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        metadata = cell.get("metadata")
        meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        grade_id = grade_id if grade_id in wanted else cell.get("id")
        if grade_id in wanted:
            answers[grade_id] = answer_text(_source(cell))
    return {w.grade_id: answers[w.grade_id] for w in rubric(part).written}


def main() -> None:
    """``python -m autograder.rubric``: the rubric as a table, with the totals of each part."""
    for part, table in RUBRICS.items():
        print(f"{part}: {table.automatic:g} automatic points, {table.manual:g} written (graded by hand)")
        for g in table.graded:
            print(f"  {g.name:22} {g.points:4g}  public {g.public:g}, hidden {g.hidden:g}"
                  + (f", semantic {g.semantic:g}" if g.semantic else ""))
        for w in table.written:
            print(f"  {w.grade_id:22} {w.points:4g}  written, {w.section}")


if __name__ == "__main__":
    main()
