"""A fine-tuned backbone as one value: what ``headstart.finetune`` returns and every front door takes as a backbone.

``headstart.embed(source, tuned)``, ``headstart.Encoder(tuned)`` and ``headstart embed --backbone ARCH --weights
CHECKPOINT`` all embed with the same network: the base architecture ``arch`` with the fine-tuned checkpoint as
its weights. This module imports nothing heavy, so the CLI's defaults can know the type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FinetunedBackbone"]


@dataclass(frozen=True)
class FinetunedBackbone:
    """``arch`` fine-tuned into ``checkpoint`` (a headstart checkpoint, ``model.pt``); ``metrics`` are its run's
    test scores (not part of its identity).

    >>> tuned = FinetunedBackbone("sentence-transformers:all-MiniLM-L6-v2", Path("ft/model.pt"))
    >>> tuned.weights
    'ft/model.pt'
    """

    arch: str
    checkpoint: Path
    metrics: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def weights(self) -> str:
        """The ``weights`` setting that embeds with it (with ``backbone=arch``)."""
        return str(self.checkpoint)

    def __str__(self) -> str:
        return f"{self.arch} fine-tuned ({self.checkpoint})"
