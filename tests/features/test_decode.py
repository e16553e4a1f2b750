"""Reduced JPEG decoding in the engine: what it changes, what `decode: full` keeps, and the no-op run."""

from __future__ import annotations

import filecmp
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from headstart.data import load_embeddings, prepare_dataset
from headstart.data.images import decode_image
from headstart.features.engine import EmbedOptions, embed
from headstart.features.registry import BackboneSpec
from tests.conftest import REPO, digit_images

# crop 32, so the resize target is round(32 * 256 / 224) = 37 px; with the 2x margin (74 px) a 320x240 JPEG is
# decoded at 1/2 (160x120) and a 144x120 one in full
SMALL = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32)


def _options(cache: Path, **kw: object) -> EmbedOptions:
    return EmbedOptions(batch_size=8, num_workers=0, cache_dir=cache, **kw)  # type: ignore[arg-type]


@pytest.fixture
def photo_folders(tmp_path: Path) -> tuple[Path, Path]:
    """The same 18 colour pictures twice: as 320x240 JPEGs, and as PNGs of their fully decoded pixels."""
    jpegs, pngs = tmp_path / "jpeg", tmp_path / "png"
    rng = np.random.default_rng(0)
    for i, (label, grey) in enumerate(digit_images(n_per_class=6)):
        picture = Image.fromarray(grey).resize((320, 240), Image.BICUBIC)
        tint = rng.uniform(0.4, 1.0, size=3)
        pixels = np.clip(np.asarray(picture, np.float64)[..., None] * tint + rng.normal(0, 8, (240, 320, 3)), 0, 255)
        for root in (jpegs, pngs):
            (root / f"class_{label}").mkdir(parents=True, exist_ok=True)
        jpeg = jpegs / f"class_{label}" / f"img_{i:03d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(jpeg, quality=90)
        decode_image(jpeg).save(pngs / f"class_{label}" / f"img_{i:03d}.png")
    return jpegs, pngs


def _by_name(table_path: Path) -> dict[str, np.ndarray]:
    table = load_embeddings(table_path)
    return {Path(p).stem: x for p, x in zip(table.frame["path"], table.X)}


def test_full_decoding_gives_todays_embeddings_and_fingerprint(photo_folders: tuple[Path, Path], tmp_path: Path) -> None:
    from headstart.features.fingerprint import base_fingerprint, library_versions
    from headstart.features.registry import load_backbone
    from headstart.features.resolved import arithmetic

    jpegs, pngs = photo_folders
    full = embed(prepare_dataset(str(jpegs)), SMALL, tmp_path / "full", options=_options(tmp_path / "c", decode="full"))
    twin = embed(prepare_dataset(str(pngs)), SMALL, tmp_path / "png", options=_options(tmp_path / "c"))
    a, b = _by_name(full.tables["features.6"]), _by_name(twin.tables["features.6"])
    assert sorted(a) == sorted(b) and len(a) == 18
    for name in a:  # every pixel decoded in full, exactly as before the setting existed
        assert np.array_equal(a[name], b[name]), name
    todays = base_fingerprint({**load_backbone(SMALL).provenance(), **arithmetic("cpu", 8)}, library_versions())
    provenance = full.provenance["features.6"]
    assert provenance["base_fingerprint"] == todays
    assert "decode" not in provenance


def test_reduced_decoding_changes_the_fingerprint_and_the_vectors_a_little(
    photo_folders: tuple[Path, Path], tmp_path: Path
) -> None:
    jpegs, _ = photo_folders
    prepared = prepare_dataset(str(jpegs))
    full = embed(prepared, SMALL, tmp_path / "full", options=_options(tmp_path / "c", decode="full"))
    scaled = embed(prepared, SMALL, tmp_path / "scaled", options=_options(tmp_path / "c"))
    p_full, p_scaled = full.provenance["features.6"], scaled.provenance["features.6"]
    assert p_scaled["decode"] == "jpeg-scaled" and p_scaled["decode_margin"] == 2
    assert p_scaled["base_fingerprint"] != p_full["base_fingerprint"]
    assert p_scaled["fingerprint"] != p_full["fingerprint"]
    assert scaled.from_cache == 0  # the full run's cache entries are not mixed in
    a, b = _by_name(full.tables["features.6"]), _by_name(scaled.tables["features.6"])
    cosines = [float(a[n] @ b[n] / (np.linalg.norm(a[n]) * np.linalg.norm(b[n]))) for n in a]
    assert not all(np.array_equal(a[n], b[n]) for n in a)
    assert min(cosines) > 0.9


def test_without_jpegs_the_decode_setting_changes_nothing(image_folder: Path, tmp_path: Path) -> None:
    prepared = prepare_dataset(str(image_folder))
    full = embed(prepared, SMALL, tmp_path / "full", options=_options(tmp_path / "c1", decode="full"))
    scaled = embed(prepared, SMALL, tmp_path / "scaled", options=_options(tmp_path / "c2", decode="jpeg-scaled"))
    assert full.provenance["features.6"]["fingerprint"] == scaled.provenance["features.6"]["fingerprint"]
    assert filecmp.cmp(full.tables["features.6"], scaled.tables["features.6"], shallow=False)


def test_a_run_with_every_image_cached_loads_no_model(
    image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = prepare_dataset(str(image_folder))
    first = embed(prepared, SMALL, tmp_path / "a", options=_options(tmp_path / "c"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the backbone was loaded although every image is in the cache")

    monkeypatch.setattr("headstart.features.engine.load_resolved", refuse)
    again = embed(prepared, SMALL, tmp_path / "b", options=_options(tmp_path / "c"))
    assert again.from_cache == len(prepared) and again.stats.computed == 0
    assert filecmp.cmp(first.tables["features.6"], again.tables["features.6"], shallow=False)
    assert again.provenance == {"features.6": {**first.provenance["features.6"]}}


_NOOP = textwrap.dedent("""
    import sys
    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.registry import BackboneSpec
    folder, out, cache = sys.argv[1:4]
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32)
    result = embed(prepare_dataset(folder), spec, out, options=EmbedOptions(cache_dir=cache))
    print(result.stats.computed, "torch" in sys.modules, "torchvision" in sys.modules)
""")


def test_the_no_op_run_imports_neither_torch_nor_torchvision(image_folder: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-c", _NOOP, str(image_folder), str(tmp_path / "out"), str(tmp_path / "cache")]
    first = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["36", "True", "True"]
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    assert second.stdout.split() == ["0", "False", "False"], second.stderr[-2000:]


_NOOP_CLI = textwrap.dedent("""
    import sys
    from headstart.cli import main
    folder, out, cache = sys.argv[1:4]
    args = ["embed", folder, "-o", out, "--cache-dir", cache, "--weights", "none", "--layer", "features.6",
            "--image-size", "32", "--workers", "0"]
    assert main(args) == 0
    print(*(name in sys.modules for name in ("torch", "headstart.heads", "scipy.stats")))
""")


def test_the_no_op_command_imports_neither_torch_nor_the_heads(image_folder: Path, tmp_path: Path) -> None:
    # `headstart embed` with every image cached: torch, the heads and scipy.stats (a second of imports) stay out
    args = [sys.executable, "-c", _NOOP_CLI, str(image_folder), str(tmp_path / "out.parquet"), str(tmp_path / "c")]
    subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    assert second.stdout.split()[-3:] == ["False", "False", "False"], second.stdout + second.stderr[-2000:]
