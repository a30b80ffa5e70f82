"""Provided helpers of class conditioning: one-hot class vectors and classifier-free-guidance dropout."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fwd_kit.validate import check_tensor


def one_hot(labels, num_classes: int = 10) -> torch.Tensor:
    """Integer class labels (N,) in 0 … num_classes − 1 → one-hot float32 vectors (N, num_classes)."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D tensor of integers, but has shape {tuple(labels.shape)} "
                         f"and dtype {labels.dtype}.")
    if labels.device.type != "meta":  # a meta tensor (the graders' device check) has no values to check
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if bad.numel() > 0:
            raise ValueError(f"labels must be classes in 0 … {num_classes - 1}, but include {bad[0].item()}.")
    return F.one_hot(labels.long(), num_classes).float()


def drop_classes(c: torch.Tensor, p_uncond: float, generator=None) -> torch.Tensor:
    """Classifier-free-guidance dropout: each row of c (N, K) becomes the zero vector w.p. p_uncond.

    The keep/drop draw is ``torch.rand(N) >= p_uncond`` with ``generator`` on c's device.
    """
    check_tensor(c, "c")
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must be a probability in [0, 1], but got {p_uncond}.")
    keep = torch.rand(c.shape[0], generator=generator, device=c.device) >= p_uncond  # (N,)
    return c * keep.to(c.dtype).unsqueeze(1)
