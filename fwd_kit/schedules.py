"""Provided helper of the DDPM part: a schedule recomputed in float64 (DDPM time: t = 0 clean)."""

from __future__ import annotations

import torch


def _schedule64(schedule: dict, num_ts: int) -> dict:
    """The schedule recomputed from its betas in float64 on the CPU, checking it has T = num_ts steps.

    float64 keeps 1 − ᾱ_t accurate near t = 1 (in float32, 1 − ᾱ_1 = β_1 = 1e-4 is off by ~6e-4
    relative); the samplers read its entries as Python floats, the losses move √ᾱ_t tables to the device.
    """
    if len(schedule["betas"]) != num_ts:
        raise ValueError(f"the schedule has {len(schedule['betas'])} steps but num_ts is {num_ts}: build it "
                         f"with ddpm_schedule(..., num_ts={num_ts}).")
    betas = torch.as_tensor(schedule["betas"]).detach().to("cpu", torch.float64)
    alphas = 1 - betas
    return dict(betas=betas, alphas=alphas, alpha_bars=torch.cumprod(alphas, dim=0))
