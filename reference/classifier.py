"""A judge for generated digits: a small MNIST classifier, its feature space and a Fréchet distance.

The classifier is trained by the project itself (``train_classifier``) on the offline training split
only (``fwd_kit.data``: 4,000 digits), so the held-out split stays unseen; its weights ship as
``classifier_weights.safetensors`` (≈ 0.4 MB). ``evaluate_checkpoint`` samples a class-conditioned
model with classifier-free guidance and reports how often the classifier recognises the requested digit,
per digit and overall, and the Fréchet distance between generated and held-out digits in the
classifier's 64-dimensional penultimate feature space (FID-style; lower is closer).

Images are float (N, 1, 28, 28) in [0, 1]; ``to_mnist`` converts Part A's (N, 3, H, W) [-1, 1] images.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fwd_kit import data as digits
from fwd_kit.validate import check_image

WEIGHTS_PATH = Path(__file__).with_name("classifier_weights.safetensors")
CACHE_PATH = Path.home() / ".cache" / "fun-with-diffusion" / "classifier_weights.safetensors"


class DigitClassifier(nn.Module):
    """conv(1→16)·ReLU·pool → conv(16→32)·ReLU·pool → linear(1568→64)·ReLU [features] → linear(64→10)."""

    def __init__(self, num_features: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, num_features)
        self.fc2 = nn.Linear(num_features, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] → (N, 64) penultimate activations."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, 16, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 32, 7, 7)
        return F.relu(self.fc1(x.flatten(1)))  # (N, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))  # (N, 10) logits


def _shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to ``max_shift`` pixels (pad with 0 and crop), one per image."""
    n = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28] for i in range(n)])


def train_classifier(images: torch.Tensor, labels: torch.Tensor, epochs: int = 30, batch_size: int = 64,
                     lr: float = 2e-3, seed: int = 0, log=print) -> DigitClassifier:
    """Train on (N, 1, 28, 28) digits in [0, 1] with random ±2-pixel shifts; Adam, cosine-decayed LR (CPU)."""
    check_image(images, "images", channels=1, value_range=(0, 1))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for first in range(0, len(images), batch_size):
            rows = order[first : first + batch_size]
            loss = F.cross_entropy(model(_shift(images[rows], gen)), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(rows)
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    return model.eval()


def load_classifier(path: str | Path | None = None, device: str | torch.device = "cpu") -> DigitClassifier:
    """The shipped classifier (or ``path``); if it is missing, train one on the offline split and cache it."""
    candidates = [Path(path)] if path is not None else [WEIGHTS_PATH, CACHE_PATH]
    model = DigitClassifier()
    for candidate in candidates:
        if candidate.exists():
            model.load_state_dict(load_file(str(candidate)))
            return model.to(device).eval()
    if path is not None:
        raise ValueError(f"no classifier weights at {path}.")
    images, labels = digits.to_device_tensors(digits.load_offline_mnist(train=True))
    model = train_classifier(digits.batch_images(images, slice(None)), labels, log=lambda _: None)
    CACHE_PATH.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(CACHE_PATH))
    return model.to(device).eval()


def _batched(classifier: DigitClassifier, images: torch.Tensor, fn, batch_size: int = 500) -> torch.Tensor:
    check_image(images, "images", channels=1)
    device = next(classifier.parameters()).device
    with torch.no_grad():
        return torch.cat([fn(images[i : i + batch_size].to(device).float().clamp(0, 1)).cpu()
                          for i in range(0, len(images), batch_size)])


def classify(classifier: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    """Predicted digits (N,) int64 for images (N, 1, 28, 28) in [0, 1] (values outside are clipped)."""
    return _batched(classifier.eval(), images, lambda x: classifier(x).argmax(1))


def features(classifier: DigitClassifier, images: torch.Tensor) -> torch.Tensor:
    """Penultimate features (N, 64) of images (N, 1, 28, 28) in [0, 1] (values outside are clipped)."""
    return _batched(classifier.eval(), images, classifier.features)


def to_mnist(images: torch.Tensor) -> torch.Tensor:
    """Part A images (N, C, H, W) in [-1, 1], C = 1 or 3 → (N, 1, 28, 28) in [0, 1]: channel mean, antialiased resize."""
    check_image(images, "images", channels=None)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, but have {images.shape[1]}.")
    gray = (images.float().mean(dim=1, keepdim=True) + 1) / 2  # (N, 1, H, W) in [0, 1]
    return F.interpolate(gray, size=(28, 28), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """d² = ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}), the Fréchet distance of two Gaussians."""
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, float)), np.atleast_1d(np.asarray(mu_b, float))
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, float)), np.atleast_2d(np.asarray(cov_b, float))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"means and covariances must match: got {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}.")
    # Tr((Σ_a Σ_b)^{1/2}) = Tr((A Σ_b A)^{1/2}) with A = Σ_a^{1/2}: two symmetric eigen-decompositions,
    # stable for the singular covariances of small sample sets (unlike a general matrix square root)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    trace_root = float(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum())
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F), N ≥ 2."""
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"feature sets must be (N, F) with the same F and N ≥ 2, but are {a.shape} and {b.shape}.")
    return frechet_distance_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@contextlib.contextmanager
def _counting_calls(model: nn.Module, total: int, progress: bool, log=None, what: str = ""):
    """Count ``model``'s forward calls: a progress bar of ``total`` with ``progress``, and after the first call a
    line to ``log`` with the expected time of all ``total`` (that call's time times ``total``)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="sampling", unit="call", disable=not progress)
    began = []

    def before(*_):
        began.append(time.perf_counter())

    def after(*_):
        bar.update(1)
        if len(began) == 1 and log is not None:
            call_s = time.perf_counter() - began[0]
            log(f"{what}{total} UNet calls, about {call_s * total:.0f} s ({call_s * 1000:.0f} ms for the first)")

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        bar.close()


def evaluate_checkpoint(checkpoint_dir: str | Path, samples_per_digit: int = 20, guidance: float | None = None,
                        num_ts: int | None = None, seed: int = 0, device: str = "auto",
                        classifier: DigitClassifier | None = None, batch_size: int = 200, progress: bool = False,
                        log=None) -> dict:
    """Judge a class-conditioned checkpoint (class-fm or class-ddpm) by its CFG samples.

    Draws ``samples_per_digit`` samples of each digit 0–9 (guidance and num_ts default to the checkpoint's
    config), classifies them, and compares their features with held-out digits. Returns a dict with
    ``per_digit`` (10 accuracies), ``accuracy``, ``frechet_distance`` (samples vs held-out) and
    ``frechet_distance_real`` (as many real training digits vs held-out: the floor at this sample size).
    ``progress`` shows a bar of UNet calls (one per sampling step and batch); ``log`` (a callable) gets a
    line with the expected cost after the first call (its time times the number of calls).
    """
    from reference.training import load_model, sample_digits

    model, config, name = load_model(checkpoint_dir, device)
    if not name.startswith("class"):
        raise ValueError(f"evaluate needs a class-conditioned checkpoint (class-fm, class-ddpm), but got {name}.")
    if samples_per_digit < 2:
        raise ValueError(f"samples_per_digit must be at least 2, but got {samples_per_digit}.")
    classifier = classifier if classifier is not None else load_classifier()
    dev = next(model.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    labels = torch.arange(10).repeat(samples_per_digit)  # (10·S,)
    steps = num_ts if num_ts is not None else config.num_ts
    batches = range(0, len(labels), batch_size)
    what = f"sampling {len(labels)} digits on {dev}: {len(batches)} batch(es) x {steps} steps = "
    start = time.perf_counter()
    with _counting_calls(model, len(batches) * steps, progress, log, what):
        samples = torch.cat([sample_digits(name, model, config, gen, labels[i : i + batch_size], num_ts,
                                           guidance).cpu() for i in batches])  # (10·S, 1, 28, 28)
    sample_s = time.perf_counter() - start
    predicted = classify(classifier, samples)
    per_digit = [float((predicted[labels == d] == d).float().mean()) for d in range(10)]

    def real(train: bool, n: int) -> torch.Tensor:
        split = digits.load_mnist(config.data_root, train=train, offline=config.offline)
        images, _ = digits.to_device_tensors(split)
        rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
        return digits.batch_images(images, rows)

    held_out = features(classifier, real(False, 2000))
    return {
        "experiment": name,
        "checkpoint": str(checkpoint_dir),
        "num_samples": len(labels),
        "num_ts": num_ts if num_ts is not None else config.num_ts,
        "guidance": guidance if guidance is not None else config.guidance,
        "per_digit": per_digit,
        "accuracy": float((predicted == labels).float().mean()),
        "frechet_distance": frechet_distance(features(classifier, samples), held_out),
        "frechet_distance_real": frechet_distance(features(classifier, real(True, len(labels))), held_out),
        "sampling_s": sample_s,
    }
