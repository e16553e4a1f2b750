"""Provenance and fingerprints: the key under which embeddings are cached and checked.

The *base* fingerprint covers everything that changes the output of the network for a given image (backbone,
weights and their sha256, preprocessing, precision, the device type and the batch size every batch is padded to,
library versions); the *layer* fingerprint adds the node and the pooling. Decoding processes, forward workers,
the engine (local or Ray) and the cache directory are left out: they do not change the embeddings (see
:mod:`headstart.features.forward`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from headstart._versions import installed_versions

__all__ = ["ENGINE_VERSION", "LIBRARIES", "base_fingerprint", "layer_fingerprint", "library_versions"]

# Bump when a change in headstart itself changes the embeddings it computes (invalidates every cache).
# 2: BatchNorm folded into the preceding convolution for inference.
# 3: one intra-op thread per forward pass and every batch padded to the batch size (the same bits on any cores).
ENGINE_VERSION = 3

LIBRARIES = ("torch", "torchvision", "pillow")  # the libraries whose code computes the embeddings


def library_versions() -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES` (from their metadata: nothing is imported)."""
    return installed_versions(LIBRARIES)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def base_fingerprint(backbone_provenance: dict[str, Any], versions: dict[str, str]) -> str:
    """Fingerprint of a backbone's output for one image, whatever the node."""
    return _digest({"engine": ENGINE_VERSION, "backbone": backbone_provenance, "versions": versions})


def layer_fingerprint(base: str, node: str, pooling: str) -> str:
    """Fingerprint of one embedding table's vectors."""
    return _digest({"base": base, "node": node, "pooling": pooling})
