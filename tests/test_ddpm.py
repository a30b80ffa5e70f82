"""Does DDPM follow Algorithms B.1–B.4 (t = 0 clean, t = T noise; arrays indexed t − 1)?"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from diffusers import DDPMScheduler

from reference.ddpm import (
    DDPM,
    class_ddpm_forward,
    class_ddpm_sample,
    ddpm_forward,
    ddpm_sample,
    ddpm_schedule,
    ddpm_step,
)
from reference.flow_matching import one_hot
from reference.unet import ClassConditionalUNet, TimeConditionalUNet


class Fake(nn.Module):
    """A stand-in UNet computing ``fn(*args)``; records every call's arguments, training flag, grad mode."""

    def __init__(self, fn, dtype=torch.float32):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros((), dtype=dtype))  # gives the fake a device and dtype
        self.fn, self.calls = fn, []

    def forward(self, *args):
        self.calls.append(([a.clone() for a in args], self.training, torch.is_grad_enabled()))
        return self.fn(*args) + 0 * self.anchor


class Conditioned(nn.Module):
    """A time-only view of a class-conditioned UNet with fixed one-hot rows c: ε(x, t) = unet(x, c, t)."""

    def __init__(self, unet, c):
        super().__init__()
        self.unet, self.c = unet, c

    def forward(self, x, t):
        return self.unet(x, self.c, t)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _digits(n=4, seed=0):
    return (torch.rand(n, 1, 28, 28, generator=_gen(seed)) > 0.7).float()


def _eps_model(x, t):
    """A smooth, time-dependent fake noise prediction."""
    return torch.tanh(x) * (0.5 + t.reshape(-1, 1, 1, 1)) - 0.1


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: these models are tiny, and on a shared CPU more threads only spin (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_is_the_schedule_diffusers_linear_schedule():
    s = ddpm_schedule(1e-4, 0.02, 300)
    oracle = DDPMScheduler(num_train_timesteps=300, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    torch.testing.assert_close(s["betas"], oracle.betas)
    torch.testing.assert_close(s["alphas"], oracle.alphas)
    torch.testing.assert_close(s["alpha_bars"], oracle.alphas_cumprod)
    assert s["betas"][0].item() == pytest.approx(1e-4) and s["betas"][-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("betas", [(0.02, 1e-4), (0.0, 0.02), (1e-4, 1.0), (0.02, 0.02)])
def test_do_bad_betas_raise(betas):
    with pytest.raises(ValueError, match="beta1"):
        ddpm_schedule(*betas)


def test_is_the_loss_zero_for_the_true_noise():
    # Knowing x0, the noise is recoverable from (x_t, t): ε = (x_t − √ᾱ_t x0)/√(1 − ᾱ_t).
    T = 20
    s = ddpm_schedule(num_ts=T)
    x0 = _digits(64).double()
    alpha_bars = torch.cumprod(1 - s["betas"].double(), 0)  # ᾱ from the betas, in float64

    def oracle(xt, t):
        ab = alpha_bars[(t * T).round().long() - 1].reshape(-1, 1, 1, 1)  # t/T → index t − 1
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    assert ddpm_forward(Fake(oracle, torch.float64), s, x0, num_ts=T, generator=_gen(1)).item() < 1e-10
    c_oracle = Fake(lambda xt, c, t: oracle(xt, t), torch.float64)
    assert class_ddpm_forward(c_oracle, s, x0, torch.arange(64) % 10, num_ts=T, generator=_gen(1)).item() < 1e-10


def test_are_training_times_uniform_on_1_to_T_over_T():
    T, n = 10, 5000
    fake = Fake(lambda xt, t: torch.zeros_like(xt))
    ddpm_forward(fake, ddpm_schedule(num_ts=T), torch.zeros(n, 1, 28, 28), num_ts=T, generator=_gen(2))
    t = fake.calls[0][0][1]
    steps = (t * T).round().long()
    torch.testing.assert_close(steps.float() / T, t)  # multiples of 1/T
    counts = torch.bincount(steps, minlength=T + 1)
    assert counts[0] == 0 and (counts[1:] > 0.8 * n / T).all()  # every t in 1 … T, never 0


def test_does_class_ddpm_forward_drop_classes_at_p_uncond():
    n, p = 4000, 0.1
    fake = Fake(lambda x, c, t: torch.zeros_like(x))
    class_ddpm_forward(fake, ddpm_schedule(num_ts=5), torch.zeros(n, 1, 28, 28), torch.arange(n) % 10,
                       p_uncond=p, num_ts=5, generator=_gen(8))
    c = fake.calls[0][0][1]
    assert abs((c.abs().sum(1) == 0).float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)


def _diffusers_sample(T, n, seed, variance_type):
    """Algorithm B.2 run by diffusers' DDPMScheduler (its timesteps 0 … T − 1 are our t − 1)."""
    s = ddpm_schedule(num_ts=T)
    sched = DDPMScheduler(num_train_timesteps=T, trained_betas=s["betas"].tolist(), variance_type=variance_type,
                          clip_sample=False, prediction_type="epsilon")
    sched.set_timesteps(T)
    generator = _gen(seed)
    x = torch.randn(n, 1, 28, 28, generator=generator)
    for t_d in sched.timesteps:
        eps_hat = _eps_model(x, torch.full((n,), (int(t_d) + 1) / T))
        x = sched.step(eps_hat, t_d, x, generator=generator).prev_sample
    return x


def test_does_the_sampler_match_diffusers_with_beta_variance():
    T = 25
    ours = ddpm_sample(Fake(_eps_model), ddpm_schedule(num_ts=T), 3, num_ts=T, generator=_gen(4))
    torch.testing.assert_close(ours, _diffusers_sample(T, 3, 4, "fixed_large"), atol=3e-4, rtol=1e-4)
    # B.2 adds √β_t z ("fixed_large"), not the posterior variance β̃_t ("fixed_small"): the oracle can tell.
    assert (ours - _diffusers_sample(T, 3, 4, "fixed_small")).abs().max() > 1e-2


def test_does_a_step_match_the_posterior_mean_in_terms_of_eps():
    # Second formulation (DDPM paper, eq. 11): μ = (x_t − β_t/√(1 − ᾱ_t)·ε̂)/√α_t.
    T = 50
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)  # a float64 schedule: α = 1 − β exactly
    s = dict(betas=betas, alphas=1 - betas, alpha_bars=torch.cumprod(1 - betas, 0))
    xt, eps_hat = torch.randn(2, 1, 28, 28, dtype=torch.float64), torch.randn(2, 1, 28, 28, dtype=torch.float64)
    for t in (1, 2, 17, T):
        beta, alpha, ab = s["betas"][t - 1], s["alphas"][t - 1], s["alpha_bars"][t - 1]
        mu = (xt - beta / (1 - ab).sqrt() * eps_hat) / alpha.sqrt()
        torch.testing.assert_close(ddpm_step(s, t, xt, eps_hat, None), mu)
        z = torch.randn_like(xt)
        torch.testing.assert_close(ddpm_step(s, t, xt, eps_hat, z), mu + beta.sqrt() * z)
    x0_hat = (xt - (1 - s["alpha_bars"][0]).sqrt() * eps_hat) / s["alpha_bars"][0].sqrt()
    torch.testing.assert_close(ddpm_step(s, 1, xt, eps_hat, None), x0_hat)  # last step returns x̂0


def test_does_the_ideal_model_of_a_single_image_sample_that_image():
    # If the data is one image a, the true noise is ε = (x_t − √ᾱ_t a)/√(1 − ᾱ_t); then x̂0 = a at every
    # step and the last step (no noise) returns a exactly, whatever noise was drawn on the way.
    T = 30
    alpha_bars = torch.cumprod(1 - ddpm_schedule(num_ts=T)["betas"].double(), 0)
    a = _digits(2, seed=5).double()

    def ideal(xt, t):
        ab = alpha_bars[(t * T).round().long() - 1].reshape(-1, 1, 1, 1)
        return (xt - ab.sqrt() * a) / (1 - ab).sqrt()

    x, trajectory = ddpm_sample(Fake(ideal, torch.float64), ddpm_schedule(num_ts=T), 2, num_ts=T,
                                generator=_gen(9), return_trajectory=True)
    torch.testing.assert_close(x, a)
    assert (trajectory[-2] - a).abs().max() > 1e-3  # one step earlier there was still noise


def test_does_sampling_visit_t_from_T_down_to_1_in_eval_mode():
    T = 6
    fake = Fake(lambda x, t: torch.zeros_like(x))
    _, trajectory = ddpm_sample(fake, ddpm_schedule(num_ts=T), 2, num_ts=T, generator=_gen(), return_trajectory=True)
    times = torch.stack([args[1][0] for args, _, _ in fake.calls])
    torch.testing.assert_close(times, torch.arange(T, 0, -1) / T)
    assert all(not training and not grad for _, training, grad in fake.calls) and fake.training
    assert len(trajectory) == T + 1


def test_is_sampling_reproducible_and_typed_like_the_model():
    T, s = 5, ddpm_schedule(num_ts=5)
    unet = TimeConditionalUNet(1, 8, "ddpm")
    a = ddpm_sample(unet, s, 2, num_ts=T, generator=_gen(11))
    torch.testing.assert_close(a, ddpm_sample(unet, s, 2, num_ts=T, generator=_gen(11)))
    assert not torch.allclose(a, ddpm_sample(unet, s, 2, num_ts=T, generator=_gen(12)))
    b = class_ddpm_sample(ClassConditionalUNet(1, 10, 8, "ddpm").double(), s, [1, 2], num_ts=T, generator=_gen(1))
    assert b.dtype == torch.float64 and b.shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="num_ts"):
        ddpm_sample(unet, s, 2, num_ts=6)


def test_does_guidance_scale_1_give_the_conditional_model():
    T, s = 6, ddpm_schedule(num_ts=6)
    unet = ClassConditionalUNet(1, 10, 8, "ddpm")
    labels = torch.tensor([1, 8, 3])
    guided = class_ddpm_sample(unet, s, labels, num_ts=T, guidance_scale=1.0, generator=_gen(3))
    conditional = ddpm_sample(Conditioned(unet, one_hot(labels)), s, 3, num_ts=T, generator=_gen(3))
    torch.testing.assert_close(guided, conditional, atol=1e-5, rtol=1e-4)
    guided0 = class_ddpm_sample(unet, s, labels, num_ts=T, guidance_scale=0.0, generator=_gen(3))
    unconditional = ddpm_sample(Conditioned(unet, torch.zeros(3, 10)), s, 3, num_ts=T, generator=_gen(3))
    torch.testing.assert_close(guided0, unconditional, atol=1e-5, rtol=1e-4)


def test_does_the_wrapper_pick_the_algorithm_from_the_unet():
    x0 = _digits(3)
    tunet, cunet = TimeConditionalUNet(1, 8, "ddpm"), ClassConditionalUNet(1, 10, 8, "ddpm")
    tm, cm = DDPM(tunet, num_ts=5), DDPM(cunet, num_ts=5)
    assert (tm.class_conditional, cm.class_conditional) == (False, True)
    assert (DDPM(tunet).num_ts, DDPM(tunet).p_uncond, DDPM(tunet).betas) == (300, 0.1, (1e-4, 0.02))
    torch.testing.assert_close(tm(x0, generator=_gen(1)), ddpm_forward(tunet, tm.schedule, x0, 5, generator=_gen(1)))
    torch.testing.assert_close(cm(x0, [1, 2, 3], generator=_gen(1)),
                               class_ddpm_forward(cunet, cm.schedule, x0, [1, 2, 3], 0.1, 5, generator=_gen(1)))
    torch.testing.assert_close(tm.sample(2, generator=_gen(2)), ddpm_sample(tunet, tm.schedule, 2, num_ts=5,
                                                                            generator=_gen(2)))
    torch.testing.assert_close(cm.sample([4, 5], generator=_gen(2)),
                               class_ddpm_sample(cunet, cm.schedule, [4, 5], num_ts=5, generator=_gen(2)))
    assert set(cm.state_dict()) == {"unet." + k for k in cunet.state_dict()}
    with pytest.raises(ValueError, match="labels"):
        cm(x0)
    with pytest.raises(ValueError, match="number of samples"):
        tm.sample([1, 2])


@pytest.mark.parametrize("kind", ["time", "class"])
def test_does_each_ddpm_model_overfit_one_batch(kind):
    torch.manual_seed(0)
    T, s = 50, ddpm_schedule(num_ts=50)
    x0, labels = _digits(4), [0, 1, 2, 3]
    if kind == "time":
        unet = TimeConditionalUNet(1, 16, "ddpm")
        loss_fn = lambda: ddpm_forward(unet, s, x0, T, generator=_gen(1))  # noqa: E731  same t, ε every step
    else:
        unet = ClassConditionalUNet(1, 10, 16, "ddpm")
        loss_fn = lambda: class_ddpm_forward(unet, s, x0, labels, 0.1, T, generator=_gen(1))  # noqa: E731
    opt = torch.optim.Adam(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, f"loss went from {losses[0]:.4f} to {losses[-1]:.4f}"


def test_do_losses_and_samplers_keep_a_half_precision_model_in_half():
    unet = ClassConditionalUNet(1, 10, 8, "ddpm").half()
    s = ddpm_schedule(num_ts=10)
    loss = class_ddpm_forward(unet, s, _digits(2), [1, 2], num_ts=10, generator=_gen())
    loss.backward()
    assert loss.dtype == torch.float16 and torch.isfinite(loss)
    x = class_ddpm_sample(unet, s, [1, 2], num_ts=10, generator=_gen())
    assert x.dtype == torch.float16 and torch.isfinite(x).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_does_cuda_fp16_sampling_follow_a_cuda_generator():
    unet = TimeConditionalUNet(1, 16, "ddpm").cuda().half()
    s = ddpm_schedule(num_ts=300)
    gen = lambda: torch.Generator(device="cuda").manual_seed(0)  # noqa: E731
    a = ddpm_sample(unet, s, 4, num_ts=300, generator=gen())
    assert a.device.type == "cuda" and a.dtype == torch.float16 and torch.isfinite(a).all()
    torch.testing.assert_close(a, ddpm_sample(unet, s, 4, num_ts=300, generator=gen()))
    loss = ddpm_forward(unet, s, _digits(8), num_ts=300, generator=gen())
    assert torch.isfinite(loss)
