"""Limits on input that settings refer to, in a module that imports nothing (checking params.yaml, which every
stage and the always-run `versions` stage does, must not pay for numpy and PIL)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit (about 0.25 GB of RGB)
