"""The model side of the embedding benchmarks: the engine's batch, the forward-only ceiling, an engine run, a CLI run."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _report import REPO


def engine_batch() -> int:
    """The batch size the engine itself picks on this machine (``batch_size: auto``)."""
    import torch

    from headstart.features.engine import EmbedOptions

    return EmbedOptions().batch_size_for(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def mobilenet_spec(
    precision: str = "fp32", image_size: int | None = None, layers: tuple[str, ...] = ("default",)
) -> Any:
    from headstart.features.registry import BackboneSpec

    return BackboneSpec("mobilenet_v2", "IMAGENET1K_V1", layers=layers, image_size=image_size, precision=precision)


def channels_last_extractor(backbone: Any) -> Any:
    """The truncated model the engine runs, set up as the engine sets it up."""
    import torch

    extractor = backbone.extractor(backbone.spec.layers, backbone.spec.poolings).eval()
    return extractor.to(memory_format=torch.channels_last)


def load_batch(files: Sequence[Path], transform: Callable[[Any], Any], n: int) -> Any:
    """The first ``n`` files, decoded and transformed, stacked into one tensor."""
    import torch

    from headstart.data.images import decode_image

    return torch.stack([transform(decode_image(str(p))) for p in files[:n]])


def forward_throughput(extractor: Any, batch: Any, images: int, precision: str = "fp32") -> dict[str, float]:
    """Images/s of the forward pass alone on ``batch`` (already in memory), after one warm-up batch."""
    import torch

    from headstart.features.forward import autocast

    device = torch.device("cpu")
    pixels = batch.contiguous(memory_format=torch.channels_last)
    batches = max(1, -(-images // len(pixels)))
    with torch.inference_mode():
        with autocast(device, precision):
            extractor(pixels)  # warm-up: oneDNN primitives, allocator
        start = time.perf_counter()
        for _ in range(batches):
            with autocast(device, precision):
                outputs = extractor(pixels)
            for value in outputs.values():
                value.float().numpy()
        seconds = time.perf_counter() - start
    done = batches * len(pixels)
    return {"images": done, "seconds": seconds, "ips": done / seconds}


def ceiling(files: Sequence[Path], images: int, batch: int) -> dict[str, float]:
    """The forward pass of the engine's truncated model on ``batch`` preloaded tensors, repeated."""
    from headstart.features.registry import load_backbone

    backbone = load_backbone(mobilenet_spec())
    return forward_throughput(channels_last_extractor(backbone), load_batch(files, backbone.transform, batch), images)


def prepare(root: Path, name: str) -> tuple[Any, float]:
    from headstart.data import prepare_dataset

    start = time.perf_counter()
    prepared = prepare_dataset(str(root), name=name, val=0.15, test=0.30, seed=0)
    return prepared, time.perf_counter() - start


def run_engine(root: Path, scratch: Path, batch: int, workers: int | str = "auto", decode: str = "jpeg-scaled") -> dict:
    """``embed`` on the folder with a fresh cache: the forward loop's images/s and the engine's own account."""
    from headstart.features.engine import EmbedOptions, embed

    prepared, prepare_seconds = prepare(root, "bench")
    with tempfile.TemporaryDirectory(dir=scratch, prefix="engine-") as tmp:
        options = EmbedOptions(batch_size=batch, num_workers=workers, cache_dir=Path(tmp) / "cache", decode=decode)
        start = time.perf_counter()
        result = embed(prepared, mobilenet_spec(), Path(tmp) / "out", dataset={"name": "bench"}, options=options)
        end_to_end = time.perf_counter() - start
    stats = result.stats
    return {
        "images": len(prepared),
        "computed": stats.computed,
        "failed": len(result.failures),
        "ips": stats.images_per_second,
        "wall": stats.wall_seconds,
        "end_to_end": end_to_end,
        "prepare_seconds": prepare_seconds,
        "plan": stats.plan,
        "summary": result.summary(),
    }


def run_cli(args: Sequence[str]) -> tuple[float, str]:
    """``headstart ARGS`` in a fresh process, as a user runs it: its wall time (start-up included) and stderr."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "headstart.cli", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"headstart {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, proc.stderr
