"""Image helpers: does every source load as a [-1, 1] tensor, and do grids and masks come out right?"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fwd_kit.images import center_square_mask, load_image, rect_mask, save_grid, to_display


def test_load_skimage_photo_is_a_center_crop_in_range():
    import skimage.data

    x = load_image("skimage:astronaut", size=64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert -1 <= x.min() < -0.5 and 0.5 < x.max() <= 1
    # independent oracle: the astronaut photo is already square, so PIL's antialiased resize of it
    expected = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((64, 64), Image.Resampling.BILINEAR))
    assert np.abs(to_display(x)[0] * 255 - expected).mean() < 3  # mean error of a few grey levels
    assert load_image("skimage:camera").shape == (1, 3, 64, 64)  # greyscale → 3 channels


def test_load_png_with_alpha_composites_on_white(tmp_path):
    """A transparent drawing on a 300×600 canvas: the background turns white, the stroke stays."""
    rgba = np.zeros((300, 600, 4), dtype=np.uint8)  # fully transparent black
    rgba[:, 280:320] = (255, 0, 0, 255)  # an opaque red bar in the middle
    Image.fromarray(rgba, "RGBA").save(tmp_path / "drawing.png")
    x = load_image(tmp_path / "drawing.png", size=30)
    assert x.shape == (1, 3, 30, 30)
    assert torch.allclose(x[0, :, :, :5], torch.ones(3, 30, 5))  # white left of the bar (crop kept the middle)
    assert torch.allclose(x[0, :, :, 15], torch.tensor([1.0, -1.0, -1.0])[:, None].expand(3, 30))  # red bar


def test_load_numpy_uint8_and_float_agree():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    a = load_image(array, size=20)
    b = load_image(array.astype(np.float32) / 255, size=20)
    c = load_image(Image.fromarray(array), size=20)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
    same = load_image(array[:, 5:45], size=40)  # already square at full size: pixels unchanged
    assert torch.allclose(same[0].permute(1, 2, 0), torch.from_numpy(array[:, 5:45] / 127.5 - 1).float(), atol=1e-5)


@pytest.mark.parametrize("source", ["no/such/file.png", "skimage:nonexistent", 3.5, np.zeros((4, 4, 2))])
def test_bad_sources_raise_value_error(source):
    with pytest.raises(ValueError, match="expected|Expected|must"):
        load_image(source)


def test_unreachable_url_says_to_download(monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(ValueError, match="Could not fetch.*pass the file's path"):
        load_image("https://example.com/campanile.jpg")


def test_to_display_range_shape_and_dtype():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5).expand(2, 3, 1, 5).half()
    out = to_display(x)
    assert out.shape == (2, 1, 5, 3) and out.dtype == np.float32
    assert np.allclose(out[0, 0, :, 0], [0.0, 0.0, 0.5, 1.0, 1.0])
    assert to_display(x[0]).shape == (1, 1, 5, 3)
    with pytest.raises(ValueError, match="tensor"):
        to_display(torch.zeros(1, 1, 4, 4))


def test_save_grid_writes_png_with_mixed_sizes(tmp_path):
    images = [torch.zeros(1, 3, 64, 64), torch.ones(3, 256, 256), -torch.ones(1, 3, 32, 32)]
    fig = save_grid(images, tmp_path / "out" / "grid.png", titles=["a", "b", "c"], ncols=2, suptitle="test")
    with Image.open(tmp_path / "out" / "grid.png") as png:
        assert png.format == "PNG" and png.size == (440, 480)  # 2 × 2 cells of 2.2 in + a title, 100 dpi
        pixels = np.asarray(png.convert("L"))
    assert pixels.min() == 0 and pixels.max() == 255  # the black and the white image were drawn
    assert len([ax for ax in fig.axes if ax.images]) == 3
    save_grid(torch.zeros(4, 3, 8, 8), tmp_path / "batch.png")
    with pytest.raises(ValueError, match="titles"):
        save_grid(images, tmp_path / "x.png", titles=["only one"])


def test_masks():
    mask = rect_mask((1, 3, 64, 64), 2, 20, 24, 42)  # the course's Campanile mask
    assert mask.shape == (1, 1, 64, 64) and mask.sum() == 18 * 18
    assert mask[0, 0, 2, 24] == 1 and mask[0, 0, 20, 24] == 0 and mask[0, 0, 2, 42] == 0
    square = center_square_mask(64, 0.5)
    assert square.sum() == 32 * 32 and square[0, 0, 32, 32] == 1 and square[0, 0, 0, 0] == 0
    with pytest.raises(ValueError, match="inside"):
        rect_mask((64, 64), 10, 5, 0, 4)
