"""`headstart audit`, the audit stage and ``headstart.audit()``: what an embedding table says about its data.

Writes one folder, built beside its place and swapped in whole (an audit that fails or is killed leaves the
previous folder as it was): ``index.html`` (the page, thumbnails under ``thumbs/``), ``duplicates.parquet``,
``label_issues.parquet``, ``outliers.parquet`` and ``summary.json`` (the counts, and the head's test score with
and without the test images that have a near-copy in train or val). The findings are in
:mod:`headstart.heads.audit`; their thresholds are documented there and in docs/audit.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from headstart._files import atomic_dir, write_json
from headstart.data.tables import EmbeddingTable, load_embeddings, read_prepared_images
from headstart.data.tables.findings import write_findings
from headstart.data.thumbnails import row_images, thumbnail_png
from headstart.errors import UserError
from headstart.heads.audit.confusion import confused_pairs, misclassified_with_neighbours
from headstart.heads.audit.duplicates import (
    COSINE_DUPLICATE, HASH_BITS, PIXEL_CORRELATION, find_duplicates, leaked_rows,
)  # fmt: skip
from headstart.heads.audit.labels import FOLDS, LabelScores, label_issues, no_label_issues, out_of_sample_scores
from headstart.heads.audit.outliers import FENCE, K, flag_outliers, outlier_scores
from headstart.heads.audit.pixels import pixel_signatures
from headstart.heads.audit.projection import MAP_METHODS, MAX_POINTS, map_2d, map_rows
from headstart.heads.evaluate import SplitData, evaluate_head
from headstart.heads.neighbours import nearest
from headstart.heads.parallel import single_threaded
from headstart.heads.registry import check_params
from headstart.report.audit_page import write_audit_page

__all__ = [
    "AuditError", "AuditOptions", "audit_dir", "audit_metrics", "audit_path", "audit_stage", "audit_table", "best_fit",
]  # fmt: skip

log = logging.getLogger(__name__)

PAGE_ROWS = 2000  # per finding on the page (the most likely first); the Parquet tables hold every one
Prepared = str | Path | pd.DataFrame  # a prepared table's path (or URI), or the frame itself


class AuditError(UserError, ValueError):
    """An audit setting or input the audit cannot use; the message names it and the fix."""


@dataclass(frozen=True)
class AuditOptions:
    """How the audit runs; the defaults are the calibrated ones (docs/audit.md)."""

    head: str = "logreg"
    params: Mapping[str, Any] = field(default_factory=dict)
    cosine: float = COSINE_DUPLICATE
    hash_bits: int = HASH_BITS
    pixel_correlation: float = PIXEL_CORRELATION
    folds: int = FOLDS
    map_method: str = "umap"
    max_points: int = MAX_POINTS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.map_method not in MAP_METHODS:
            raise AuditError(f"map method {self.map_method!r} is not one of {', '.join(MAP_METHODS)}")
        if not 0 < self.cosine <= 1:
            raise AuditError(f"the duplicate cosine {self.cosine} is not in (0, 1]; 0.995 is the default")
        if not 0 <= self.hash_bits < 64:
            raise AuditError(f"hash bits {self.hash_bits} is not in 0..63; {HASH_BITS} is the default")
        if not -1 <= self.pixel_correlation <= 1:
            raise AuditError(f"the pixel correlation {self.pixel_correlation} is not in [-1, 1]; "
                             f"{PIXEL_CORRELATION} is the default")  # fmt: skip
        check_params(self.head, dict(self.params), "audit")


def audit_path(
    table_path: str | Path, out_dir: str | Path, *, prepared: Prepared | None = None,
    options: AuditOptions = AuditOptions(),
) -> dict[str, Any]:  # fmt: skip
    """Audit the embedding table at ``table_path`` into ``out_dir`` (see :func:`audit_table`)."""
    table = load_embeddings(table_path)
    return audit_table(table, out_dir, prepared=prepared, options=options, title=f"Audit of {table_path}")


def stored_images(prepared: Prepared, ids: list[str]) -> dict[str, bytes | None]:
    """The image bytes of ``ids`` in a prepared table."""
    if not isinstance(prepared, pd.DataFrame):
        return read_prepared_images(prepared, ids)
    if not {"id", "image"} <= set(prepared.columns):
        raise AuditError("the prepared table given to the audit has no id and image columns; pass the table that "
                         "prepare_dataset() returns or data/prepared/<dataset>.parquet")  # fmt: skip
    found = dict(zip(prepared["id"], prepared["image"]))
    return {i: found.get(i) for i in ids}


def _score(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    if not len(y_true):
        return None
    score = balanced_accuracy_score if metric == "balanced_accuracy" else accuracy_score
    return round(float(score(y_true, y_pred)), 6)


def _labels(table: EmbeddingTable, options: AuditOptions) -> tuple[dict[str, Any], LabelScores | None]:
    """The head's test score with and without leaked rows is filled in later; here: the head and its scores."""
    if not table.labelled or len(set(table.labels)) < 2:
        return {}, None
    data = SplitData.from_table(table, source="the audited table")
    if not len(data.y_train):
        raise AuditError("the table has no train split; an audit of labels needs train (and test) rows")
    evaluation = evaluate_head(options.head, dict(options.params), data, seeds=1, few_shot=(), seed=options.seed)
    metric = evaluation.selection.metric if evaluation.selection.metric == "balanced_accuracy" else "accuracy"
    split = table.frame["split"].to_numpy()
    scores = out_of_sample_scores(options.head, evaluation.params, table.X, table.labels, split,
                                  folds=options.folds, seed=options.seed)  # fmt: skip
    found = {"head": options.head, "metric": metric, "y_true": evaluation.y_true, "y_pred": evaluation.y_pred}
    return found, scores


@single_threaded  # BLAS, OpenMP (faiss, scikit-learn) on one thread: the findings do not depend on the cores
def audit_table(
    table: EmbeddingTable, out_dir: str | Path, *, prepared: Prepared | None = None,
    stored: Mapping[str, bytes | None] | None = None, options: AuditOptions = AuditOptions(), title: str = "Audit",
) -> dict[str, Any]:  # fmt: skip
    """Audit ``table`` into ``out_dir`` (see the module's docstring), which is replaced whole; return the summary.

    ``prepared`` (the prepared table the embeddings come from, as a path or a frame) or ``stored`` (``{id:
    image bytes}``) supplies the pixels of images that have no file (built-in datasets): their thumbnails and
    pixel signatures."""
    frame, X, out = table.frame, table.X, Path(out_dir)
    if len(X) < 2:
        raise AuditError("an audit needs at least two rows; the table has fewer")
    _check_replaceable(out)
    if prepared is not None:
        stored = stored_images(prepared, sorted(frame["id"]))
    split = frame["split"].to_numpy()
    neighbours = nearest(X, X, min(K, len(X) - 1), exclude=list(range(len(X))))
    duplicates = find_duplicates(
        frame, X, pixel_signatures(table, stored), neighbours=neighbours, cosine=options.cosine,
        max_bits=options.hash_bits, correlation=options.pixel_correlation,
    )  # fmt: skip
    outliers = flag_outliers(frame, outlier_scores(neighbours[1]))
    head, scores = _labels(table, options)
    issues = label_issues(frame, scores) if scores is not None else no_label_issues()
    leaked = leaked_rows(frame, duplicates)
    summary = _summary(frame, duplicates, issues, outliers, leaked, head, options)
    row_of = {item_id: i for i, item_id in enumerate(frame["id"])}
    confused = confused_pairs(scores) if scores is not None else []
    wrong = misclassified_with_neighbours(X, split, scores) if scores is not None else []
    summary["misclassified"] = len(wrong)
    top = (*duplicates["id_a"][:PAGE_ROWS], *duplicates["id_b"][:PAGE_ROWS], *issues["id"][:PAGE_ROWS],
           *outliers["id"][:PAGE_ROWS])  # fmt: skip
    flagged = [row_of[i] for i in top]
    shown = map_rows(len(X), flagged, options.max_points, options.seed)
    coords = map_2d(X[shown], options.map_method, options.seed)
    meta = {"table": table.provenance, "options": _options(options)}
    findings = {"duplicates": duplicates, "label_issues": issues, "outliers": outliers}
    page = _Page(frame, stored)
    duplicates, issues, outliers = duplicates[:PAGE_ROWS], issues[:PAGE_ROWS], outliers[:PAGE_ROWS]
    data = {
        "title": title,
        "subtitle": _subtitle(table.provenance, summary),
        "summary": {**summary, "rows": len(frame)},
        "duplicates": [[page.row(row_of[a]), page.row(row_of[b]), s, h, None if np.isnan(c) else c, f]
                       for a, b, s, h, c, f in duplicates[["id_a", "id_b", "similarity", "hash_bits",
                                                           "pixel_correlation", "found_by"]].itertuples(index=False)],
        "label_issues": [[page.row(row_of[i]), s, c] for i, s, c in
                         issues[["id", "suggested", "score"]].itertuples(index=False)],
        "outliers": [[page.row(row_of[i]), s] for i, s in outliers[["id", "score"]].itertuples(index=False)],
        "confused": [{**p, "rows": [[page.row(r), str(scores.predicted[r])] for r in p["rows"]]} for p in confused],
        "misclassified": [{**w, "row": page.row(w["row"]),
                           "neighbours": [[page.row(r), s] for r, s in w["neighbours"]]} for w in wrong],
        "map": {"rows": [page.row(r) for r in shown], "x": coords[:, 0].tolist(), "y": coords[:, 1].tolist(),
                "method": options.map_method, "seed": options.seed},
    }  # fmt: skip
    with atomic_dir(out) as building:  # built beside out and swapped in whole: a failed audit leaves the last one
        for kind, found in findings.items():
            write_findings(building / f"{kind}.parquet", found, kind, meta)
        data["rows"] = page.write_thumbnails(building / "thumbs")
        write_audit_page(building, data)
        write_json(building / "summary.json", summary)
    log.info("audit of %d rows: %s", len(frame), {k: summary[k] for k in ("duplicates", "label_issues", "outliers")})
    return summary


def _check_replaceable(out: Path) -> None:
    """The output folder is replaced whole: refuse a file, or a folder that holds something other than an audit."""
    if out.exists() and (not out.is_dir() or any(out.iterdir()) and not (out / "summary.json").is_file()):
        raise AuditError(f"{out} exists and is not an audit's folder (no summary.json), and an audit replaces its "
                         "output folder whole; give a new or empty folder")  # fmt: skip


def _options(options: AuditOptions) -> dict[str, Any]:
    return {"head": options.head, "params": dict(options.params), "cosine": options.cosine,
            "hash_bits": options.hash_bits, "pixel_correlation": options.pixel_correlation, "folds": options.folds,
            "outlier_neighbours": K, "outlier_fence": FENCE, "map": options.map_method,
            "max_points": options.max_points, "seed": options.seed}  # fmt: skip


def _summary(frame, duplicates, issues, outliers, leaked, head, options) -> dict[str, Any]:
    split = frame["split"].to_numpy()
    cross = duplicates["split_a"] != duplicates["split_b"]
    summary: dict[str, Any] = {
        "classes": int(frame["label"].nunique()), "duplicates": len(duplicates), "cross_split": int(cross.sum()),
        "label_issues": len(issues), "outliers": len(outliers), "leaked": len(leaked),
        "test_rows": int((split == "test").sum()), "thresholds": _options(options), "head": head.get("head"),
        "metric": head.get("metric"), "score": None, "score_without_leaked": None,
    }  # fmt: skip
    if head:
        test_rows = np.flatnonzero(split == "test")
        keep = ~np.isin(test_rows, leaked)
        summary["score"] = _score(head["metric"], head["y_true"], head["y_pred"])
        summary["score_without_leaked"] = _score(head["metric"], head["y_true"][keep], head["y_pred"][keep])
    return summary


def _subtitle(provenance: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    dataset = (provenance.get("dataset") or {}).get("name") or "a collection"
    space = " ".join(dict.fromkeys(str(provenance[k]) for k in ("backbone", "node", "pooling") if provenance.get(k)))
    head = f"; labels checked with {summary['head']}" if summary.get("head") else ""
    return f"{dataset}, embedded with {space or 'an unknown backbone'}{head}"


class _Page:
    """The rows the page shows, numbered in the order first used, and their thumbnails (``thumbs/<n>.png``)."""

    def __init__(self, frame: pd.DataFrame, stored: Mapping[str, bytes | None] | None) -> None:
        self.frame, self.stored, self.local = frame, stored, {}

    def row(self, row: int) -> int:
        return self.local.setdefault(int(row), len(self.local))

    def write_thumbnails(self, folder: Path) -> dict[str, list[Any]]:
        """Write ``folder/<n>.png`` for the rows used; return the rows' columns for the page."""
        rows = list(self.local)
        part = self.frame.iloc[rows]
        folder.mkdir(exist_ok=True)
        thumbs = []
        for n, image in enumerate(row_images(part, self.stored)):
            if image is None:
                thumbs.append("")
                continue
            (folder / f"{n}.png").write_bytes(thumbnail_png(image))
            thumbs.append(f"thumbs/{n}.png")
        text = part["text"] if "text" in part.columns else [None] * len(part)
        return {
            "id": [str(v) for v in part["id"]],
            "label": [None if v is None or v != v else str(v) for v in part["label"]],
            "split": [None if v is None or v != v else str(v) for v in part["split"]],
            "path": [v if isinstance(v, str) else None for v in part["path"]],
            "text": [v if isinstance(v, str) else None for v in text],
            "thumb": thumbs,
        }


def audit_dir(dataset: str, backbone: str) -> Path:
    return Path("audit") / dataset / backbone


def audit_metrics(dataset: str, backbone: str) -> Path:
    return Path("metrics/audit") / dataset / f"{backbone}.json"


def best_fit(dataset: str, backbone: str) -> tuple[str, str, dict[str, Any]]:
    """``(layer, head kind, params)`` with the best val score among the fit stages' results of a dataset x backbone
    (the report's rule: test scores never choose; the first among equals, in head and layer order)."""
    from headstart.workflow import layout

    folder = layout.results(dataset, backbone, "x").parent
    found = []
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        for layer, record in sorted(result["layers"].items()):
            if record.get("val_score") is not None:
                found.append((-float(record["val_score"]), path.stem, layer, result["kind"], record["params"]))
    if not found:
        raise AuditError(f"no head results with a val score in {folder}; run `dvc repro` (the fit stages write them)")
    _, _, layer, kind, params = min(found, key=lambda f: f[:3])
    return layer, kind, params


def audit_stage(dataset: str, backbone: str) -> dict[str, Any]:
    """The audit stage: the best layer's table audited with the best head's chosen parameters."""
    from headstart.workflow import layout

    layer, kind, params = best_fit(dataset, backbone)
    fixed = {k: v for k, v in params.items() if k != "select_by"}
    options = AuditOptions(head=kind, params=fixed)
    table = layout.layer_tables(dataset, backbone)[layer]
    summary = audit_path(table, audit_dir(dataset, backbone), prepared=layout.prepared(dataset), options=options)
    keys = ("duplicates", "cross_split", "label_issues", "outliers", "leaked", "score", "score_without_leaked")
    write_json(audit_metrics(dataset, backbone), {"layer": layer, "head": kind, **{k: summary[k] for k in keys}})
    return summary
