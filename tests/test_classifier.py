"""Is the sample judge trustworthy: accurate on unseen digits, and a correct Fréchet distance?"""

import math

import numpy as np
import pytest
import torch

from fwd_kit import data as digits
from reference import classifier as judge


@pytest.fixture(scope="module")
def model():
    return judge.load_classifier()


def test_shipped_classifier_is_small_and_accurate_on_held_out_digits(model):
    assert judge.WEIGHTS_PATH.stat().st_size < 1_000_000
    held = digits.load_mnist(train=False, offline=True)
    images, labels = digits.to_device_tensors(held)
    predicted = judge.classify(model, digits.batch_images(images, slice(None)))
    assert float((predicted == labels).float().mean()) >= 0.95
    assert judge.features(model, digits.batch_images(images, slice(0, 8))).shape == (8, 64)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    feats = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert abs(judge.frechet_distance(feats, feats)) < 1e-6


def test_frechet_distance_one_dimensional_gaussians():
    # (μ_a − μ_b)² + (σ_a − σ_b)²
    assert math.isclose(judge.frechet_distance_from_stats([1.0], [[4.0]], [-2.0], [[9.0]]), 9 + 1, rel_tol=1e-9)


def test_frechet_distance_two_dimensional_non_commuting_covariances():
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([[1.0, -0.3], [-0.3, 3.0]])
    mu_a, mu_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    # for 2×2, AB has positive eigenvalues λ1, λ2 and Tr sqrt(AB) = sqrt(Tr(AB) + 2·sqrt(det(AB)))
    trace_root = math.sqrt(np.trace(a @ b) + 2 * math.sqrt(np.linalg.det(a @ b)))
    expected = float(((mu_a - mu_b) ** 2).sum() + np.trace(a) + np.trace(b) - 2 * trace_root)
    assert math.isclose(judge.frechet_distance_from_stats(mu_a, a, mu_b, b), expected, rel_tol=1e-9)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same F"):
        judge.frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))


def test_to_mnist_converts_part_a_images():
    images = torch.full((2, 3, 64, 64), -1.0)
    images[:, :, 16:48, 16:48] = 1.0
    out = judge.to_mnist(images)
    assert out.shape == (2, 1, 28, 28) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(out[0, 0, 14, 14]) == pytest.approx(1.0) and float(out[0, 0, 0, 0]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        judge.to_mnist(torch.zeros(2, 4, 32, 32))
