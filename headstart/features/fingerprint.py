"""Provenance and fingerprints: the key under which embeddings are cached and checked.

The *base* fingerprint covers everything that changes the output of the network for a given image (backbone,
weights and their sha256, preprocessing, precision, library versions); the *layer* fingerprint adds the node
and the pooling. Device, batch size and worker count are left out: they do not change the embeddings.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["ENGINE_VERSION", "base_fingerprint", "layer_fingerprint", "library_versions"]

# Bump when a change in headstart itself changes the embeddings it computes (invalidates every cache).
# 2: BatchNorm folded into the preceding convolution for inference.
ENGINE_VERSION = 2


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose code computes the embeddings."""
    import PIL
    import torch

    from headstart.features._torchvision import import_torchvision

    import_torchvision()  # without TorchDynamo
    import torchvision

    return {
        "torch": torch.__version__.split("+")[0],
        "torchvision": torchvision.__version__.split("+")[0],
        "pillow": PIL.__version__,
    }


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def base_fingerprint(backbone_provenance: dict[str, Any], versions: dict[str, str]) -> str:
    """Fingerprint of a backbone's output for one image, whatever the node."""
    return _digest({"engine": ENGINE_VERSION, "backbone": backbone_provenance, "versions": versions})


def layer_fingerprint(base: str, node: str, pooling: str) -> str:
    """Fingerprint of one embedding table's vectors."""
    return _digest({"base": base, "node": node, "pooling": pooling})
