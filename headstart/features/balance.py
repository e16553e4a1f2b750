"""Decoding processes against forward threads, chosen by measurement on the first batches.

On a CPU the cores are shared: every decoding process takes one from the forward pass. Which split is fastest
depends on the images (8x8 digits decode in microseconds, 12 MP photos in tens of milliseconds) and on the
model, so :class:`BalancedLoader` decodes the first batches in line, times decoding and the forward pass (at
all cores and at one core less), and then picks the number of decoding processes (0 to cores: one on every core,
with a single forward thread sharing them, when decoding dominates) and forward threads that the measurements
say is fastest (:func:`choose`). An explicit ``num_workers`` is never second-guessed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["BalancedLoader", "Plan", "choose", "forward_model"]

log = logging.getLogger(__name__)

_PROBE_BATCHES = 3  # one warm-up, one at all cores, one at a core less
_MARGIN = 1.05  # a decoding process must promise 5% more than in-line decoding (it costs a fork and IPC)


@dataclass(frozen=True)
class Plan:
    """How a run decodes and computes: decoding processes, forward threads and why."""

    workers: int
    threads: int
    why: str

    def describe(self) -> str:
        processes = f"{self.workers} decoding process{'es' if self.workers != 1 else ''}" if self.workers else (
            "decoding in line"
        )
        return f"{processes}, {self.threads} forward thread{'s' if self.threads != 1 else ''} ({self.why})"


def forward_model(seconds_at: dict[int, float]) -> Callable[[int], float]:
    """Forward seconds per image at ``t`` threads, ``serial + parallel / t``, fitted to the measured points.

    >>> f = forward_model({2: 0.010, 1: 0.018})
    >>> round(f(4), 4)
    0.006
    """
    points = sorted(seconds_at.items(), reverse=True)
    top, at_top = points[0]
    if len(points) == 1:
        return lambda t: at_top * top / max(1, t)  # nothing else known: perfect scaling (favours workers)
    low, at_low = points[1]
    parallel = max(0.0, (at_low - at_top) / (1 / low - 1 / top))
    serial = max(0.0, at_top - parallel / top)
    return lambda t: serial + parallel / max(1, t)


def choose(decode_seconds: float, forward: Callable[[int], float], cores: int) -> tuple[int, int, float]:
    """The ``(workers, threads, images/s)`` that maximises predicted throughput; ``workers <= cores``.

    In line, one image costs its decoding plus its forward pass at all cores. With ``w < cores`` processes on
    cores of their own, the two run side by side: ``w / decode`` images/s come in, ``1 / forward(cores - w)`` go
    out; the slower side sets the pace. With a process on every core and one forward thread sharing them (for
    images that take far longer to decode than to compute, such as 12 MP photos), the cores are the limit too:
    each image costs its decoding plus its forward pass on one thread, ``cores / (decode + forward(1))`` images/s.
    (Several forward threads sharing cores with decoding processes lose more at their barriers than they gain:
    measured, not modelled.) A choice other than decoding in line must promise 5% more than the best so far.

    >>> choose(0.002, lambda t: 0.020 / t, 2)[:2]     # small images: decoding in line wins
    (0, 2)
    >>> choose(0.030, lambda t: 0.020 / t, 8)[:2]     # photos on 8 cores: most decode, the rest compute
    (5, 3)
    >>> choose(0.030, lambda t: 0.013 / t, 2)[:2]     # photos on 2 cores: both decode, one thread computes
    (2, 1)
    """
    cores = max(1, cores)
    decode = max(decode_seconds, 1e-9)
    best = (0, cores, 1.0 / (decode_seconds + forward(cores)))
    for workers in range(1, cores):
        threads = cores - workers
        rate = min(workers / decode, 1.0 / forward(threads))
        if rate > best[2] * _MARGIN:
            best = (workers, threads, rate)
    if cores > 1:
        rate = min(cores / decode, 1.0 / forward(1), cores / (decode + forward(1)))
        if rate > best[2] * _MARGIN:
            best = (cores, 1, rate)
    return best


class BalancedLoader:
    """Batches of ``dataset``: the first few decoded in line and timed, the rest by the processes chosen.

    ``collate`` turns samples into a batch with ``decode_seconds`` and ``size``; ``make_loader(dataset, workers)``
    builds the loader for the rest. The time between handing out a batch and being asked for the next one is
    the consumer's: the forward pass and the write.
    """

    def __init__(
        self, dataset: Any, batch_size: int, cores: int, collate: Callable[[list], Any], make_loader: Callable
    ) -> None:
        self.dataset, self.batch_size, self.cores = dataset, batch_size, max(1, cores)
        self.collate, self.make_loader = collate, make_loader
        batches = -(-len(dataset) // batch_size)
        self.probe = _PROBE_BATCHES if self.cores > 1 and batches > _PROBE_BATCHES + 1 else batches
        self.plan = Plan(0, self.cores, "too few images to measure" if self.cores > 1 else "one core")

    def __iter__(self) -> Iterator[Any]:
        import torch
        from torch.utils.data import Subset

        schedule = [self.cores, self.cores, self.cores - 1] if self.probe == _PROBE_BATCHES else []
        decode, images, forward = 0.0, 0, {}
        for index in range(self.probe):
            torch.set_num_threads(schedule[index] if schedule else self.cores)
            lo = index * self.batch_size
            samples = [self.dataset[i] for i in range(lo, min(len(self.dataset), lo + self.batch_size))]
            batch = self.collate(samples)
            handed = time.perf_counter()
            yield batch
            consumed = time.perf_counter() - handed
            if index > 0:
                decode, images = decode + batch.decode_seconds, images + len(samples)
                forward[schedule[index] if schedule else self.cores] = consumed / max(1, len(samples))
        start = self.probe * self.batch_size
        if start >= len(self.dataset):
            return
        workers, threads, rate = choose(decode / max(1, images), forward_model(forward), self.cores)
        self.plan = Plan(
            workers,
            threads,
            f"measured: decoding {1000 * decode / max(1, images):.1f} ms/image, forward "
            + ", ".join(f"{1000 * s:.1f} ms/image at {t} thread{'s' if t > 1 else ''}" for t, s in forward.items())
            + f"; predicted {rate:.0f} images/s",
        )
        log.debug("balance: %s", self.plan.describe())
        torch.set_num_threads(threads)
        rest = Subset(self.dataset, range(start, len(self.dataset)))
        yield from self.make_loader(rest, workers)
