"""Prepare a dataset: list its images, hash their content, apply a shift, split, sort by id.

The result is the ``prepared`` table (see :mod:`headstart.data.tables`) that every backbone and head reads,
so they all see the same images in the same split.
"""

from __future__ import annotations

import io
import logging
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from headstart._progress import ProgressFactory, null_progress
from headstart.data.hashing import content_id, file_id
from headstart.data.images import UnreadableImage, decode_image
from headstart.data.shifts import parse_shift
from headstart.data.sources import SourceError, scan_source, source_kind
from headstart.data.splits import assign_splits, seeded_rank, stratified_limit

__all__ = ["DatasetError", "prepare_dataset"]

log = logging.getLogger(__name__)


class DatasetError(SourceError):
    """A dataset cannot be used for classification as it is (empty, one class, ...)."""


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
        Fractions of each class for the val and test splits (a source's own split wins).
    seed
        Seed of the split (and of ``limit``).
    shift
        Optional domain shift, e.g. ``"invert"`` (see :mod:`headstart.data.shifts`).
    limit
        Keep a stratified subset of at most this many images.
    imbalance
        ``{class: fraction}``: keep that fraction of the class's images (at least one; chosen by ``seed``), to
        make an imbalanced dataset out of a balanced one.

    Returns
    -------
    pandas.DataFrame
        ``id, label, split, path, image`` sorted by ``id``; ``frame.attrs["headstart"]`` describes it.

    Example
    -------
    >>> frame = prepare_dataset("digits", name="digits")            # doctest: +SKIP
    >>> frame["split"].value_counts().to_dict()                     # doctest: +SKIP
    {'train': 989, 'test': 539, 'val': 269}
    """
    name = name or source
    kind = source_kind(source)
    frame = scan_source(source, root)
    if frame.empty:
        raise DatasetError(f"dataset '{name}' ({source}) has no images")
    if "id" not in frame.columns:
        frame["id"] = _hash_files(frame["path"].tolist(), name, progress)
    if limit is not None:
        if limit < 2:
            raise DatasetError(f"datasets.{name}.limit must be at least 2, got {limit}")
        keep = stratified_limit(frame["id"].tolist(), frame["label"].tolist(), limit, seed)
        frame = frame.iloc[keep].reset_index(drop=True)
    if imbalance:
        frame = _thin_classes(frame, imbalance, name, seed)
    classes = sorted(frame["label"].unique())
    if len(classes) < 2:
        raise DatasetError(
            f"dataset '{name}' ({source}) has only one class ({classes[0]!r}); a classifier needs at "
            "least two. For an image folder, put each class in its own sub-folder: root/<class>/<image>"
        )
    _warn_duplicates(frame, name)
    # Split by the original image, before any shift: a shifted copy puts every image in the same split as
    # its original, so nothing of one domain's test set is ever trained on through the other domain.
    frame["split"] = assign_splits(
        frame["id"].tolist(),
        frame["label"].tolist(),
        [None if pd.isna(s) else s for s in frame["split"]],
        val=val,
        test=test,
        seed=seed,
    )
    if shift:
        frame = _apply_shift(frame, shift, name, progress)
    frame = frame.sort_values(["id", "path", "label"], na_position="first", kind="stable").reset_index(drop=True)
    counts = frame["split"].value_counts()
    for split in ("train", "test"):
        if counts.get(split, 0) == 0:
            raise DatasetError(
                f"dataset '{name}' has no {split} images after splitting {len(frame)} images "
                f"(val={val}, test={test}); add images or change datasets.{name}.split"
            )
    _check_every_class_scored(frame, name, val_split=counts.get("val", 0) > 0)
    thinned = {"imbalance": {str(k): float(v) for k, v in sorted(imbalance.items())}} if imbalance else {}
    frame.attrs["headstart"] = _describe(
        frame, name=name, source=source, kind=kind, val=val, test=test, seed=seed, shift=shift, limit=limit, **thinned
    )
    return frame[["id", "label", "split", "path", "image"]]


def _thin_classes(frame: pd.DataFrame, imbalance: Mapping[str, float], name: str, seed: int) -> pd.DataFrame:
    """Keep ``fraction`` of each named class's images (rounded, at least one), ranked by a seeded hash of id."""
    labels = frame["label"].astype(str)
    known = sorted(labels.unique())
    drop = []
    for label, fraction in sorted(imbalance.items()):
        label = str(label)
        if label not in known:
            raise DatasetError(
                f"datasets.{name}.imbalance names class {label!r}, which the dataset does not have; "
                f"its classes: {', '.join(known[:20])}"
            )
        members = np.flatnonzero((labels == label).to_numpy())
        ranked = seeded_rank([f"imbalance:{i}" for i in frame["id"].iloc[members]], seed)
        ranked = members[ranked]
        keep = max(1, int(np.floor(len(members) * float(fraction) + 0.5)))
        drop.extend(ranked[keep:])
        log.info("dataset %s: class %s keeps %d of its %d images", name, label, keep, len(members))
    return frame.drop(frame.index[sorted(drop)]).reset_index(drop=True)


def _check_every_class_scored(frame: pd.DataFrame, name: str, *, val_split: bool) -> None:
    """A class without test images cannot be scored, nor chosen for without val images: refuse the split."""
    for split in ("test", "val") if val_split else ("test",):
        per_class = frame.groupby("label")["split"].agg(lambda s, split=split: int((s == split).sum()))
        empty = per_class[per_class == 0]
        if len(empty):
            label = empty.index[0]
            total = int((frame["label"] == label).sum())
            raise DatasetError(
                f"dataset '{name}': class {label!r} has no {split} image ({total} image(s) in all); "
                f"add images of that class, raise datasets.{name}.split.{split} or drop the class"
            )


def _hash_files(paths: list[str], name: str, progress: ProgressFactory) -> list[str]:
    bar = progress(total=len(paths), desc=f"hash {name}", unit="img")
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = []
            for item_id in pool.map(_file_id_or_error, paths):
                ids.append(item_id)
                bar.update(1)
    finally:
        bar.close()
    return ids


def _file_id_or_error(path: str) -> str:
    try:
        return file_id(path)
    except OSError as err:
        raise SourceError(f"cannot read image file {path}: {err.strerror or err}") from err


def _apply_shift(frame: pd.DataFrame, shift: str, name: str, progress: ProgressFactory) -> pd.DataFrame:
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
                    image = decode_image(row.path)
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
        "classes": sorted(frame["label"].unique().tolist()),
        "splits": {s: int(n) for s, n in sorted(frame["split"].value_counts().items())},
    }
