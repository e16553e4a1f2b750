"""Turning a feature map or a token sequence into one vector per image."""

from __future__ import annotations

from typing import Any

import torch

from headstart.errors import SettingsError
from headstart.features.spec import POOLINGS

__all__ = ["POOLINGS", "pool"]

GEM_P = 3.0


def pool(x: Any, mode: str) -> tuple[Any, str]:
    """Pool ``x`` to ``(N, D)``; returns the vectors and the pooling actually applied.

    4-D ``(N, C, H, W)`` maps pool over H and W; 3-D ``(N, T, C)`` token sequences (vision transformers)
    pool over T, with ``cls`` taking token 0 (``clsavg``: token 0 and the mean of the others, concatenated, as in
    DINOv2's linear evaluation); 2-D input is already a vector (pooling ``"none"``).
    """
    if x.ndim == 2:
        return x, "none"
    if x.ndim == 4:
        dims: tuple[int, ...] = (2, 3)
        if mode in ("cls", "clsavg"):
            raise SettingsError(
                f"'{mode}' needs a token sequence (N, T, C), but this node outputs a feature map "
                f"{tuple(x.shape)}; use avg, max, avgmax or gem",
                "pooling",
            )
    elif x.ndim == 3:
        dims = (1,)
        if mode == "cls":
            return x[:, 0], "cls"
        if mode == "clsavg":
            return torch.cat([x[:, 0].float(), x[:, 1:].float().mean(dim=1)], dim=1), "clsavg"
    else:
        return x.flatten(1), "flatten"
    x = x.float()
    if mode == "avg":
        return x.mean(dim=dims), mode
    if mode == "max":
        return x.amax(dim=dims), mode
    if mode == "avgmax":
        return torch.cat([x.mean(dim=dims), x.amax(dim=dims)], dim=1), mode
    if mode == "gem":
        return x.clamp(min=1e-6).pow(GEM_P).mean(dim=dims).pow(1.0 / GEM_P), mode
    raise SettingsError(f"'{mode}' is not one of {', '.join(POOLINGS)}", "pooling")
