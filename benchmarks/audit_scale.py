"""How long does `headstart audit` take on a large table, how much memory does it hold, and does its page stay
responsive?

A benchmark, not a test: it prints a markdown table. Run it from the repository root::

    .venv/bin/python benchmarks/audit_scale.py                 # 100,000 rows (a few minutes on 2 cores)
    .venv/bin/python benchmarks/audit_scale.py --rows 10000    # a quick look

Data: synthetic clustered embeddings (``--rows`` x 128 float32, 20 classes of 4 Gaussian clusters around shared
topics, sample noise 0.5, 2% of the labels moved to the next class, seeded; ``_report.clustered_embeddings``), split 70/15/15, each row with a generated 16 x 16 PNG (its
class's pattern plus noise) as the image bytes the audit hashes and thumbnails. The head is the faiss k-NN head
at a fixed k=20 (``--head logreg`` for logistic regression at C=1, whose six fits dominate at this size: about a
minute at 10,000 rows), so the time is mostly the audit's own: the exact k-NN and hash searches, 5-fold
out-of-sample probabilities, cleanlab, the map of at most 5,000 points, thumbnails and the page. Peak memory is the process's
maximum resident set (``ru_maxrss``). The page is then opened in Debian's Chromium: time to ready, and the time
of one sort, one map redraw and one hover, each measured inside the page with ``performance.now()``.
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _report import clustered_embeddings  # noqa: E402

from headstart.data.tables import EmbeddingWriter, load_embeddings  # noqa: E402
from headstart.workflow.audit import AuditOptions, audit_table  # noqa: E402

PROVENANCE = {"backbone": "synthetic", "node": "x", "pooling": "none", "precision": "fp32", "weights": "none",
              "dataset": {"name": "synthetic"}}  # fmt: skip


HEAD_PARAMS = {"knn": {"k": 20}, "logreg": {"C": 1.0}}


def images(labels: np.ndarray, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (int(labels.max()) + 1, 16, 16))
    out = []
    for label in labels:
        pixels = np.clip(patterns[label] + rng.normal(0, 40, (16, 16)), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def page_timings(page_path: Path) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        start = time.perf_counter()
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        ready = time.perf_counter() - start
        sort = page.evaluate(
            "() => { const th = document.querySelector('#labels-table th.sortable, #wrong-table th.sortable');"
            " const t = performance.now();"
            " th.click(); return performance.now() - t; }"
        )
        redraw = page.evaluate(
            "() => { const s = document.getElementById('colour-by'); s.value = 'finding'; const t = performance.now();"
            " s.dispatchEvent(new Event('change')); return performance.now() - t; }"
        )
        hover = page.evaluate(
            "() => { const c = document.getElementById('map'); const b = c.getBoundingClientRect();"
            " const t = performance.now(); c.dispatchEvent(new MouseEvent('mousemove', {clientX: b.left + b.width / 2,"
            " clientY: b.top + b.height / 2})); return performance.now() - t; }"
        )
        browser.close()
    return {"ready_s": ready, "sort_ms": sort, "redraw_ms": redraw, "hover_ms": hover}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--map", default="umap", choices=["umap", "pca"])
    parser.add_argument("--head", default="knn", choices=["knn", "logreg"])
    args = parser.parse_args()
    data = clustered_embeddings(args.rows, 0, 128, 20, noise=0.5, seed=0)
    X, labels = data.X_train, data.y_train.copy()
    flip = np.random.default_rng(1).choice(len(labels), len(labels) // 50, replace=False)
    labels[flip] = (labels[flip] + 1) % 20  # 2% wrong labels, for the label issues and the page's biggest table
    splits = np.array(["train"] * 14 + ["val"] * 3 + ["test"] * 3)[np.arange(len(X)) % 20]
    ids = [f"r{i:07d}" for i in range(len(X))]
    stored = dict(zip(ids, images(labels, 0)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.parquet"
        with EmbeddingWriter(path, X.shape[1], PROVENANCE) as writer:
            writer.write(ids, [str(v) for v in labels], list(splits), [None] * len(ids), X)
        table = load_embeddings(path)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        summary = audit_table(table, Path(tmp) / "audit", stored=stored,
                              options=AuditOptions(head=args.head, params=HEAD_PARAMS[args.head],
                                                   map_method=args.map))  # fmt: skip
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        page = Path(tmp) / "audit" / "index.html"
        size = page.stat().st_size / 2**20
        thumbs = len(list((Path(tmp) / "audit" / "thumbs").glob("*.png")))
        timings = page_timings(page)
    print("| rows | audit s | peak RSS MiB (before) | duplicates | label issues | outliers | page MiB | thumbnails |"
          " page ready s | sort ms | map redraw ms | hover ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(X):,} | {seconds:.0f} | {peak:.0f} ({before:.0f}) | {summary['duplicates']} | "
          f"{summary['label_issues']} | {summary['outliers']} | {size:.1f} | {thumbs} | {timings['ready_s']:.1f} | "
          f"{timings['sort_ms']:.0f} | {timings['redraw_ms']:.0f} | {timings['hover_ms']:.1f} |")


if __name__ == "__main__":
    main()
