"""The deliverables of the write-up page, once, in the assignment's order, and what makes each complete.

Each course section (``Section``: "1.7 Image-to-image translation") holds deliverables (``Deliverable``:
"A1.7.1-hand-drawn", two hand-drawn images at six noise levels) and names the notebook's written-answer
cells that are its text. The notebooks save every deliverable figure under its id with a small JSON note
(:mod:`fwd_kit.figure_notes`); :func:`shortfalls` compares a deliverable's notes with what it requires,
and ``python -m fwd_kit.writeup`` lays the figures out and lists the shortfalls at the top of the page.

Nothing here computes anything a student writes: it is a list of names, numbers and sentences.

A requirement is checked on the notes' ``items`` (what a figure shows one of each: images, prompts,
samples; a figure without items counts as one) and ``settings`` (``t``, ``i_start``, ``sigma``,
``epoch``, ``steps``, ``samples_per_digit``, as the notebooks record them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PARTS = {"A": "Part A — The Power of Diffusion Models", "B": "Part B — Diffusion and flow matching from scratch"}
SDEDIT_LEVELS = (1, 3, 5, 7, 10, 20)  # the course's i_start values of 1.7-1.7.3
FORWARD_TIMES = (250, 500, 750)  # the noise levels of 1.1-1.3
PART_B_SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)  # the noise levels of the noising figure and the OOD test


@dataclass(frozen=True)
class Section:
    """A section of the assignment: one page section, in the spec's order."""

    key: str  # unique, e.g. "A1.7"; the page anchor is "sec-<key>"
    part: str  # "A" or "B"
    number: str  # as the course numbers it, e.g. "1.7.1"
    title: str
    answers: tuple[str, ...] = ()  # grade_ids of the notebook's written-answer cells shown as this section's text


@dataclass(frozen=True)
class Deliverable:
    """One figure (or set of figures) the write-up must show, with what the spec requires of it."""

    id: str  # file name of its figures, e.g. "A1.4-every-5th" (+ "-<key>" when it has several: "-epoch-5")
    section: str  # Section.key
    title: str  # a short name, e.g. "hand-drawn images"
    required: str  # what the spec asks, one sentence (shown on the page)
    count: int = 1  # distinct items (images, prompts, samples) the figures must show together
    noun: str = "figure"  # what one item is, for messages ("two hand-drawn images required, one found")
    values: tuple[str, tuple] | None = None  # (setting, values): each value must appear in some figure's settings
    distinct: tuple[str, int] | None = None  # (setting, n): at least n different values of that setting
    at_least: tuple[str, float] | None = None  # (setting, minimum): every figure records at least that value
    optional: bool = False  # bells & whistles or another term's variant: never counted as missing


def _sec(key, number, title, *answers) -> Section:
    return Section(key, key[0], number, title, tuple(answers))


SECTIONS = (
    _sec("A0", "0", "Sampling with the pipeline", "reflect_part0"),
    _sec("A1.1", "1.1", "The forward process"),
    _sec("A1.2", "1.2", "Classical denoising", "reflect_blur"),
    _sec("A1.3", "1.3", "One-step denoising"),
    _sec("A1.4", "1.4", "Iterative denoising", "reflect_denoising"),
    _sec("A1.5", "1.5", "Sampling from pure noise"),
    _sec("A1.6", "1.6", "Classifier-free guidance", "reflect_cfg"),
    _sec("A1.7", "1.7", "Image-to-image translation (SDEdit)", "reflect_sdedit"),
    _sec("A1.7.1", "1.7.1", "Hand-drawn and web images"),
    _sec("A1.7.2", "1.7.2", "Inpainting", "reflect_inpaint"),
    _sec("A1.7.3", "1.7.3", "Text-conditional image-to-image", "reflect_text_edit"),
    _sec("A1.8", "1.8", "Visual anagrams", "reflect_anagrams"),
    _sec("A1.9", "1.9", "Hybrid images", "reflect_hybrids"),
    _sec("ABW", "B&W", "Bells & whistles", "reflect_bells_whistles"),
    _sec("B1.2", "1.2", "The noising process"),
    _sec("B1.2.1", "1.2.1", "Training a one-step denoiser"),
    _sec("B1.2.2", "1.2.2", "Out-of-distribution noise levels"),
    _sec("B1.2.3", "1.2.3", "Denoising pure noise", "pure_noise_patterns"),
    _sec("B2.3", "2.1–2.3", "Time-conditioned flow matching"),
    _sec("B2.6", "2.4–2.6", "Class-conditioned flow matching with guidance", "cfg_effect"),
    _sec("B2.6-no-scheduler", "2.6", "Without the learning-rate scheduler", "no_scheduler"),
    _sec("B4", "4", "DDPM (optional, the Fall 2024 variant)"),
)

_LEVELS = ("i_start", SDEDIT_LEVELS)
_EPOCHS_FM = ("epoch", (1, 5, 10))
_EPOCHS_DENOISER = ("epoch", (1, 5))
_EPOCHS_DDPM = ("epoch", (5, 20))
_FOUR_PER_DIGIT = ("samples_per_digit", 4)

DELIVERABLES = (
    Deliverable("A0-samples", "A0", "pipeline samples", "three prompts with their images, at two or more "
                "values of num_inference_steps, and the seed", 3, "prompt", distinct=("steps", 2)),
    Deliverable("A1.1-forward", "A1.1", "the test image noised", "the test image at t = 250, 500 and 750",
                values=("t", FORWARD_TIMES)),
    Deliverable("A1.2-blur", "A1.2", "Gaussian-blur denoising", "the best Gaussian blur of each noisy image "
                "(t = 250, 500, 750) beside it", values=("t", FORWARD_TIMES)),
    Deliverable("A1.3-one-step", "A1.3", "one-step denoising", "original, noisy and one-step estimate at "
                "t = 250, 500 and 750", values=("t", FORWARD_TIMES)),
    Deliverable("A1.4-every-5th", "A1.4", "every 5th step", "every 5th image of iterative denoising from "
                "i_start = 10 (t = 690) and the final result"),
    Deliverable("A1.4-comparison", "A1.4", "iterative, one-step and blur", "the iterative result beside the "
                "one-step estimate and the Gaussian blur of the same noisy image"),
    Deliverable("A1.5-samples", "A1.5", "samples without guidance", "five samples of the weak prompt, "
                "without CFG", 5, "sample"),
    Deliverable("A1.6-cfg-samples", "A1.6", "samples with CFG", "five samples of the weak prompt with CFG, "
                "γ = 7", 5, "sample"),
    Deliverable("A1.7-test-image", "A1.7", "test image", "SDEdit of the test image at i_start = 1, 3, 5, 7, "
                "10, 20", values=_LEVELS),
    Deliverable("A1.7-own-images", "A1.7", "own images", "SDEdit of two images of your own at the same "
                "levels", 2, "own image", values=_LEVELS),
    Deliverable("A1.7.1-web", "A1.7.1", "web image", "SDEdit of one web image at i_start = 1, 3, 5, 7, 10, 20",
                1, "web image", values=_LEVELS),
    Deliverable("A1.7.1-hand-drawn", "A1.7.1", "hand-drawn images", "SDEdit of two hand-drawn images at the "
                "same levels", 2, "hand-drawn image", values=_LEVELS),
    Deliverable("A1.7.2-test-image", "A1.7.2", "test image inpainted", "the test image inpainted (the top of "
                "the tower, or a mask of your own)"),
    Deliverable("A1.7.2-own-images", "A1.7.2", "own images inpainted", "two images of your own inpainted "
                "with masks of your own", 2, "own image"),
    Deliverable("A1.7.3-test-image", "A1.7.3", "test image with a text prompt", "text-conditional SDEdit of "
                "the test image at i_start = 1, 3, 5, 7, 10, 20", values=_LEVELS),
    Deliverable("A1.7.3-own-images", "A1.7.3", "own images with a text prompt", "text-conditional SDEdit of "
                "two images of your own at the same levels", 2, "own image", values=_LEVELS),
    Deliverable("A1.8-anagrams", "A1.8", "visual anagrams", "two visual anagrams (upright and flipped) of "
                "prompt pairs of your choice", 2, "anagram"),
    Deliverable("A1.9-hybrids", "A1.9", "hybrid images", "two hybrid images of prompt pairs of your choice",
                2, "hybrid"),
    Deliverable("ABW-views", "ABW", "more anagram views", "anagrams with two more views (e.g. a 90° rotation, "
                "colour inversion); required for CS280A", 2, "view", optional=True),
    Deliverable("ABW-logo", "ABW", "course logo", "a course logo made with text-conditional image-to-image; "
                "required for CS280A", optional=True),
    Deliverable("B1.2-noising", "B1.2", "noising", "one digit noised at σ = 0, 0.2, 0.4, 0.5, 0.6, 0.8, 1",
                values=("sigma", PART_B_SIGMAS)),
    Deliverable("B1.2.1-loss", "B1.2.1", "training loss", "the denoiser's training loss curve"),
    Deliverable("B1.2.1-denoised", "B1.2.1", "denoised test digits", "held-out digits denoised after epochs "
                "1 and 5", values=_EPOCHS_DENOISER),
    Deliverable("B1.2.2-ood", "B1.2.2", "out-of-distribution test", "the same digit denoised at σ = 0, 0.2, "
                "0.4, 0.5, 0.6, 0.8, 1", values=("sigma", PART_B_SIGMAS)),
    Deliverable("B1.2.3-loss", "B1.2.3", "training loss", "the pure-noise denoiser's training loss curve"),
    Deliverable("B1.2.3-samples", "B1.2.3", "outputs from pure noise", "outputs of the pure-noise denoiser "
                "after epochs 1 and 5", values=_EPOCHS_DENOISER),
    Deliverable("B1.2.3-mean", "B1.2.3", "outputs vs the average digit", "outputs beside the average training "
                "image", optional=True),
    Deliverable("B2.2-time-loss", "B2.3", "training loss", "the time-conditioned UNet's training loss curve"),
    Deliverable("B2.3-time-samples", "B2.3", "time-conditioned samples", "samples after epochs 1, 5 and 10",
                values=_EPOCHS_FM),
    Deliverable("B2.5-class-loss", "B2.6", "training loss", "the class-conditioned UNet's training loss curve"),
    Deliverable("B2.6-class-grid", "B2.6", "class-conditioned samples", "four samples of each digit 0-9 "
                "after epochs 1, 5 and 10, γ = 5", values=_EPOCHS_FM, at_least=_FOUR_PER_DIGIT),
    Deliverable("B2.6-guidance", "B2.6", "guidance scales", "the same noise sampled at several guidance "
                "scales", optional=True),
    Deliverable("B2.6-no-scheduler-loss", "B2.6-no-scheduler", "training loss without the scheduler",
                "the loss curve of the class-conditioned UNet trained without ExponentialLR"),
    Deliverable("B2.6-no-scheduler-grid", "B2.6-no-scheduler", "samples without the scheduler",
                "class-conditioned samples of the model trained without ExponentialLR"),
    Deliverable("B4-time-loss", "B4", "time-conditioned DDPM loss", "the time-conditioned DDPM's loss curve",
                optional=True),
    Deliverable("B4-time-samples", "B4", "time-conditioned DDPM samples", "samples after epochs 5 and 20",
                values=_EPOCHS_DDPM, optional=True),
    Deliverable("B4-class-loss", "B4", "class-conditioned DDPM loss", "the class-conditioned DDPM's loss curve",
                optional=True),
    Deliverable("B4-class-grid", "B4", "class-conditioned DDPM samples", "four samples of each digit after "
                "epochs 5 and 20, γ = 5", values=_EPOCHS_DDPM, at_least=_FOUR_PER_DIGIT, optional=True),
)

BY_ID = {d.id: d for d in DELIVERABLES}
SECTION_BY_KEY = {s.key: s for s in SECTIONS}


def deliverable(deliverable_id: str) -> Deliverable:
    """The deliverable with this id; a ValueError naming the known ids otherwise."""
    if deliverable_id not in BY_ID:
        raise ValueError(f"{deliverable_id!r} is not a deliverable of the write-up; expected one of "
                         f"{', '.join(BY_ID)}.")
    return BY_ID[deliverable_id]


def section_of(d: Deliverable) -> Section:
    return SECTION_BY_KEY[d.section]


def sections_of(parts) -> list[Section]:
    """The sections of ``parts`` ("A", "B"), in the spec's order."""
    return [s for s in SECTIONS if s.part in parts]


def deliverables_of(section: Section) -> list[Deliverable]:
    return [d for d in DELIVERABLES if d.section == section.key]


# ---------------------------------------------------------------------------------------------------
# What is missing: a deliverable's notes against its requirement

_WORDS = ("none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _number(n: int) -> str:
    return _WORDS[n] if 0 <= n < len(_WORDS) else str(n)


def _plural(noun: str, n: int) -> str:
    return noun if n == 1 else noun + "s"


def _as_values(value) -> list:
    """A setting's values: a list as it is, a single value as a list of one."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return a == b


def _shown(values: Iterable) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def items_shown(notes: Iterable[Mapping]) -> int:
    """Distinct items over a deliverable's notes; a note without ``items`` counts as one item of its own."""
    labels = set()
    for k, note in enumerate(notes):
        items = note.get("items") or [f"\0figure {k}"]
        labels.update(str(i) for i in items)
    return len(labels)


def shortfalls(d: Deliverable, notes: list[Mapping]) -> list[str]:
    """What ``notes`` (the saved figures of ``d``: dicts with ``items`` and ``settings``) lack; [] when complete."""
    if not notes:
        return ["missing"]
    problems = []
    found = items_shown(notes)
    if found < d.count:
        problems.append(f"{_number(d.count)} {_plural(d.noun, d.count)} required, {_number(found)} found")
    settings = [note.get("settings") or {} for note in notes]
    if d.values:
        name, required = d.values
        seen = [v for s in settings for v in _as_values(s.get(name, []))]
        lacking = [v for v in required if not any(_same(v, s) for s in seen)]
        if lacking:
            problems.append(f"{name} {_shown(required)} required, {_shown(lacking)} missing")
    if d.distinct:
        name, n = d.distinct
        seen = {str(v) for s in settings for v in _as_values(s.get(name, []))}
        if len(seen) < n:
            problems.append(f"{_number(n)} values of {name} required, {_number(len(seen))} found")
    if d.at_least:
        name, minimum = d.at_least
        recorded = [s.get(name) for s in settings]
        if any(not isinstance(v, (int, float)) or v < minimum for v in recorded):
            shown = _shown(sorted({v for v in recorded if isinstance(v, (int, float))})) or "none"
            problems.append(f"{name} of at least {minimum:g} required, {shown} found")
    return problems
