"""The local runner: images decoded on this machine, forward passes on its cores, batches into the sink in order.

The calling thread reads batches (decoded in line, or by decoding processes: :mod:`headstart.features.balance`
chooses on a CPU) and hands each to a pool of forward workers, Python threads that each run whole batches
through :class:`~headstart.features.forward.Forward` on one intra-op thread (torch releases the GIL while it
computes). Finished batches go to the sink on the calling thread, in the order they were read.

:func:`decode_ahead` starts the decoding as soon as the backbone's preprocessing is known, so that the images
are being decoded while the extractor is built and probed; the runner then takes those batches first.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from PIL import Image

from headstart._progress import Progress
from headstart.features.balance import BalancedLoader, Plan
from headstart.features.forward import Forward, torch_threads
from headstart.features.reader import Batch, auto_workers, collate, cpu_cores, items_of, make_loader
from headstart.features.runner import Job, RunStats, Sink, strict_failure
from headstart.features.spec import EmbedOptions

__all__ = ["Ahead", "LocalRunner", "decode_ahead", "feed"]

log = logging.getLogger(__name__)


def feed(dataset: Any, device: torch.device, batch_size: int, num_workers: int | str) -> tuple[Any, Callable[[], Plan]]:
    """The batches of ``dataset`` for the forward workers, and a function that says how they are decoded.

    ``num_workers`` given: that many decoding processes. ``auto`` on a CPU: chosen by measurement on the first
    batches (:class:`~headstart.features.balance.BalancedLoader`); ``auto`` on a GPU: up to 8 processes. On a
    CPU there is a forward worker per core; on a GPU, one.
    """
    pin = device.type == "cuda"
    if num_workers == "auto" and device.type == "cpu":
        balanced = BalancedLoader(
            dataset, batch_size, cpu_cores(), collate, lambda rest, w: make_loader(rest, batch_size, w, pin)
        )
        return balanced, lambda: balanced.plan
    batches = -(-len(dataset) // batch_size)
    workers = auto_workers(device, batches) if num_workers == "auto" else int(num_workers)
    forward = cpu_cores() if device.type == "cpu" else 1
    plan = Plan(workers, forward, "num_workers set" if num_workers != "auto" else f"auto on {device.type}")
    return make_loader(dataset, batch_size, workers, pin_memory=pin), lambda: plan


@dataclass(frozen=True)
class Ahead:
    """Batches of ``todo`` already being decoded (:func:`decode_ahead`): the feed and its plan."""

    todo: tuple[str, ...]
    loader: Any
    plan: Callable[[], Plan]

    def close(self) -> None:
        """Stop decoding (the run did not need these batches after all)."""
        if hasattr(self.loader, "close"):
            self.loader.close()


def decode_ahead(
    backbone: Any, prepared: pd.DataFrame, todo: list[str], device: torch.device, options: EmbedOptions,
    reduce_to: int | None,
) -> Ahead:
    """The feed of ``todo``'s images, already decoding in line when it can start before the first batch is asked
    for (``num_workers: auto`` on a CPU); otherwise it starts when the runner reads it."""
    loader, plan = _feed(backbone, prepared, todo, device, options, reduce_to)
    if hasattr(loader, "start"):
        # Every image format's plugin imported here, not by the decoding thread: a decoding process forked while
        # that thread imports one would inherit the module's import lock held, for good.
        Image.init()
        loader.start()
    return Ahead(tuple(todo), loader, plan)


def _feed(
    backbone: Any, prepared: pd.DataFrame, todo: list[str], device: torch.device, options: EmbedOptions,
    reduce_to: int | None,
) -> tuple[Any, Callable[[], Plan]]:
    items = items_of(prepared, todo)
    batch_size = options.batch_size_for(device)
    return backbone.feed(items, device, batch_size, options.num_workers, options.max_image_pixels, reduce_to)


class LocalRunner:
    """Runs a :class:`~headstart.features.runner.Job` on this machine (see the module's docstring); ``ahead``:
    the job's images, already decoding."""

    def __init__(self, ahead: Ahead | None = None) -> None:
        self.ahead = ahead

    def run(self, job: Job, sink: Sink, progress: Progress) -> tuple[RunStats, dict[str, Any]]:
        backbone, device, options = job.backbone, job.device, job.options
        batch_size = options.batch_size_for(device)
        if self.ahead is not None and self.ahead.todo == tuple(job.todo):
            loader, plan = self.ahead.loader, self.ahead.plan
        else:
            if self.ahead is not None:
                self.ahead.close()
            loader, plan = _feed(backbone, job.prepared, job.todo, device, options, job.reduce_to)
        nodes, poolings = (tuple(dict.fromkeys(k[i] for k in job.keys)) for i in (0, 1))
        forward = Forward(job.extractor, job.keys, device, job.precision, batch_size, backbone.batch_stage(),
                          make=lambda: backbone.extractor(nodes, poolings))
        log.debug("embedding %d images: batch %d", len(job.todo), batch_size)
        workers = min(max(1, plan().forward), forward.workers or plan().forward)
        threads = torch_threads()
        pool = ThreadPoolExecutor(workers, "headstart-forward", initializer=forward.enter_worker)
        try:
            stats = _loop(loader, plan, workers, forward, pool, job, sink, progress)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            torch_threads(threads)
        stats.plan = replace(plan(), forward=workers).describe()
        return stats, {"engine": "local"}


def _loop(  # noqa: PLR0913
    loader: Any, plan: Callable[[], Plan], workers: int, forward: Forward, pool: ThreadPoolExecutor, job: Job,
    sink: Sink, progress: Progress,
) -> RunStats:
    """Read, hand out and collect batches: up to ``workers`` in flight while the next one is read (none while the
    plan is being measured)."""
    stats = RunStats(forward_workers=workers)
    pending: deque[tuple[Batch, Future | None]] = deque()
    start = time.perf_counter()

    def finish() -> None:
        batch, future = pending.popleft()
        arrays, seconds = future.result() if future is not None else ({}, 0.0)
        t0 = time.perf_counter()
        sink(batch.ids, arrays, batch.failures)
        stats.write_seconds += time.perf_counter() - t0
        stats.forward_seconds += seconds
        stats.computed += len(batch.ids)
        stats.failed += len(batch.failures)
        progress.update(len(batch.ids) + len(batch.failures))
        busy = stats.forward_seconds / max(1e-9, time.perf_counter() - start) / stats.forward_workers
        postfix = f"forward {busy:.0%}"
        progress.set_postfix_str(postfix + (f", failed {stats.failed}" if stats.failed else ""))

    for batch in _timed(iter(loader), stats):
        stats.decode_cpu_seconds += batch.decode_seconds
        if batch.failures and job.strict:
            raise strict_failure(job.describe, batch.failures[0])
        pending.append((batch, pool.submit(forward, batch.pixels) if batch.pixels is not None else None))
        while len(pending) > (0 if plan().measuring else workers):
            finish()
    while pending:
        finish()
    stats.wall_seconds = time.perf_counter() - start
    return stats


def _timed(iterator: Any, stats: RunStats) -> Any:
    """The batches of ``iterator``, adding the time spent waiting for each to ``stats.wait_seconds``."""
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            stats.wait_seconds += time.perf_counter() - t0
        yield batch

