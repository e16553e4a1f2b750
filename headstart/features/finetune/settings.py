"""How to fine-tune (the settings type; to move into ``headstart.features.spec``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FinetuneSettings"]


@dataclass(frozen=True)
class FinetuneSettings:
    unfreeze: int | str = 2
    optimizer: str = "adamw"
    head_lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    weight_decay: float = 1e-4
    epochs: int = 10
    patience: int = 3
    batch_size: int = 64
    update_bn: bool = False
    augment: bool = True
    device: str = "auto"
    seed: int = 0
    num_workers: int | str = "auto"
