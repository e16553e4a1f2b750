"""What every benchmark prints with (markdown tables, PASS/MISS, facts about the machine) and the data they share."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells[1:]]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3g}"
    return str(value)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def percent(share: float) -> str:
    return f"{100 * share:.2f}%"


def section(title: str) -> None:
    print(f"\n## {title}\n", flush=True)


def note(text: str) -> None:
    print(f"\n{text}", flush=True)


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20

# ---- added for the head benchmarks (knn.py, logreg_sweep.py, dvc_rerun.py): data and the last line -------


@dataclass(frozen=True)
class Embeddings:
    """Train and test vectors with their labels."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def describe(self, queries: str = "queries") -> str:
        n, d = self.X_train.shape
        return f"{n:,} x {d} float32 train, {len(self.X_test):,} {queries}, {len(np.unique(self.y_train))} classes"


def clustered_embeddings(
    n_train: int,
    n_test: int,
    dim: int,
    classes: int,
    *,
    clusters_per_class: int = 4,
    topics: int | None = None,
    spread: float = 0.25,
    noise: float = 1.0,
    seed: int = 0,
) -> Embeddings:
    """Gaussian clusters around shared topics, like embeddings of a fine-grained dataset.

    ``topics`` (default ``classes // 4``) random directions of norm ``sqrt(dim)``; each class has
    ``clusters_per_class`` cluster centres, each at a random topic plus ``spread`` x N(0, I), so every topic
    holds clusters of several classes; a sample is a centre plus ``noise`` x N(0, I). A sample's cosine to its
    own centre is about 0.7 and to another topic about 0; within a topic, clusters of different classes overlap,
    which is what makes k-NN (and a linear probe) err. Train and test come from the same mixture.
    """
    rng = np.random.default_rng(seed)
    topics = topics or max(1, classes // 4)
    directions = rng.standard_normal((topics, dim), dtype=np.float32)
    directions *= np.sqrt(dim) / np.linalg.norm(directions, axis=1, keepdims=True)
    n_clusters = classes * clusters_per_class
    centres = directions[rng.integers(0, topics, n_clusters)] + spread * rng.standard_normal(
        (n_clusters, dim), dtype=np.float32
    )

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, n_clusters, n)
        X = centres[cluster] + noise * rng.standard_normal((n, dim), dtype=np.float32)
        return np.ascontiguousarray(X, dtype=np.float32), cluster // clusters_per_class

    X_train, y_train = draw(n_train)
    X_test, y_test = draw(n_test)
    return Embeddings(X_train, y_train, X_test, y_test)


def idx_dataset(name: str = "fashion-mnist", root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8, N x 28 x 28) and label indices of an MNIST-like built-in, train then t10k, read by
    headstart.data's own IDX reader from where ``headstart`` looks for them (no third reader)."""
    from headstart.data import builtin

    directory = builtin._find_idx(name, root)
    if directory is None:
        raise SystemExit(f"the IDX files of {name} are not on this machine; see `headstart datasets`")
    images, labels = [], []
    for images_stem, labels_stem in builtin._IDX_FILES.values():
        images.append(builtin._read_idx(builtin._idx_file(Path(directory), images_stem)))
        labels.append(builtin._read_idx(builtin._idx_file(Path(directory), labels_stem)))
    return np.concatenate(images), np.concatenate(labels)


def footer(started: float) -> None:
    """The last line: wall time since ``started`` (``time.perf_counter()``) and the load average."""
    import time

    note(f"Done in {time.perf_counter() - started:.0f} s; load average (1/5/15 min) at the end: {load_average()}.")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags(wanted: Sequence[str] = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")) -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted)
    return "unknown"


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---- added for the embedding benchmarks (embed_speed, photos, noop, precision, memory, load) ----------------


def header(title: str, extra: Sequence[tuple[str, Any]] = ()) -> None:
    """The benchmark's title and a table of facts about the machine, with a warning when it is busy."""
    import datetime as dt

    import numpy as np

    print(f"# {title}\n")
    rows: list[tuple[str, Any]] = [
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("CPU", cpu_model()),
        ("cores (usable / logical)", f"{usable_cores()} / {os.cpu_count()}"),
        ("CPU flags", cpu_flags()),
        ("load average (1/5/15 min) at start", load_average()),
        ("python / numpy", f"{platform.python_version()} / {np.__version__}"),
        ("headstart commit", git_commit()),
        *extra,
    ]
    print(table(["", ""], rows))
    busy = os.getloadavg()[0]
    if busy > 0.5:
        note(
            f"WARNING: the load average is {busy:.1f} on {usable_cores()} cores (other work shares this machine): "
            "these are not reference figures."
        )


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def best_of(fn: Any, repeats: int = 3, warmup: int = 1) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls, and the last result."""
    import time

    result = None
    for _ in range(warmup):
        result = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _status_bytes(field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def current_rss() -> int:
    """This process's resident set size now, in bytes (Linux: VmRSS)."""
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    """This process's peak RSS in bytes (VmHWM; not ru_maxrss, which Linux carries over fork + exec)."""
    import resource

    return _status_bytes("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_children() -> int:
    """Peak RSS of the largest waited-for child, in bytes (ru_maxrss is KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def quiet() -> None:
    """Warnings and library logging down to what a benchmark table needs."""
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
