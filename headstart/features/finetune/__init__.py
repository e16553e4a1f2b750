"""Fine-tuning: start from the linear probe, unfreeze the last blocks, train a little at a small learning rate.

The network is the backbone with its classifier replaced by a new linear layer initialised from the linear probe
that the fit stage already trained on the cached embeddings (its standardisation kept as a fixed layer), so
training starts where the frozen features left off. The last ``unfreeze`` blocks (or all) learn at
``head_lr * backbone_lr_factor``, the head at ``head_lr``; linear warm-up then cosine schedule, gradients
clipped at norm 5, light augmentation, early stopping on val accuracy (ties: val loss), seeded generators.
BatchNorm statistics stay frozen unless ``update_bn``. The best epoch is saved as a checkpoint; point a
backbone's ``weights:`` at it to embed with the fine-tuned network.

``backbone`` (the fine-tuned backbone as one value, torch-free), ``surgery`` (blocks, freezing, the probe as a
head), ``data`` (the engine's image dataset with labels and seeded augmentation), ``prefix`` (a text encoder's
frozen layers run once per call), ``loop`` (training and early stopping), ``resume`` (each epoch's end saved for a
rerun to continue from), ``checkpoint`` (the one module that writes and reads the checkpoint format), ``tune``
(ties them together). Importing this package does not import torch.
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "CHECKPOINT_FORMAT": "checkpoint",
    "Checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "FinetuneSettings": "tune",
    "FinetunedBackbone": "backbone",
    "LinearInit": "surgery",
    "blocks": "surgery",
    "FinetuneResult": "tune",
    "finetune": "tune",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
