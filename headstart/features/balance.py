"""Decoding processes and forward workers, chosen by measurement on the first batches.

On a CPU every forward pass runs on one thread (:mod:`headstart.features.forward`), so the choice changes
only how fast the vectors come, never their bits: forward workers run whole batches side by side, one per
core, and the question left is who decodes. Which answer is fastest depends on the images (8x8 digits decode
in microseconds, 12 MP photos in tens of milliseconds) and on the model, so :class:`BalancedLoader` decodes the
first batches in line, times decoding and a forward pass, and picks the number of decoding processes that the
measurements say is fastest (:func:`choose`). Decoding in line runs on a thread of its own (:class:`_Ahead`),
a few batches ahead of the forward workers, so the cores never wait for it: it can start before the model is
built, it keeps decoding while the balancer times a forward pass, and its batches cover the time the decoding
processes take to start. Slow decoders stop measuring after the first batch when its figures already give every
core a decoding process: that batch's forward pass ran cold, which can only overstate the forward pass, and a
faster forward pass only wants more decoding processes. An explicit ``num_workers`` is never second-guessed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Subset

__all__ = ["BalancedLoader", "Plan", "choose"]

log = logging.getLogger(__name__)

_PROBE_BATCHES = 2  # one warm-up, one timed (each on one forward worker: the others wait, so keep them few)
_MARGIN = 1.05  # a decoding process must promise 5% more than in-line decoding (it costs a fork and IPC)
_AHEAD_PER_CORE = 4  # batches decoded ahead in line, per core: as many as a decoding process prefetches
_AHEAD_MAX = 32  # and never more (about 77 MB of 224 px batches of 16)


@dataclass(frozen=True)
class Plan:
    """How a run decodes and computes: decoding processes (0: in line), forward workers and why.

    ``measuring``: the first batches are being timed; the runner finishes each batch before asking for the next.
    """

    workers: int
    forward: int
    why: str
    measuring: bool = False

    def describe(self) -> str:
        processes = f"{self.workers} decoding process{'es' if self.workers != 1 else ''}" if self.workers else (
            "decoding in line"
        )
        return f"{processes}, {self.forward} forward worker{'s' if self.forward != 1 else ''} ({self.why})"


def choose(decode_seconds: float, forward_seconds: float, cores: int) -> tuple[int, float]:
    """The ``(decoding processes, images/s)`` that maximises predicted throughput, with a forward worker per core.

    ``decode_seconds`` and ``forward_seconds`` are one image's, each on one core. The cores bound the rate at
    ``cores / (decode + forward)`` images/s; decoding in line (on the calling thread, beside the forward
    workers) also at ``1 / decode``, and ``w`` decoding processes at ``w / decode``. A choice other than
    decoding in line must promise 5% more than the best so far.

    >>> choose(0.00001, 0.0005, 2)[0]    # small images: decoding in line wins
    0
    >>> choose(0.030, 0.013, 2)[0]       # photos on 2 cores: both decode
    2
    >>> choose(0.030, 0.020, 8)[0]       # photos on 8 cores: 5 processes keep the forward workers busy
    5
    """
    cores = max(1, cores)
    decode = max(decode_seconds, 1e-9)
    limit = cores / (decode + max(forward_seconds, 1e-9))
    best = (0, min(1.0 / decode, limit))
    for workers in range(1, cores + 1):
        rate = min(workers / decode, limit)
        if rate > best[1] * _MARGIN:
            best = (workers, rate)
    return best


class BalancedLoader:
    """Batches of ``dataset``: the first few decoded in line and timed, the rest by the processes chosen.

    ``collate`` turns samples into a batch with ``decode_seconds``; ``make_loader(dataset, workers)`` builds
    the loader for the rest. While it measures, :attr:`plan` says so, and the runner hands back each batch
    finished (forward pass and write) before asking for the next: the time between the two is one forward
    worker's. :meth:`start` begins decoding in line before the first batch is asked for (iterating starts it
    too); memory stays bounded by the batches decoded ahead, ``4 x cores`` and at most 32.
    """

    def __init__(
        self, dataset: Any, batch_size: int, cores: int, collate: Callable[[list], Any], make_loader: Callable
    ) -> None:
        self.dataset, self.batch_size, self.cores = dataset, batch_size, max(1, cores)
        self.collate, self.make_loader = collate, make_loader
        batches = -(-len(dataset) // batch_size)
        measure = batches > _PROBE_BATCHES + 1
        self.probe = _PROBE_BATCHES if measure else batches
        self.plan = Plan(0, self.cores, "measuring" if measure else "too few images to measure", measuring=measure)
        self._ahead: _Ahead | None = None

    def start(self) -> None:
        """Begin decoding in line now, in a thread, so the first batches are ready when they are asked for."""
        if self._ahead is None:
            depth = min(_AHEAD_MAX, _AHEAD_PER_CORE * self.cores)
            self._ahead = _Ahead(self.dataset, self.batch_size, self.collate, depth)

    def close(self) -> None:
        """Stop the decoding that :meth:`start` began, when the batches will not be read."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    def __iter__(self) -> Iterator[Any]:
        self.start()
        ahead, self._ahead = self._ahead, None
        try:
            yield from self._batches(ahead)
        finally:
            ahead.close()

    def _batches(self, ahead: _Ahead) -> Iterator[Any]:
        decode, forward, images, batches = 0.0, 0.0, 0, 0
        for index, (batch, size) in zip(range(self.probe), ahead):
            handed = time.perf_counter()
            yield batch
            consumed = time.perf_counter() - handed
            batches = index + 1
            if index == 0 and self.plan.measuring:  # cold: enough only when it already gives every core a process
                cold = (batch.decode_seconds / max(1, size), consumed / max(1, size))
                if choose(*cold, self.cores)[0] == self.cores:
                    decode, forward, images = batch.decode_seconds, consumed, size
                    break
            if index > 0:
                decode, forward, images = decode + batch.decode_seconds, forward + consumed, images + size
        if batches * self.batch_size >= len(self.dataset):
            return
        per_decode, per_forward = decode / max(1, images), forward / max(1, images)
        workers, rate = choose(per_decode, per_forward, self.cores)
        self.plan = Plan(
            workers,
            self.cores,
            f"measured{' on the first batch' if batches == 1 else ''}: decoding {1000 * per_decode:.1f} ms/image, "
            f"forward {1000 * per_forward:.1f} ms/image on one thread; predicted {rate:.0f} images/s",
        )
        log.debug("balance: %s", self.plan.describe())
        if workers == 0:
            yield from (batch for batch, _ in ahead)
            return
        # The thread finishes the batch in hand and the processes take the next one on: they start now (a fork),
        # and fill their queues while the forward workers take the batches the thread decoded.
        start = ahead.stop() * self.batch_size
        rest = iter(self.make_loader(Subset(self.dataset, range(start, len(self.dataset))), workers))
        yield from (batch for batch, _ in ahead)
        yield from rest


class _Ahead:
    """``(batch, images)`` of ``dataset`` in order, decoded by a thread of this process, at most ``depth`` ahead.

    PIL releases the GIL while it decodes and resizes, so the thread runs beside the forward workers and beside
    the building of the model. :meth:`stop` lets it finish the batch in hand and says how many it made in all.
    """

    def __init__(self, dataset: Any, batch_size: int, collate: Callable[[list], Any], depth: int) -> None:
        self.dataset, self.batch_size, self.collate = dataset, batch_size, collate
        self._queue: queue.Queue[Any] = queue.Queue(max(2, depth))
        self._lock = threading.Lock()
        self._claimed, self._limit = 0, -(-len(dataset) // batch_size)
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="headstart-decode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._claimed >= self._limit:
                        break
                    index, self._claimed = self._claimed, self._claimed + 1
                lo = index * self.batch_size
                samples = [self.dataset[i] for i in range(lo, min(len(self.dataset), lo + self.batch_size))]
                self._queue.put((self.collate(samples), len(samples)))
        except BaseException as err:  # noqa: BLE001 - raised in the consumer's thread
            self._queue.put(err)
        self._queue.put(None)

    def stop(self) -> int:
        """Claim no batch after the one in hand; returns the number of batches this thread decodes in all."""
        with self._lock:
            self._limit = self._claimed
            return self._limit

    def __iter__(self) -> Iterator[tuple[Any, int]]:
        while not self._ended:
            item = self._queue.get()
            if item is None or isinstance(item, BaseException):
                self._ended = True
                if item is not None:
                    raise item
                return
            yield item

    def close(self) -> None:
        """Stop decoding and let the thread end: a consumer that leaves early must not leave it blocked."""
        self.stop()
        for _ in self:
            pass
