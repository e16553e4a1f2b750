"""The two front doors agree: `headstart embed` and `headstart.embed` with the same arguments write the same table
bytes (a torchvision backbone with its default weights, a timm one with random init, a text encoder), because
both take their defaults from headstart.features.defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

import headstart
from headstart.cli import main
from headstart.features.defaults import PRETRAINED, backbone_spec, default_weights
from tests.features.provider_models import synthetic_texts, tiny_sentence_transformer


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import huggingface_hub.constants as hub
    except ImportError:
        return
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def test_one_meaning_per_weights_value() -> None:
    assert default_weights("mobilenet_v2") == "IMAGENET1K_V1" == backbone_spec("resnet18").weights
    assert default_weights("timm:resnet18") == PRETRAINED == default_weights("sentence-transformers:x")
    assert default_weights("pixels") is None
    for random_init in (None, "none", "None", "random"):
        assert default_weights("mobilenet_v2", random_init) is None
        assert default_weights("timm:resnet18", random_init) is None
    assert default_weights("mobilenet_v2", "IMAGENET1K_V2") == "IMAGENET1K_V2"


def test_params_yaml_takes_the_same_defaults() -> None:
    from headstart.workflow.config import parse_config

    raw = {
        "datasets": {"d": {"source": "digits"}},
        "backbones": {"m": {"arch": "mobilenet_v2"}, "t": {"arch": "timm:resnet18"}, "r": {"weights": "none"}},
        "heads": {"knn": {}},
    }
    cfg = parse_config(raw)
    assert [cfg.backbones[n].weights for n in ("m", "t", "r")] == ["IMAGENET1K_V1", "pretrained", None]


def _both(tmp_path: Path, source: str, flags: list[str], **kwargs: object) -> tuple[bytes, bytes]:
    """The table bytes of the CLI and of the API (each with its own cache), given the same arguments."""
    cli = tmp_path / "cli.parquet"
    assert main(["embed", source, "-o", str(cli), *flags, "--workers", "0", "--cache-dir", str(tmp_path / "c1")]) == 0
    emb = headstart.embed(source, num_workers=0, cache_dir=tmp_path / "c2", **kwargs)  # type: ignore[arg-type]
    api = emb.save(tmp_path / "api.parquet")
    return cli.read_bytes(), api.read_bytes()


def test_torchvision_with_its_default_weights(image_folder: Path, tmp_path: Path, mobilenet_weights: Path) -> None:
    cli, api = _both(
        tmp_path, str(image_folder), ["--layer", "features.6", "--image-size", "32"], layer="features.6", image_size=32
    )
    assert cli == api
    table = headstart.Embeddings.load(tmp_path / "api.parquet")
    assert table.provenance["weights"] == "MobileNet_V2_Weights.IMAGENET1K_V1"


def test_timm_with_random_init(image_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("timm", reason="timm not installed (pip install 'headstart[timm]')")
    flags = ["--backbone", "timm:resnet18", "--weights", "none", "--image-size", "32"]
    cli, api = _both(tmp_path, str(image_folder), flags, backbone="timm:resnet18", weights=None, image_size=32)
    assert cli == api
    assert headstart.Embeddings.load(tmp_path / "cli.parquet").provenance["weights"] == "none"


def test_a_text_encoder_on_a_text_manifest(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
    model = tiny_sentence_transformer(tmp_path / "st")
    csv = str(synthetic_texts(tmp_path / "texts.csv", per_class=6))
    backbone = f"sentence-transformers:{model}"
    cli, api = _both(tmp_path, csv, ["--backbone", backbone], backbone=backbone)  # no --text-column: detected
    assert cli == api
    table = headstart.Embeddings.load(tmp_path / "cli.parquet")
    assert table.provenance["modality"] == "text"
    assert list(table.frame.columns) == ["id", "label", "split", "path", "text"]
    assert set(table.frame["text"]) == set(__import__("pandas").read_csv(csv)["text"])
