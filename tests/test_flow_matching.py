"""Does flow matching follow Algorithms B.1–B.4 (t = 0 noise, t = 1 data)?"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from reference.flow_matching import (
    ClassConditionalFM,
    TimeConditionalFM,
    class_fm_forward,
    class_fm_sample,
    drop_classes,
    flow_target,
    interpolate,
    one_hot,
    time_fm_forward,
    time_fm_sample,
)
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
    """A time-only view of a class-conditioned UNet with fixed one-hot rows c: u(x, t) = unet(x, c, t)."""

    def __init__(self, unet, c):
        super().__init__()
        self.unet, self.c = unet, c

    def forward(self, x, t):
        return self.unet(x, self.c, t)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _digits(n=4, seed=0):
    return (torch.rand(n, 1, 28, 28, generator=_gen(seed)) > 0.7).float()


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one thread: these models are tiny, and on a shared CPU more threads only spin (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_does_the_path_go_from_noise_at_0_to_data_at_1():
    x0, x1 = torch.randn(3, 1, 28, 28), _digits(3)
    torch.testing.assert_close(interpolate(x0, x1, torch.zeros(3)), x0)
    torch.testing.assert_close(interpolate(x0, x1, torch.ones(3)), x1)
    t = torch.tensor([0.0, 0.25, 1.0])  # one time per image
    want = torch.stack([x0[0], 0.75 * x0[1] + 0.25 * x1[1], x1[2]])
    torch.testing.assert_close(interpolate(x0, x1, t), want)
    with pytest.raises(ValueError, match="one time per image"):
        interpolate(x0, x1, torch.rand(3, 1))


def test_is_the_target_the_time_derivative_of_the_path():
    x0, x1 = torch.randn(2, 1, 28, 28, dtype=torch.float64), _digits(2).double()
    t, h = torch.tensor([0.3, 0.6], dtype=torch.float64), 1e-6
    finite_difference = (interpolate(x0, x1, t + h) - interpolate(x0, x1, t)) / h
    torch.testing.assert_close(flow_target(x0, x1), finite_difference, atol=1e-6, rtol=0)
    torch.testing.assert_close(flow_target(x0, x1), x1 - x0)


def test_does_one_hot_encode_and_reject_bad_classes():
    torch.testing.assert_close(one_hot(torch.tensor([0, 3, 9])), torch.eye(10)[[0, 3, 9]])
    assert one_hot([1, 2]).dtype == torch.float32
    with pytest.raises(ValueError, match="include 10"):
        one_hot(torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="include -1"):
        one_hot([-1, 2])
    with pytest.raises(ValueError, match="integers"):
        one_hot(torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_are_classes_dropped_at_the_configured_rate(p):
    n = 20_000
    c = one_hot(torch.arange(n) % 10)
    dropped = drop_classes(c, p, generator=_gen(7))
    zero = dropped.abs().sum(1) == 0
    tolerance = 5 * math.sqrt(p * (1 - p) / n)  # five binomial standard deviations
    assert abs(zero.float().mean().item() - p) < tolerance
    torch.testing.assert_close(dropped[~zero], c[~zero])  # kept rows are untouched
    assert drop_classes(c, 0.0).abs().sum(1).gt(0).all() and drop_classes(c, 1.0).eq(0).all()
    with pytest.raises(ValueError, match="probability"):
        drop_classes(c, 1.5)


def test_does_class_fm_forward_drop_classes_at_p_uncond():
    n, p = 4000, 0.1
    fake = Fake(lambda x, c, t: torch.zeros_like(x))
    class_fm_forward(fake, torch.zeros(n, 1, 28, 28), torch.arange(n) % 10, p_uncond=p, generator=_gen(8))
    (x, c, t), _, _ = fake.calls[0]
    rate = (c.abs().sum(1) == 0).float().mean().item()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert t.min() >= 0 and t.max() <= 1 and t.std() > 0.25  # U[0, 1] has std 0.289


def test_is_the_loss_zero_for_the_true_velocity():
    # Given x_t and t, the true velocity is (x1 − x_t)/(1 − t) = x1 − x0: a perfect model has zero loss.
    x1 = _digits(8).double()
    oracle = Fake(lambda xt, t: (x1 - xt) / (1 - t).reshape(-1, 1, 1, 1), dtype=torch.float64)
    assert time_fm_forward(oracle, x1, generator=_gen(1)).item() < 1e-12
    c_oracle = Fake(lambda xt, c, t: (x1 - xt) / (1 - t).reshape(-1, 1, 1, 1), dtype=torch.float64)
    assert class_fm_forward(c_oracle, x1, torch.arange(8), generator=_gen(1)).item() < 1e-12
    # The zero model pays E‖x1 − x0‖² = mean(x1²) + 1.
    x1 = _digits(256)
    zero = time_fm_forward(Fake(lambda xt, t: torch.zeros_like(xt)), x1, generator=_gen(2))
    assert abs(zero.item() - (1 + (x1**2).mean().item())) < 0.02


def test_does_euler_follow_a_constant_velocity_exactly():
    velocity = torch.linspace(-1, 1, 28 * 28).reshape(1, 1, 28, 28)
    fake = Fake(lambda x, t: velocity.expand_as(x))
    x, trajectory = time_fm_sample(fake, 3, num_ts=10, generator=_gen(4), return_trajectory=True)
    x0 = torch.randn(3, 1, 28, 28, generator=_gen(4))
    torch.testing.assert_close(trajectory[0], x0)
    torch.testing.assert_close(x, x0 + velocity)
    assert len(trajectory) == 11
    times = [args[1] for args, _, _ in fake.calls]
    torch.testing.assert_close(torch.stack([t[0] for t in times]), torch.arange(10) / 10)


def test_does_euler_land_on_the_target_of_a_converging_field():
    # u(x, t) = (a − x)/(1 − t) moves x in a straight line that reaches a exactly at t = 1.
    a = _digits(2, seed=9)
    fake = Fake(lambda x, t: (a - x) / (1 - t).reshape(-1, 1, 1, 1))
    torch.testing.assert_close(time_fm_sample(fake, 2, num_ts=7, generator=_gen(5)), a, atol=1e-5, rtol=0)


def test_does_sampling_use_eval_mode_no_grad_and_restore_training():
    fake = Fake(lambda x, t: torch.zeros_like(x))
    time_fm_sample(fake, 2, num_ts=3, generator=_gen())
    cfake = Fake(lambda x, c, t: torch.zeros_like(x))
    class_fm_sample(cfake, [1, 2], num_ts=3, generator=_gen())
    for f in (fake, cfake):
        assert all(not training and not grad for _, training, grad in f.calls)
        assert f.training


def test_is_sampling_reproducible_and_typed_like_the_model():
    unet = TimeConditionalUNet(1, 8)
    a = time_fm_sample(unet, 2, num_ts=4, generator=_gen(11))
    torch.testing.assert_close(a, time_fm_sample(unet, 2, num_ts=4, generator=_gen(11)))
    assert not torch.allclose(a, time_fm_sample(unet, 2, num_ts=4, generator=_gen(12)))
    cunet = ClassConditionalUNet(1, 10, 8).double()
    b = class_fm_sample(cunet, [3, 5], num_ts=4, generator=_gen(11))
    assert b.dtype == torch.float64 and b.shape == (2, 1, 28, 28)
    torch.testing.assert_close(b, class_fm_sample(cunet, [3, 5], num_ts=4, generator=_gen(11)))


def test_does_guidance_scale_1_give_the_conditional_flow():
    unet = ClassConditionalUNet(1, 10, 8)
    labels = torch.tensor([0, 4, 7])
    guided = class_fm_sample(unet, labels, num_ts=5, guidance_scale=1.0, generator=_gen(3))
    conditional = time_fm_sample(Conditioned(unet, one_hot(labels)), 3, num_ts=5, generator=_gen(3))
    torch.testing.assert_close(guided, conditional, atol=1e-5, rtol=1e-4)
    guided0 = class_fm_sample(unet, labels, num_ts=5, guidance_scale=0.0, generator=_gen(3))
    unconditional = time_fm_sample(Conditioned(unet, torch.zeros(3, 10)), 3, num_ts=5, generator=_gen(3))
    torch.testing.assert_close(guided0, unconditional, atol=1e-5, rtol=1e-4)


def test_does_guidance_extrapolate_from_unconditional_to_conditional():
    # u(x, c, t) = (class index + 1)·c-weight, zero for c = 0: CFG gives x0 + γ·u_c exactly.
    weights = torch.arange(1.0, 11.0)
    fake = Fake(lambda x, c, t: (c @ weights).reshape(-1, 1, 1, 1).expand_as(x))
    x = class_fm_sample(fake, [2, 9], num_ts=4, guidance_scale=5.0, generator=_gen(6))
    x0 = torch.randn(2, 1, 28, 28, generator=_gen(6))
    torch.testing.assert_close(x, x0 + 5.0 * torch.tensor([3.0, 10.0]).reshape(2, 1, 1, 1))


def test_do_the_wrappers_call_the_algorithms_with_their_settings():
    unet = TimeConditionalUNet(1, 8)
    fm = TimeConditionalFM(unet)
    x1 = _digits(3)
    assert fm.num_ts == 50
    torch.testing.assert_close(fm(x1, generator=_gen(1)), time_fm_forward(unet, x1, generator=_gen(1)))
    torch.testing.assert_close(fm.sample(2, generator=_gen(2)), time_fm_sample(unet, 2, num_ts=50, generator=_gen(2)))
    cunet = ClassConditionalUNet(1, 10, 8)
    cfm = ClassConditionalFM(cunet, num_ts=6)
    assert (ClassConditionalFM(cunet).num_ts, cfm.p_uncond) == (300, 0.1)
    torch.testing.assert_close(cfm(x1, [1, 2, 3], generator=_gen(1)),
                               class_fm_forward(cunet, x1, [1, 2, 3], 0.1, generator=_gen(1)))
    torch.testing.assert_close(cfm.sample([4, 5], generator=_gen(2)),
                               class_fm_sample(cunet, [4, 5], num_ts=6, guidance_scale=5.0, generator=_gen(2)))
    assert set(cfm.state_dict()) == {"unet." + k for k in cunet.state_dict()}


@pytest.mark.parametrize("kind", ["time", "class"])
def test_does_each_flow_model_overfit_one_batch(kind):
    torch.manual_seed(0)
    x1, labels = _digits(4), [0, 1, 2, 3]
    if kind == "time":
        unet = TimeConditionalUNet(1, 16, "fm")
        loss_fn = lambda: time_fm_forward(unet, x1, generator=_gen(1))  # noqa: E731  same t, x0 every step
    else:
        unet = ClassConditionalUNet(1, 10, 16, "fm")
        loss_fn = lambda: class_fm_forward(unet, x1, labels, generator=_gen(1))  # noqa: E731
    opt = torch.optim.Adam(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, f"loss went from {losses[0]:.4f} to {losses[-1]:.4f}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_does_cuda_fp16_sampling_follow_a_cuda_generator():
    unet = ClassConditionalUNet(1, 10, 16).cuda().half()
    gen = lambda: torch.Generator(device="cuda").manual_seed(0)  # noqa: E731
    labels = torch.arange(10, device="cuda")
    a = class_fm_sample(unet, labels, num_ts=50, generator=gen())
    assert a.device.type == "cuda" and a.dtype == torch.float16 and torch.isfinite(a).all()
    torch.testing.assert_close(a, class_fm_sample(unet, labels, num_ts=50, generator=gen()))
    loss = class_fm_forward(unet, _digits(10), labels, generator=gen())
    assert torch.isfinite(loss)
