"""Text datasets: a table with a text column prepared like images (ids = hash of the text), bad tables refused in
one line, texts to classify read from .txt files and tables. The texts here are SYNTHETIC (made up by the test)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from headstart.data.builtin import BUILTIN_DATASETS, FORTUNE_TOPICS, DatasetNotFound
from headstart.data.hashing import content_id
from headstart.data.prepare import DatasetError, prepare_dataset
from headstart.data.sources import SourceError, manifest_text_column
from headstart.data.tables import read_prepared, write_prepared
from headstart.data.text import read_texts, scan_text_table, text_id


def _table(path: Path, n: int = 10) -> Path:
    rows = [{"body": f"synthetic text number {i} about {'cats' if i % 2 else 'stocks'}", "label": "ab"[i % 2]}
            for i in range(n)]
    rows.append({"body": rows[0]["body"], "label": "a"})  # the same text twice: the same id
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_prepare_a_text_table(tmp_path: Path) -> None:
    csv = _table(tmp_path / "t.csv", 20)
    frame = prepare_dataset(str(csv), name="t", text_column="body", val=0.2, test=0.3)
    meta = frame.attrs["headstart"]
    assert meta["modality"] == "text" and meta["kind"] == "text" and meta["classes"] == ["a", "b"]
    texts = [b.decode() for b in frame["image"]]
    assert list(frame["id"]) == [text_id(t) for t in texts] and frame["path"].isna().all()
    assert text_id("x") == content_id(b"x", prefix="text") != content_id(b"x")
    assert frame["id"].is_monotonic_increasing and set(frame["split"]) == {"train", "val", "test"}
    twins = frame[frame["id"] == text_id("synthetic text number 0 about stocks")]
    assert len(twins) == 2 and twins["split"].nunique() == 1
    assert list(frame.columns) == ["id", "label", "split", "path", "text", "image"]
    assert list(frame["text"]) == texts
    write_prepared(tmp_path / "p.parquet", frame, meta)
    back = read_prepared(tmp_path / "p.parquet")
    assert back.attrs["headstart"]["text_column"] == "body" and list(back["image"]) == list(frame["image"])
    assert list(back["text"]) == texts


def test_a_manifest_with_text_and_no_path_is_a_text_table(tmp_path: Path) -> None:
    csv = tmp_path / "tickets.csv"
    pd.DataFrame({"Text": [f"synthetic ticket {i}" for i in range(12)], "label": list("ab" * 6)}).to_csv(csv, index=False)
    frame = prepare_dataset(str(csv), name="tickets")
    meta = frame.attrs["headstart"]
    assert meta["modality"] == "text" and meta["text_column"] == "Text"
    assert set(frame["text"]) == {f"synthetic ticket {i}" for i in range(12)}
    with_path = tmp_path / "images.csv"
    pd.DataFrame({"path": ["a.png"], "text": ["a caption"], "label": ["a"]}).to_csv(with_path, index=False)
    assert manifest_text_column(str(with_path)) is None  # a path column: images (and `text` is a column of its own)


def test_an_embedding_table_keeps_the_text_after_path(tmp_path: Path) -> None:
    import numpy as np

    from headstart.data.tables import EmbeddingWriter, embedding_schema, load_embeddings

    schema = embedding_schema(2, {}, extra=["site", "text"])
    assert schema.names == ["id", "label", "split", "path", "text", "site", "embedding"]
    with EmbeddingWriter(tmp_path / "e.parquet", 2, {"modality": "text"}, extra=["text"]) as writer:
        writer.write(["t1", "t2"], ["a", "b"], ["train", "test"], [None, None], np.eye(2), extra={"text": ["x", "y"]})
    table = load_embeddings(tmp_path / "e.parquet")
    assert list(table.frame.columns) == ["id", "label", "split", "path", "text"]
    assert table.frame["text"].tolist() == ["x", "y"] and table.frame["path"].isna().all()


def test_parquet_text_table_with_a_split(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["one", "two", "three", "four", "five", "six"], "label": list("ababab")})
    frame["split"] = ["train", "train", "test", "test", "", "train"]
    frame.to_parquet(tmp_path / "t.parquet")
    rows = scan_text_table(tmp_path / "t.parquet", "text")
    assert [None if pd.isna(s) else s for s in rows["split"]] == ["train", "train", "test", "test", None, "train"]


@pytest.mark.parametrize(
    ("content", "column", "expected"),
    [
        ("text,label\nhello,a\n,b\n", "text", "empty 'text' on row(s) 3"),
        ("body,label\nhello,a\n", "text", "lacks the column(s) text"),
        ("text,label,split\nhello,a,holdout\n", "text", "split value(s) ['holdout']"),
    ],
)
def test_bad_text_tables_are_one_line(tmp_path: Path, content: str, column: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(SourceError) as err:
        scan_text_table(path, column)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_shift_on_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="applies to images"):
        prepare_dataset(str(_table(tmp_path / "t.csv")), name="t", text_column="body", shift="invert")


def test_texts_to_classify_from_txt_and_tables(tmp_path: Path) -> None:
    txt = tmp_path / "new.txt"
    txt.write_text("first text\n\n  \nsecond text\n")
    csv = tmp_path / "new.csv"
    pd.DataFrame({"text": ["third text"]}).to_csv(csv, index=False)
    rows = read_texts([txt, csv])
    assert list(rows["path"]) == [f"{txt}:1", f"{txt}:4", f"{csv}:2"]
    assert list(rows["id"]) == [text_id("first text"), text_id("second text"), text_id("third text")]
    assert list(rows["text"]) == ["first text", "second text", "third text"]
    with pytest.raises(SourceError, match="no 'body' column"):
        read_texts([csv], text_column="body")


def test_builtin_fortunes_reads_debians_topic_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="apt-get install fortunes"):
        prepare_dataset("fortunes", root=str(tmp_path))
    for i, topic in enumerate(FORTUNE_TOPICS):  # the layout of /usr/share/games/fortunes, with made-up entries
        entries = [f"A {topic} saying number {j}.\n\t\t-- Someone {i}" for j in range(4)]
        (tmp_path / topic).write_text("\n%\n".join(entries) + "\n%\n")
    assert BUILTIN_DATASETS["fortunes"].locate(str(tmp_path)) == str(tmp_path)
    frame = prepare_dataset("fortunes", root=str(tmp_path), val=0.25, test=0.25)
    assert frame.attrs["headstart"]["modality"] == "text" and len(frame) == 4 * len(FORTUNE_TOPICS)
    assert sorted(frame["label"].unique()) == sorted(FORTUNE_TOPICS)
    first = frame[frame["id"] == text_id("A food saying number 0.\n\t\t-- Someone 2")]
    assert list(first["label"]) == ["food"]
