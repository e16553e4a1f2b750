"""A full disk (a file-size limit in a real subprocess) never replaces a good output and leaves no temporary."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headstart.data.tables import load_embeddings
from headstart.features.cache import EmbeddingCache, layer_key
from tests.conftest import digit_images, write_folder
from tests.faults._helpers import EMBED, embed_folder, one_line_error, run, snapshot, temporaries, write_table

@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write_folder(root, digit_images(n_per_class=12))
    return root


def test_a_table_that_does_not_fit_leaves_the_previous_table(images: Path, tmp_path: Path) -> None:
    good = tmp_path / "out" / "good.parquet"
    embed_folder(images, good, tmp_path / "cache", limit=12)
    # the whole dataset in the cache first, so that the limited run only writes the (bigger) table
    embed_folder(images, tmp_path / "warm" / "all.parquet", tmp_path / "cache")
    assert (tmp_path / "warm" / "all.parquet").stat().st_size > good.stat().st_size + 2000
    before = snapshot(good.parent)

    limit = good.stat().st_size + 1000
    result = run(["embed", images, "-o", good, "--cache-dir", "cache", *EMBED], tmp_path, fsize=limit)

    line = one_line_error(result)
    assert f"while writing {good}; the previous {good} is unchanged" in line, line
    assert "file too large" in line and "Errno" not in line, line
    assert snapshot(good.parent) == before  # the good table and its failures table, byte for byte
    assert len(load_embeddings(good).X) == 12
    assert temporaries(tmp_path) == []


def test_a_model_dir_that_does_not_fit_leaves_the_previous_model_dir(tmp_path: Path) -> None:
    small = write_table(tmp_path / "small.parquet", n_per_class=10)
    big = write_table(tmp_path / "big.parquet", n_per_class=200)
    model = tmp_path / "models" / "knn"
    fitted = run(["fit", small, "--head", "knn", "-o", model], tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    before = snapshot(model)

    # knn keeps its training vectors: the big table's model.npz is far over the limit
    result = run(["fit", big, "--head", "knn", "-o", model], tmp_path, fsize=20_000)

    line = one_line_error(result)
    assert f"while writing {model}" in line and "unchanged" in line, line
    assert snapshot(model) == before
    assert temporaries(tmp_path / "models") == []
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["knn"]


_WRITERS = {
    "report (JSON)": "from headstart._files import write_json; write_json(out, {'rows': list(range(n))})",
    "report (text)": textwrap.dedent("""
        from headstart._files import atomic_path
        with atomic_path(out) as tmp:
            tmp.write_text("| row |\\n" * n)
    """),
    "failures table": textwrap.dedent("""
        from headstart.data.tables import write_failures
        rows = [{"id": f"{i:08d}", "label": "a", "split": "train", "path": f"/x/{i}.png", "error": f"broken {i}" * 9}
                for i in range(n)]
        write_failures(out, rows, {"backbone": "x"})
    """),
}


@pytest.mark.parametrize("writer", sorted(_WRITERS))
def test_every_writer_keeps_the_previous_file_on_a_full_disk(writer: str, tmp_path: Path) -> None:
    code = "import sys; from pathlib import Path; out, n = Path(sys.argv[1]), int(sys.argv[2])\n" + _WRITERS[writer]
    code = "from headstart._terminal import run_main\ndef main(argv):\n" + textwrap.indent(code, "    ")
    code += "\nraise SystemExit(run_main(main))"
    out = tmp_path / "reports" / "result"
    assert run([out, 3], tmp_path, code=code).returncode == 0
    before = out.read_bytes()

    result = run([out, 20_000], tmp_path, code=code, fsize=len(before) + 4096)

    line = one_line_error(result)
    assert f"while writing {out}; the previous {out} is unchanged" in line, line
    assert out.read_bytes() == before
    assert temporaries(tmp_path) == []


def test_a_full_disk_on_the_cache_keeps_finished_batches_and_the_next_run_resumes(images: Path, tmp_path: Path) -> None:
    embed_folder(images, tmp_path / "ref.parquet", tmp_path / "cache-ref")

    # 4 images of 192 floats per record: the segment stops growing after a few records
    result = run(["embed", images, "-o", "out.parquet", "--cache-dir", "cache", *EMBED], tmp_path, fsize=12_000)

    line = one_line_error(result)
    assert "while writing" in line and ".hse" in line and "next run resumes" in line, line
    assert not (tmp_path / "out.parquet").exists()
    # the cache dir also holds headstart's own bookkeeping (`_resolved/`, the stat cache): one fingerprint folder
    (folder,) = [p for p in (tmp_path / "cache").iterdir() if p.is_dir() and not p.name.startswith("_")]
    cache = EmbeddingCache(tmp_path / "cache", folder.name)
    assert cache.torn == []  # the torn record was cut off
    reference = load_embeddings(tmp_path / "ref.parquet")
    key = layer_key(reference.provenance["node"], reference.provenance["pooling"])
    kept = 36 - len(cache.missing(reference.frame["id"], [key]))
    assert 0 < kept < 36

    resumed = run(["embed", images, "-o", "out.parquet", "--cache-dir", "cache", *EMBED], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} from the cache" in resumed.stderr
    assert (tmp_path / "out.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()
    assert temporaries(tmp_path) == []
