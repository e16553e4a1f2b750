"""The audit page opened the way a person opens it: from disk, in Debian's Chromium (headless, via Playwright).

No console error (a blocked request under the page's Content-Security-Policy is one), every thumbnail loads,
sorting a column reorders it, the map draws, and data that looks like markup stays text. A screenshot of each
page is kept in the test's tmp folder. Outside CI a machine without /usr/bin/chromium skips these tests;
with CI=true they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from headstart.data.tables import EmbeddingWriter, load_embeddings
from headstart.workflow.audit import AuditOptions, audit_table

CHROMIUM = Path("/usr/bin/chromium")
PROVENANCE = {"backbone": "pixels", "node": "x", "pooling": "none", "precision": "fp32", "weights": "none",
              "dataset": {"name": "digits-test"}}  # fmt: skip


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(f"{reason} (apt-get install chromium, pip install -e '.[audit]'); CI=true fails instead")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"Debian's chromium is not at {CHROMIUM}")
    pytest.importorskip("cleanlab")
    pytest.importorskip("imagehash")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


def _open(browser: Any, page_path: Path, screenshot: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=15_000)
    page.wait_for_load_state("load")
    page.screenshot(path=str(screenshot), full_page=True)
    return page, errors, dialogs


def _point_at_a_point(page: Any) -> bool:
    """Sweep the mouse across the map until a point shows its tooltip."""
    page.locator("#map").scroll_into_view_if_needed()
    box = page.locator("#map").bounding_box()
    for y in range(0, int(box["height"]), 24):
        for x in range(0, int(box["width"]), 6):
            page.mouse.move(box["x"] + x, box["y"] + y)
            if page.locator("#tip").is_visible():
                return True
    return False


def _write_table(path: Path, labels: list[str], splits: list[str], X: np.ndarray, paths: list[str | None],
                 text: list[str | None] | None = None) -> Path:  # fmt: skip
    ids = [f"r{i:04d}" for i in range(len(labels))]
    extra = ["text"] if text is not None else []
    with EmbeddingWriter(path, X.shape[1], PROVENANCE, extra=extra) as writer:
        writer.write(ids, labels, splits, paths, X.astype(np.float32), extra={"text": text} if text else None)
    return path


@pytest.fixture(scope="module")
def digits_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 digits as PNG files, two train labels flipped and one test image copied into train, audited."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("page")
    digits = load_digits()
    rows = np.random.default_rng(0).choice(len(digits.images), 200, replace=False)
    images = [np.uint8(digits.images[i] * 15) for i in rows]
    labels = [str(digits.target[i]) for i in rows]
    splits = [("train", "train", "train", "val", "test")[n % 5] for n in range(len(rows))]
    labels[0], labels[1] = ("1" if labels[0] != "1" else "7"), ("0" if labels[1] != "0" else "8")
    images.append(images[4].copy())
    images[-1][0, 0] = min(255, int(images[-1][0, 0]) + 3)  # a re-saved copy: a few grey levels off
    labels.append(labels[4])
    splits.append("train")
    paths = []
    for n, pixels in enumerate(images):
        paths.append(str(root / "images" / f"{n:03d}.png"))
        Path(paths[-1]).parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(paths[-1])
    X = np.stack(images).reshape(len(images), -1).astype(np.float32) / 255
    table = load_embeddings(_write_table(root / "emb.parquet", labels, splits, X, paths))
    audit_table(table, root / "audit", options=AuditOptions(params={"C": 1.0}, map_method="pca"))
    return root / "audit" / "index.html"


def test_page_opens_without_errors_with_thumbnails_sorting_and_map(browser: Any, digits_page: Path,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    page, errors, dialogs = _open(browser, digits_page, tmp_path / "audit.png")
    assert errors == [] and dialogs == []
    assert (tmp_path / "audit.png").stat().st_size > 10_000
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert page.evaluate("document.images.length") > 20 and broken == 0
    assert page.locator("#dups-table tbody tr").count() >= 1
    assert page.locator("#labels-table tbody tr").count() >= 2

    def column(table: str, n: int) -> list[str]:
        cells = f"#{table} tbody tr td:nth-child({n})"
        return page.eval_on_selector_all(cells, "cells => cells.map(c => c.textContent)")

    page.click("#labels-table th:nth-child(4)")  # score: descending first
    scores = [float(s) for s in column("labels-table", 4)]
    assert scores == sorted(scores, reverse=True)
    page.click("#labels-table th:nth-child(4)")
    assert [float(s) for s in column("labels-table", 4)] == sorted(scores)
    page.click("#labels-table th:nth-child(2)")
    assert column("labels-table", 2) == sorted(column("labels-table", 2))
    painted = page.evaluate(
        """() => { const c = document.getElementById('map'); const d = c.getContext('2d')
                   .getImageData(0, 0, c.width, c.height).data; let n = 0;
                   for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )
    assert painted > 1000
    page.select_option("#colour-by", "finding")
    assert _point_at_a_point(page) and page.locator("#tip img").count() == 1
    page.screenshot(path=str(tmp_path / "audit-map.png"))
    if Path("/tmp/hs").is_dir():
        page.screenshot(path="/tmp/hs/audit-screenshot.png", full_page=False)
    assert errors == [] and dialogs == []


def test_markup_in_the_data_stays_text(browser: Any, tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>"
    script = "</script><script>alert(2)</script>"
    n = 24
    labels = [evil if i % 2 else "plain" for i in range(n)]
    splits = [("train", "train", "val", "test")[(i // 2) % 4] for i in range(n)]
    X = np.random.default_rng(0).normal(size=(n, 6)) + np.array([[3.0] * 6])[[0] * n] * (np.arange(n) % 2)[:, None]
    texts = [f"text {i} {script}" for i in range(n)]
    paths = [f'"><svg onload=alert(3)>{i}.png' for i in range(n)]
    labels, splits, texts, paths = labels + [labels[0]], splits + ["test"], texts + [texts[0]], paths + [paths[0]]
    X = np.vstack([X, X[:1]])  # a copy of row 0 in test: one duplicate pair, shown with its texts
    table = load_embeddings(_write_table(tmp_path / "evil.parquet", labels, splits, X, paths, texts))
    audit_table(table, tmp_path / "audit", options=AuditOptions(params={"C": 1.0}, map_method="pca"),
                title="<b>title</b>")  # fmt: skip
    page, errors, dialogs = _open(browser, tmp_path / "audit" / "index.html", tmp_path / "evil.png")
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], svg, b').length") == 0
    assert page.evaluate("document.scripts.length") == 2  # the data block and the page's own script
    assert page.title() == "<b>title</b>"
    assert evil in page.inner_text("#legend")  # the label, as text
    assert script in page.inner_text("#dups-table")  # the texts of the duplicate pair, as text
    assert _point_at_a_point(page) and script in page.inner_text("#tip")
    assert dialogs == [] and errors == []
