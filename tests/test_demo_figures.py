"""``course demo``'s Part A figures with the digit model: does each show its deliverable?

Oracles independent of the demo: the course text (1.4 keeps t = 690, 540, 390, 240, 90 from i_start = 10, then
the result), the prompt pairs of the released Part A notebook (read from its cell, not from the demo), the
digit's ink in the test image (for the inpainting mask) and the project's MNIST classifier (for the illusions,
on the demo's noise seeds: the digit model draws its digit about 70% of the time, so the seeds are fixed).
The illusion loops are marked slow (``-m slow``); the default run draws only the iterative figure."""

from __future__ import annotations

import ast

import pytest
import torch

from course import demo
from course.notebooks.build import REPO_ROOT

NOTEBOOK_NAMES = ("ANAGRAMS", "HYBRIDS", "ROT90_ANAGRAM", "NEGATE_ANAGRAM")


def notebook_prompt_pairs(digit: bool) -> dict:
    """The illusion prompt pairs the released Part A notebook sets, for the digit model or for DeepFloyd."""
    import nbformat

    from fwd_kit.digit_model import DIGIT_PROMPTS

    nb = nbformat.read(REPO_ROOT / "assignments" / "partA" / "partA.ipynb", as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and "ROT90_ANAGRAM =" in c.source)
    branch = next(node for node in ast.parse(source).body if isinstance(node, ast.If)
                  and isinstance(node.test, ast.Name) and node.test.id == "IS_DIGIT")
    pairs = {}
    for node in branch.body if digit else branch.orelse:
        if isinstance(node, ast.Assign) and node.targets[0].id in NOTEBOOK_NAMES:
            pairs[node.targets[0].id] = eval(compile(ast.Expression(node.value), "cell", "eval"),  # noqa: S307
                                             {"DIGIT_PROMPTS": DIGIT_PROMPTS})
    assert set(pairs) == set(NOTEBOOK_NAMES)
    return pairs


@pytest.mark.parametrize("digit", [True, False])
def test_the_demo_uses_the_notebooks_prompt_pairs(digit):
    prompts = demo.DIGIT_PROMPTS if digit else demo.PHOTO_PROMPTS
    pairs = notebook_prompt_pairs(digit)
    assert tuple(prompts.anagrams[0]) == tuple(pairs["ANAGRAMS"][0])  # the flip view
    assert tuple(prompts.hybrids[0]) == tuple(pairs["HYBRIDS"][0])
    assert tuple(demo.anagram_pair(prompts, "rot90")) == tuple(pairs["ROT90_ANAGRAM"])
    assert tuple(demo.anagram_pair(prompts, "negate")) == tuple(pairs["NEGATE_ANAGRAM"])


@pytest.fixture(scope="module")
def digit_stage1():
    return demo.load_stage1_for_demo(demo.DemoConfig(model="digit", device="cpu", fast=True))


def read(images) -> list[int]:
    """The MNIST classifier's digits for Part A images (B, 3, H, W) in [-1, 1]."""
    from reference.classifier import classify, load_classifier, to_mnist

    with torch.random.fork_rng(devices=[]):
        classifier = load_classifier()
    return classify(classifier, to_mnist(torch.cat([im.reshape(-1, *im.shape[-3:]) for im in images]).float())).tolist()


def test_the_every_5th_figure_keeps_every_5th_step_once(digit_stage1):
    """From i_start = 10: t = 690, 540, 390, 240, 90 (every 5th of the strided list), then the result (a 7)."""
    with torch.no_grad():
        every5, _ = demo.figures_iterative(digit_stage1)
    assert every5.titles == ["t=690", "t=540", "t=390", "t=240", "t=90", "t=0"]
    assert len(every5.images) == 6
    assert read([every5.images[-1]]) == [7]  # the test image, a 7, comes back


def test_the_inpainting_masks_cover_part_of_the_digit(digit_stage1):
    """The region regenerated holds ink of the digit (not only empty background), and some ink is kept."""
    originals = (digit_stage1.x0, digit_stage1.pictures["own"][0])
    for image, mask in zip(originals, demo.inpaint_masks(digit_stage1)):
        ink = (image.mean(dim=1, keepdim=True) > 0).float()  # (1, 1, S, S)
        assert (ink * mask).sum() >= 0.2 * ink.sum()  # a good part of the digit is regenerated
        assert (ink * (1 - mask)).sum() >= 0.2 * ink.sum()  # and a good part kept


def test_the_anagram_figures_show_each_views_pair_and_the_view(digit_stage1, monkeypatch):
    """Structure, with the sampler replaced by noise: one figure per view, titled with its notebook pair, whose
    second panel is the first one seen through the view."""
    from reference import illusions

    monkeypatch.setattr(illusions, "visual_anagram", lambda unet, sch, xt, *a, **k: xt.clone())  # noise as drawn
    figures = {f.name: f for f in demo.figures_anagrams(digit_stage1)}
    pairs = notebook_prompt_pairs(True)
    expected = {"flip": pairs["ANAGRAMS"][0], "rot90": pairs["ROT90_ANAGRAM"], "negate": pairs["NEGATE_ANAGRAM"]}
    assert set(figures) == {f"1.8_anagram_{v}" for v in expected}
    for view_name, (p1, p2) in expected.items():
        figure = figures[f"1.8_anagram_{view_name}"]
        assert figure.titles[0::2] == [p1] * (len(figure.images) // 2)
        assert all(title.endswith(f": {p2}") for title in figure.titles[1::2])
        view = illusions.VIEWS[view_name][0]
        for drawn, viewed in zip(figure.images[0::2], figure.images[1::2]):
            assert torch.equal(viewed, view(drawn))


@pytest.mark.slow  # a whole illusion loop with the digit model: ~5-20 s quiet, minutes on busy cores
def test_the_flip_anagram_reads_six_upright_and_nine_upside_down(digit_stage1):
    """The real flip anagrams on their seed: the classifier reads prompt 1's digit upright, prompt 2's flipped."""
    with torch.no_grad():
        (figure,) = demo.figures_anagrams(digit_stage1, views=(("flip", "upside down"),))
    assert read(figure.images) == [6, 9, 6, 9]  # two anagrams, each upright then upside down


@pytest.mark.slow  # a whole illusion loop with the digit model: ~5-20 s quiet, minutes on busy cores
def test_the_rot90_anagram_reads_one_upright_and_seven_turned(digit_stage1):
    with torch.no_grad():
        (figure,) = demo.figures_anagrams(digit_stage1, views=(("rot90", "turned 90°"),))
    assert read(figure.images) == [1, 7]


@pytest.mark.slow  # a whole illusion loop with the digit model: ~5-20 s quiet, minutes on busy cores
def test_the_hybrid_reads_as_its_low_frequency_prompt_from_afar(digit_stage1):
    """The hybrid (1 from afar, 7 up close) blurred reads as a 1, and it is a drawing, not a white blob."""
    from reference import illusions

    with torch.no_grad():
        (figure,) = demo.figures_hybrids(digit_stage1)
    result, blurred = figure.images
    assert figure.titles == ["up close: a handwritten digit seven", "from afar: a handwritten digit one"]
    assert read([blurred]) == [1]
    assert 0.02 < float((result > 0).float().mean()) < 0.35  # ink covers a digit's share of the picture
    assert torch.allclose(blurred, illusions.lowpass(result))


def test_the_digit_model_has_no_stage2_figure(digit_stage1):
    """No real upsampler offline: the figure is left out (run_demo says why), not drawn by a random stand-in."""
    assert digit_stage1.stage2 is None
