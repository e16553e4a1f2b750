"""Fine-tune a backbone from its linear probe: surgery, data, the loop, the checkpoint, in that order."""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from headstart._progress import ProgressFactory, null_progress
from headstart.features.finetune.checkpoint import Checkpoint, save_checkpoint
from headstart.features.finetune.data import make_loaders
from headstart.features.finetune.loop import predict, train
from headstart.features.finetune.prefix import frozen_prefix
from headstart.features.finetune.resume import Resume, fingerprint
from headstart.features.finetune.surgery import FinetuneNet, LinearInit, build_net, build_provider_net
from headstart.features.forward import FORWARD_THREADS, select_device
from headstart.features.reader import auto_workers
from headstart.features.registry import load_backbone
from headstart.features.spec import BackboneSpec, FinetuneSettings

__all__ = ["FinetuneResult", "finetune"]

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    checkpoint: Path
    sha256: str
    test_accuracy: float
    val_accuracy: float
    probe_test_accuracy: float
    best_epoch: int
    epochs: int
    train_seconds: float
    unfrozen: list[str]
    history: list[dict[str, float]] = field(default_factory=list)
    # the test items' labels and the predictions of the probe (before) and of the fine-tuned network (after)
    test_labels: list[str] = field(default_factory=list, repr=False)
    probe_predicted: list[str] = field(default_factory=list, repr=False)
    test_predicted: list[str] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """What the run decided (the same for the same inputs); the time it took is in :attr:`train_seconds`."""
        return {
            "test_accuracy": self.test_accuracy,
            "val_accuracy": self.val_accuracy,
            "probe_test_accuracy": self.probe_test_accuracy,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "unfrozen_blocks": len(self.unfrozen),
            "unfrozen_names": self.unfrozen,
            "checkpoint": str(self.checkpoint),
            "sha256": self.sha256,
            "history": self.history,
        }


def finetune(
    spec: BackboneSpec,
    prepared: pd.DataFrame,
    init: LinearInit,
    out: str | Path,
    settings: FinetuneSettings = FinetuneSettings(),
    progress: ProgressFactory = null_progress,
    keep_prefix: bool = True,
) -> FinetuneResult:
    """Fine-tune ``spec``'s backbone on ``prepared`` (train; early stopping on val; scored on test) and save the
    best epoch as a checkpoint at ``out`` (see :mod:`headstart.features.finetune.checkpoint`).

    On a CPU every pass, forward and backward, runs on the engine's fixed number of intra-op threads, so the
    checkpoint's bits do not depend on how many cores the machine has or gives this process. A text encoder's
    frozen blocks run once (``keep_prefix``, see :mod:`headstart.features.finetune.prefix`)."""
    device = select_device(settings.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(FORWARD_THREADS)
    try:
        return _finetune(spec, prepared, init, out, settings, progress, device, keep_prefix)
    finally:
        torch.set_num_threads(threads)


def _finetune(
    spec: BackboneSpec,
    prepared: pd.DataFrame,
    init: LinearInit,
    out: str | Path,
    settings: FinetuneSettings,
    progress: ProgressFactory,
    device: torch.device,
    keep_prefix: bool,
) -> FinetuneResult:
    backbone = load_backbone(spec)
    net, trainable, n_blocks = _network(backbone, init, settings.unfreeze)
    net = net.to(device).to(memory_format=torch.channels_last)
    texts = backbone.text_batches if getattr(backbone, "modality", "image") == "text" else None
    batches = -(-len(prepared) // settings.batch_size)
    workers = auto_workers(device, batches) if settings.num_workers == "auto" else int(settings.num_workers)
    loaders = make_loaders(
        prepared,
        list(init.classes),
        backbone.transform,
        batch_size=settings.batch_size,
        num_workers=workers,
        augment=settings.augment,
        seed=settings.seed,
        text_batches=texts,
    )
    keep = texts is not None and keep_prefix and settings.unfreeze != "all"
    prefix = frozen_prefix(net.body.model, backbone.block_names, int(settings.unfreeze)) if keep else None
    if prefix is not None and prefix.compute(net.body, loaders, device, spec.precision):
        loaders, net.prefix = prefix.loaders(loaders), prefix
    out = Path(out)
    resume = Resume(out, fingerprint(spec, backbone.weights_sha256, settings, init, prepared, device=str(device),
                                     keep_prefix=net.prefix is not None))  # fmt: skip
    truth, probe_codes, _ = predict(net, loaders["test"], device, spec.precision)
    log.info(
        "fine-tuning %s: %d of %d blocks unfrozen (%s...)",
        spec.arch,
        len(trainable),
        n_blocks,
        ", ".join(name for name, _ in trainable[:2]),
    )
    # Dropout inside unfrozen blocks draws from torch's global generator: seed it for this run only and give the
    # caller's random state back afterwards (the data and augmentation have their own seeded generators).
    devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.seed)
        run = train(net, trainable, loaders, settings, device, spec.precision, progress, resume)
    _, tuned_codes, _ = predict(net, loaders["test"], device, spec.precision)
    test, probe_test = (float(np.mean(truth == codes)) if len(truth) else 0.0 for codes in (tuned_codes, probe_codes))
    names = np.asarray(init.classes, dtype=object)
    unfrozen = [name for name, _ in trainable]
    net.prefix = None
    net = net.cpu()
    provider = bool(getattr(backbone, "block_names", ()))
    checkpoint = Checkpoint(
        arch=spec.arch,
        # what the base is rebuilt from: torchvision's resolved weights name, a provider's `weights:` setting
        base_weights=str(spec.weights) if provider else backbone.weights.name,
        num_classes=net.original_classes(),
        state_dict=net.restored_state_dict(),
        head=net.head_state(init.classes),
        config={
            **asdict(settings),
            "image_size": spec.image_size,
            "resize_size": spec.resize_size,
            "precision": spec.precision,
            "pooling": spec.poolings[0],
            "unfrozen": unfrozen,
            "base_weights_sha256": backbone.weights_sha256,
        },
        history=run.history,
        best_epoch=run.best_epoch,
        test_accuracy=test,
    )
    sha256 = save_checkpoint(checkpoint, out)
    resume.clear()
    return FinetuneResult(
        checkpoint=out,
        sha256=sha256,
        test_accuracy=test,
        val_accuracy=run.best_val,
        probe_test_accuracy=probe_test,
        best_epoch=run.best_epoch,
        epochs=run.epochs,
        train_seconds=run.seconds,
        unfrozen=unfrozen,
        history=run.history,
        test_labels=list(names[truth]),
        probe_predicted=list(names[probe_codes]),
        test_predicted=list(names[tuned_codes]),
    )


def _network(backbone: Any, init: LinearInit, unfreeze: int | str) -> tuple[FinetuneNet, list, int]:
    """The probe on the backbone's default layer: a provider's blocks by its own names (``block_names``), or
    else a classifier model's blocks with the classifier taken off."""
    spec = backbone.spec
    if not getattr(backbone, "block_names", ()):
        return build_net(copy.deepcopy(backbone.model), init, unfreeze, spec.arch)
    pooling = spec.poolings[0]
    extractor = backbone.extractor(("default",), (pooling,))
    key = (backbone.resolve_layers(("default",))[0], pooling)
    return build_provider_net(extractor, key, backbone.block_names, backbone.tail_names, init, unfreeze, spec.arch)
