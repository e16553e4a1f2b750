"""Predict with a fitted head: embed new images with the head's own backbone settings, then classify.

The backbone settings come from the provenance saved with the head, so the new embeddings live in the same
space; the head checks that provenance before it predicts, and refuses embeddings from anywhere else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from headstart._progress import ProgressFactory, null_progress
from headstart.data.hashing import file_id
from headstart.data.sources import IMAGE_EXTENSIONS
from headstart.data.tables import TEXT_COLUMN, EmbeddingTable, load_embeddings
from headstart.features.engine import EmbedOptions, embed
from headstart.features.registry import BackboneSpec
from headstart.heads.metrics import class_scores
from headstart.heads.persist import HeadBundle, load_head

__all__ = [
    "classify_images",
    "embed_frame",
    "embed_images",
    "list_images",
    "predict_images",
    "predict_table",
    "spec_from_provenance",
]


def spec_from_provenance(provenance: dict[str, Any]) -> BackboneSpec:
    """The backbone settings an embedding table was made with."""
    weights = provenance.get("weights")
    return BackboneSpec(
        arch=provenance["backbone"],
        weights=None if weights in (None, "none") else weights,
        layers=(provenance["node"],),
        pooling=provenance["pooling"],
        image_size=provenance.get("image_size"),
        resize_size=provenance.get("resize_size"),
        precision=provenance.get("precision", "fp32"),
    )


def list_images(inputs: Sequence[str | Path]) -> list[str]:
    """Image files named directly or found (recursively) in folders, in sorted order."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [
                    os.path.join(dirpath, f)
                    for f in sorted(filenames)
                    if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
                ]
        elif path.is_file():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"{item} is neither an image file nor a folder")
    if not found:
        raise FileNotFoundError(f"no image files ({' '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, inputs))}")
    return found


def predict_table(bundle: HeadBundle, table: EmbeddingTable, source: str, top: int = 5) -> pd.DataFrame:
    """Classify the rows of an embedding table; refuses a table from another embedding space."""
    bundle.check(table.provenance, source)
    scores = class_scores(bundle.estimator, table.X)
    classes = np.asarray(bundle.estimator.classes_).astype(str)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    best = order[:, 0]
    texts = {TEXT_COLUMN: table.frame[TEXT_COLUMN].to_numpy()} if TEXT_COLUMN in table.frame else {}
    return pd.DataFrame(
        {
            "id": table.frame["id"].to_numpy(),
            "path": table.frame["path"].to_numpy(),
            **texts,
            "predicted": classes[best],
            "probability": scores[np.arange(len(best)), best].round(6),
            f"top{top}": [
                [{"label": classes[j], "probability": round(float(s[j]), 6)} for j in row]
                for row, s in zip(order, scores, strict=True)
            ],
        }
    )


def embed_images(
    paths: Sequence[str],
    provenance: dict[str, Any],
    *,
    options: EmbedOptions = EmbedOptions(),
    progress: ProgressFactory = null_progress,
    purpose: str = "predict",
) -> tuple[EmbeddingTable, list[dict[str, Any]]]:
    """Embed image files with the backbone settings recorded in ``provenance`` (a head's or a table's).

    Returns the embedding table (rows sorted by id) and the failure rows of unreadable images.
    """
    frame = pd.DataFrame({"id": [file_id(p) for p in paths], "label": "", "split": "", "path": list(paths), "image": None})
    return embed_frame(frame, provenance, options=options, progress=progress, purpose=purpose)


def embed_frame(
    frame: pd.DataFrame,
    provenance: dict[str, Any],
    *,
    options: EmbedOptions = EmbedOptions(),
    progress: ProgressFactory = null_progress,
    purpose: str = "predict",
) -> tuple[EmbeddingTable, list[dict[str, Any]]]:
    """Embed the rows of a prepared-like frame (images or texts) with the settings in ``provenance``."""
    frame = frame.sort_values(["id", "path"], kind="stable").reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix=f"headstart-{purpose}-") as tmp:
        out = Path(tmp) / "embeddings.parquet"
        result = embed(
            frame,
            spec_from_provenance(provenance),
            single_file=out,
            options=options,
            dataset={"name": purpose},
            progress=progress,
        )
        return load_embeddings(out), result.failures


def predict_images(
    model: str | Path,
    inputs: Sequence[str | Path],
    *,
    options: EmbedOptions = EmbedOptions(),
    top: int = 5,
    progress: ProgressFactory = null_progress,
) -> pd.DataFrame:
    """Embed ``inputs`` with the head's backbone settings and classify them; one row per image.

    Images that cannot be read get a row with an ``error`` and no prediction.
    """
    bundle = load_head(model)
    return classify_images(bundle, inputs, options=options, top=top, progress=progress)


def classify_images(
    bundle: HeadBundle,
    inputs: Sequence[str | Path],
    *,
    options: EmbedOptions = EmbedOptions(),
    top: int = 5,
    progress: ProgressFactory = null_progress,
) -> pd.DataFrame:
    """:func:`predict_images` with a head already in memory (``headstart.fit(...).predict`` uses it)."""
    if bundle.provenance.get("modality") == "text":  # a text head: .txt files (a text per line) or tables
        from headstart.data.text import read_texts

        frame = read_texts(list(inputs))
        paths = frame["path"].tolist()
        table, failed = embed_frame(frame, bundle.provenance, options=options, progress=progress)
    else:
        paths = list_images(inputs)
        table, failed = embed_images(paths, bundle.provenance, options=options, progress=progress)
    predictions = predict_table(bundle, table, source=", ".join(map(str, inputs)), top=top)
    failures = pd.DataFrame(
        [{"id": f["id"], "path": f["path"], "error": f["error"]} for f in failed],
        columns=["id", "path", "error"],
    )
    rows = pd.concat([predictions.assign(error=None), failures], ignore_index=True)
    order = {p: i for i, p in enumerate(paths)}
    rows = rows.iloc[np.argsort([order[p] for p in rows["path"]], kind="stable")].reset_index(drop=True)
    texts = [TEXT_COLUMN] if TEXT_COLUMN in rows else []
    return rows[["path", *texts, "predicted", "probability", f"top{top}", "error", "id"]]
