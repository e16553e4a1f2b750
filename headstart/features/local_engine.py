"""The local runner: images decoded on this machine, forward passes on its cores, batches into the sink in order.

The calling thread reads batches (decoded in line, or by decoding processes: :mod:`headstart.features.balance`
chooses on a CPU) and hands each to a pool of forward workers, Python threads that each run whole batches
through :class:`~headstart.features.forward.Forward` on one intra-op thread (torch releases the GIL while it
computes). Finished batches go to the sink on the calling thread, in the order they were read.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from headstart._progress import Progress
from headstart.features.balance import BalancedLoader, Plan
from headstart.features.forward import Forward, torch_threads
from headstart.features.reader import Batch, Item, auto_workers, collate, cpu_cores, make_loader
from headstart.features.runner import Job, RunStats, Sink, strict_failure

__all__ = ["LocalRunner", "feed"]

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


class LocalRunner:
    """Runs a :class:`~headstart.features.runner.Job` on this machine (see the module's docstring)."""

    def run(self, job: Job, sink: Sink, progress: Progress) -> tuple[RunStats, dict[str, Any]]:
        backbone, device = job.backbone, job.device
        first = job.prepared.drop_duplicates("id").set_index("id")
        paths = dict(zip(first.index, first["path"], strict=True))  # not first.at[...] per image: 10x slower
        images = dict(zip(first.index, first["image"], strict=True)) if "image" in first.columns else {}
        items = [Item(i, _none(paths[i]), _none(images.get(i))) for i in job.todo]
        batch_size = job.options.batch_size_for(device)
        options = job.options
        loader, plan = backbone.feed(items, device, batch_size, options.num_workers, options.max_image_pixels,
                                     job.reduce_to)
        nodes, poolings = (tuple(dict.fromkeys(k[i] for k in job.keys)) for i in (0, 1))
        forward = Forward(job.extractor, job.keys, device, job.precision, batch_size, backbone.batch_stage(),
                          make=lambda: backbone.extractor(nodes, poolings))
        log.debug("embedding %d images: batch %d", len(items), batch_size)
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


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value
