"""The Ray engine on a real local Ray cluster: the same table as the local engine, failures, resume after the
driver is killed. Skipped where ray is not installed (CI installs it)."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from headstart.data import load_embeddings, prepare_dataset, read_failures
from headstart.data.tables import read_prepared, write_prepared
from headstart.features.engine import EmbedOptions, embed
from headstart.features.registry import BackboneSpec
from headstart.features.runner import EmbedError
from tests.conftest import REPO, broken_files, digit_images, write_folder

SPEC = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6", "default"), image_size=32)


def _options(cache: Path, engine: str, batch_size: int = 5, **kw: object) -> EmbedOptions:
    return EmbedOptions(batch_size=batch_size, num_workers=0, cache_dir=cache, engine=engine, **kw)  # type: ignore[arg-type]


def _data_bytes(path: Path) -> bytes:
    """A Parquet file up to its footer: the pages (the footer holds the schema and its metadata)."""
    data = path.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    return data[: len(data) - 8 - footer]


def test_ray_writes_the_local_engines_table(ray_cluster: object, image_folder: Path, tmp_path: Path) -> None:
    made = broken_files(image_folder)
    prepared = prepare_dataset(str(image_folder), name="imgs")
    local = embed(prepared, SPEC, tmp_path / "local", dataset={"name": "imgs"}, options=_options(tmp_path / "c1", "local"))
    ray = embed(prepared, SPEC, tmp_path / "ray", dataset={"name": "imgs"}, options=_options(tmp_path / "c2", "ray"))
    assert ray.stats.computed == local.stats.computed == len(prepared) - 4
    assert ray.engine["engine"] == "ray" and ray.engine["nodes"] == 1 and ray.engine["cpus"] == 2
    assert sum(ray.engine["rows_per_node"].values()) == len(prepared) - 4
    for name in ("features.6", "flatten"):
        a, b = load_embeddings(local.tables[name]), load_embeddings(ray.tables[name])
        assert a.frame.equals(b.frame) and a.provenance == b.provenance  # ids in the same order, same provenance
        assert np.array_equal(a.X, b.X)  # the same bits, not merely close
        assert b.frame.attrs["headstart_engine"] == {"engine": "ray", "nodes": 1, "cpus": 2.0, "gpus": 0.0, "actors": 2}
        assert "headstart_engine" not in a.frame.attrs
        schema_a, schema_b = pq.read_schema(local.tables[name]), pq.read_schema(ray.tables[name])
        assert schema_a.equals(schema_b, check_metadata=False)
        # byte-identical but for the engine entry in the footer's metadata
        assert _data_bytes(local.tables[name]) == _data_bytes(ray.tables[name])
    fa, fb = read_failures(local.failures_path), read_failures(ray.failures_path)
    assert fa.equals(fb) and set(fb["path"]) >= {str(made["truncated"]), str(made["bomb"])}


def test_ray_reads_embedded_bytes_from_the_prepared_table(ray_cluster: object, tmp_path: Path) -> None:
    from headstart.data.images import encode_png

    images = digit_images(n_per_class=6, classes=(0, 1), size=24)
    import pandas as pd

    from headstart.data.hashing import content_id

    blobs = [encode_png(pixels) for _, pixels in images]
    frame = pd.DataFrame(
        {
            "id": [content_id(b) for b in blobs],
            "label": [str(label) for label, _ in images],
            "split": "train",
            "path": None,
            "image": blobs,
        }
    ).sort_values("id", ignore_index=True)
    write_prepared(tmp_path / "prepared.parquet", frame, {"source": "test"})
    prepared = read_prepared(tmp_path / "prepared.parquet")
    assert prepared.attrs["headstart_path"] == str(tmp_path / "prepared.parquet")
    local = embed(prepared, SPEC, tmp_path / "local", options=_options(tmp_path / "c1", "local"))
    ray = embed(prepared, SPEC, tmp_path / "ray", options=_options(tmp_path / "c2", "ray"))
    a, b = load_embeddings(local.tables["flatten"]), load_embeddings(ray.tables["flatten"])
    assert len(b.frame) == 12 and np.array_equal(a.X, b.X)


def test_ray_strict_mode_names_the_broken_image(ray_cluster: object, image_folder: Path, tmp_path: Path) -> None:
    made = broken_files(image_folder)
    prepared = prepare_dataset(str(image_folder))
    with pytest.raises(EmbedError, match="cannot be used"):
        embed(prepared, SPEC, tmp_path / "out", options=_options(tmp_path / "c", "ray", on_error="raise"))
    assert not (tmp_path / "out" / "flatten.parquet").exists() and made


_DRIVER = textwrap.dedent("""
    import sys
    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.spec import RayOptions
    from headstart.features.registry import BackboneSpec
    folder, out, cache, address = sys.argv[1:5]
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6", "default"), image_size=32)
    options = EmbedOptions(batch_size=2, num_workers=0, cache_dir=cache, engine="ray", ray=RayOptions(address=address))
    embed(prepare_dataset(folder), spec, out, options=options)
""")


def test_a_killed_driver_resumes_to_the_uninterrupted_table(ray_cluster: object, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=20, classes=(0, 1, 2), size=32))
    # the driver kills itself (SIGKILL) right after its 5th batch record reaches the cache: a chosen point, not a race
    env = {**os.environ, "PYTHONPATH": str(REPO), "HEADSTART_FAULT_AFTER_WRITES": "5"}
    address = ray_cluster.gcs_address  # type: ignore[attr-defined]
    victim = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(folder), str(tmp_path / "out"), str(tmp_path / "cache"), address],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert victim.wait(timeout=900) == -signal.SIGKILL, victim.stderr.read().decode()  # type: ignore[union-attr]
    assert not (tmp_path / "out" / "flatten.parquet").exists()

    prepared = prepare_dataset(str(folder))
    resumed = embed(prepared, SPEC, tmp_path / "out", options=_options(tmp_path / "cache", "ray", batch_size=2))
    assert 0 < resumed.from_cache < 60 and resumed.stats.computed == 60 - resumed.from_cache
    whole = embed(prepared, SPEC, tmp_path / "whole", options=_options(tmp_path / "c2", "ray", batch_size=2))
    assert whole.stats.computed == 60
    for name in ("features.6.parquet", "flatten.parquet", "failures.parquet"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_a_normal_ray_run_logs_no_warning_or_error(ray_cluster: object, tmp_path: Path) -> None:
    """`headstart embed --engine ray` on clean images: Ray's deprecations, its object-store caution about restartable
    actors and its memory advice are the engine's to avoid, not the user's to read."""
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=10, classes=(0, 1, 2), size=32))
    address = ray_cluster.gcs_address  # type: ignore[attr-defined]
    command = [
        sys.executable, "-m", "headstart.cli", "embed", str(folder), "-o", str(tmp_path / "e.parquet"), "--engine",
        "ray", "--address", address, "--backbone", "mobilenet_v2", "--image-size", "32", "--no-cache",
    ]  # fmt: skip
    done = subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Python's and Ray's loggers (WARNING, ERROR), Python warnings (...Warning:), Ray's C++ log ([... W pid tid])
    alarm = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|\w*(Warning|Error):|^\[[^]]* [WEF] \d+ \d+\]", re.MULTILINE)
    assert not alarm.search(done.stderr), done.stderr
    assert "30 images: 0 from the cache, 30 embedded now, 0 failed" in done.stdout + done.stderr


def test_decoding_tasks_give_the_actor_what_its_own_decoding_gives(ray_cluster: object, image_folder: Path) -> None:
    """The GPU path (decoding tasks, then actors) and the CPU path (actors decoding their own work items) hand the
    forward pass the same pixels; run here in-process on the CPU, as CI has no GPU."""
    from headstart.features.ray_tasks import Embedder, decode_batches, work_items
    from headstart.features.registry import load_backbone

    broken_files(image_folder)
    prepared = prepare_dataset(str(image_folder))
    backbone = load_backbone(SPEC)
    stages = backbone.preprocessing_stages()
    todo = sorted(set(prepared["id"]))
    units = work_items(prepared, todo, 5, None, workers=3)
    assert len(units) >= 3 and [i for u in units for b in pickle.loads(u["batches"]) for i, *_ in b] == todo
    nodes = backbone.resolve_layers(SPEC.layers)
    extractor = backbone.extractor(nodes, SPEC.poolings)
    keys = {(node, mode): f"{node}-{mode}" for node in nodes for mode in SPEC.poolings}
    decode = {"transform": stages[0], "max_pixels": 10**8, "reduce_to": None}
    common = {"extractor": extractor, "keys": keys, "precision": "fp32", "rows": 5, "finish": stages[1]}
    batch = {"batches": np.array([u["batches"] for u in units], dtype=object),
             "source": np.array([u["source"] for u in units], dtype=object)}  # fmt: skip
    own = Embedder(**common, decode=decode)(batch)
    tasks = Embedder(**common)({k: np.array(v, dtype=object) for k, v in decode_batches(batch, **decode).items()})
    assert own["ids"] == tasks["ids"] and own["failures"] == tasks["failures"] and own["vectors"] == tasks["vectors"]
    assert sum(len(json.loads(f)) for f in own["failures"]) == 4
