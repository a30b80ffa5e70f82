"""Semantic checks for Part A: does the student's loop really draw the digit its prompt asks for?

Time convention (Part A): t = 0 is clean, t = 999 is the noisiest timestep; ``i_start`` indexes the
strided list ``TIMESTEPS`` (960, 880, …, 0: 13 entries, stride 80), and every loop here starts at
i_start = 0, from pure noise.

The public checks (:mod:`fwd_kit.checks.public_a`) compare a few steps on a tiny random UNet with the
reference: mechanics. These checks run the student's whole loop (12 UNet steps, CFG γ = 7) with the
project's trained digit model (``fwd_kit/digit_model``, 32×32, draws MNIST digits from the prompts
"a handwritten digit zero" … "nine") and ask the project's MNIST classifier (``reference.classifier``)
what the pictures show:

- ``check_cfg_draws_digit``: two CFG samples of "a handwritten digit N" both read as N;
- ``check_anagram_reads``: two upside-down anagrams (``flip_view``) read as prompt 1 upright and as
  prompt 2 flipped;
- ``check_hybrid_reads``: two hybrids, blurred with ``lowpass`` (kernel 33, σ 2), read as the low-pass
  prompt's digit.

The digit model is imperfect (a sample reads as its digit 45–90% of the time with random noise), so the
prompts and the noise are not random: each check's ``seed`` picks a case from a table of (digits, noise
seed) on which the reference and the correct alternatives (``semantic_screen.ALTERNATIVES``) read right with
probability ≥ ``MARGIN`` (also from a start perturbed by 1e-3·N(0, I), so that rounding on another CPU
does not flip the verdict), and every known mistake (``semantic_screen.MISTAKES``) reads wrong.
``python -m autograder.semantic`` re-derives the tables (:mod:`autograder.semantic_screen`): candidates in a
fixed order, the first that pass are kept; ``--verify`` screens the tables as they stand. (Checked once more
for the tables below: the reference still reads right, p ≥ 0.9, from x_T + 1e-2·N(0, I), and every mistake
still reads wrong from the jittered start.) A case draws its start x_T ~ N(0, I) of shape (2, 3, 32, 32) from
``torch.Generator().manual_seed(noise_seed)`` and passes the same generator to the loop.

The student's function is only ever called, with tensors, ints, floats, a generator, the diffusers UNet
and scheduler and reference functions (it may be a proxy to another process). Nothing reaches stderr;
a failure raises ``AssertionError`` with a question, never a reference picture.
"""

from __future__ import annotations

import functools

import torch

from fwd_kit.checks.compare import assert_true, passed, public_check, quiet, tensor_problem
from fwd_kit.copying import fresh_copy
from fwd_kit.digit_model import DIGIT_PROMPTS
from reference import denoise as ref
from reference import illusions as ref_illusions

FLIP_VIEW = (functools.partial(torch.flip, dims=[2]),) * 2  # upside down, as data the student's process can rebuild

SCALE = 7.0  # the course's guidance scale
SAMPLES = 2  # pictures judged per check, in one batch
SIZE = 32  # the digit model's side
MARGIN = 0.9  # screening: the classifier's probability of the right digit on every correct run
# The loops' strided list: stride 80, not the course's 30. The student's loop is most of what grading Part A
# costs, and the screen (below) finds as many cases with 12 UNet steps as with 16 (stride 60). Over held-out
# noise seeds (100–105 per CFG digit, 100–111 per anagram pair, 100–103 per hybrid pair of the candidates) the
# reference's samples read right about as often at stride 80 as at 60: CFG 120/120 at both, anagrams 84/96
# against 90/96, hybrids 53/56 against 54/56. (Earlier, on 3 seeds per case, stride 30 read like 60, and
# stride 90 from 990 fell to 59/60, 38/48, 22/32.)
TIMESTEPS = tuple(ref.strided_timesteps(start=960, stride=80))  # each loop gets a list of its own

# The case tables, as printed by ``python -m autograder.semantic`` (the candidates: ``semantic_screen.CANDIDATES``).
# (digit, noise seed): CFG samples of "a handwritten digit N"; two cases per digit
CFG_CASES = ((0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0),
             (0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (8, 1), (9, 1))
# (upright digit, flipped digit, noise seed): prompt 1 upright, prompt 2 upside down
ANAGRAM_CASES = ((6, 9, 1), (9, 6, 0), (6, 9, 2), (9, 6, 1))
# (low-pass digit, high-pass digit, noise seed): the blurred hybrid reads as the first. Low-pass 0 passes the
# screen on the shipped digit model, and low-pass 1 once (1/8, seed 10); a blurred 7 (7/3) reads right, but
# not with p ≥ 0.9 on every correct run, in 16 noise seeds; on every case the mistakes (prompts swapped, no
# prompt) read as another digit
HYBRID_CASES = ((1, 8, 10), (0, 1, 0), (0, 6, 0), (0, 7, 0), (0, 1, 1), (0, 6, 1), (0, 7, 1))


# ---------------------------------------------------------------------------------------------------
# The digit model, its prompts and the classifier (loaded once, handed out as copies)


@functools.lru_cache(maxsize=1)
def _digit_model():
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from fwd_kit.loading import DIGIT_EMBEDS, DIGIT_MODEL, load_prompt_embeds

    with quiet(), torch.random.fork_rng(devices=[]):  # building the UNet draws initial weights
        # its parts only: the pipeline class would import transformers (memory the grader cannot spare)
        unet = UNet2DConditionModel.from_pretrained(str(DIGIT_MODEL / "unet"), torch_dtype=torch.float32)
        config = DDPMScheduler.from_pretrained(str(DIGIT_MODEL / "scheduler")).config
    unet = unet.eval().requires_grad_(False)
    embeds = load_prompt_embeds(DIGIT_EMBEDS, device="cpu", dtype=torch.float32)
    return unet, config, embeds


def digit_unet():
    """A fresh copy of the digit model's UNet (fp32, CPU, eval): a student's loop cannot spoil the next."""
    return fresh_copy(_digit_model()[0])


def digit_scheduler():
    """A fresh ``DDPMScheduler`` of the digit model (learned-range variance, as DeepFloyd's stage 1)."""
    from diffusers import DDPMScheduler

    with quiet():
        return DDPMScheduler.from_config(_digit_model()[1])


def embeds_of(digit: int | None) -> torch.Tensor:
    """Prompt embeddings (1, 77, 32) of "a handwritten digit N", or of the empty prompt for ``None``."""
    prompt = "" if digit is None else DIGIT_PROMPTS[digit]
    return _digit_model()[2][prompt].clone()


@functools.lru_cache(maxsize=1)
def _classifier():
    from reference.classifier import load_classifier

    with torch.random.fork_rng(devices=[]):  # building the classifier draws initial weights
        return load_classifier()


def read_digits(images: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """The classifier's reading of Part A images (B, 3, H, W) in [-1, 1]: digits and probabilities (B, 10)."""
    from reference.classifier import to_mnist

    with torch.no_grad():
        probs = torch.softmax(_classifier()(to_mnist(images.detach().cpu().float())), dim=1)
    return probs.argmax(1).tolist(), probs


def start(noise_seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """x_T ~ N(0, I) of shape (SAMPLES, 3, 32, 32), drawn first from the generator the loop then gets."""
    g = torch.Generator().manual_seed(noise_seed)
    return torch.randn((SAMPLES, 3, SIZE, SIZE), generator=g), g


# ---------------------------------------------------------------------------------------------------
# Running a loop on a case (student's function or reference, called alike)


def run_cfg(iterative_denoise_cfg, digit: int, noise_seed: int, jitter: float = 0.0) -> torch.Tensor:
    """``iterative_denoise_cfg`` from pure noise, i_start 0, γ = 7, prompt "a handwritten digit N"."""
    xt, g = start(noise_seed)
    return iterative_denoise_cfg(digit_unet(), digit_scheduler(), _jittered(xt, jitter), 0, embeds_of(digit),
                                 embeds_of(None), list(TIMESTEPS), scale=SCALE, generator=g)


def run_anagram(visual_anagram, upright: int, flipped: int, noise_seed: int, jitter: float = 0.0) -> torch.Tensor:
    """``visual_anagram`` with ``flip_view`` from pure noise: prompt 1 upright, prompt 2 upside down."""
    xt, g = start(noise_seed)
    return visual_anagram(digit_unet(), digit_scheduler(), _jittered(xt, jitter), 0, embeds_of(upright),
                          embeds_of(flipped), embeds_of(None), list(TIMESTEPS), view=FLIP_VIEW,
                          scale=SCALE, generator=g)


def run_hybrid(make_hybrids, low: int, high: int, noise_seed: int, jitter: float = 0.0) -> torch.Tensor:
    """``make_hybrids`` from pure noise: low frequencies of prompt "low", high ones of prompt "high"."""
    xt, g = start(noise_seed)
    return make_hybrids(digit_unet(), digit_scheduler(), _jittered(xt, jitter), 0, embeds_of(low), embeds_of(high),
                        embeds_of(None), list(TIMESTEPS), scale=SCALE, generator=g)


def _jittered(xt: torch.Tensor, jitter: float) -> torch.Tensor:
    """x_T + jitter·N(0, I) (a fixed draw): the screening's stand-in for rounding on another machine."""
    if not jitter:
        return xt
    return xt + jitter * torch.randn(xt.shape, generator=torch.Generator().manual_seed(12345))


# ---------------------------------------------------------------------------------------------------
# Verdicts


def readings(images, targets: list[int]) -> list[tuple[int, float, float]]:
    """Per image: (digit read, its probability, probability of the target digit)."""
    digits, probs = read_digits(images)
    return [(d, float(probs[i, d]), float(probs[i, target])) for i, (d, target) in enumerate(zip(digits, targets))]


def as_words(found: list[tuple[int, float, float]]) -> str:
    """``1 (p=0.80) and 7 (p=0.97)``."""
    return " and ".join(f"{d} (p={p:.2f})" for d, p, _ in found)


def checked_sample(result, function: str) -> torch.Tensor:
    """The student's result if it is a finite (2, 3, 32, 32) tensor, else an ``AssertionError``."""
    problem = tensor_problem(result, torch.zeros(SAMPLES, 3, SIZE, SIZE), f"the batch {function} returned",
                             check_dtype=False)
    assert_true(problem is None, f"Does {function} return the final images, one per start image?", f"{problem}.")
    return result.detach().to("cpu", torch.float32)


def _case(table: tuple, seed: int) -> tuple:
    if not table:
        raise RuntimeError("The semantic checks' case tables are empty: run python -m autograder.semantic.")
    return table[seed % len(table)]


@public_check
def check_cfg_draws_digit(iterative_denoise_cfg, *, seed: int = 0) -> None:
    """Two CFG samples of a digit prompt from pure noise (12 strided steps, γ = 7) must read as that digit."""
    digit, noise_seed = _case(CFG_CASES, seed)
    images = checked_sample(run_cfg(iterative_denoise_cfg, digit, noise_seed), "iterative_denoise_cfg")
    found = readings(images, [digit] * SAMPLES)
    assert_true(all(d == digit for d, _, _ in found),
                "Does your CFG loop draw what the prompt asks for?",
                f"From pure noise with the digit model (i_start 0, γ = {SCALE:g}), the classifier reads your "
                f"{SAMPLES} samples for '{DIGIT_PROMPTS[digit]}' as {as_words(found)}; each should read as {digit}.")
    passed(f"iterative_denoise_cfg: samples of '{DIGIT_PROMPTS[digit]}' read as {as_words(found)}")


@public_check
def check_anagram_reads(visual_anagram, *, seed: int = 0) -> None:
    """Two upside-down anagrams: upright they must read as prompt 1's digit, flipped as prompt 2's."""
    upright, flipped, noise_seed = _case(ANAGRAM_CASES, seed)
    images = checked_sample(run_anagram(visual_anagram, upright, flipped, noise_seed), "visual_anagram")
    up = readings(images, [upright] * SAMPLES)
    down = readings(ref_illusions.flip_upside_down(images), [flipped] * SAMPLES)
    ok = all(d == upright for d, _, _ in up) and all(d == flipped for d, _, _ in down)
    assert_true(ok, "Does your anagram show prompt 1 upright and prompt 2 upside down?",
                f"With flip_view from pure noise (digit model, γ = {SCALE:g}), the classifier reads your {SAMPLES} "
                f"anagrams upright as {as_words(up)} (prompt 1: '{DIGIT_PROMPTS[upright]}') and flipped upside down "
                f"as {as_words(down)} (prompt 2: '{DIGIT_PROMPTS[flipped]}').")
    passed(f"visual_anagram: upright reads {as_words(up)}, flipped reads {as_words(down)}")


@public_check
def check_hybrid_reads(make_hybrids, *, seed: int = 0) -> None:
    """Two hybrids of two digit prompts: blurred (``lowpass``) they must read as the low-pass prompt's digit."""
    low, high, noise_seed = _case(HYBRID_CASES, seed)
    images = checked_sample(run_hybrid(make_hybrids, low, high, noise_seed), "make_hybrids")
    found = readings(ref_illusions.lowpass(images), [low] * SAMPLES)
    assert_true(all(d == low for d, _, _ in found),
                "Does your hybrid show the low-pass prompt from afar?",
                f"Blurred with lowpass (kernel 33, σ 2), the classifier reads your {SAMPLES} hybrids of "
                f"'{DIGIT_PROMPTS[low]}' (prompt_embeds_low) and '{DIGIT_PROMPTS[high]}' (prompt_embeds_high) as "
                f"{as_words(found)}; each should read as {low}.")
    passed(f"make_hybrids: blurred hybrids of {low} (low) and {high} (high) read as {as_words(found)}")


SEMANTIC = {
    "iterative_denoise_cfg": check_cfg_draws_digit,
    "visual_anagram": check_anagram_reads,
    "make_hybrids": check_hybrid_reads,
}


if __name__ == "__main__":  # the screening lives in its own module; this name is the one the docs give
    from autograder.semantic_screen import main

    main()
