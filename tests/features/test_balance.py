"""Decoding processes against forward threads: chosen by measurement, never more than the cores, explicit wins."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from headstart.features.balance import BalancedLoader, choose, forward_model


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("decode_ms", [0.01, 0.5, 5.0, 30.0, 200.0])
@pytest.mark.parametrize("forward_ms", [0.5, 10.0, 100.0])
def test_the_choice_never_exceeds_the_cores(cores: int, decode_ms: float, forward_ms: float) -> None:
    workers, threads, rate = choose(decode_ms / 1000, forward_model({cores: forward_ms / 1000}), cores)
    assert 0 <= workers <= cores
    assert 1 <= threads <= cores
    assert workers + threads <= cores or (workers == cores and threads == 1)  # own cores, or all shared by one
    assert rate > 0


def test_the_choice_follows_the_measurements() -> None:
    forward = forward_model({16: 0.010 / 16 * 1.2, 15: 0.010 / 15 * 1.2})  # 16 cores, forward scales well
    assert choose(0.00001, forward, 16)[0] == 0  # 8x8 digits: decoding in line costs nothing
    photos = choose(0.030, forward, 16)[0]  # photos: most cores decode
    assert 8 <= photos <= 15
    assert choose(0.004, forward, 16)[0] < photos


def test_photos_on_two_cores_decode_on_both_beside_one_forward_thread() -> None:
    """Measured on 2 cores (Intel Xeon, MobileNetV2 at 224 px): 12 MP JPEGs decode in 28 ms at 1/4, the forward
    pass takes 13 ms on one thread, 7 ms on two; one process and one thread gave 34 photos/s, a process on each
    core and one thread 45. Small JPEGs (1.2 ms) decode in line: sharing the cores would cost the forward pass
    its second thread."""
    forward = forward_model({2: 0.0071, 1: 0.013})
    assert choose(0.0283, forward, 2)[:2] == (2, 1)
    assert choose(0.0012, forward_model({2: 0.0069, 1: 0.0123}), 2)[:2] == (0, 2)


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


def _consume(loader: BalancedLoader, forward_per_image_at_one_thread: float) -> list[int]:
    """Act as the forward pass: per image, this many seconds divided by torch's threads."""
    seen: list[int] = []
    for batch in loader:
        indices = batch.indices if hasattr(batch, "indices") else batch
        seen += list(indices)
        time.sleep(forward_per_image_at_one_thread * len(indices) / torch.get_num_threads())
    return seen


@pytest.mark.parametrize("decode, expected", [(0.0005, 0), (0.04, 2)])
def test_the_loader_measures_then_picks(decode: float, expected: int) -> None:
    made: list[int] = []

    def make_loader(rest: Any, workers: int) -> list[list[int]]:
        made.append(workers)
        return [[rest[i][0] for i in range(lo, min(len(rest), lo + 2))] for lo in range(0, len(rest), 2)]

    threads = torch.get_num_threads()
    try:
        loader = BalancedLoader(_Slow(16, decode), 2, 2, _collate, make_loader)
        seen = _consume(loader, 0.02)
        assert sorted(seen) == list(range(16))  # every image once, in order
        assert seen == list(range(16))
        assert made == [expected]
        assert loader.plan.workers == expected and loader.plan.threads == (1 if expected else 2)
        assert "measured" in loader.plan.describe()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_an_explicit_num_workers_is_honoured() -> None:
    from headstart.features.reader import ImageDataset, Item, cpu_cores
    from headstart.features.runner import feed

    dataset = ImageDataset([Item(str(i), None, None) for i in range(40)], lambda x: x, 1000)
    threads = torch.get_num_threads()
    try:
        for workers in (0, 3, cpu_cores() + 2):
            loader, plan = feed(dataset, torch.device("cpu"), 4, workers)
            assert loader.num_workers == workers and plan().workers == workers
            assert plan().why == "num_workers set"
        loader, plan = feed(dataset, torch.device("cpu"), 4, "auto")
        assert isinstance(loader, BalancedLoader) and plan().workers <= cpu_cores()
    finally:
        torch.set_num_threads(threads)
