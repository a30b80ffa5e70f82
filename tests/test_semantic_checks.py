"""The semantic checks of Part A (autograder.semantic): with the trained digit model and the MNIST
classifier, the reference passes at seeds 0 and 1, correct alternatives pass, typical mistakes fail with a
question, the student's function is only called (with values the wire can send) and nothing reaches stderr.

The wrong implementations here are written independently of the module's own screening mistakes."""

from __future__ import annotations

import time

import pytest
import torch
import torchvision.transforms.functional as TF

from autograder import semantic as S
from fwd_kit.grading.wire import Encoder
from fwd_kit.loading import DIGIT_MODEL
from reference import denoise as D
from reference import illusions as I

pytestmark = pytest.mark.skipif(not (DIGIT_MODEL / "model_index.json").exists(),
                                reason=f"the digit model is not installed at {DIGIT_MODEL}")

REFERENCES = {"iterative_denoise_cfg": D.iterative_denoise_cfg, "visual_anagram": I.visual_anagram,
              "make_hybrids": I.make_hybrids}
QUESTIONS = {"iterative_denoise_cfg": "Does your CFG loop draw what the prompt asks for?",
             "visual_anagram": "Does your anagram show prompt 1 upright and prompt 2 upside down?",
             "make_hybrids": "Does your hybrid show the low-pass prompt from afar?"}
CHECK_SECONDS = 30  # each check must fit nbgrader's default cell timeout


def test_tables_are_filled_and_every_name_has_a_check():
    assert set(S.SEMANTIC) == set(REFERENCES)
    assert len(S.CFG_CASES) >= 2 and len(S.ANAGRAM_CASES) >= 2 and len(S.HYBRID_CASES) >= 2
    assert all(0 <= c[0] <= 9 for c in S.CFG_CASES)
    assert all(up != down for up, down, _ in S.ANAGRAM_CASES)
    assert all(low != high for low, high, _ in S.HYBRID_CASES)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_passes(name, seed, capfd):
    state = torch.random.get_rng_state()
    began = time.perf_counter()
    S.SEMANTIC[name](REFERENCES[name], seed=seed)
    seconds = time.perf_counter() - began
    out, err = capfd.readouterr()
    assert err == ""
    assert out.startswith(f"\u2713 {name}:")
    assert seconds < CHECK_SECONDS, f"{name} took {seconds:.1f} s"
    assert torch.equal(torch.random.get_rng_state(), state), "the check changed the global random state"


# ---------------------------------------------------------------------------------------------------
# Typical mistakes (signatures as in reference)


def cfg_swapped(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
                generator=None):
    """Guidance that starts from the conditional estimate: ε_c + γ·(ε_u − ε_c)."""
    D.set_strided_timesteps(scheduler, timesteps)
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps_u, _ = D.predict_noise(unet, xt, t, uncond_prompt_embeds)
        eps_c, variance = D.predict_noise(unet, xt, t, prompt_embeds)
        xt = D.denoise_step(scheduler, xt, eps_c + scale * (eps_u - eps_c), variance, t, t_prev, generator)
    return xt


def anagram_not_undone(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=I.flip_view, scale=7.0,
                       generator=None):
    """The viewed image's estimate averaged in without mapping it back."""
    D.set_strided_timesteps(scheduler, timesteps)
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps_1, variance = D.cfg_noise(unet, xt, t, p1, uncond, scale)
        eps_2, _ = D.cfg_noise(unet, view[0](xt), t, p2, uncond, scale)
        xt = D.denoise_step(scheduler, xt, (eps_1 + eps_2) / 2, variance, t, t_prev, generator)
    return xt


def hybrids_swapped(unet, scheduler, xt, i_start, low, high, uncond, timesteps, scale=7.0, generator=None):
    """Low frequencies from the high prompt's estimate and high ones from the low prompt's."""
    D.set_strided_timesteps(scheduler, timesteps)
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps_low, var_low = D.cfg_noise(unet, xt, t, low, uncond, scale)
        eps_high, var_high = D.cfg_noise(unet, xt, t, high, uncond, scale)
        eps = I.lowpass(eps_high) + I.highpass(eps_low)
        xt = D.denoise_step(scheduler, xt, eps, (var_low + var_high) / 2, t, t_prev, generator)
    return xt


MISTAKES = {"iterative_denoise_cfg": cfg_swapped, "visual_anagram": anagram_not_undone,
            "make_hybrids": hybrids_swapped}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_fails_with_a_question(name, capfd):
    with pytest.raises(AssertionError) as info:
        S.SEMANTIC[name](MISTAKES[name], seed=0)
    message = str(info.value)
    assert message.startswith(QUESTIONS[name]) and "classifier reads" in message and "(p=" in message
    assert capfd.readouterr().err == ""


def test_wrong_shape_and_stub(capfd):
    def first_image_only(unet, scheduler, xt, *args, **kwargs):
        return D.iterative_denoise_cfg(unet, scheduler, xt[:1], *args, **kwargs)

    def stub(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match=r"Does iterative_denoise_cfg return .*shape \(1, 3, 32, 32\)"):
        S.check_cfg_draws_digit(first_image_only)
    with pytest.raises(NotImplementedError):
        S.check_anagram_reads(stub)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------
# Correct alternatives, and a student function that is only a proxy


def cfg_pipeline_order(unet, scheduler, xt, i_start, prompt_embeds, uncond_prompt_embeds, timesteps, scale=7.0,
                       generator=None):
    """A correct loop written differently: two UNet calls, ε = (1 − γ)·ε_u + γ·ε_c, x̂0 and mean by hand."""
    D.set_strided_timesteps(scheduler, timesteps)
    abar = scheduler.alphas_cumprod
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps_c, variance = D.predict_noise(unet, xt, t, prompt_embeds)
        eps_u, _ = D.predict_noise(unet, xt, t, uncond_prompt_embeds)
        eps = (1 - scale) * eps_u + scale * eps_c
        x0_hat = (xt - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
        alpha = abar[t] / abar[t_prev]
        mean = abar[t_prev].sqrt() * (1 - alpha) / (1 - abar[t]) * x0_hat \
            + alpha.sqrt() * (1 - abar[t_prev]) / (1 - abar[t]) * xt
        xt = D.add_variance(scheduler, variance, t, mean, generator)
    return xt


def anagram_mean_variance(unet, scheduler, xt, i_start, p1, p2, uncond, timesteps, view=I.flip_view, scale=7.0,
                          generator=None):
    """A correct anagram that adds the mean of both branches' variances (the course leaves the choice open)."""
    D.set_strided_timesteps(scheduler, timesteps)
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps_1, var_1 = D.cfg_noise(unet, xt, t, p1, uncond, scale)
        eps_2, var_2 = D.cfg_noise(unet, view[0](xt), t, p2, uncond, scale)
        eps = (eps_1 + view[1](eps_2)) / 2
        xt = D.denoise_step(scheduler, xt, eps, (var_1 + view[1](var_2)) / 2, t, t_prev, generator)
    return xt


def hybrids_low_variance(unet, scheduler, xt, i_start, low, high, uncond, timesteps, scale=7.0, generator=None):
    """A correct hybrid that adds the low prompt's variance and blurs with its own Gaussian call."""
    D.set_strided_timesteps(scheduler, timesteps)
    for t, t_prev in zip(timesteps[i_start:-1], timesteps[i_start + 1:]):
        eps_low, var_low = D.cfg_noise(unet, xt, t, low, uncond, scale)
        eps_high, _ = D.cfg_noise(unet, xt, t, high, uncond, scale)
        blur = lambda x: TF.gaussian_blur(x, kernel_size=33, sigma=2.0)  # noqa: E731
        eps = blur(eps_low) + eps_high - blur(eps_high)
        xt = D.denoise_step(scheduler, xt, eps, var_low, t, t_prev, generator)
    return xt


def test_correct_alternatives_pass(capfd):
    S.check_cfg_draws_digit(cfg_pipeline_order, seed=1)
    S.check_hybrid_reads(hybrids_low_variance, seed=0)
    assert capfd.readouterr().err == ""


class Proxy:
    """Stands for a function in another process: it can only be called; it records what it was sent."""

    def __init__(self, fn):
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_sent", [])

    def __call__(self, *args, **kwargs):
        self._sent.append((args, kwargs))
        return self._fn(*args, **kwargs)

    def __getattr__(self, name):
        raise AssertionError(f"the check inspected the student's function (.{name})")


def test_checks_only_call_the_function_with_sendable_values(capfd):
    proxy = Proxy(anagram_mean_variance)
    S.check_anagram_reads(proxy, seed=1)
    ((args, kwargs),) = object.__getattribute__(proxy, "_sent")
    Encoder().encode([list(args), kwargs])  # raises WireError for anything the wire cannot send
    assert capfd.readouterr().err == ""
