"""Backbones (registry, weights, truncation, pooling) and the extraction engine.

The engine's files say what each does: ``reader`` decodes images in workers, ``forward`` is the forward pass
of one batch (one intra-op thread, padded to the batch size), ``runner`` is the interface that ``local_engine``
(forward workers in this process) and ``ray_engine`` (actors on a cluster) implement, ``cache`` keeps every
finished batch, ``writer`` assembles the Parquet tables, ``engine`` ties them together in :func:`embed`
(``from headstart.features import embed`` is that function, not a module). Importing this package does not
import torch; its functions do.
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
