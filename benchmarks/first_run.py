"""Where the first run's time goes: CPU seconds of each piece of the default pipeline, measured in-process.

On a shared machine wall time says little, so this measures CPU seconds (``resource.getrusage``: user + system of
this process and its finished children) per piece: a stage's start (interpreter + imports), embedding digits with
each backbone of params.yaml, and, per embedding table and head, the grid selection, the final fits (one per seed for
seeded heads) and the few-shot fits. Unloaded wall time on 2 cores is about CPU seconds / (cores the piece uses).

    python benchmarks/first_run.py            # params.yaml's datasets, backbones, heads and protocol
    python benchmarks/first_run.py --small    # 300 digits: checks that the script works
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import REPO, table  # noqa: E402


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    c, w = cpu(), time.perf_counter()
    out = fn()
    return out, cpu() - c, time.perf_counter() - w


def stage_start() -> float:
    """CPU seconds of a fit stage's interpreter start and imports (each of the 20 fit processes pays it)."""
    code = "import headstart.pipeline.fit, headstart.workflow.config, sklearn.linear_model, faiss"
    before = cpu()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="300 digits instead of all 1797")
    args = parser.parse_args()

    from headstart.data import load_embeddings, prepare_dataset
    from headstart.features.engine import embed
    from headstart.heads.evaluate import SplitData
    from headstart.heads.registry import build_head, resolve_params
    from headstart.heads.selection import select
    from headstart.heads.spec import thaw
    from headstart.workflow.config import load_config

    cfg = load_config(REPO / "params.yaml")
    protocol = cfg.evaluate
    rows, totals = [], {"start": stage_start()}
    prepared = prepare_dataset("digits", name="digits", limit=300 if args.small else None)
    with tempfile.TemporaryDirectory() as tmp:
        tables = {}
        for name, spec in cfg.backbones.items():
            options = dataclasses.replace(cfg.embed, cache_dir=Path(tmp) / "cache")
            result, seconds, wall = measured(lambda s=spec, n=name: embed(prepared, s, Path(tmp) / n, options=options))
            rows.append([f"embed digits {name}", "", seconds, wall])
            totals["embed"] = totals.get("embed", 0) + seconds
            tables.update({f"{name}/{layer}": path for layer, path in result.tables.items()})
        for table_name, path in tables.items():
            data = SplitData.from_table(load_embeddings(path))
            for name, spec in cfg.heads.items():
                measures = _head(spec.kind, thaw(spec.params), data, protocol, select, resolve_params, build_head)
                rows.append([table_name, name, *measures])
    for row in rows:
        if row[1]:
            totals["selection"] = totals.get("selection", 0) + row[2]
            totals["final fits"] = totals.get("final fits", 0) + row[3]
            totals["few-shot"] = totals.get("few-shot", 0) + row[4]
    print(table(["piece", "head", "CPU s (embed) / selection", "wall s / final fits", "few-shot", "few-shot fits"],
                [r + [""] * (6 - len(r)) for r in rows]))  # fmt: skip
    print()
    print(table(["part", "CPU s"], [[k, v] for k, v in totals.items()]))


def _head(head: str, params: Any, data: Any, protocol: Any, select: Any, resolve: Any, build: Any) -> list[Any]:
    import numpy as np

    from headstart.data.splits import few_shot_indices
    from headstart.heads.registry import get_head

    fixed, grid = resolve(head, params)
    selection, sel_cpu, _ = measured(lambda: select(head, fixed, grid, data.X_train, data.y_train, data.X_val,
                                                    data.y_val, 0))  # fmt: skip
    seeds = range(protocol.seeds if get_head(head).randomized else 1)
    X_fit, y_fit = np.concatenate([data.X_train, data.X_val]), np.concatenate([data.y_train, data.y_val])
    _, fit_cpu, _ = measured(lambda: [build(head, selection.best, s).fit(X_fit, y_fit) for s in seeds])
    runs = [(n, s) for n in protocol.few_shot for s in (seeds if n == "all" else range(protocol.seeds))]

    def few() -> None:
        for n, s in runs:
            idx = np.arange(len(data.y_train)) if n == "all" else few_shot_indices(data.y_train, int(n), s)
            build(head, selection.best, s).fit(data.X_train[idx], data.y_train[idx])

    _, few_cpu, _ = measured(few)
    return [sel_cpu, fit_cpu, few_cpu, len(runs)]


if __name__ == "__main__":
    main()
