"""Input checks shared by every stage: bad input gets a ValueError that says what was expected.

Each check returns nothing and raises ``ValueError`` with a full sentence naming the argument, what
was expected and what was received, so that a student sees how to fix the call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_tensor(x, name: str) -> None:
    """``x`` must be a floating-point ``torch.Tensor``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, but got {type(x).__name__}.")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, but has dtype {x.dtype}.")


def check_image(
    x,
    name: str = "image",
    channels: int | None = 3,
    value_range: tuple[float, float] | None = None,
    slack: float = 1e-3,
) -> None:
    """``x`` must be a float tensor of shape (B, channels, H, W), with values in ``value_range`` if given.

    ``value_range`` is checked for clean images only (noisy images are unbounded); ``slack`` absorbs
    rounding, e.g. fp16 storage of exactly ±1. A tensor on PyTorch's ``meta`` device holds no values: only
    its shape is checked.
    """
    check_tensor(x, name)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
        raise ValueError(f"{name} must have shape {want}, but has shape {tuple(x.shape)}.")
    if x.device.type == "meta":  # no values to check (the graders' device check runs the loops on meta tensors)
        return
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if value_range is not None:
        lo, hi = value_range
        x_min, x_max = float(x.min()), float(x.max())
        if x_min < lo - slack or x_max > hi + slack:
            hint = " Part A images live in [-1, 1]: use 2 * x - 1 on a [0, 1] image." if (lo, hi) == (-1, 1) else ""
            raise ValueError(
                f"{name} must have values in [{lo}, {hi}], but its values span [{x_min:.3g}, {x_max:.3g}].{hint}"
            )


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """``a`` and ``b`` must have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, but have {tuple(a.shape)} and {tuple(b.shape)}."
        )


def check_timestep(t, num_train_timesteps: int, name: str = "t") -> int:
    """``t`` must be an integer timestep in [0, num_train_timesteps − 1]; returns it as ``int``."""
    if isinstance(t, torch.Tensor):
        if t.numel() != 1:
            raise ValueError(f"{name} must be a single timestep, but has shape {tuple(t.shape)}.")
        t = t.item()
    if isinstance(t, float) and t.is_integer():
        t = int(t)
    if not isinstance(t, int) or isinstance(t, bool):
        raise ValueError(f"{name} must be an integer timestep, but got {t!r}.")
    if not 0 <= t < num_train_timesteps:
        raise ValueError(f"{name} must be in [0, {num_train_timesteps - 1}], but got {t}.")
    return t


def check_i_start(i_start, timesteps: Sequence[int]) -> int:
    """``i_start`` must index a timestep that still has a next one: 0 ≤ i_start ≤ len(timesteps) − 2."""
    if not isinstance(i_start, int) or isinstance(i_start, bool):
        raise ValueError(f"i_start must be an integer index into the timesteps, but got {i_start!r}.")
    last = len(timesteps) - 2
    if not 0 <= i_start <= last:
        raise ValueError(
            f"i_start must be an index in [0, {last}] of the {len(timesteps)} timesteps (it indexes the list; "
            f"it is not a timestep), but got {i_start}."
        )
    return i_start


def check_timesteps(timesteps: Sequence[int], num_train_timesteps: int) -> list[int]:
    """``timesteps`` must be strictly decreasing integers in [0, num_train_timesteps − 1]."""
    ts = [int(t) for t in timesteps]
    if len(ts) < 2:
        raise ValueError(f"timesteps must hold at least two timesteps, but holds {len(ts)}.")
    if any(a <= b for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly decreasing (noisiest first), but got {ts[:6]}...")
    if ts[0] >= num_train_timesteps or ts[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {num_train_timesteps - 1}], but span [{ts[-1]}, {ts[0]}].")
    return ts


def check_embeds(embeds, name: str, width: int | None = None, batch: int | None = None) -> None:
    """Prompt embeddings must be a float tensor (B, tokens, width) matching the UNet's text width."""
    check_tensor(embeds, name)
    if embeds.ndim != 3:
        raise ValueError(f"{name} must have shape (B, tokens, width), but has shape {tuple(embeds.shape)}.")
    if width is not None and embeds.shape[-1] != width:
        raise ValueError(
            f"{name} has width {embeds.shape[-1]}, but the UNet expects {width} "
            f"(unet.config.encoder_hid_dim): were they computed for another model?"
        )
    if batch is not None and embeds.shape[0] not in (1, batch):
        raise ValueError(f"{name} has batch size {embeds.shape[0]}; expected 1 or {batch} (the image batch).")


def check_mask(mask, image) -> None:
    """``mask`` must be a (1 or B, 1 or 3, H, W) tensor of zeros and ones matching ``image`` (B, 3, H, W)."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, but got {type(mask).__name__}.")
    batch, channels, height, width = image.shape
    if mask.ndim != 4 or mask.shape[0] not in (1, batch) or mask.shape[1] not in (1, channels) \
            or tuple(mask.shape[2:]) != (height, width):
        raise ValueError(
            f"mask must have shape (1 or {batch}, 1 or {channels}, {height}, {width}) to match the image, "
            f"but has shape {tuple(mask.shape)}."
        )
    if mask.device.type != "meta" and not ((mask == 0) | (mask == 1)).all():  # a meta tensor has no values
        raise ValueError("mask must hold only 0 (keep the original) and 1 (regenerate), but has other values.")
