"""Does the single-step denoiser noise, score and denoise digits as eqs. B.1–B.2 say?"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from reference.denoiser import add_noise, denoise, denoiser_loss, mean_image, pure_noise_loss
from reference.unet import UnconditionalUNet


class Fake(nn.Module):
    """A stand-in UNet computing ``fn(x)``; records its training flag and grad mode at each call."""

    def __init__(self, fn):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the fake a device and dtype
        self.fn, self.calls = fn, []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.fn(x) + 0 * self.anchor


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


def test_does_add_noise_compute_x_plus_sigma_eps():
    x, eps = _digits(), torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(add_noise(x, 0.5, noise=eps), x + 0.5 * eps)
    torch.testing.assert_close(add_noise(x, 0.0, generator=_gen()), x)
    sigmas = torch.tensor([0.0, 0.2, 0.5, 1.0])
    torch.testing.assert_close(add_noise(x, sigmas, noise=eps), x + sigmas[:, None, None, None] * eps)


def test_is_add_noise_reproducible_and_gaussian():
    x = torch.zeros(64, 1, 28, 28)
    z = add_noise(x, 0.8, generator=_gen(3))
    torch.testing.assert_close(z, add_noise(x, 0.8, generator=_gen(3)))
    assert not torch.equal(z, add_noise(x, 0.8, generator=_gen(4)))
    assert abs(z.std().item() - 0.8) < 0.01 and abs(z.mean().item()) < 0.01  # 50k samples


def test_does_add_noise_reject_bad_input():
    x = _digits()
    with pytest.raises(ValueError, match="non-negative"):
        add_noise(x, -0.1)
    with pytest.raises(ValueError, match="same shape"):
        add_noise(x, 0.5, noise=torch.randn(4, 1, 28, 27))
    with pytest.raises(ValueError, match="sigma"):
        add_noise(x, torch.ones(3))


def test_is_the_identity_denoisers_loss_sigma_squared():
    # D(z) = z gives ‖σε‖², whose mean is σ² (an analytic oracle, 200k pixels).
    x = _digits(256)
    loss = denoiser_loss(Fake(lambda z: z), x, sigma=0.5, generator=_gen(1))
    assert abs(loss.item() - 0.25) < 0.005


def test_is_the_denoiser_loss_the_mse_against_the_clean_digit():
    x = _digits()
    unet = UnconditionalUNet(1, 8)
    z = add_noise(x, 0.5, generator=_gen(2))
    want = ((unet(z) - x) ** 2).mean()
    torch.testing.assert_close(denoiser_loss(unet, x, 0.5, generator=_gen(2)), want)


def test_does_the_pure_noise_loss_see_only_noise():
    x = _digits(256)
    seen = Fake(lambda z: z)
    loss = pure_noise_loss(seen, x, generator=_gen(5))
    # input ε is independent of x: E‖ε − x‖² = 1 + mean(x²)
    assert abs(loss.item() - (1 + (x**2).mean().item())) < 0.01
    zero = pure_noise_loss(Fake(lambda z: torch.zeros_like(z)), x, generator=_gen(5))
    torch.testing.assert_close(zero, (x**2).mean())


def test_does_denoise_use_eval_mode_without_gradients():
    fake = Fake(lambda z: 2 * z)
    z = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(denoise(fake, z), 2 * z)
    assert fake.calls == [(False, False)]
    assert fake.training  # restored


def test_is_the_mean_image_the_pixelwise_average():
    x = torch.rand(50, 1, 28, 28, generator=_gen(6))
    want = x.mean(dim=0, keepdim=True)
    torch.testing.assert_close(mean_image(x), want)
    labelled = torch.utils.data.TensorDataset(x, torch.arange(50) % 10)
    torch.testing.assert_close(mean_image(labelled, batch_size=7), want)  # (image, label) items, uneven batches

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 50

        def __getitem__(self, i):
            return x[i]

    torch.testing.assert_close(mean_image(Images(), batch_size=16), want)


def test_does_the_denoiser_overfit_one_batch():
    torch.manual_seed(0)
    x = _digits(4)
    unet = UnconditionalUNet(1, 16)
    opt = torch.optim.Adam(unet.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = denoiser_loss(unet, x, 0.5, generator=_gen(1))  # same noise every step: a fixed batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, f"loss went from {losses[0]:.4f} to {losses[-1]:.4f}"
