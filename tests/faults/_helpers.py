"""Running headstart in a real subprocess under a fault: a file-size limit, a kill at the N-th commit point."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.conftest import REPO

EMBED = ["--backbone", "pixels", "--image-size", "8", "--workers", "0", "--batch-size", "4"]


def embed_folder(images: Path, out: Path, cache: Path, limit: int | None = None) -> None:
    """What `headstart embed IMAGES -o OUT EMBED` does, in this process (quicker than a subprocess)."""
    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.registry import BackboneSpec

    prepared = prepare_dataset(str(images), name=images.name, limit=limit)
    options = EmbedOptions(batch_size=4, num_workers=0, cache_dir=cache)
    meta = prepared.attrs["headstart"]
    dataset = {"name": images.name, "source": meta["source"], "shift": meta["shift"]}
    spec = BackboneSpec("pixels", weights=None, image_size=8)
    embed(prepared, spec, single_file=out, dataset=dataset, options=options)


_CLI = "import sys; from headstart.cli import main; raise SystemExit(main(sys.argv[1:]))"


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    fsize: int | None = None,
    kill_at: int | None = None,
    code: str | None = None,
) -> subprocess.CompletedProcess:
    """``headstart ARGS`` (or ``python -c CODE ARGS``) in ``cwd``; ``fsize`` caps every file it writes at that many
    bytes (writes beyond fail with EFBIG, as on a full disk); ``kill_at=N`` makes it SIGKILL itself at its N-th
    commit point."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("HEADSTART_DEBUG", None)
    if kill_at is not None:
        env["HEADSTART_FAULT_AFTER_WRITES"] = str(kill_at)
    return subprocess.run(
        [sys.executable, "-c", code or _CLI, *map(str, args)],
        cwd=cwd,
        env=env,
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The process failed with one ``headstart: error:`` line and no traceback; returns that line."""
    assert result.returncode not in (0, -signal.SIGKILL), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("headstart: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes), without the temporaries of writes."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files if not _temporary(p.relative_to(folder))}


def _temporary(path: Path) -> bool:
    return any(part.startswith(".") and part.endswith((".tmp", ".old")) for part in path.parts)


def temporaries(folder: Path) -> list[Path]:
    """Temporary files or folders of a write left anywhere under ``folder``."""
    return sorted(p for p in folder.rglob(".*") if _temporary(Path(p.name)))


def write_table(path: Path, n_per_class: int = 20, classes: Sequence[str] = ("a", "b", "c"), dim: int = 16) -> Path:
    """A real embedding table of clustered vectors, without a backbone (train/val/test)."""
    from headstart.data.tables import EmbeddingWriter

    rng = np.random.default_rng(len(classes) * 1000 + n_per_class)
    centres = rng.standard_normal((len(classes), dim)) * 3
    ids, labels, splits, vectors = [], [], [], []
    for c, name in enumerate(classes):
        for i in range(n_per_class):
            ids.append(f"{name}{i:05d}")
            labels.append(name)
            splits.append(("train", "train", "train", "val", "test")[i % 5])
            vectors.append(centres[c] + rng.standard_normal(dim))
    order = np.argsort(ids)
    provenance = {"backbone": "synthetic", "node": "x", "pooling": "avg", "precision": "fp32", "weights": "none"}
    with EmbeddingWriter(path, dim, provenance) as writer:
        writer.write(
            [ids[i] for i in order],
            [labels[i] for i in order],
            [splits[i] for i in order],
            [None] * len(ids),
            np.asarray(vectors, dtype=np.float32)[order],
        )
    return path
