"""What a runner is: the part of :func:`headstart.features.engine.embed` that turns images into vectors.

The engine decides what to compute (a :class:`Job`: the images missing from the cache, the loaded backbone, the
batch size) and where the vectors go (a sink, the cache's open segment); a :class:`Runner` computes them, the
local one on this machine (:class:`headstart.features.local_engine.LocalRunner`), the Ray one on a cluster
(:class:`headstart.features.ray_engine.RayRunner`). Both run every batch through
:class:`headstart.features.forward.Forward`, so their vectors are the same bits.

This module imports neither torch nor Ray: a run whose images are all cached needs :class:`RunStats` and
:class:`EmbedError` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from headstart._progress import Progress
from headstart.errors import UserError
from headstart.features.spec import EmbedOptions

__all__ = ["EmbedError", "Job", "RunStats", "Runner", "Sink", "strict_failure"]

Sink = Callable[[Sequence[str], Mapping[str, np.ndarray], Sequence[tuple[str, str]]], None]


class EmbedError(UserError, RuntimeError):
    """The embed run cannot go on (strict mode met a broken image, or a bad device/precision)."""


def strict_failure(describe: Callable[[str], str], failure: tuple[str, str]) -> EmbedError:
    """The error a strict run stops with at its first broken image."""
    item_id, error = failure
    return EmbedError(
        f"image {describe(item_id)} cannot be used: {error}. Set `embed.on_error: skip` (or --on-error skip) to "
        "list such images in the failures table and go on"
    )


@dataclass
class RunStats:
    """Counts and seconds of one run: the wall time, and where the main thread's time went. ``forward_seconds``
    adds up every forward pass, on however many ``forward_workers`` ran them side by side."""

    computed: int = 0
    failed: int = 0
    wait_seconds: float = 0.0
    forward_seconds: float = 0.0
    write_seconds: float = 0.0
    decode_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    forward_workers: int = 1
    plan: str = ""

    @property
    def images_per_second(self) -> float:
        return self.computed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def busy(self) -> float:
        """The forward workers' share of the wall time spent in forward passes."""
        return self.forward_seconds / max(1e-9, self.wall_seconds * max(1, self.forward_workers))

    def summary(self) -> str:
        wall = self.wall_seconds or 1e-9
        workers = f"{self.forward_workers} worker{'s' if self.forward_workers != 1 else ''}"
        return (
            f"{self.computed} images in {self.wall_seconds:.1f} s ({self.images_per_second:.1f} img/s): "
            f"waiting for decoded images {self.wait_seconds:.1f} s ({self.wait_seconds / wall:.0%}), "
            f"forward pass {self.forward_seconds:.1f} s on {workers} ({self.busy():.0%} busy), "
            f"writing {self.write_seconds:.1f} s ({self.write_seconds / wall:.0%}); "
            f"decoding took {self.decode_cpu_seconds:.1f} CPU s" + (f"; {self.plan}" if self.plan else "")
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "computed": self.computed,
            "failed": self.failed,
            "wall_seconds": round(self.wall_seconds, 3),
            "wait_seconds": round(self.wait_seconds, 3),
            "forward_seconds": round(self.forward_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
            "decode_cpu_seconds": round(self.decode_cpu_seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


@dataclass(frozen=True)
class Job:
    """The images to embed and everything needed to embed them.

    ``todo``: sorted ids of ``prepared`` missing from the cache. ``backbone``, ``extractor`` and ``device`` are
    what :func:`headstart.features.resolved.load_resolved` loaded; ``keys`` maps the extractor's
    ``(node, pooling)`` outputs to cache keys; ``reduce_to``: decode JPEGs reduced to about this size (or
    ``None``); ``describe(id)`` names an image in an error.
    """

    prepared: pd.DataFrame
    todo: list[str]
    backbone: Any
    extractor: Any
    device: Any
    keys: Mapping[tuple[str, str], str]
    precision: str
    reduce_to: int | None
    options: EmbedOptions
    describe: Callable[[str], str] = str
    name: str = "embed"

    @property
    def strict(self) -> bool:
        return self.options.on_error == "raise"


class Runner(Protocol):
    """Computes the vectors of ``job`` and hands every batch to ``sink`` (on the calling thread, in order).

    Returns the run's account and what to record of the engine (``{"engine": "local"}``, or the cluster).
    """

    def run(self, job: Job, sink: Sink, progress: Progress) -> tuple[RunStats, dict[str, Any]]: ...
