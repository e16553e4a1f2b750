"""Prepare a dataset: list its images, hash their content, apply a shift, split, sort by id.

The result is the ``prepared`` table (see :mod:`headstart.data.tables`) that every backbone and head reads,
so they all see the same images in the same split.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from headstart._progress import ProgressFactory, null_progress
from headstart.data.builtin import BUILTIN_DATASETS
from headstart.data.hashing import content_id, file_id
from headstart.data.imbalance import thin_classes
from headstart.data.images import UnreadableImage, decode_image
from headstart.data.shifts import parse_shift
from headstart.data.sources import DatasetError, SourceError, manifest_text_column, scan_source, source_kind
from headstart.data.splits import assign_splits, stratified_limit, unscored_classes
from headstart.data.statcache import StatCache
from headstart.data.tables import TEXT_COLUMN
from headstart.data.text import scan_text_table

__all__ = ["DatasetError", "prepare_dataset", "shift_frame"]

log = logging.getLogger(__name__)


def prepare_dataset(
    source: str,
    *,
    name: str | None = None,
    val: float = 0.15,
    test: float = 0.30,
    seed: int = 0,
    shift: str | None = None,
    limit: int | None = None,
    root: str | None = None,
    text_column: str | None = None,
    stat_cache: str | Path | None = None,
    labels: str = "auto",
    group_column: str | None = None,
    imbalance: Mapping[str, float] | None = None,
    progress: ProgressFactory = null_progress,
) -> pd.DataFrame:
    """Build the prepared table of a dataset.

    Parameters
    ----------
    source
        A built-in name (``digits``), an image folder (``root/<class>/<image>``) or a manifest.
    name
        The dataset's name in params.yaml (for messages and metadata).
    val, test
        Fractions of each class for the val and test splits (a source's own split wins). Every image gets a
        split, however small its class (:mod:`headstart.data.splits`); classes left without a val or test
        image are logged, and ``fit`` leaves them out of its evaluation.
    seed
        Seed of the split (and of ``limit``).
    shift
        Optional domain shift, e.g. ``"invert"`` (see :mod:`headstart.data.shifts`).
    limit
        Keep a stratified subset of at most this many images.
    text_column
        For a text dataset: ``source`` is a CSV/Parquet table and this column holds the texts
        (see :mod:`headstart.data.text`).
    stat_cache
        A :class:`~headstart.data.statcache.StatCache` file (the stage uses ``.headstart/stat.sqlite``):
        files whose size, mtime and inode are unchanged since the last run are not read again.
    labels
        ``auto`` (the source's own labels; a folder of images without class sub-folders or a manifest
        without ``label`` is unlabelled) or ``none`` (null labels whatever the source has).
    group_column
        A manifest column (a patient or site id, ...): every group lands in one split, whole.
    imbalance
        ``{class: fraction}``: keep that fraction of the class's images (at least one; chosen by ``seed``), to
        make an imbalanced dataset out of a balanced one (:mod:`headstart.data.imbalance`).

    Returns
    -------
    pandas.DataFrame
        ``id, label, split, path, image`` and a manifest's extra columns, sorted by ``id``;
        ``frame.attrs["headstart"]`` describes it.

    Example
    -------
    >>> frame = prepare_dataset("digits", name="digits")            # doctest: +SKIP
    >>> frame["split"].value_counts().to_dict()                     # doctest: +SKIP
    {'train': 989, 'test': 539, 'val': 269}
    """
    name = name or source
    if text_column is None:  # a manifest with a text column and no path column is a text table
        text_column = manifest_text_column(source)
    if text_column is not None:
        if shift:
            raise DatasetError(f"datasets.{name}.shift applies to images; '{source}' is a text dataset")
        kind, frame = "text", scan_text_table(source, text_column)
        if labels == "none":
            frame["label"] = None
    else:
        kind = source_kind(source)
        frame = scan_source(source, root, labels)
    if frame.empty:
        raise DatasetError(f"dataset '{name}' ({source}) has no images")
    extra = [c for c in frame.columns if c not in ("id", "label", "split", "path", "image")]
    if group_column is not None and group_column not in extra:
        raise DatasetError(
            f"datasets.{name}.group_column is {group_column!r}, but {source} has no such column "
            f"(its own columns: {', '.join(extra) or 'none'}); name a column of the manifest"
        )
    labelled = not frame["label"].isna().all()
    strata = frame["label"].tolist() if labelled else [""] * len(frame)
    if "id" not in frame.columns:
        frame["id"] = _hash_files(frame["path"].tolist(), name, progress, stat_cache)
    if limit is not None:
        if limit < 2:
            raise DatasetError(f"datasets.{name}.limit must be at least 2, got {limit}")
        keep = stratified_limit(frame["id"].tolist(), strata, limit, seed)
        frame = frame.iloc[keep].reset_index(drop=True)
        strata = [strata[i] for i in keep]
    if imbalance and labelled:
        frame = thin_classes(frame, imbalance, name, seed)
        strata = frame["label"].tolist()
    classes = sorted(frame["label"].unique()) if labelled else []
    if labelled and len(classes) < 2:
        raise DatasetError(
            f"dataset '{name}' ({source}) has only one class ({classes[0]!r}); a classifier needs at "
            "least two. For an image folder, put each class in its own sub-folder: root/<class>/<image>"
        )
    _warn_duplicates(frame, name)
    # Split by the original image, before any shift: a shifted copy puts every image in the same split as
    # its original, so nothing of one domain's test set is ever trained on through the other domain.
    frame["split"] = assign_splits(
        frame["id"].tolist(),
        strata,
        [None if pd.isna(s) else s for s in frame["split"]],
        val=val,
        test=test,
        seed=seed,
        groups=None if group_column is None else frame[group_column].tolist(),
    )
    if shift:
        frame = shift_frame(frame, shift, name, progress)
    frame = frame.sort_values(["id", "path", "label"], na_position="first", kind="stable").reset_index(drop=True)
    if labelled:
        _note_unscored(frame, name)
    info = dict(name=name, source=source, kind=kind, val=val, test=test, seed=seed, shift=shift, limit=limit)
    if imbalance:
        info["imbalance"] = {str(k): float(v) for k, v in sorted(imbalance.items())}
    if not labelled:  # keys only where they differ from a labelled, plain table, whose metadata stays minimal
        info["labels"] = "none"
    if extra:
        info["columns"] = extra
    if group_column is not None:
        info["group_column"] = group_column
    frame.attrs["headstart"] = _describe(frame, **info)
    if text_column is not None or (kind == "builtin" and BUILTIN_DATASETS[source].modality == "text"):
        frame.attrs["headstart"].update(modality="text", text_column=text_column)
        attrs = frame.attrs
        frame = frame.assign(**{TEXT_COLUMN: [bytes(b).decode("utf-8") for b in frame["image"]]})
        frame.attrs = attrs
        return frame[["id", "label", "split", "path", TEXT_COLUMN, "image", *extra]]
    return frame[["id", "label", "split", "path", "image", *extra]]


def _hash_files(paths: list[str], name: str, progress: ProgressFactory, stat_cache: str | Path | None) -> list[str]:
    bar = progress(total=len(paths), desc=f"hash {name}", unit="img")
    cache = StatCache(stat_cache)
    try:
        ids = cache.ids(paths, _file_id_or_error, on_hashed=bar.update)
    except OSError as err:
        raise SourceError(f"cannot read image file {err.filename}: {err.strerror or err}") from err
    finally:
        bar.close()
    if len(paths) > cache.hashed:
        log.info("%s: %d of %d files unchanged since the last run", name, len(paths) - cache.hashed, len(paths))
    return ids


def _file_id_or_error(path: str) -> str:
    try:
        return file_id(path)
    except OSError as err:
        raise SourceError(f"cannot read image file {path}: {err.strerror or err}") from err


def shift_frame(
    frame: pd.DataFrame,
    shift: str,
    name: str,
    progress: ProgressFactory = null_progress,
    max_side: int | None = None,
) -> pd.DataFrame:
    """A shifted copy of a prepared table's rows: each image (file or bytes) shifted and embedded as PNG bytes, with
    the id of its new pixels; unreadable images are left as they are (the embed stage reports them).

    With ``max_side``, an image whose shorter side is longer is first reduced to that shorter side (JPEGs decoded
    at a reduced scale), so a test split of 12 MP photos is shifted at about the size the model sees, not held
    in memory as full-size PNGs; smaller images are shifted at their stored size."""
    transform = parse_shift(shift)
    ids, images = [], []
    bar = progress(total=len(frame), desc=f"shift {name}", unit="img")
    try:
        for row in frame.itertuples(index=False):
            bar.update(1)
            try:
                if row.image is not None:
                    image = Image.open(io.BytesIO(row.image))
                    image.load()
                else:
                    image = decode_image(row.path, reduce_to=max_side)
                if max_side is not None and min(image.size) > max_side:
                    scale = max_side / min(image.size)
                    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                    image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            except UnreadableImage:
                # left as it is: the embed stage reports it in its failures table
                ids.append(row.id)
                images.append(row.image)
                continue
            shifted = transform(image)
            buffer = io.BytesIO()
            shifted.save(buffer, format="PNG", compress_level=6)
            pixels = np.asarray(shifted)
            ids.append(content_id(pixels.tobytes(), prefix=f"array:{pixels.dtype}:{pixels.shape}"))
            images.append(buffer.getvalue())
    finally:
        bar.close()
    out = frame.copy()
    out["id"] = ids
    out["image"] = images
    return out


def _note_unscored(frame: pd.DataFrame, name: str) -> None:
    """Log the classes the heads' protocol will leave out (no train, val or test image): the table is written
    whatever the split, and ``fit`` decides what it can evaluate."""
    unscored = unscored_classes(frame["label"].tolist(), frame["split"].tolist())
    if unscored:
        shown = ", ".join(f"class {label!r} (no {split} image)" for label, split in list(unscored.items())[:5])
        more = f" and {len(unscored) - 5} more" if len(unscored) > 5 else ""
        log.warning(
            "dataset %s: %d of %d classes cannot be evaluated: %s%s; fit will leave them out",
            name, len(unscored), frame["label"].nunique(), shown, more,
        )


def _warn_duplicates(frame: pd.DataFrame, name: str) -> None:
    dup = frame["id"].duplicated(keep=False)
    if dup.any():
        conflicting = frame[dup].groupby("id")["label"].nunique()
        log.warning(
            "dataset %s: %d images are byte-identical copies of others (kept in the same split)%s",
            name,
            int(dup.sum()),
            f"; {int((conflicting > 1).sum())} of them carry different labels" if (conflicting > 1).any() else "",
        )


def _describe(frame: pd.DataFrame, **info: Any) -> dict[str, Any]:
    return {
        **info,
        "images": int(len(frame)),
        "classes": sorted(frame["label"].dropna().unique().tolist()),
        "splits": {s: int(n) for s, n in sorted(frame["split"].value_counts().items())},
    }
