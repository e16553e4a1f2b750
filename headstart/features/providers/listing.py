"""What ``headstart backbones`` says about the providers, as rows: installed or not, which weights are on this
machine, and one provider model's layers. The CLI formats them."""

from __future__ import annotations

from typing import Any

from headstart.features.providers.base import MissingExtra, split_name
from headstart.features.providers.text_weights import OFFLINE_MODELS
from headstart.features.registry import BackboneSpec, Provider, list_providers, load_backbone

__all__ = ["describe_model", "provider_rows"]


def provider_rows() -> list[dict[str, Any]]:
    """One row per registered provider: ``prefix``, ``installed``, ``install`` (the pip command),
    ``description`` and ``models``: for an installed provider, its example models as ``{"model", "weights"}``
    rows, where ``weights`` is ``present``, ``missing``, ``fetchable`` (a package registry ships them) or
    ``unknown``."""
    rows = []
    for prefix, provider in list_providers().items():
        installed = provider.installed()
        examples = [f"{prefix}:{model}" for model in provider.examples] if installed else []
        rows.append(
            {
                "prefix": prefix,
                "installed": installed,
                "install": provider.install,
                "description": provider.description,
                "models": [{"model": name, "weights": _weights(provider, name)} for name in examples],
            }
        )
    return rows


def describe_model(name: str) -> dict[str, Any]:
    """One provider model (``prefix:model``, built with random weights): its default layer, width and pooling,
    whether its weights are on this machine, its layers with their widths, and its preprocessing."""
    prefix, _ = split_name(name)
    provider = list_providers().get(prefix)
    if provider is not None and not provider.installed():
        raise MissingExtra(f"backbone '{name}' needs {provider.requires}: {provider.install}")
    backbone = load_backbone(BackboneSpec(name, weights=None))
    default = backbone.default_node()
    return {
        "name": name,
        "default_layer": default,
        "dim": backbone.declared_dim(default),
        "default_pooling": getattr(backbone, "default_applied", ""),
        "weights": _weights(provider, name) if provider else "unknown",
        "layers": [{"layer": layer, "width": backbone.layer_widths[layer]} for layer in backbone.graph_nodes()[1:]],
        "preprocessing": backbone.preprocessing,
    }


def _weights(provider: Provider, name: str) -> str:
    try:
        present = provider.weights_present(name)
    except Exception:  # noqa: BLE001 - a listing never fails on one model
        present = None
    if present is False and provider.prefix == "sentence-transformers" and split_name(name)[1] in OFFLINE_MODELS:
        return "fetchable"
    return {True: "present", False: "missing", None: "unknown"}[present]
