"""Fine-tuning: start from the linear probe, unfreeze the last blocks, train a little at a small learning rate.

The network is the backbone with its classifier replaced by a new linear layer initialised from the linear probe
that the fit stage already trained on the cached embeddings (its standardisation folded into the weights), so
training starts where the frozen features left off. The last ``unfreeze`` blocks (or all) learn at
``head_lr * backbone_lr_factor``, the head at ``head_lr``; linear warm-up then cosine schedule, gradients
clipped at norm 5, light augmentation, early stopping on val accuracy (ties: val loss), a fixed seed.
BatchNorm statistics stay frozen unless ``update_bn``.

The best epoch is saved as a headstart checkpoint: the full architecture's state dict (its original classifier
put back, so it loads exactly like the base weights), the new head, the config and the history. Point a
backbone's ``weights:`` at it to embed with the fine-tuned network.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from headstart._files import atomic_path
from headstart._progress import ProgressFactory, null_progress
from headstart.data.images import UnreadableImage, decode_image
from headstart.errors import SettingsError
from headstart.features.registry import Backbone, load_backbone
from headstart.features.runner import autocast, select_device
from headstart.features.spec import BackboneError, BackboneSpec, FinetuneSettings
from headstart.features.truncate import classifier_name
from headstart.features.weights import CHECKPOINT_FORMAT, file_sha256

__all__ = ["FinetuneResult", "FinetuneSettings", "LinearInit", "blocks", "finetune"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearInit:
    """A linear classifier on the default layer's features:
    ``logits = ((x - mean) / scale) @ weight.T + bias`` (``headstart.heads.probe.probe_parts`` makes one from a
    fitted logreg head). The standardisation stays fixed; the weights and bias train."""

    weight: np.ndarray
    bias: np.ndarray
    classes: list[str]
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None


class _Standardize(nn.Module):
    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


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

    def summary(self) -> dict[str, Any]:
        return {
            "test_accuracy": self.test_accuracy,
            "val_accuracy": self.val_accuracy,
            "probe_test_accuracy": self.probe_test_accuracy,
            "best_epoch": self.best_epoch,
            "epochs": self.epochs,
            "train_seconds": round(self.train_seconds, 1),
            "unfrozen_blocks": len(self.unfrozen),
            "unfrozen_names": self.unfrozen,
            "checkpoint": str(self.checkpoint),
            "sha256": self.sha256,
            "history": self.history,
        }


def _head_name(model: nn.Module) -> str:
    head = classifier_name(model)
    if head is None:
        raise BackboneError(
            f"cannot find the classifier of {type(model).__name__}: it has no linear layer to fine-tune from"
        )
    return head


def blocks(model: nn.Module, head: str | None = None) -> list[tuple[str, nn.Module]]:
    """The model's blocks in execution order, the classifier left out: containers are opened one level at a
    time (``features.0`` ... ``features.18`` for MobileNetV2, ``layer4.1`` for ResNets, encoder layers for ViTs)."""
    head = head or _head_name(model)

    def expand(prefix: str, module: nn.Module) -> list[tuple[str, nn.Module]]:
        out = []
        for name, child in module.named_children():
            qualified = f"{prefix}{name}"
            if prefix == "" and name == head:
                continue
            if not any(True for _ in child.parameters()):
                continue
            opens = type(child) in (nn.Sequential, nn.ModuleList) or isinstance(
                getattr(child, "layers", None), (nn.Sequential, nn.ModuleList)
            )
            out += expand(qualified + ".", child) if opens else [(qualified, child)]
        return out

    return expand("", model)


class _Net(nn.Module):
    """Backbone body (classifier replaced by identity) + new linear head."""

    def __init__(self, body: nn.Module, head_name: str, head: nn.Linear, standardize: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.head_name = head_name
        self.original_head = getattr(body, head_name)
        setattr(self.body, head_name, nn.Identity())
        self.standardize = standardize
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        return self.head(self.standardize(features.flatten(1).float()))

    def restored_state_dict(self) -> dict[str, torch.Tensor]:
        """The full architecture's state dict, with its original classifier back in place."""
        setattr(self.body, self.head_name, self.original_head)
        try:
            return {k: v.detach().clone() for k, v in self.body.state_dict().items()}
        finally:
            setattr(self.body, self.head_name, nn.Identity())


class _Images(torch.utils.data.Dataset):
    def __init__(self, frame: pd.DataFrame, labels: dict[str, int], transform: Any, augment: Any | None) -> None:
        self.rows = list(frame[["path", "image", "label"]].itertuples(index=False))
        self.labels = labels
        self.transform = transform
        self.augment = augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, image, label = self.rows[i]
        source = image if isinstance(image, (bytes, bytearray)) else path
        picture = decode_image(source)
        if self.augment is not None:
            picture = self.augment(picture)
        return self.transform(picture), self.labels[label]


def _augmentation() -> Any:
    from torchvision.transforms import v2

    # light: small shifts, rotations, scale and lighting changes; no flips (they change digits and text)
    return v2.Compose(
        [
            v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
        ]
    )


def _usable(frame: pd.DataFrame) -> pd.DataFrame:
    keep = []
    for row in frame.itertuples(index=False):
        try:
            decode_image(row.image if isinstance(row.image, (bytes, bytearray)) else row.path)
            keep.append(True)
        except UnreadableImage:
            keep.append(False)
    dropped = len(frame) - sum(keep)
    if dropped:
        log.warning("fine-tuning leaves out %d unreadable image(s)", dropped)
    return frame[keep]


def finetune(
    spec: BackboneSpec,
    prepared: pd.DataFrame,
    init: LinearInit,
    out: str | Path,
    settings: FinetuneSettings = FinetuneSettings(),
    progress: ProgressFactory = null_progress,
) -> FinetuneResult:
    """Fine-tune ``spec``'s backbone on ``prepared`` (train; early stopping on val; scored on test)."""
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    backbone: Backbone = load_backbone(spec)
    device = select_device(settings.device)
    model = copy.deepcopy(backbone.model)
    head_name = _head_name(model)
    all_blocks = blocks(model, head_name)
    n = len(all_blocks) if settings.unfreeze == "all" else int(settings.unfreeze)
    if n < 0 or n > len(all_blocks):
        raise SettingsError(f"must be between 0 and {len(all_blocks)} (or all) for {spec.arch}, got {n}", "unfreeze")
    trainable = all_blocks[len(all_blocks) - n :]
    for p in model.parameters():
        p.requires_grad_(False)
    for _, block in trainable:
        for p in block.parameters():
            p.requires_grad_(True)
    head = nn.Linear(init.weight.shape[1], init.weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(init.weight))
        head.bias.copy_(torch.from_numpy(init.bias))
    d = init.weight.shape[1]
    standardize = _Standardize(
        init.mean if init.mean is not None else np.zeros(d, np.float32),
        init.scale if init.scale is not None else np.ones(d, np.float32),
    )
    net = _Net(model, head_name, head, standardize).to(device).to(memory_format=torch.channels_last)

    labels = {c: i for i, c in enumerate(init.classes)}
    frame = _usable(prepared[prepared["label"].isin(labels)])
    loaders = {}
    generator = torch.Generator().manual_seed(settings.seed)
    from headstart.features.reader import auto_workers

    for split in ("train", "val", "test"):
        part = frame[frame["split"] == split]
        dataset = _Images(
            part, labels, backbone.transform, _augmentation() if split == "train" and settings.augment else None
        )
        batches = -(-len(part) // settings.batch_size)
        workers = auto_workers(device, batches) if settings.num_workers == "auto" else int(settings.num_workers)
        loaders[split] = torch.utils.data.DataLoader(
            dataset,
            batch_size=settings.batch_size,
            shuffle=split == "train",
            num_workers=workers,
            generator=generator,
            worker_init_fn=_seed_worker if workers else None,
        )
    if not len(loaders["train"].dataset) or not len(loaders["val"].dataset):
        raise SettingsError(
            "fine-tuning needs train and val images; give the dataset a val split (datasets.<name>.split.val)"
        )

    backbone_params = [p for _, b in trainable for p in b.parameters()]
    groups = [{"params": list(head.parameters()), "lr": settings.head_lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": settings.head_lr * settings.backbone_lr_factor})
    if settings.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    elif settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, momentum=0.9, weight_decay=settings.weight_decay)
    else:
        raise SettingsError(f"must be adamw or sgd, got {settings.optimizer!r}", "optimizer")
    steps = settings.epochs * len(loaders["train"])
    warmup = max(1, min(len(loaders["train"]), steps // 10))

    def schedule(step: int) -> float:  # linear warm-up over (at most) the first epoch, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, steps - warmup) / max(steps - warmup, 1)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    criterion = nn.CrossEntropyLoss()

    probe_test, _ = _evaluate(net, loaders["test"], device, spec.precision)
    best_val, best_val_loss = _evaluate(net, loaders["val"], device, spec.precision)
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_epoch, waited = 0, 0
    history = [{"epoch": 0, "loss": float("nan"), "val_accuracy": best_val, "val_loss": best_val_loss}]
    log.info(
        "fine-tuning %s: %d of %d blocks unfrozen (%s...), probe val accuracy %.4f",
        spec.arch,
        n,
        len(all_blocks),
        ", ".join(name for name, _ in trainable[:2]),
        best_val,
    )
    start = time.perf_counter()
    epochs_run = 0
    for epoch in range(1, settings.epochs + 1):
        epochs_run = epoch
        _train_mode(net, trainable, settings.update_bn)
        bar = progress(
            total=len(loaders["train"].dataset), desc=f"finetune epoch {epoch}/{settings.epochs}", unit="img"
        )
        total, seen = 0.0, 0
        try:
            for x, y in loaders["train"]:
                x = x.to(device).contiguous(memory_format=torch.channels_last)
                y = y.to(device)
                with autocast(device, spec.precision):
                    loss = criterion(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], max_norm=5.0)
                optimizer.step()
                scheduler.step()
                total += float(loss.detach()) * len(y)
                seen += len(y)
                bar.update(len(y))
                bar.set_postfix_str(f"loss {total / seen:.4f}")
            val, val_loss = _evaluate(net, loaders["val"], device, spec.precision)
            bar.set_postfix_str(f"loss {total / seen:.4f}, val accuracy {val:.4f}")
        finally:
            bar.close()
        history.append({"epoch": epoch, "loss": total / max(seen, 1), "val_accuracy": val, "val_loss": val_loss})
        log.info("epoch %d: loss %.4f, val accuracy %.4f, val loss %.4f", epoch, total / max(seen, 1), val, val_loss)
        # best = highest val accuracy; among equals (a small val split saturates), the lowest val loss
        if (val, -val_loss) > (best_val, -best_val_loss):
            best_val, best_val_loss, best_epoch, waited = val, val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= settings.patience:
                log.info("early stop: val accuracy has not improved for %d epochs", waited)
                break
    train_seconds = time.perf_counter() - start
    net.load_state_dict(best_state)
    test, _ = _evaluate(net, loaders["test"], device, spec.precision)

    from headstart.features.weights import resolve_weights

    base = resolve_weights(spec.arch, spec.weights)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "arch": spec.arch,
        "base_weights": base.name,
        "num_classes": int(getattr(net.original_head, "out_features", 0) or _out_features(net.original_head)),
        "state_dict": net.cpu().restored_state_dict(),
        "head": {
            "weight": head.weight.detach().cpu().clone(),
            "bias": head.bias.detach().cpu().clone(),
            "mean": standardize.mean.cpu().clone(),
            "scale": standardize.scale.cpu().clone(),
            "classes": list(init.classes),
        },
        "config": {
            **asdict(settings),
            "image_size": spec.image_size,
            "resize_size": spec.resize_size,
            "precision": spec.precision,
            "unfrozen": [name for name, _ in trainable],
        },
        "history": history,
        "best_epoch": best_epoch,
        "test_accuracy": test,
    }
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save(checkpoint, tmp)
    sha256 = file_sha256(out)
    out.with_name(out.name + ".sha256").write_text(f"{sha256}  {out.name}\n")
    return FinetuneResult(
        checkpoint=out,
        sha256=sha256,
        test_accuracy=test,
        val_accuracy=best_val,
        probe_test_accuracy=probe_test,
        best_epoch=best_epoch,
        epochs=epochs_run,
        train_seconds=train_seconds,
        unfrozen=[name for name, _ in trainable],
        history=history,
    )


def _out_features(head: nn.Module) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def _train_mode(net: _Net, trainable: Sequence[tuple[str, nn.Module]], update_bn: bool) -> None:
    net.eval()  # frozen blocks: eval (dropout off, BatchNorm statistics fixed)
    net.head.train()
    for _, block in trainable:
        block.train()
        if not update_bn:
            for module in block.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()


def _evaluate(net: nn.Module, loader: Any, device: torch.device, precision: str) -> tuple[float, float]:
    """Accuracy and mean cross-entropy."""
    net.eval()
    correct = total = 0
    loss = 0.0
    with torch.inference_mode(), autocast(device, precision):
        for x, y in loader:
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            logits = net(x).float().cpu()
            correct += int((logits.argmax(1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    return correct / max(total, 1), loss / max(total, 1)
