"""torchvision's classification models as backbones: exact weights, verified checkpoints, fine-tuned checkpoints."""

from __future__ import annotations

import re
from typing import Any

import torch
import torchvision.models as tvm

from headstart.features.finetune.checkpoint import Checkpoint, is_checkpoint
from headstart.features.preprocess import build_transform
from headstart.features.registry import RANDOM_INIT_SEED, Backbone
from headstart.features.spec import BackboneSpec
from headstart.features.weights import (
    WeightsError,
    ensure_checkpoint,
    file_sha256,
    load_state_dict,
    resolve_weights,
)

__all__ = ["load_torchvision"]


def load_torchvision(spec: BackboneSpec) -> Backbone:
    """Build torchvision's ``spec.arch`` with its weights (exact name, checkpoint path or none) and preprocessing."""
    resolved = resolve_weights(spec.arch, spec.weights)
    sha256 = None
    base_enum = resolved.enum
    if resolved.kind == "torchvision":
        path = ensure_checkpoint(resolved.enum)
        sha256 = _verified_sha256(path)
        model = tvm.get_model(spec.arch, weights=None, **_builder_kwargs(spec.arch, resolved.enum))
        model.load_state_dict(load_state_dict(path))
    elif resolved.kind == "checkpoint":
        assert resolved.path is not None
        sha256 = file_sha256(resolved.path)
        model, base_enum = _load_checkpoint(spec.arch, resolved.path)
    else:
        # random initialisation, seeded: the same `weights: none` backbone gives the same embeddings every run
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = tvm.get_model(spec.arch, weights=None)
    model.eval()
    transform, preprocessing = build_transform(spec.arch, base_enum, spec.image_size, spec.resize_size)
    return Backbone(
        spec=spec,
        model=model,
        transform=transform,
        preprocessing=preprocessing,
        weights=resolved,
        weights_sha256=sha256,
    )


def _verified_sha256(path: Any) -> str:
    digest = file_sha256(path)
    match = re.search(r"-([a-f0-9]{8,})\.", path.name)
    if match and not digest.startswith(match.group(1)):
        raise WeightsError(
            f"{path} is corrupt: its sha256 {digest[:12]}... does not start with {match.group(1)} "
            "as its name promises; delete it and run again"
        )
    return digest


def _builder_kwargs(arch: str, enum: Any) -> dict[str, Any]:
    """The constructor arguments torchvision itself passes when it builds ``arch`` with ``enum``."""
    kwargs: dict[str, Any] = {"num_classes": len(enum.meta["categories"])}
    if arch in ("inception_v3", "googlenet"):
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    if arch.startswith("vit_") and "min_size" in enum.meta:
        kwargs["image_size"] = enum.meta["min_size"][0]
    return kwargs


def _load_checkpoint(arch: str, path: Any) -> tuple[Any, Any]:
    """Build ``arch`` from a headstart fine-tuned checkpoint or a plain state dict."""
    state = load_state_dict(path)
    base_enum = None
    if is_checkpoint(state):
        tuned = Checkpoint.from_dict(state, str(path))
        if tuned.arch != arch:
            raise WeightsError(
                f"checkpoint {path} is a fine-tuned '{tuned.arch}', but the backbone's arch is "
                f"'{arch}'; set `arch: {tuned.arch}`"
            )
        if tuned.base_weights:
            base_enum = resolve_weights(arch, tuned.base_weights).enum
        model = tvm.get_model(arch, weights=None, num_classes=tuned.num_classes)
        model.load_state_dict(tuned.state_dict)
        return model, base_enum
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = tvm.get_model(arch, weights=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(f"checkpoint {path} does not fit {arch}: {str(err)[:300]}") from err
    # a plain torchvision state dict: find its weights by file name, for the preprocessing
    for enum in tvm.get_model_weights(arch):
        if enum.url.rsplit("/", 1)[-1] == path.name:
            base_enum = enum
    return model, base_enum
