"""The fine-tuned checkpoint format: the one module that writes it and reads it.

A checkpoint is a ``torch.save`` of a plain dict (loadable with ``weights_only=True``): the full architecture's
state dict with its original classifier put back (so it loads exactly like the base weights), the name of the
base weights (for the preprocessing), the new head, the fine-tuning config and its history.

The same weights give the same bytes: the archive is written to memory under a fixed name (a file name would
put the random temporary name into every zip member), then to disk atomically. ``weights_sha256`` and the
per-image cache that hangs off it stay valid when a rerun trains the same weights.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from headstart._files import atomic_path
from headstart.features.weights import load_state_dict

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "checkpoint_bytes",
    "is_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "headstart-checkpoint-v1"


@dataclass(frozen=True)
class Checkpoint:
    """A fine-tuned network. ``state_dict`` fits ``torchvision.models.get_model(arch, num_classes=...)`` (for a
    ``provider:model`` backbone: the provider's model built with ``base_weights``, its ``weights:`` setting);
    ``head`` holds the new classifier (``weight``, ``bias``, ``mean``, ``scale``, ``classes``)."""

    arch: str
    base_weights: str | None
    num_classes: int
    state_dict: dict[str, Any]
    head: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    test_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "arch": self.arch,
            "base_weights": self.base_weights,
            "num_classes": int(self.num_classes),
            "state_dict": self.state_dict,
            "head": self.head,
            "config": self.config,
            # through JSON: equal histories pickle to the same bytes whatever objects they share (a resumed run's
            # history comes back from its resume state with shared keys)
            "history": json.loads(json.dumps(self.history)),
            "best_epoch": self.best_epoch,
            "test_accuracy": self.test_accuracy,
        }

    def provenance(self) -> dict[str, Any]:
        """Where the fine-tuned weights came from: the base weights and their sha256, the blocks that trained,
        the epochs run and the one kept."""
        return {
            "base_weights": self.base_weights,
            "base_weights_sha256": self.config.get("base_weights_sha256"),
            "unfrozen": list(self.config.get("unfrozen", [])),
            "epochs": max(len(self.history) - 1, 0),
            "best_epoch": self.best_epoch,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any], where: str = "the checkpoint") -> Checkpoint:
        if not is_checkpoint(state):
            raise ValueError(f"{where} is not a headstart fine-tuned checkpoint (format {CHECKPOINT_FORMAT})")
        return cls(
            arch=state["arch"],
            base_weights=state.get("base_weights"),
            num_classes=int(state["num_classes"]),
            state_dict=state["state_dict"],
            head=state.get("head", {}),
            config=state.get("config", {}),
            history=state.get("history", []),
            best_epoch=int(state.get("best_epoch", 0)),
            test_accuracy=state.get("test_accuracy"),
        )


def is_checkpoint(state: Any) -> bool:
    """Whether a loaded object is a headstart fine-tuned checkpoint (and not a plain state dict)."""
    return isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """The checkpoint's file contents; the same for the same weights (fixed archive name, no file name in it)."""
    buffer = io.BytesIO()
    torch.save(checkpoint.to_dict(), buffer)
    return buffer.getvalue()


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> str:
    """Write ``path`` atomically (and ``path.sha256`` beside it); return the sha256 of its bytes."""
    path = Path(path)
    data = checkpoint_bytes(checkpoint)
    digest = hashlib.sha256(data).hexdigest()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(path.with_name(path.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    return digest


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no pickled code runs)."""
    return Checkpoint.from_dict(load_state_dict(path), str(path))
