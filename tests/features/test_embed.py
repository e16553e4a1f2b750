"""The extraction engine: tables, failures, resume after kill -9, incremental runs, several layers per pass."""

from __future__ import annotations

import copy
import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from headstart.data import load_embeddings, prepare_dataset, read_failures
from headstart.features.engine import EmbedOptions, embed
from headstart.features.forward import MAX_COPIES, Forward
from headstart.features.registry import BackboneSpec
from headstart.features.runner import EmbedError
from tests.conftest import REPO, broken_files, digit_images, write_folder

SMALL = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32)


def _options(cache: Path, **kw: object) -> EmbedOptions:
    return EmbedOptions(batch_size=8, num_workers=0, cache_dir=cache, **kw)  # type: ignore[arg-type]


def test_tables_carry_rows_sorted_by_id_and_their_provenance(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder), name="imgs")
    result = embed(prepared, SMALL, tmp_path / "out", dataset={"name": "imgs"}, options=_options(tmp_path / "c"))
    frame, X, labels = load_embeddings(result.tables["features.6"])
    assert X.shape == (36, 32) and np.isfinite(X).all()
    assert frame["id"].tolist() == prepared["id"].tolist()
    assert frame["split"].tolist() == prepared["split"].tolist()
    prov = frame.attrs["headstart"]
    assert prov["backbone"] == "mobilenet_v2" and prov["node"] == "features.6" and prov["pooling"] == "avg"
    assert prov["weights"] == "none" and prov["precision"] == "fp32" and prov["dataset"]["name"] == "imgs"
    assert prov["preprocessing"]["crop_size"] == 32 and set(prov["versions"]) == {"torch", "torchvision", "pillow"}
    assert len(read_failures(result.failures_path)) == 0


def test_broken_images_are_listed_not_fatal(image_folder: Path, tmp_path: Path) -> None:
    made = broken_files(image_folder)
    prepared = prepare_dataset(str(image_folder))
    result = embed(prepared, SMALL, tmp_path / "out", options=_options(tmp_path / "c"))
    failures = read_failures(result.failures_path).set_index("path")
    bad = {str(made[k]) for k in ("truncated", "empty", "text", "bomb")}
    assert set(failures.index) == bad
    assert "decompression bomb" in failures.loc[str(made["bomb"]), "error"]
    assert "not an image" in failures.loc[str(made["text"]), "error"]
    frame, X, _ = load_embeddings(result.tables["features.6"])
    assert len(frame) == len(prepared) - 4
    assert {str(made["cmyk"]), str(made["grey16"])} <= set(frame["path"])  # converted, not dropped
    assert result.metrics()["failed"] == 4


def test_strict_mode_stops_at_the_first_broken_image_and_writes_nothing(image_folder: Path, tmp_path: Path) -> None:
    made = broken_files(image_folder)
    prepared = prepare_dataset(str(image_folder))
    broken = "|".join(re.escape(str(made[k])) for k in ("truncated", "empty", "text", "bomb"))
    with pytest.raises(EmbedError, match=rf"image .*({broken}).* cannot be used: .*on_error: skip"):
        embed(prepared, SMALL, tmp_path / "out", options=_options(tmp_path / "c", on_error="raise"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # a skip run remembers the failures; a strict run afterwards still refuses them
    embed(prepared, SMALL, tmp_path / "out", options=_options(tmp_path / "c"))
    with pytest.raises(EmbedError, match=rf"image .*({broken}).*remembered from an earlier run"):
        embed(prepared, SMALL, tmp_path / "out2", options=_options(tmp_path / "c", on_error="raise"))
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_second_run_comes_from_the_cache_with_identical_bytes(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    first = embed(prepared, SMALL, tmp_path / "a", options=_options(tmp_path / "c"))
    second = embed(prepared, SMALL, tmp_path / "b", options=_options(tmp_path / "c"))
    assert first.stats.computed == 36 and second.stats.computed == 0 and second.from_cache == 36
    for name in ("features.6.parquet", "failures.parquet"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)


def test_adding_images_embeds_only_them_and_removing_drops_rows(image_folder: Path, tmp_path: Path) -> None:
    embed(prepare_dataset(str(image_folder)), SMALL, tmp_path / "a", options=_options(tmp_path / "c"))
    added = write_folder(image_folder, digit_images(n_per_class=3, seed=9), prefix="new")
    grown = prepare_dataset(str(image_folder))
    result = embed(grown, SMALL, tmp_path / "b", options=_options(tmp_path / "c"))
    assert result.stats.computed == len(set(grown["id"])) - 36 and result.from_cache == 36
    assert len(load_embeddings(result.tables["features.6"]).frame) == len(grown)
    for path in added[:4]:
        path.unlink()
    shrunk = prepare_dataset(str(image_folder))
    result = embed(shrunk, SMALL, tmp_path / "d", options=_options(tmp_path / "c"))
    frame = load_embeddings(result.tables["features.6"]).frame
    assert result.stats.computed == 0 and len(frame) == len(shrunk) == len(grown) - 4
    assert not set(map(str, added[:4])) & set(frame["path"])


def test_several_layers_and_poolings_from_one_pass_equal_separate_runs(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    multi = BackboneSpec(
        "mobilenet_v2", weights=None, layers=("features.6", "default"), pooling=("avg", "gem"), image_size=32
    )
    both = embed(prepared, multi, tmp_path / "multi", options=_options(tmp_path / "c1"))
    assert sorted(both.tables) == ["features.6-avg", "features.6-gem", "flatten-avg", "flatten-gem"]
    for node in ("features.6", "default"):
        for mode in ("avg", "gem"):
            single = BackboneSpec("mobilenet_v2", weights=None, layers=(node,), pooling=mode, image_size=32)
            one = embed(prepared, single, tmp_path / f"{node}-{mode}", options=_options(tmp_path / f"c-{node}{mode}"))
            (alone,) = one.tables.values()
            label = f"{'flatten' if node == 'default' else node}-{mode}"
            np.testing.assert_array_equal(load_embeddings(both.tables[label]).X, load_embeddings(alone).X)
    assert both.provenance["flatten-gem"]["pooling_applied"] == "none"  # already a vector
    assert both.provenance["features.6-gem"]["pooling_applied"] == "gem"


def test_pooling_modes_and_their_widths(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), pooling=("max", "avgmax"), image_size=32)
    result = embed(prepared, spec, tmp_path / "o", options=_options(tmp_path / "c"))
    assert result.provenance["features.6-max"]["dim"] == 32
    assert result.provenance["features.6-avgmax"]["dim"] == 64
    with pytest.raises(ValueError, match="pooling 'cls' needs a token sequence"):
        embed(
            prepared,
            BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), pooling="cls", image_size=32),
            tmp_path / "x",
            options=_options(tmp_path / "c"),
        )


def test_bf16_embeddings_stay_close_to_fp32(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    fp32 = embed(prepared, SMALL, tmp_path / "a", options=_options(tmp_path / "c"))
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32, precision="bf16")
    bf16 = embed(prepared, spec, tmp_path / "b", options=_options(tmp_path / "c"))
    assert bf16.stats.computed == 36  # another fingerprint: precision changes the output
    a, b = load_embeddings(fp32.tables["features.6"]).X, load_embeddings(bf16.tables["features.6"]).X
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.98


def test_workers_give_the_same_table_as_the_main_process(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    embed(prepared, SMALL, tmp_path / "a", options=_options(tmp_path / "c1"))
    embed(prepared, SMALL, tmp_path / "b", options=EmbedOptions(batch_size=8, num_workers=2, cache_dir=tmp_path / "c2"))
    assert filecmp.cmp(tmp_path / "a/features.6.parquet", tmp_path / "b/features.6.parquet", shallow=False)


def test_bad_run_options_are_clear(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    if not __import__("torch").cuda.is_available():
        with pytest.raises(EmbedError, match="CUDA is not available"):
            embed(prepared, SMALL, tmp_path / "o", options=_options(tmp_path / "c", device="cuda"))
    with pytest.raises(EmbedError, match="fp16 needs CUDA"):
        embed(
            prepared,
            BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32, precision="fp16"),
            tmp_path / "o",
            options=_options(tmp_path / "c", device="cpu"),
        )
    with pytest.raises(EmbedError, match="2 tables .* cannot go into one file"):
        embed(
            prepared,
            BackboneSpec("mobilenet_v2", weights=None, layers=("features.6", "default"), image_size=32),
            single_file=tmp_path / "one.parquet",
            options=_options(tmp_path / "c"),
        )


_RUN = textwrap.dedent("""
    import sys
    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.registry import BackboneSpec
    folder, out, cache = sys.argv[1:4]
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.13", "default"), image_size=96)
    embed(prepare_dataset(folder), spec, out, options=EmbedOptions(batch_size=4, num_workers=1, cache_dir=cache))
""")


def _run(folder: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", _RUN, str(folder), str(out), str(cache)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_and_writes_identical_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=40, classes=(0, 1, 2, 3, 4), size=48))
    reference = _run(folder, tmp_path / "reference", tmp_path / "cache-ref")
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()  # type: ignore[union-attr]

    victim = _run(folder, tmp_path / "out", tmp_path / "cache")
    deadline = time.time() + 120
    while time.time() < deadline:  # kill as soon as some batches are in the cache, mid-write or not
        segments = list((tmp_path / "cache").glob("*/seg-*.hse"))
        if segments and segments[0].stat().st_size > 60_000:
            break
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "out" / "flatten.parquet").exists()

    resumed = embed(
        prepare_dataset(str(folder)),
        BackboneSpec("mobilenet_v2", weights=None, layers=("features.13", "default"), image_size=96),
        tmp_path / "out",
        options=EmbedOptions(batch_size=4, num_workers=1, cache_dir=tmp_path / "cache"),
    )
    assert 0 < resumed.from_cache < 200 and resumed.stats.computed == 200 - resumed.from_cache
    for name in ("features.13.parquet", "flatten.parquet", "failures.parquet"):
        assert filecmp.cmp(tmp_path / "reference" / name, tmp_path / "out" / name, shallow=False), name
    shutil.rmtree(tmp_path / "cache")


def _embed_on_cores(cores: str, source: str, out: Path, *args: str) -> None:
    """``headstart embed SOURCE`` in a fresh process pinned to ``cores`` (taskset's list), with a fresh cache."""
    command = ["taskset", "-c", cores, sys.executable, "-m", "headstart.cli", "embed", source, "-o", str(out), *args]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # torch's own default: all the cores
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def _two_cores() -> str:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2 or shutil.which("taskset") is None:
        pytest.skip("needs two cores and taskset")
    return f"{cores[0]},{cores[1]}"


def _jpeg_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i, (label, grey) in enumerate(digit_images(n_per_class=n // 3, size=300)):
        tint = rng.uniform(0.3, 1.0, size=3)
        pixels = np.clip(grey[..., None] * tint + rng.normal(0, 12, (300, 300, 3)), 0, 255).astype(np.uint8)
        (root / f"class_{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / f"class_{label}" / f"img_{i:03d}.jpg", quality=90)
    return root


@pytest.mark.slow
@pytest.mark.usefixtures("mobilenet_weights")
@pytest.mark.parametrize(
    "source, args",
    [
        ("digits", ("--limit", "300", "--layer", "features.13", "--image-size", "64")),
        ("jpegs", ("--layer", "default")),  # 224 px, the weights' own
    ],
)
def test_one_core_and_two_cores_give_byte_identical_tables(
    source: str, args: tuple[str, ...], tmp_path: Path
) -> None:
    """The forward pass's arithmetic does not depend on the cores (one thread per pass, padded batches)."""
    both = _two_cores()
    if source == "jpegs":
        source = str(_jpeg_folder(tmp_path / "jpegs", 60))
    first = sorted(os.sched_getaffinity(0))[0]
    _embed_on_cores(str(first), source, tmp_path / "one.parquet", "--no-cache", *args)
    _embed_on_cores(both, source, tmp_path / "two.parquet", "--no-cache", *args)
    assert filecmp.cmp(tmp_path / "one.parquet", tmp_path / "two.parquet", shallow=False)


def test_a_partly_cached_run_gives_the_bits_of_a_fresh_one(tmp_path: Path) -> None:
    """Cached images change which images share a batch and how long the last batch is: not an image's vectors."""
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=15, classes=(0, 1, 2), size=40))
    prepared = prepare_dataset(str(folder))
    fresh = embed(prepared, SMALL, tmp_path / "fresh", options=_options(tmp_path / "c1"))
    embed(prepared.iloc[::3], SMALL, tmp_path / "some", options=_options(tmp_path / "c2"))
    mixed = embed(prepared, SMALL, tmp_path / "mixed", options=_options(tmp_path / "c2"))
    assert mixed.from_cache == 15 and mixed.stats.computed == 30
    assert filecmp.cmp(fresh.tables["features.6"], mixed.tables["features.6"], shallow=False)


def test_the_batch_size_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    """Every batch is padded to the batch size, which can change the bits: a batch-32 run over a cache filled at
    batch 8 computes every image again and writes what a fresh batch-32 run writes."""
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=12, classes=(0, 1, 2), size=40))
    prepared = prepare_dataset(str(folder))
    at = lambda size, cache: EmbedOptions(batch_size=size, num_workers=0, cache_dir=tmp_path / cache)  # noqa: E731
    fresh = embed(prepared, SMALL, tmp_path / "fresh", options=at(32, "c1"))
    small = embed(prepared, SMALL, tmp_path / "eight", options=at(8, "c2"))
    mixed = embed(prepared, SMALL, tmp_path / "mixed", options=at(32, "c2"))
    assert mixed.from_cache == 0 and mixed.stats.computed == len(prepared)
    assert filecmp.cmp(fresh.tables["features.6"], mixed.tables["features.6"], shallow=False)
    prov, prov8 = mixed.provenance["features.6"], small.provenance["features.6"]
    assert (prov["batch_size"], prov8["batch_size"], prov["device_type"]) == (32, 8, "cpu")
    assert prov["fingerprint"] != prov8["fingerprint"]
    again = embed(prepared, SMALL, tmp_path / "again", options=at(8, "c2"))  # both stay in the cache
    assert again.from_cache == len(prepared)
    assert filecmp.cmp(small.tables["features.6"], again.tables["features.6"], shallow=False)


def test_a_partly_cached_text_run_gives_the_bits_of_a_fresh_one(tmp_path: Path) -> None:
    """Texts are batched by padded token length, so the cache changes which texts share a batch: not the bits."""
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    from tests.features.provider_models import synthetic_texts, tiny_sentence_transformer

    spec = BackboneSpec(f"sentence-transformers:{tiny_sentence_transformer(tmp_path / 'st', hidden=64)}", "none")
    prepared = prepare_dataset(str(synthetic_texts(tmp_path / "t.csv", per_class=30)), name="t", text_column="text")
    fresh = embed(prepared, spec, single_file=tmp_path / "fresh.parquet", options=_options(tmp_path / "c1"))
    embed(prepared.iloc[::3], spec, single_file=tmp_path / "some.parquet", options=_options(tmp_path / "c2"))
    mixed = embed(prepared, spec, single_file=tmp_path / "mixed.parquet", options=_options(tmp_path / "c2"))
    assert mixed.from_cache == 30 and mixed.stats.computed == 60
    assert filecmp.cmp(tmp_path / "fresh.parquet", tmp_path / "mixed.parquet", shallow=False)


class _Stateful(torch.nn.Module):
    """Keeps each pass's input on itself between two steps, as an extractor with hooks does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
        self.seen = x
        time.sleep(0.005)  # another thread's pass would overwrite `seen` here
        return {("n", "avg"): self.conv(self.seen).mean((2, 3))}


def test_an_extractor_that_keeps_state_gets_a_copy_per_forward_worker() -> None:
    base = _Stateful().eval()
    batches = [torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    forward = Forward(base, {("n", "avg"): "k"}, torch.device("cpu"), "fp32", 8, make=lambda: copy.deepcopy(base))
    assert forward.workers == MAX_COPIES
    with ThreadPoolExecutor(2, initializer=forward.enter_worker) as pool:
        together = list(pool.map(forward, batches))
    alone = Forward(base, {("n", "avg"): "k"}, torch.device("cpu"), "fp32", 8)
    assert alone.workers == 1
    for (arrays, _), batch in zip(together, batches):
        assert np.array_equal(arrays["k"], alone(batch)[0]["k"]) and arrays["k"].shape == (5, 4)
