"""Text datasets: a CSV or Parquet table with a text column and a label column (and optionally a split).

A text item goes through the same prepared table as an image: its ``image`` column holds the UTF-8 bytes of the
text, ``path`` is null, and its id is the hash of the text (``content_id(utf8, prefix="text")``), so the same
text has the same id in every dataset and run, and the cache, splits, tables and heads work unchanged. The
prepared and embedding tables also carry the text itself, in a ``text`` column after ``path``.

A manifest with a ``text`` column and no ``path`` column is read as a text table without naming the column
(:func:`headstart.data.sources.manifest_text_column`).

>>> text_id("a cat") == text_id("a cat") != text_id("a dog")
True
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from headstart.data.hashing import content_id
from headstart.data.sources import SPLITS, SourceError
from headstart.data.tables import TEXT_COLUMN

__all__ = [
    "TEXT_SUFFIXES",
    "read_texts",
    "scan_text_table",
    "text_id",
]

TEXT_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv")


def text_id(text: str) -> str:
    """The id of a text: blake2b-128 of its UTF-8 bytes (prefixed, so it never equals an image's id)."""
    return content_id(text.encode("utf-8"), prefix="text")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".csv", ".tsv"):
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
        return pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise SourceError(f"text table {path} cannot be read: {err}") from err


def scan_text_table(source: str | Path, text_column: str, label_column: str = "label") -> pd.DataFrame:
    """Read a labelled text table into ``id, label, split, path, image`` rows (``image``: UTF-8 bytes)."""
    path = Path(source)
    if not path.is_file() or path.suffix.lower() not in TEXT_SUFFIXES:
        raise SourceError(
            f"text dataset {source} is not a {'/'.join(TEXT_SUFFIXES)} file; a text dataset is a table with "
            f"a '{text_column}' column and a '{label_column}' column (and optionally 'split')"
        )
    frame = _read_table(path)
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise SourceError(
            f"text table {path} lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}"
            f". Set `text_column:` to the column holding the text"
        )
    if frame.empty:
        raise SourceError(f"text table {path} has no rows")
    texts = frame[text_column]
    empty = frame.index[texts.isna() | (texts.astype(str).str.strip() == "")]
    if len(empty):
        rows = ", ".join(str(i + 2) for i in empty[:5])
        raise SourceError(f"text table {path} has an empty '{text_column}' on row(s) {rows} (line numbers, header = 1)")
    labels = frame[label_column]
    if labels.isna().any():
        rows = ", ".join(str(i + 2) for i in frame.index[labels.isna()][:5])
        raise SourceError(f"text table {path} has an empty '{label_column}' on row(s) {rows}")
    splits: list[str | None] = [None] * len(frame)
    if "split" in frame.columns:
        split = frame["split"].astype("string").str.strip().str.lower()
        bad = sorted(set(split.dropna()) - set(SPLITS) - {""})
        if bad:
            raise SourceError(f"text table {path} has split value(s) {bad}; allowed: {', '.join(SPLITS)} or empty")
        splits = [None if pd.isna(s) or s == "" else str(s) for s in split]
    data = [str(t).encode("utf-8") for t in texts]
    return pd.DataFrame(
        {
            "id": [content_id(b, prefix="text") for b in data],
            "label": labels.astype(str).str.strip().tolist(),
            "split": splits,
            "path": [None] * len(frame),
            "image": data,
        }
    )


def read_texts(inputs: list[str | Path], text_column: str = "text") -> pd.DataFrame:
    """Texts to classify: ``.txt`` files (one text per non-empty line) or tables with ``text_column``.

    Returns ``id, label, split, path, text, image`` rows; ``path`` says where each text came from (``file:line``).
    """
    rows = []
    for item in inputs:
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{item} is not a text file (.txt, one text per line) or a table with texts")
        if path.suffix.lower() in TEXT_SUFFIXES:
            frame = _read_table(path)
            if text_column not in frame.columns:
                raise SourceError(f"{path} has no '{text_column}' column; it has {', '.join(map(str, frame.columns))}")
            lines = [(f"{path}:{i + 2}", str(t)) for i, t in enumerate(frame[text_column]) if pd.notna(t)]
        else:
            try:
                content = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                raise SourceError(f"{path} is not UTF-8 text: {err}") from err
            lines = [(f"{path}:{i + 1}", line) for i, line in enumerate(content.splitlines())]
        rows += [(where, text) for where, text in lines if text.strip()]
    if not rows:
        raise SourceError(f"no texts in {', '.join(map(str, inputs))}")
    return pd.DataFrame(
        {
            "id": [text_id(t) for _, t in rows],
            "label": "",
            "split": "",
            "path": [w for w, _ in rows],
            TEXT_COLUMN: [t for _, t in rows],
            "image": [t.encode("utf-8") for _, t in rows],
        }
    )
