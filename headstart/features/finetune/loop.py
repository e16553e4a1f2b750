"""The training loop: linear warm-up then cosine schedule, gradients clipped at norm 5, early stopping on val
accuracy (ties: val loss); the best epoch's weights are kept."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from headstart._progress import ProgressFactory, null_progress
from headstart.errors import SettingsError
from headstart.features.finetune.data import labelled_batches
from headstart.features.finetune.surgery import FinetuneNet, set_train_mode
from headstart.features.runner import autocast

__all__ = ["TrainingRun", "evaluate", "make_optimizer", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """What :func:`train` did: the best epoch (0: the probe it started from), its val scores, the history."""

    best_epoch: int
    best_val: float
    best_val_loss: float
    epochs: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def make_optimizer(
    net: FinetuneNet, trainable: Sequence[tuple[str, nn.Module]], settings: Any
) -> tuple[torch.optim.Optimizer, list[dict[str, Any]]]:
    """The head learns at ``head_lr``, the unfrozen blocks at ``head_lr * backbone_lr_factor``."""
    backbone_params = [p for _, b in trainable for p in b.parameters()]
    groups = [{"params": list(net.head.parameters()), "lr": settings.head_lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": settings.head_lr * settings.backbone_lr_factor})
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(groups, weight_decay=settings.weight_decay), groups
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, weight_decay=settings.weight_decay), groups
    raise SettingsError(f"must be adamw or sgd, got {settings.optimizer!r}", "optimizer")


def _schedule(steps: int, per_epoch: int) -> Any:
    warmup = max(1, min(per_epoch, steps // 10))

    def factor(step: int) -> float:  # linear warm-up over (at most) the first epoch, then cosine to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, steps - warmup) / max(steps - warmup, 1)))

    return factor


def evaluate(net: nn.Module, loader: Any, device: torch.device, precision: str) -> tuple[float, float]:
    """Accuracy and mean cross-entropy."""
    net.eval()
    correct = total = 0
    loss = 0.0
    with torch.inference_mode(), autocast(device, precision):
        for x, y in labelled_batches(loader):
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            logits = net(x).float().cpu()
            correct += int((logits.argmax(1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    return correct / max(total, 1), loss / max(total, 1)


def train(
    net: FinetuneNet,
    trainable: Sequence[tuple[str, nn.Module]],
    loaders: dict[str, Any],
    settings: Any,
    device: torch.device,
    precision: str,
    progress: ProgressFactory = null_progress,
) -> TrainingRun:
    """Train ``net`` for up to ``settings.epochs``; on return it holds the best epoch's weights."""
    optimizer, groups = make_optimizer(net, trainable, settings)
    per_epoch = len(loaders["train"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(settings.epochs * per_epoch, per_epoch))
    criterion = nn.CrossEntropyLoss()
    best_val, best_val_loss = evaluate(net, loaders["val"], device, precision)
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    run = TrainingRun(0, best_val, best_val_loss, 0, 0.0)
    run.history.append({"epoch": 0, "loss": float("nan"), "val_accuracy": best_val, "val_loss": best_val_loss})
    waited, start = 0, time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        run.epochs = epoch
        loaders["train"].dataset.epoch = epoch
        set_train_mode(net, trainable, settings.update_bn)
        bar = progress(
            total=len(loaders["train"].dataset), desc=f"finetune epoch {epoch}/{settings.epochs}", unit="img"
        )
        total, seen = 0.0, 0
        try:
            for x, y in labelled_batches(loaders["train"]):
                x = x.to(device).contiguous(memory_format=torch.channels_last)
                y = y.to(device)
                with autocast(device, precision):
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
            val, val_loss = evaluate(net, loaders["val"], device, precision)
            bar.set_postfix_str(f"loss {total / max(seen, 1):.4f}, val accuracy {val:.4f}")
        finally:
            bar.close()
        run.history.append({"epoch": epoch, "loss": total / max(seen, 1), "val_accuracy": val, "val_loss": val_loss})
        log.info("epoch %d: loss %.4f, val accuracy %.4f, val loss %.4f", epoch, total / max(seen, 1), val, val_loss)
        # best = highest val accuracy; among equals (a small val split saturates), the lowest val loss
        if (val, -val_loss) > (run.best_val, -run.best_val_loss):
            run.best_val, run.best_val_loss, run.best_epoch, waited = val, val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= settings.patience:
                log.info("early stop: val accuracy has not improved for %d epochs", waited)
                break
    run.seconds = time.perf_counter() - start
    net.load_state_dict(best_state)
    return run
