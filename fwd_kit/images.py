"""Image helpers for Part A: load any picture as a [-1, 1] tensor, show and save grids, make masks.

Time convention: none here (no diffusion); Part A's is t = 0 clean, t = 999 pure noise.

Part A images are float tensors in [-1, 1] of shape (B, 3, H, W); a [0, 1] picture p becomes 2p − 1.
Masks for inpainting are (1, 1, H, W) float tensors, 1 where the image is regenerated and 0 where it
is kept; they broadcast over the batch and the channels.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

# Photos shipped inside scikit-image (no download needed), usable as load_image("skimage:NAME").
SKIMAGE_PHOTOS = (
    "astronaut", "camera", "cat", "chelsea", "coffee", "rocket", "coins", "moon", "hubble_deep_field",
    "retina", "immunohistochemistry", "logo", "page", "text", "brick", "grass", "gravel", "horse",
)


def _to_float_rgb(array: np.ndarray) -> np.ndarray:
    """An H×W, H×W×3 or H×W×4 array (uint8 0..255, bool, or float 0..1) → float32 H×W×3 in [0, 1].

    An alpha channel is composited on white, so a transparent drawing gets a white background.
    """
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == bool or np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    else:
        raise ValueError(f"An image array must be uint8 (0..255), bool or float (0..1), but has dtype {array.dtype}.")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"An image array must have shape (H, W), (H, W, 3) or (H, W, 4), but has {array.shape}.")
    if array.shape[2] == 4:
        rgb, alpha = array[:, :, :3], array[:, :, 3:]
        array = rgb * alpha + (1.0 - alpha)  # composite on white
    if not np.isfinite(array).all() or array.min() < -1e-3 or array.max() > 1 + 1e-3:
        raise ValueError(
            f"A float image array must have values in [0, 1], but they span [{array.min():.3g}, {array.max():.3g}]."
        )
    return np.clip(array, 0.0, 1.0)


def _pil_to_array(image) -> np.ndarray:
    """A PIL image in any mode → uint8 H×W×3 or H×W×4 (palette transparency kept as alpha)."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))


def _fetch_url(url: str) -> bytes:
    """Download ``url`` with the standard library; a clear ValueError if that fails."""
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "fun-with-diffusion"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.read()
    except Exception as err:  # URLError, HTTPError, timeouts, ...
        raise ValueError(
            f"Could not fetch the image at {url} ({err}). Download it yourself and pass the file's path instead."
        ) from err


def _source_to_array(source) -> np.ndarray:
    """Any supported image source → a numpy array (see ``load_image``)."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return _pil_to_array(source)
    if isinstance(source, np.ndarray):
        return source
    if isinstance(source, torch.Tensor):
        raise ValueError("source is already a tensor; Part A images are (B, 3, H, W) tensors in [-1, 1] as they are.")
    if not isinstance(source, (str, Path)):
        raise ValueError(
            f"source must be a file path, an http(s) URL, 'skimage:NAME', a PIL image or a numpy array, "
            f"but got {type(source).__name__}."
        )
    text = str(source)
    if text.startswith("skimage:"):
        import skimage.data

        name = text.split(":", 1)[1]
        if name not in SKIMAGE_PHOTOS:
            raise ValueError(f"Unknown scikit-image photo {name!r}; expected one of {', '.join(SKIMAGE_PHOTOS)}.")
        return getattr(skimage.data, name)()
    if text.startswith(("http://", "https://")):
        with Image.open(io.BytesIO(_fetch_url(text))) as image:
            return _pil_to_array(image)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(
            f"Expected an image file (e.g. a .jpg or .png), an http(s) URL or 'skimage:NAME', but {text!r} is none."
        )
    with Image.open(path) as image:
        return _pil_to_array(image)


def load_image(source, size: int = 64) -> torch.Tensor:
    """Load a picture as a (1, 3, size, size) float32 CPU tensor in [-1, 1]: center-cropped, then resized.

    source: a file path (photo, or hand-drawn PNG whose transparency becomes white), an http(s) URL,
    ``"skimage:NAME"`` for a photo shipped with scikit-image (``SKIMAGE_PHOTOS``, e.g.
    ``"skimage:astronaut"``), a PIL image, or a numpy array H×W(×3 or ×4), uint8 0..255 or float 0..1.
    The largest centred square is kept and resized with antialiasing.
    """
    import torchvision.transforms.functional as TF

    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, but got {size!r}.")
    array = _to_float_rgb(np.asarray(_source_to_array(source)))
    image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)  # (3, H, W) in [0, 1]
    side = min(image.shape[1:])
    image = TF.center_crop(image, [side, side])
    image = TF.resize(image, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return (2 * image.clamp(0, 1) - 1).unsqueeze(0).float()  # (1, 3, size, size) in [-1, 1]


def to_display(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) or (3, H, W) tensor in [-1, 1], any dtype/device → (B, H, W, 3) float32 array in [0, 1]."""
    if not isinstance(x, torch.Tensor) or x.ndim not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a (B, 3, H, W) or (3, H, W) tensor in [-1, 1], but got {shape}.")
    x = x.detach().float().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _as_image_list(images) -> list[np.ndarray]:
    """One (B, 3, H, W) tensor or a list of (1, 3, H, W)/(3, H, W) tensors → list of H×W×3 arrays."""
    if isinstance(images, torch.Tensor):
        return list(to_display(images))
    if not isinstance(images, (list, tuple)) or not images:
        raise ValueError("images must be a (B, 3, H, W) tensor or a non-empty list of (3, H, W) tensors.")
    out = []
    for i, image in enumerate(images):
        if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] != 1:
            raise ValueError(f"images[{i}] must hold one image, but has batch size {image.shape[0]}.")
        out.append(to_display(image)[0])
    return out


def grid_figure(images, titles=None, ncols: int | None = None, suptitle: str | None = None, pyplot: bool = False):
    """A matplotlib ``Figure`` showing ``images`` in a grid, one per cell.

    images: a (B, 3, H, W) tensor or a list of (1, 3, H, W)/(3, H, W) tensors in [-1, 1], sizes may differ.
    titles: one string per image (or None); ncols: images per row (default: all in one row, at most 6).
    pyplot: register the figure with ``matplotlib.pyplot`` (for ``plt.show()``); by default it is a
    standalone ``Figure`` that needs no display and is freed when unused.
    """
    arrays = _as_image_list(images)
    if titles is not None and len(titles) != len(arrays):
        raise ValueError(f"titles must have one entry per image ({len(arrays)}), but has {len(titles)}.")
    ncols = ncols or min(len(arrays), 6)
    nrows = math.ceil(len(arrays) / ncols)
    figsize = (2.2 * ncols, 2.2 * nrows + (0.4 if suptitle else 0.0))
    if pyplot:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(arrays):
            ax.imshow(arrays[k], interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[k]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _save_deliverable(fig, deliverable) -> None:
    """Also save ``fig`` for the write-up page when ``deliverable`` (a ``fwd_kit.figure_notes.Note``) is given."""
    if deliverable is not None:
        from fwd_kit.figure_notes import save_deliverable

        save_deliverable(fig, deliverable)


def save_grid(images, path, titles=None, ncols: int | None = None, suptitle: str | None = None, deliverable=None):
    """Save a grid of ``images`` (see ``grid_figure``) to ``path`` (PNG, PDF, ...); returns the Figure.

    Needs no display: the standalone figure is drawn by matplotlib's Agg renderer. ``deliverable``: a
    ``fwd_kit.figure_notes.note(...)``; the figure is then also saved for the write-up page.
    """
    fig = grid_figure(images, titles=titles, ncols=ncols, suptitle=suptitle)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    _save_deliverable(fig, deliverable)
    return fig


def show_grid(images, titles=None, ncols: int | None = None, suptitle: str | None = None, deliverable=None) -> None:
    """Display a grid of ``images`` (see ``grid_figure``): inline in a notebook, else in a pyplot window.

    deliverable: a ``fwd_kit.figure_notes.note(...)`` naming the write-up deliverable this figure is (with
    its settings); the figure is then also saved to the write-up folder, its suptitle as the caption.
    Returns None on purpose: a returned Figure would be displayed a second time as the cell's value.
    Use ``grid_figure`` or ``save_grid`` to get the Figure.
    """
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        buffer = io.BytesIO()  # render to PNG ourselves: works whatever matplotlib backend is active
        fig = grid_figure(images, titles=titles, ncols=ncols, suptitle=suptitle)
        fig.savefig(buffer, format="png", dpi=100)
        _save_deliverable(fig, deliverable)
        display(Image(data=buffer.getvalue()))
        return None
    import matplotlib.pyplot as plt

    fig = grid_figure(images, titles=titles, ncols=ncols, suptitle=suptitle, pyplot=True)
    _save_deliverable(fig, deliverable)
    plt.show()
    return None


def rect_mask(image_shape, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """A (1, 1, H, W) float mask: 1 on rows [top, bottom) × columns [left, right) (regenerate), 0 elsewhere (keep).

    image_shape: (H, W), (C, H, W) or (B, C, H, W) — e.g. ``image.shape``. The course's Campanile mask is
    ``rect_mask((64, 64), 2, 20, 24, 42)``.
    """
    if len(image_shape) not in (2, 3, 4):
        raise ValueError(f"image_shape must be (H, W), (C, H, W) or (B, C, H, W), but got {tuple(image_shape)}.")
    height, width = int(image_shape[-2]), int(image_shape[-1])
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ValueError(
            f"The rectangle rows [{top}, {bottom}) × columns [{left}, {right}) must be non-empty and lie inside "
            f"the {height}×{width} image."
        )
    mask = torch.zeros(1, 1, height, width)
    mask[:, :, top:bottom, left:right] = 1.0
    return mask


def center_square_mask(size: int, frac: float = 0.5) -> torch.Tensor:
    """A (1, 1, size, size) mask whose centred square of side ≈ frac·size is 1 (regenerate)."""
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], but got {frac!r}.")
    side = max(1, round(frac * size))
    top = (size - side) // 2
    return rect_mask((size, size), top, top + side, top, top + side)
