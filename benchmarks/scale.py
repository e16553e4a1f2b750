"""Heads on a table bigger than one wants in memory: the streaming probe and IVF-PQ k-NN on N x 384 float32.

Writes a synthetic sharded embedding table (default 1,000,000 x 384, 1.5 GB; clustered classes, 70/15/15
train/val/test), then fits, each in a fresh process whose peak RSS is measured (``ru_maxrss``):

- the streaming linear probe (C chosen on val over a small grid, refit on train+val), test accuracy;
- k-NN on faiss IVF-PQ filled chunk by chunk, test accuracy on a sample of test rows, and its recall@10
  against exact search (streamed over the table) for those queries;
- both in one process (the issue's budget: peak RSS < 2 GB).

The synthetic clusters are isotropic, the hard case for any approximate index (a query's ten nearest neighbours
are nearly tied), so ``--real TABLE ...`` also measures recall@10 on real embedding tables (e.g. the default
pipeline's ``embeddings/digits/mobilenet_v2/*.parquet``, in memory): PQ codes alone and with the SQ8 refinement.

    python benchmarks/scale.py              # 1,000,000 rows
    python benchmarks/scale.py --small      # 100,000 rows
    python benchmarks/scale.py --small --real embeddings/digits/mobilenet_v2/*.parquet
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import REPO, cpu_model, git_commit, note, section, table, usable_cores, verdict  # noqa: E402

BUDGET_BYTES = 2 * 2**30


def write_table(path: Path, rows: int, dim: int, classes: int, seed: int = 0) -> None:
    """Clustered classes (centres + noise), written chunk by chunk: never the whole table in memory."""
    from headstart.data.tables import ShardedEmbeddingWriter

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32) * 0.25
    with ShardedEmbeddingWriter(path, dim, {"backbone": "synthetic", "node": "x", "pooling": "avg"}) as writer:
        for start in range(0, rows, 65536):
            n = min(65536, rows - start)
            y = rng.integers(0, classes, n)
            X = centres[y] + rng.standard_normal((n, dim), dtype=np.float32) * 1.0
            u = rng.random(n)
            splits = np.where(u < 0.70, "train", np.where(u < 0.85, "val", "test"))
            ids = [f"{i:012d}" for i in range(start, start + n)]
            writer.write(ids, [f"c{v:03d}" for v in y], splits.tolist(), [None] * n, X)


_CHILD = """
import json, resource, sys, time
import numpy as np
from headstart.heads.chunks import TableChunks, stream_accuracy
from headstart.heads.knn import bytes_per_vector
from headstart.heads.knn_head import fit_knn_stream, knn_recall
from headstart.heads.stream import fit_probe_stream
path, what, queries = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
if what in ("probe", "both"):
    t = time.perf_counter()
    probe, scores = fit_probe_stream(TableChunks(path, ["train"]), TableChunks(path, ["val"]),
                                     TableChunks(path, ["train", "val"]), [1e-3, 1e-1, 10.0], epochs=1, min_steps=0)
    out["probe_fit_s"] = time.perf_counter() - t
    out["probe_C"] = probe.C
    out["probe_test_accuracy"] = stream_accuracy(probe, TableChunks(path, ["test"]))[0]
if what in ("knn", "both"):
    t = time.perf_counter()
    knn = fit_knn_stream(TableChunks(path, ["train", "val"]), sample_rows=100_000, index="ivfpq", k=20)
    out["knn_fit_s"] = time.perf_counter() - t
    test = TableChunks(path, ["test"])
    X, y = test.read(0)
    X, y = X[:queries], y[:queries]
    t = time.perf_counter()
    out["knn_test_accuracy"] = float(np.mean(knn.predict(X) == y))
    out["knn_query_ms"] = 1000 * (time.perf_counter() - t) / len(X)
    out["knn_recall_at_10"] = knn_recall(knn, TableChunks(path, ["train", "val"]), X, k=10)
    out["knn_bytes_per_vector"] = bytes_per_vector(knn.index_)
out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def run_child(path: Path, what: str, queries: int) -> dict:
    # one BLAS thread: the products are small (a row group at a time), and idle BLAS threads spin
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), what, str(queries)], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", action="store_true", help="100,000 rows")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--queries", type=int, default=1000, help="test rows for k-NN accuracy and recall")
    parser.add_argument("--separate", action="store_true", help="also fit each head in a process of its own")
    parser.add_argument("--keep", type=Path, help="write (or reuse) the table here instead of a temporary folder")
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="real embedding tables for recall@10")
    args = parser.parse_args()
    rows = 100_000 if args.small else args.rows
    print(f"# Heads at scale: {rows:,} x {args.dim} float32\n")
    print(f"machine: {cpu_model()}, {usable_cores()} cores; commit {git_commit()}")
    with tempfile.TemporaryDirectory(prefix="headstart-scale-") as tmp:
        path = args.keep or Path(tmp) / "table.parquet"
        if not path.exists():
            t = time.perf_counter()
            write_table(path, rows, args.dim, args.classes)
            print(f"wrote {path} in {time.perf_counter() - t:.0f} s")
        size = sum(f.stat().st_size for f in ([path] if path.is_file() else path.iterdir()))
        print(f"table: {size / 2**30:.2f} GiB on disk, {'a directory of shards' if path.is_dir() else 'one file'}")
        results = {"both": run_child(path, "both", args.queries)}
        if args.separate:
            results.update({what: run_child(path, what, args.queries) for what in ("probe", "knn")})
    section("Fit, accuracy and peak memory")
    both = results["both"]
    probe, knn = results.get("probe", both), results.get("knn", both)
    print(
        table(
            ["head", "fit s", "test accuracy", "recall@10 vs exact", "peak RSS MiB"],
            [
                ["streaming probe (C on val)", probe["probe_fit_s"], probe["probe_test_accuracy"], "-",
                 probe["peak_rss_bytes"] / 2**20],
                [f"k-NN IVF-PQ ({knn['knn_bytes_per_vector']} B/vector)", knn["knn_fit_s"],
                 knn["knn_test_accuracy"], knn["knn_recall_at_10"], knn["peak_rss_bytes"] / 2**20],
                ["both, one process", probe["probe_fit_s"] + knn["knn_fit_s"], "-", "-",
                 both["peak_rss_bytes"] / 2**20],
            ],
        )
    )
    note(
        f"Peak RSS of fitting both: {both['peak_rss_bytes'] / 2**20:,.0f} MiB, budget 2,048 MiB: "
        f"{verdict(both['peak_rss_bytes'] < BUDGET_BYTES)}. Probe C chosen: {probe['probe_C']:g}; "
        f"k-NN {knn['knn_query_ms']:.2f} ms per query."
    )
    if args.real:
        real_recall(args.real)


def real_recall(tables: list[Path], queries: int = 200, k: int = 10) -> None:
    """Recall@k of IVF-PQ against exact search on real embedding tables, PQ codes alone and refined."""
    from headstart.data.tables import load_embeddings
    from headstart.heads.chunks import ArrayChunks
    from headstart.heads.knn import KNNClassifier, bytes_per_vector
    from headstart.heads.knn_head import knn_recall

    rows = []
    for path in (p for p in tables if p.name != "failures.parquet"):
        loaded = load_embeddings(path)
        X, y = loaded.X, loaded.labels
        picked = np.random.default_rng(0).choice(len(X), min(queries, len(X)), replace=False)
        for refine in ("none", "sq8"):
            knn = KNNClassifier(k=k, index="ivfpq", refine=refine).fit(X, y)
            recall = knn_recall(knn, ArrayChunks(X, y, 4096), X[picked], k=k)
            rows.append([str(path), f"{len(X):,} x {X.shape[1]}", refine, bytes_per_vector(knn.index_), recall])
    section(f"IVF-PQ on real embeddings: recall@{k} against exact search ({queries} queries from the table)")
    print(table(["table", "rows x dim", "refine", "B/vector", f"recall@{k}"], rows))


if __name__ == "__main__":
    main()
