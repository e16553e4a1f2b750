"""The forward pass of one batch, with arithmetic that does not depend on the thread plan or the batch's length.

Both runners (:mod:`headstart.features.local_engine` and the Ray actors of :mod:`headstart.features.ray_tasks`)
go through :class:`Forward`. On a CPU every forward pass runs on one intra-op thread; parallelism comes from
several passes at once (forward workers), never from splitting one pass, because oneDNN's kernels give other
bits at one thread than at two. Every batch is padded to the run's batch size (the last row repeated, its
outputs dropped), because the kernels also pick other code paths for short batches: a batch cut short by the
end of the data, by cached images or by broken ones gives each image the bits a full batch gives it. Which
other images share a batch, and in which order, does not change an image's vectors (checked in the tests).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from headstart.features.runner import EmbedError

__all__ = ["FORWARD_THREADS", "MAX_COPIES", "Forward", "autocast", "probe", "select_device", "to_device", "torch_threads"]

FORWARD_THREADS = 1  # intra-op threads of every forward pass on a CPU: part of the arithmetic, never tuned
MAX_COPIES = 4  # forward workers for an extractor that cannot be shared between threads (each holds a copy)
_COPY_LOCK = threading.Lock()


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is forced."""
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
    if isinstance(inputs, Mapping):
        return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    if inputs.ndim == 4:
        return inputs.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return inputs.to(device, non_blocking=True)


def torch_threads(threads: int | None = None) -> int:
    """Torch's intra-op threads now; with ``threads``, set them first (in the calling thread too)."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def pad_rows(inputs: Any, rows: int) -> Any:
    """``inputs`` (a tensor or a mapping of tensors, ``n`` rows) with its last row repeated up to ``rows``."""
    if isinstance(inputs, Mapping):
        n = _rows(inputs)
        return {k: pad_rows(v, rows) if isinstance(v, torch.Tensor) and len(v) == n else v for k, v in inputs.items()}
    extra = rows - len(inputs)
    if extra <= 0:
        return inputs
    return torch.cat([inputs, inputs[-1:].expand(extra, *inputs.shape[1:])])


def _rows(inputs: Any) -> int:
    if isinstance(inputs, Mapping):
        return max(len(v) for v in inputs.values() if isinstance(v, torch.Tensor))
    return len(inputs)


class Forward:
    """The truncated model on ``device``, run on one batch at a time: ``forward(inputs) -> ({cache key: (n, D)
    float32}, seconds)``. Safe to call from several threads at once (each pass is independent).

    ``keys`` maps the extractor's ``(node, pooling)`` outputs to cache keys; ``finish`` turns a batch on the
    device into the model's input (the backbone's batch stage); ``rows``: the run's batch size, which every
    batch is padded to. An extractor that keeps per-pass state in its hooks (one without ``reentrant = True``)
    is not shared between threads: given ``make`` (a function that builds another), each worker thread builds
    its own, up to :data:`MAX_COPIES` of them (:attr:`workers` says how many may run at once); without it, one
    pass runs at a time.
    """

    def __init__(  # noqa: PLR0913
        self,
        extractor: torch.nn.Module,
        keys: Mapping[tuple[str, str], str],
        device: torch.device,
        precision: str,
        rows: int,
        finish: Callable[[Any], Any] | None = None,
        make: Callable[[], torch.nn.Module] | None = None,
    ) -> None:
        self.extractor = self._ready(extractor, device)
        self.keys, self.device, self.precision, self.rows, self.finish = dict(keys), device, precision, rows, finish
        shared = bool(getattr(extractor, "reentrant", False))
        self.make = None if shared else make
        self.workers = None if shared else (MAX_COPIES if make is not None else 1)  # None: any number
        self._own = threading.local()
        self._spare = [self.extractor]  # the given one goes to the first worker that asks

    @staticmethod
    def _ready(extractor: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return extractor.eval().to(device).to(memory_format=torch.channels_last)

    def enter_worker(self) -> None:
        """Call first in every thread that runs passes: fixes this thread's intra-op threads (CPU) and, for an
        extractor that cannot be shared, gives the thread its own."""
        if self.device.type == "cpu":
            torch.set_num_threads(FORWARD_THREADS)
        if self.workers is None or hasattr(self._own, "extractor"):
            return
        with _COPY_LOCK:
            spare = self._spare.pop() if self._spare else None
        if spare is None and self.make is not None:
            spare = self._ready(self.make(), self.device)
        self._own.extractor = spare  # None: the shared one (one worker only)

    def __call__(self, inputs: Any) -> tuple[dict[str, np.ndarray], float]:
        start = time.perf_counter()
        n = _rows(inputs)
        extractor = getattr(self._own, "extractor", None) or self.extractor
        with torch.inference_mode():
            batch = to_device(pad_rows(inputs, self.rows), self.device)
            batch = self.finish(batch) if self.finish is not None else batch
            with autocast(self.device, self.precision):
                outputs = extractor(batch)
            arrays = {self.keys[k]: v[:n].float().cpu().numpy() for k, v in outputs.items()}
        return arrays, time.perf_counter() - start


def probe(extractor: Any, example: Any, device: torch.device, precision: str) -> tuple[dict, dict]:
    """One forward pass on ``example`` (the backbone's blank image or short text): the width of every output
    and the pooling actually applied."""
    extractor.to(device)
    with torch.inference_mode(), autocast(device, precision):
        outputs = extractor(to_device(example, device))
    dims = {k: int(v.shape[1]) for k, v in outputs.items()}
    applied = dict(getattr(extractor, "applied", {})) or {k: "none" for k in outputs}
    return dims, applied
