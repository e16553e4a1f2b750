"""How fast does an embedding table load? ``headstart.load_embeddings`` against np.load and pandas.

A benchmark, not a test. Run from the repository root: ``python benchmarks/load.py`` (``--rows 5000`` for a quick run).

Goal: ``load_embeddings`` of 50,000 x 2,048 float32 in < 1.5 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import REPO, best_of, header, load_average, mib, note, section, table, verdict

GOAL_LOAD_SECONDS = 1.5


def run_load(scratch: Path, rows: int, dim: int) -> dict[str, Any]:
    import pandas as pd

    import headstart
    from headstart.data.tables import EmbeddingWriter

    with tempfile.TemporaryDirectory(dir=scratch, prefix="load-") as tmp:
        parquet, npy = Path(tmp) / "table.parquet", Path(tmp) / "table.npy"
        X = np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32)
        ids = [f"{i:032x}" for i in range(rows)]
        labels = [str(i % 10) for i in range(rows)]
        splits = [("train", "val", "test")[i % 3] for i in range(rows)]
        paths = [f"images/{i % 10}/{i:06d}.jpg" for i in range(rows)]
        start = time.perf_counter()
        with EmbeddingWriter(parquet, dim, {"backbone": "random", "node": "none", "pooling": "none"}) as writer:
            for lo in range(0, rows, 4096):
                hi = min(rows, lo + 4096)
                writer.write(ids[lo:hi], labels[lo:hi], splits[lo:hi], paths[lo:hi], X[lo:hi])
        write_seconds = time.perf_counter() - start
        np.save(npy, X)
        del X
        out: dict[str, Any] = {
            "rows": rows,
            "dim": dim,
            "write_seconds": write_seconds,
            "parquet_bytes": parquet.stat().st_size,
            "npy_bytes": npy.stat().st_size,
        }
        out["load"], table_ = best_of(lambda: headstart.load_embeddings(parquet))
        ok = table_.X.shape == (rows, dim) and table_.X.dtype == np.float32 and table_.X.flags["C_CONTIGUOUS"]
        out["load_ok"] = ok
        del table_
        out["npy"], _ = best_of(lambda: np.load(npy))
        out["npy_mmap"], _ = best_of(lambda: np.array(np.load(npy, mmap_mode="r")))

        def pandas_matrix() -> np.ndarray:
            frame = pd.read_parquet(parquet)
            return np.stack(frame["embedding"].to_numpy())

        out["pandas"], _ = best_of(pandas_matrix)
    return out


def report_load(result: dict[str, Any]) -> None:
    rows, dim = result["rows"], result["dim"]
    section(f"Reading a {rows:,} x {dim:,} float32 embedding table into numpy")
    full = rows == 50_000 and dim == 2_048
    print(
        table(
            ["reader", "file (MiB)", "best of 3 (s)", "goal", ""],
            [
                (
                    "headstart.load_embeddings (Parquet)",
                    mib(result["parquet_bytes"]),
                    result["load"],
                    f"< {GOAL_LOAD_SECONDS} s" + ("" if full else " (at 50,000 x 2,048)"),
                    verdict(result["load"] < GOAL_LOAD_SECONDS and result["load_ok"]) if full else "n/a",
                ),
                ("np.load (.npy)", mib(result["npy_bytes"]), result["npy"], "", ""),
                ("np.load(mmap_mode='r') + copy", mib(result["npy_bytes"]), result["npy_mmap"], "", ""),
                ("pandas.read_parquet + np.stack", mib(result["parquet_bytes"]), result["pandas"], "", ""),
            ],
        )
    )
    note(
        f"Random normal floats (the worst case for compression), written with EmbeddingWriter in "
        f"{result['write_seconds']:.1f} s; timings after one warm read (file in the page cache). "
        f"load_embeddings returned a C-contiguous float32 matrix: {result['load_ok']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the table (default 50000)")
    parser.add_argument("--dim", type=int, default=2_048, help="width of the table (default 2048)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".headstart" / "bench")
    args = parser.parse_args()
    header("Reading an embedding table into numpy")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as tmp:
        report_load(run_load(Path(tmp), args.rows, args.dim))
    note(f"Load average (1/5/15 min) at the end: {load_average()}.")


if __name__ == "__main__":
    main()
