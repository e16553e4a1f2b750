"""What a backbone spec resolved to last time, so that a run with every image cached loads no model.

Loading a backbone (torch, torchvision, the weights, graph tracing, a probe forward pass) takes seconds; it
yields the base fingerprint, the provenance, the resolved layer nodes and each output's width. Those are kept
in ``<cache_dir>/_resolved/<key>.json``, under a key made only of cheap facts: the spec, the decode mode, the
installed versions of torch, torchvision and Pillow (from their package metadata, without importing them), a
checkpoint file's size and modification time, the device and batch size settings, and the engine version. A
change to any of those, and nothing else, invalidates a record (so bump
:data:`~headstart.features.fingerprint.ENGINE_VERSION` when headstart's code changes what a backbone resolves
to). A record only ever serves a run whose images are all in the cache under its fingerprint: anything to
compute loads the model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from headstart._versions import installed_versions
from headstart.data.images import DECODE_MARGIN
from headstart.features.fingerprint import ENGINE_VERSION, LIBRARIES, base_fingerprint
from headstart.features.registry import backbone_entry, load_backbone
from headstart.features.spec import EmbedOptions

__all__ = ["Resolved", "arithmetic", "load_resolved", "recall", "remember", "resolved_key"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolved:
    """A backbone's identity without the backbone: everything the tables need from it."""

    fingerprint: str
    base: dict[str, Any]
    versions: dict[str, str]
    nodes: tuple[str, ...]
    default_node: str
    dims: dict[tuple[str, str], int]
    applied: dict[tuple[str, str], str]

    def to_json(self) -> str:
        record = asdict(self)
        record["dims"] = [[n, m, d] for (n, m), d in self.dims.items()]
        record["applied"] = [[n, m, a] for (n, m), a in self.applied.items()]
        return json.dumps(record, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Resolved:
        record = json.loads(text)
        return cls(
            fingerprint=record["fingerprint"],
            base=record["base"],
            versions=record["versions"],
            nodes=tuple(record["nodes"]),
            default_node=record["default_node"],
            dims={(n, m): int(d) for n, m, d in record["dims"]},
            applied={(n, m): a for n, m, a in record["applied"]},
        )


def resolved_key(spec: Any, decode: str, options: EmbedOptions) -> str | None:
    """The record's key for ``spec`` decoded with ``decode`` and run with ``options``' device and batch size;
    ``None`` for backbones that a provider or the user registered (what they resolve to depends on libraries and
    code that the key does not name)."""
    if ":" in spec.arch or not str(backbone_entry(spec.arch).build).startswith("headstart."):
        return None
    weights: Any = spec.weights
    text = str(weights)
    if weights is not None and (text.endswith((".pt", ".pth", ".ckpt")) or os.sep in text or Path(text).is_file()):
        try:  # a checkpoint file (as headstart.features.weights.resolve_weights decides): its identity
            stat = os.stat(text)
            weights = [os.path.abspath(text), stat.st_size, stat.st_mtime_ns]
        except OSError:
            return None
    payload = {
        "spec": [spec.arch, weights, list(spec.layers), list(spec.poolings), spec.image_size, spec.resize_size],
        "precision": spec.precision,
        "decode": decode,
        "arithmetic": [options.device, options.batch_size],
        "versions": installed_versions(LIBRARIES),
        "engine": ENGINE_VERSION,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def arithmetic(device_type: str, batch_size: int) -> dict[str, Any]:
    """The run settings that change a vector's bits, as the provenance records them."""
    return {"device_type": device_type, "batch_size": batch_size}


def recall(cache_root: str | Path, key: str | None) -> Resolved | None:
    """The record stored under ``key``, or ``None`` (none, or unreadable: then the model is loaded)."""
    if key is None:
        return None
    path = Path(cache_root) / "_resolved" / f"{key}.json"
    try:
        return Resolved.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.info("ignoring %s (%s); the backbone will be loaded", path, err)
        return None


def remember(cache_root: str | Path, key: str | None, resolved: Resolved) -> None:
    """Store ``resolved`` under ``key`` (atomically; a failure to write only costs the next run a model load)."""
    if key is None:
        return
    folder = Path(cache_root) / "_resolved"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(resolved.to_json())
        os.replace(tmp, folder / f"{key}.json")
    except OSError as err:
        log.info("could not write %s (%s); the next run will load the backbone again", folder, err)


def load_resolved(
    spec: Any, options: EmbedOptions, scaled: bool, backbone: Any = None
) -> tuple[Resolved, Any, Any, Any]:
    """Load the backbone of ``spec`` (or finish ``backbone``, already loaded from it): what it resolves to, the
    backbone, its extractor and the device.

    ``scaled``: JPEGs will be decoded reduced. That, the device type and the batch size every batch is padded to
    (:mod:`headstart.features.forward`) change the arithmetic, so they go into the provenance and the fingerprint;
    the decoding processes, forward workers and engine do not.
    """
    from headstart.features import forward  # torch, imported only by a run that loads a model (see the module)

    backbone = load_backbone(spec) if backbone is None else backbone
    nodes = backbone.resolve_layers(spec.layers)
    versions = installed_versions(LIBRARIES)
    device = forward.select_device(options.device)
    base = {
        **backbone.provenance(),
        **({"decode": "jpeg-scaled", "decode_margin": DECODE_MARGIN} if scaled else {}),
        **arithmetic(device.type, options.batch_size_for(device)),
    }
    extractor = backbone.extractor(nodes, spec.poolings).eval()
    dims, applied = forward.probe(extractor, backbone.example_input(), device, spec.precision)
    resolved = Resolved(
        fingerprint=base_fingerprint(base, versions),
        base=base,
        versions=versions,
        nodes=tuple(nodes),
        default_node=backbone.default_node(),
        dims=dims,
        applied={k: str(v) for k, v in applied.items()},
    )
    return resolved, backbone, extractor, device
