"""Where images come from: a built-in dataset, an image folder or a manifest (CSV or Parquet).

:func:`scan_source` turns any of them into one frame with the columns ``label, split, path, image``
(``split`` null unless the source fixes it; ``image`` PNG bytes only for built-in arrays).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from headstart.data.builtin import BUILTIN_DATASETS, load_builtin
from headstart.errors import UserError

__all__ = ["IMAGE_EXTENSIONS", "SPLITS", "SourceError", "scan_folder", "scan_manifest", "scan_source", "source_kind"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
SPLITS = ("train", "val", "test")
MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")


class SourceError(UserError, ValueError):
    """A dataset source is missing, malformed or empty; the message names it and says what to fix."""


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


def scan_source(source: str, root: str | None = None) -> pd.DataFrame:
    """Read any source into ``label, split, path, image`` rows (not yet hashed)."""
    kind = source_kind(source)
    if kind == "builtin":
        return load_builtin(source, root)
    if kind == "folder":
        return scan_folder(source)
    return scan_manifest(source)


def scan_folder(root: str | Path) -> pd.DataFrame:
    """List an ImageFolder tree, ``root/<class>/<image>`` (images may sit in sub-folders of a class)."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise SourceError(
            f"image folder {root} has no class sub-folders; expected {root}/<class>/<image> "
            "(the torchvision ImageFolder layout)"
        )
    rows = []
    for label in classes:
        found = 0
        for dirpath, dirnames, filenames in os.walk(root / label, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                rows.append({"label": label, "split": None, "path": os.path.join(dirpath, name), "image": None})
                found += 1
        if not found:
            log.warning(
                "class folder %s holds no image files (%s); it is left out", root / label, " ".join(IMAGE_EXTENSIONS)
            )
    if not rows:
        raise SourceError(
            f"image folder {root} holds no image files ({' '.join(IMAGE_EXTENSIONS)}) in its class folders"
        )
    return pd.DataFrame(rows, columns=["label", "split", "path", "image"])


def scan_manifest(manifest: str | Path) -> pd.DataFrame:
    """Read a manifest with columns ``path, label[, split]``; relative paths are relative to the manifest."""
    manifest = Path(manifest)
    try:
        if manifest.suffix.lower() == ".csv":
            frame = pd.read_csv(manifest, dtype=str, keep_default_na=False, na_values=[""])
        else:
            from headstart.data.tables import read_manifest_parquet

            frame = read_manifest_parquet(manifest)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise SourceError(f"manifest {manifest} cannot be read: {err}") from err
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("path", "label") if c not in frame.columns]
    if missing:
        raise SourceError(
            f"manifest {manifest} lacks the column(s) {', '.join(missing)}; it has "
            f"{', '.join(frame.columns) or 'no columns'}. A manifest needs path,label and may have split"
        )
    if frame.empty:
        raise SourceError(f"manifest {manifest} has no rows")
    for column in ("path", "label"):
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
    return pd.DataFrame(
        {
            "label": frame["label"].astype(str).str.strip().tolist(),
            "split": splits,
            "path": paths,
            "image": [None] * len(paths),
        }
    )
