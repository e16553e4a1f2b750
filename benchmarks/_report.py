"""What both benchmarks print with: markdown tables, PASS/MISS, and facts about the machine."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
