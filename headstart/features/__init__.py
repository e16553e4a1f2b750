"""Backbones (registry, weights, truncation, pooling) and the extraction engine.

The engine's files say what each does: ``reader`` decodes images in workers, ``runner`` runs the forward
pass, ``cache`` keeps every finished batch, ``writer`` assembles the Parquet tables, ``engine`` ties them
together in :func:`embed` (``from headstart.features import embed`` is that function, not a module). Importing
this package does not import torch; its functions do.
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "BackboneSpec": "spec",
    "EmbedOptions": "spec",
    "FinetuneSettings": "spec",
    "register_provider": "registry",
    "list_backbones": "registry",
    "load_backbone": "registry",
    "register_backbone": "registry",
    "EmbedResult": "engine",
    "embed": "engine",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
