"""Decoding processes beside forward workers: chosen by measurement, never more than the cores, explicit wins."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from headstart.features.balance import BalancedLoader, choose
from headstart.features.local_engine import feed
from headstart.features.reader import ImageDataset, Item, cpu_cores


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("decode_ms", [0.01, 0.5, 5.0, 30.0, 200.0])
@pytest.mark.parametrize("forward_ms", [0.5, 10.0, 100.0])
def test_the_choice_never_exceeds_the_cores(cores: int, decode_ms: float, forward_ms: float) -> None:
    workers, rate = choose(decode_ms / 1000, forward_ms / 1000, cores)
    assert 0 <= workers <= cores
    assert 0 < rate <= cores / ((decode_ms + forward_ms) / 1000) * 1.0001  # never more than the cores can do


def test_the_choice_follows_the_measurements() -> None:
    assert choose(0.00001, 0.010, 16)[0] == 0  # 8x8 digits: decoding in line costs nothing
    photos = choose(0.030, 0.010, 16)[0]  # photos: most cores decode
    assert 8 <= photos <= 16
    assert choose(0.004, 0.010, 16)[0] < photos


def test_photos_on_two_cores_decode_on_both() -> None:
    """12 MP JPEGs decode in about 28 ms at 1/4, the forward pass at 224 px takes about 13 ms on one thread: in
    line, decoding alone limits the rate to 36 images/s; a process on each core lets both cores work. Small
    JPEGs (1.2 ms) decode in line."""
    assert choose(0.0283, 0.013, 2)[0] == 2
    assert choose(0.0012, 0.0123, 2)[0] == 0


@dataclass
class _Sample:
    decode_seconds: float
    size: int


class _Slow:
    """A dataset whose images take ``decode`` seconds to decode."""

    def __init__(self, n: int, decode: float) -> None:
        self.n, self.decode = n, decode

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, float]:
        time.sleep(self.decode)
        return index, self.decode


def _collate(samples: list[tuple[int, float]]) -> Any:
    batch = _Sample(sum(s[1] for s in samples), len(samples))
    batch.indices = [s[0] for s in samples]  # type: ignore[attr-defined]
    return batch


def _consume(loader: BalancedLoader, forward_per_image: float) -> list[int]:
    """Act as the forward pass: this many seconds per image."""
    seen: list[int] = []
    for batch in loader:
        indices = batch.indices if hasattr(batch, "indices") else batch
        seen += list(indices)
        time.sleep(forward_per_image * len(indices))
    return seen


@pytest.mark.parametrize("decode, expected", [(0.0005, 0), (0.06, 2)])
def test_the_loader_measures_then_picks(decode: float, expected: int) -> None:
    made: list[int] = []

    def make_loader(rest: Any, workers: int) -> list[list[int]]:
        made.append(workers)
        return [[rest[i][0] for i in range(lo, min(len(rest), lo + 2))] for lo in range(0, len(rest), 2)]

    loader = BalancedLoader(_Slow(16, decode), 2, 2, _collate, make_loader)
    assert loader.plan.measuring
    seen = _consume(loader, 0.02)
    assert seen == list(range(16))  # every image once, in order
    assert made == ([expected] if expected else [])  # decoding in line: the thread decodes the rest
    assert loader.plan.workers == expected and loader.plan.forward == 2 and not loader.plan.measuring
    assert "measured" in loader.plan.describe()


def test_slow_decoders_are_measured_on_one_batch() -> None:
    """The other cores wait while the balancer measures: when the first (cold) batch already gives every core a
    decoding process, no second batch is decoded in line."""
    rests: list[int] = []

    def make_loader(rest: Any, workers: int) -> list[list[int]]:
        rests.append(len(rest))
        return [[rest[i][0] for i in range(lo, min(len(rest), lo + 4))] for lo in range(0, len(rest), 4)]

    loader = BalancedLoader(_Slow(24, 0.03), 4, 2, _collate, make_loader)
    assert _consume(loader, 0.005) == list(range(24))  # every image once, in order
    assert loader.plan.workers == 2 and "on the first batch" in loader.plan.describe()
    assert len(rests) == 1 and rests[0] <= 20  # the processes start where the thread decoding ahead stopped
    fast = BalancedLoader(_Slow(24, 0.0005), 4, 2, _collate, make_loader)
    assert _consume(fast, 0.005) == list(range(24)) and len(rests) == 1  # in-line decoding: no processes
    assert fast.plan.workers == 0 and "measured:" in fast.plan.describe()


def test_decoding_starts_before_the_first_batch_is_asked_for() -> None:
    """``start()`` decodes ahead in a thread (while the model is being built); a bounded number of batches."""
    dataset = _Counting(40)
    loader = BalancedLoader(dataset, 2, 2, _collate, lambda rest, workers: [])
    loader.start()
    deadline = time.monotonic() + 5
    while len(dataset.seen) < 16 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert 16 <= len(dataset.seen) <= 2 * (8 + 2)  # 4 batches ahead per core, and the ones in hand
    assert _consume(loader, 0.0) == list(range(40))


def test_a_consumer_that_leaves_early_ends_the_decoding_thread() -> None:
    dataset = _Counting(400)
    loader = BalancedLoader(dataset, 2, 2, _collate, lambda rest, workers: [])
    for index, _ in enumerate(loader):
        if index == 1:
            break
    time.sleep(0.1)
    assert not any(t.name == "headstart-decode" for t in threading.enumerate())
    assert len(dataset.seen) < 40


class _Counting:
    def __init__(self, n: int) -> None:
        self.n, self.seen = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, float]:
        self.seen.append(index)
        return index, 0.0


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_an_explicit_num_workers_is_honoured() -> None:
    dataset = ImageDataset([Item(str(i), None, None) for i in range(40)], lambda x: x, 1000)
    for workers in (0, 3, cpu_cores() + 2):
        loader, plan = feed(dataset, torch.device("cpu"), 4, workers)
        assert loader.num_workers == workers and plan().workers == workers
        assert plan().why == "num_workers set" and plan().forward == cpu_cores()
    loader, plan = feed(dataset, torch.device("cpu"), 4, "auto")
    assert isinstance(loader, BalancedLoader) and plan().workers <= cpu_cores()
