"""Backbones (registry, weights, truncation, pooling) and the extraction engine.

The engine's files say what each does: ``reader`` decodes images in workers, ``runner`` runs the forward
pass, ``cache`` keeps every finished batch, ``writer`` assembles the Parquet tables, ``embed`` ties them
together. Importing this package does not import torch; its functions do.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackboneSpec",
    "EmbedOptions",
    "EmbedResult",
    "embed",
    "list_backbones",
    "load_backbone",
    "register_backbone",
]

_WHERE = {
    "BackboneSpec": "headstart.features.registry",
    "list_backbones": "headstart.features.registry",
    "load_backbone": "headstart.features.registry",
    "register_backbone": "headstart.features.registry",
    "EmbedOptions": "headstart.features.embed",
    "EmbedResult": "headstart.features.embed",
    "embed": "headstart.features.embed",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'headstart.features' has no attribute {name!r}")
