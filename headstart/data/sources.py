"""Where images come from: a built-in dataset, an image folder or a manifest (CSV or Parquet).

:func:`scan_source` turns any of them into one frame with the columns ``label, split, path, image``
(``split`` null unless the source fixes it; ``image`` PNG bytes only for built-in arrays), then a manifest's
extra columns as text. ``label`` is null in every row of an unlabelled source: a folder of images with no class
sub-folders (or any folder with ``labels="none"``), or a manifest without a ``label`` column.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from headstart.data.builtin import BUILTIN_DATASETS, load_builtin
from headstart.data.tables import TEXT_COLUMN, read_manifest_columns, read_manifest_parquet
from headstart.errors import UserError

__all__ = [
    "DatasetError",
    "IMAGE_EXTENSIONS",
    "LABEL_MODES",
    "SPLITS",
    "SourceError",
    "manifest_text_column",
    "scan_folder",
    "scan_manifest",
    "scan_source",
    "source_kind",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
SPLITS = ("train", "val", "test")
MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")
LABEL_MODES = ("auto", "none")
RESERVED_COLUMNS = ("id", "image", "embedding", "error")


class SourceError(UserError, ValueError):
    """A dataset source is missing, malformed or empty; the message names it and says what to fix."""


class DatasetError(SourceError):
    """A dataset cannot be used for classification as it is (empty, one class, ...)."""


def source_kind(source: str) -> str:
    """``"builtin"``, ``"folder"`` or ``"manifest"``; raises :class:`SourceError` for anything else."""
    if source in BUILTIN_DATASETS:
        return "builtin"
    path = Path(source)
    if path.is_dir():
        return "folder"
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return "manifest"
    if path.is_file():
        raise SourceError(
            f"{source} is a file but not a manifest; a manifest is a .csv or .parquet file "
            "with columns path,label[,split]"
        )
    raise SourceError(
        f"dataset source '{source}' is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}), "
        "nor an existing image folder, nor a .csv/.parquet manifest"
    )


def manifest_text_column(source: str) -> str | None:
    """``"text"`` when ``source`` is a manifest with a ``text`` column and no ``path`` column (a text table that
    needs no ``text_column``); ``None`` otherwise, and for anything that cannot be read (``scan_manifest`` says
    what is wrong with it)."""
    path = Path(source)
    if not (path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES):
        return None
    try:
        if path.suffix.lower() == ".csv":
            names = pd.read_csv(path, nrows=0, dtype=str).columns
        else:
            names = read_manifest_columns(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError):
        return None
    by_lower = {str(n).strip().lower(): str(n) for n in names}
    return by_lower[TEXT_COLUMN] if TEXT_COLUMN in by_lower and "path" not in by_lower else None


def scan_source(source: str, root: str | None = None, labels: str = "auto") -> pd.DataFrame:
    """Read any source into ``label, split, path, image[, extra...]`` rows (not yet hashed).

    ``labels="none"`` reads the source as an unlabelled collection (null labels); ``"auto"`` uses the labels
    the source has.
    """
    if labels not in LABEL_MODES:
        raise SourceError(f"labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")
    kind = source_kind(source)
    if kind == "builtin":
        frame = load_builtin(source, root)
    elif kind == "folder":
        frame = scan_folder(source, labels)
    else:
        frame = scan_manifest(source, labels)
    if labels == "none":
        frame["label"] = None
    return frame


def _walk_images(top: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            os.path.join(dirpath, name)
            for name in sorted(filenames)
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return found


def scan_folder(root: str | Path, labels: str = "auto") -> pd.DataFrame:
    """List an ImageFolder tree, ``root/<class>/<image>`` (images may sit in sub-folders of a class).

    A folder with images at the top and no class sub-folders, or any folder with ``labels="none"``, is an
    unlabelled collection: every image under it, with a null label.
    """
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    top_images = any(
        p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(IMAGE_EXTENSIONS) for p in root.iterdir()
    )
    if labels == "none" or (top_images and not classes):
        paths = _walk_images(root)
        if not paths:
            raise SourceError(f"image folder {root} holds no image files ({' '.join(IMAGE_EXTENSIONS)})")
        log.info("image folder %s: %d images without labels (an unlabelled collection)", root, len(paths))
        return pd.DataFrame({"label": None, "split": None, "path": paths, "image": None})
    if top_images:
        log.warning("image folder %s: images at the top, outside the class folders, are left out", root)
    if not classes:
        raise SourceError(
            f"image folder {root} has no class sub-folders; expected {root}/<class>/<image> "
            "(the torchvision ImageFolder layout)"
        )
    rows = []
    for label in classes:
        found = _walk_images(root / label)
        rows += [{"label": label, "split": None, "path": path, "image": None} for path in found]
        if not found:
            log.warning(
                "class folder %s holds no image files (%s); it is left out", root / label, " ".join(IMAGE_EXTENSIONS)
            )
    if not rows:
        raise SourceError(
            f"image folder {root} holds no image files ({' '.join(IMAGE_EXTENSIONS)}) in its class folders"
        )
    return pd.DataFrame(rows, columns=["label", "split", "path", "image"])


def scan_manifest(manifest: str | Path, labels: str = "auto") -> pd.DataFrame:
    """Read a manifest with columns ``path[, label][, split]`` and any others; paths are relative to the manifest.

    Without a ``label`` column (or with ``labels="none"``) the labels are null. Other columns (a patient or site
    id, ...) are kept, as text, under their own names.
    """
    manifest = Path(manifest)
    try:
        if manifest.suffix.lower() == ".csv":
            frame = pd.read_csv(manifest, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = read_manifest_parquet(manifest)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise SourceError(f"manifest {manifest} cannot be read: {err}") from err
    names = [str(c).strip() for c in frame.columns]
    frame.columns = [n.lower() if n.lower() in ("path", "label", "split") else n for n in names]
    if "path" not in frame.columns:
        raise SourceError(
            f"manifest {manifest} has neither a path column (images) nor a text column (texts); it has "
            f"{', '.join(map(str, frame.columns)) or 'no columns'}. A manifest needs path or text (or name the "
            "text column: --text-column, `text_column:`) and may have label, split and columns of your own"
        )
    if frame.columns.duplicated().any():
        twice = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise SourceError(f"manifest {manifest} has the column(s) {twice} twice; keep one of each")
    reserved = [c for c in frame.columns if c.lower() in RESERVED_COLUMNS]
    if reserved:
        raise SourceError(
            f"manifest {manifest} has the column(s) {', '.join(reserved)}, names headstart uses for its own "
            "columns; rename them (e.g. source_id)"
        )
    labelled = labels != "none" and "label" in frame.columns
    if frame.empty:
        raise SourceError(f"manifest {manifest} has no rows")
    for column in ("path", "label") if labelled else ("path",):
        empty = frame.index[frame[column].isna() | (frame[column].astype(str).str.strip() == "")]
        if len(empty):
            raise SourceError(
                f"manifest {manifest} has an empty '{column}' on row(s) "
                f"{', '.join(str(i + 2) for i in empty[:5])} (line numbers, header = 1)"
            )
    if "split" in frame.columns:
        split = frame["split"].astype("string").str.strip().str.lower()
        split = split.mask(split == "", pd.NA)
        bad = sorted(set(split.dropna()) - set(SPLITS))
        if bad:
            raise SourceError(f"manifest {manifest} has split value(s) {bad}; allowed: {', '.join(SPLITS)} or empty")
        splits = [None if pd.isna(s) else str(s) for s in split]
    else:
        splits = [None] * len(frame)
    base = manifest.parent
    paths = [os.path.normpath(p if os.path.isabs(p) else os.path.join(base, p)) for p in frame["path"].astype(str)]
    missing_files = [p for p in paths if not os.path.isfile(p)]
    if missing_files:
        raise SourceError(
            f"manifest {manifest} lists {len(missing_files)} image file(s) that do not exist, e.g. "
            f"{', '.join(missing_files[:3])}; paths are relative to the manifest's folder {base}"
        )
    own = [c for c in frame.columns if c not in ("path", "label", "split")]
    extra = {c: [None if pd.isna(v) else str(v) for v in frame[c]] for c in own}
    return pd.DataFrame(
        {
            "label": frame["label"].astype(str).str.strip().tolist() if labelled else [None] * len(paths),
            "split": splits,
            "path": paths,
            "image": [None] * len(paths),
            **extra,
        }
    )
