"""The forward loop: batches from the reader, through the truncated model, into a sink.

Runs under ``torch.inference_mode()`` with channels-last tensors, in fp32 or under autocast (bf16 on the
CPU; bf16 or fp16 on CUDA), and keeps account of where the time goes. Importing it does not import torch (a
run with nothing to compute needs :class:`RunStats` and :class:`EmbedError` only).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from headstart._progress import Progress
from headstart.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["EmbedError", "RunStats", "autocast", "feed", "run_batches", "select_device", "to_device", "torch_threads"]


class EmbedError(UserError, RuntimeError):
    """The embed run cannot go on (strict mode met a broken image, or a bad device/precision)."""


@dataclass
class RunStats:
    """Counts and seconds of one run of the forward loop."""

    computed: int = 0
    failed: int = 0
    wait_seconds: float = 0.0
    forward_seconds: float = 0.0
    write_seconds: float = 0.0
    decode_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    plan: str = ""

    @property
    def images_per_second(self) -> float:
        return self.computed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def summary(self) -> str:
        wall = self.wall_seconds or 1e-9
        return (
            f"{self.computed} images in {self.wall_seconds:.1f} s ({self.images_per_second:.1f} img/s): "
            f"waiting for decoded images {self.wait_seconds:.1f} s ({self.wait_seconds / wall:.0%}), "
            f"forward pass {self.forward_seconds:.1f} s ({self.forward_seconds / wall:.0%}), "
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


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is forced."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise EmbedError(f"device '{name}' is not a torch device; use auto, cpu or cuda[:N]") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EmbedError(f"device '{name}' asked for, but CUDA is not available here; use `device: auto` or cpu")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for ``precision`` on ``device`` (fp32: none)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise EmbedError("precision fp16 needs CUDA; on the CPU use bf16")
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    raise EmbedError(f"unknown precision '{precision}'; use fp32, bf16 or fp16")


def to_device(inputs: Any, device: torch.device) -> Any:
    """A batch on ``device``: images (N, C, H, W) channels-last; a mapping of tensors (tokens) entry by entry."""
    import torch

    if isinstance(inputs, Mapping):
        return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    if inputs.ndim == 4:
        return inputs.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return inputs.to(device, non_blocking=True)


def torch_threads(threads: int | None = None) -> int:
    """Torch's intra-op threads now; with ``threads``, set them first."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def feed(dataset: Any, device: torch.device, batch_size: int, num_workers: int | str) -> tuple[Any, Callable[[], Any]]:
    """The batches of ``dataset`` for the forward loop, and a function that says how they were decoded.

    ``num_workers`` given: that many decoding processes, the forward pass on the cores they leave. ``auto`` on a
    CPU: chosen by measurement on the first batches (:class:`headstart.features.balance.BalancedLoader`);
    ``auto`` on a GPU: up to 8 processes. Sets torch's threads for the forward pass; the caller restores them.
    """
    from headstart.features.balance import BalancedLoader, Plan
    from headstart.features.reader import auto_workers, collate, cpu_cores, forward_threads, make_loader

    pin = device.type == "cuda"
    if num_workers == "auto" and device.type == "cpu":
        balanced = BalancedLoader(
            dataset, batch_size, cpu_cores(), collate, lambda rest, w: make_loader(rest, batch_size, w, pin)
        )
        return balanced, lambda: balanced.plan
    batches = -(-len(dataset) // batch_size)
    workers = auto_workers(device, batches) if num_workers == "auto" else int(num_workers)
    plan = Plan(
        workers,
        torch_threads(forward_threads(device, workers)),
        "num_workers set" if num_workers != "auto" else f"auto on {device.type}",
    )
    return make_loader(dataset, batch_size, workers, pin_memory=pin), lambda: plan


Sink = Callable[[Sequence[str], Mapping[str, np.ndarray], Sequence[tuple[str, str]]], None]


def run_batches(
    extractor: torch.nn.Module,
    loader: Any,
    *,
    keys: Mapping[tuple[str, str], str],
    device: torch.device,
    precision: str,
    sink: Sink,
    strict: bool,
    describe: Callable[[str], str],
    progress: Progress,
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> RunStats:
    """Run every batch of ``loader`` through ``extractor`` and hand the vectors to ``sink``.

    ``keys`` maps the extractor's ``(node, pooling)`` outputs to cache keys. With ``strict``, the first image
    that cannot be decoded raises :class:`EmbedError` (``describe(id)`` names it). ``finish`` turns a batch on
    the device into the model's input (the backbone's :meth:`~headstart.features.registry.Backbone.batch_stage`).
    """
    import torch

    stats = RunStats()
    extractor = extractor.to(device).to(memory_format=torch.channels_last)
    start = time.perf_counter()
    iterator = iter(loader)
    with torch.inference_mode():
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            t1 = time.perf_counter()
            stats.wait_seconds += t1 - t0
            stats.decode_cpu_seconds += batch.decode_seconds
            if batch.failures and strict:
                item_id, error = batch.failures[0]
                raise EmbedError(
                    f"image {describe(item_id)} cannot be used: {error}. "
                    "Set `embed.on_error: skip` (or --on-error skip) to list such images in the "
                    "failures table and go on"
                )
            arrays: dict[str, np.ndarray] = {}
            if batch.pixels is not None:
                pixels = to_device(batch.pixels, device)
                pixels = finish(pixels) if finish is not None else pixels
                with autocast(device, precision):
                    outputs = extractor(pixels)
                arrays = {keys[k]: v.float().cpu().numpy() for k, v in outputs.items()}
            t2 = time.perf_counter()
            stats.forward_seconds += t2 - t1
            sink(batch.ids, arrays, batch.failures)
            stats.write_seconds += time.perf_counter() - t2
            stats.computed += len(batch.ids)
            stats.failed += len(batch.failures)
            progress.update(len(batch.ids) + len(batch.failures))
            elapsed = time.perf_counter() - start
            progress.set_postfix_str(
                f"forward {stats.forward_seconds / elapsed:.0%}" + (f", failed {stats.failed}" if stats.failed else "")
            )
    stats.wall_seconds = time.perf_counter() - start
    return stats
