"""The training loop: linear warm-up then cosine schedule, gradients clipped at norm 5, early stopping on val
accuracy (ties: val loss); the best epoch's weights are kept."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch import nn

from headstart._progress import ProgressFactory, null_progress
from headstart.data.imbalance import IMBALANCE_RATIO
from headstart.errors import SettingsError
from headstart.features.finetune.data import labelled_batches
from headstart.features.finetune.resume import Resume, load_trainable, trainable_state
from headstart.features.finetune.surgery import FinetuneNet, set_train_mode
from headstart.features.forward import autocast, to_device

__all__ = ["TrainingRun", "evaluate", "make_optimizer", "predict", "train"]

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


def selection_metric(select_by: str, train_targets: Sequence[int]) -> str:
    """``select_by`` for these train labels: ``auto`` is balanced accuracy when the classes are imbalanced."""
    if select_by != "auto":
        return select_by
    counts = np.bincount(np.asarray(train_targets, dtype=np.int64))
    counts = counts[counts > 0]
    return "balanced_accuracy" if len(counts) and counts.max() > IMBALANCE_RATIO * counts.min() else "accuracy"


def class_weights(train_targets: Sequence[int], n_classes: int) -> torch.Tensor:
    """``n / (n_classes x count)`` per class, as scikit-learn's ``class_weight='balanced'``."""
    counts = np.bincount(np.asarray(train_targets, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return torch.tensor(len(train_targets) / (n_classes * np.maximum(counts, 1.0)), dtype=torch.float32)


def predict(net: nn.Module, loader: Any, device: torch.device, precision: str) -> tuple[np.ndarray, np.ndarray, float]:
    """The true and predicted class codes of the loader's items (in its order) and the mean cross-entropy."""
    net.eval()
    truth, predicted = [], []
    loss, total = 0.0, 0
    with torch.inference_mode(), autocast(device, precision):
        for x, y in labelled_batches(loader):
            logits = net(to_device(x, device)).float().cpu()
            truth.append(y.numpy())
            predicted.append(logits.argmax(1).numpy())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
    return np.concatenate(truth), np.concatenate(predicted), loss / total


def evaluate(
    net: nn.Module, loader: Any, device: torch.device, precision: str, metric: str = "accuracy"
) -> tuple[float, float]:
    """The score by ``metric`` (higher is better; ``log_loss`` is negated) and the mean cross-entropy."""
    y_true, y_pred, mean_loss = predict(net, loader, device, precision)
    if not len(y_true):
        return 0.0, mean_loss
    if metric == "balanced_accuracy":
        return float(balanced_accuracy_score(y_true, y_pred)), mean_loss
    if metric == "macro_f1":
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0)), mean_loss
    if metric == "log_loss":
        return -mean_loss, mean_loss
    return float(np.mean(y_true == y_pred)), mean_loss


def train(
    net: FinetuneNet,
    trainable: Sequence[tuple[str, nn.Module]],
    loaders: dict[str, Any],
    settings: Any,
    device: torch.device,
    precision: str,
    progress: ProgressFactory = null_progress,
    resume: Resume | None = None,
) -> TrainingRun:
    """Train ``net`` for up to ``settings.epochs``; on return it holds the best epoch's weights. With ``resume``,
    each epoch's end is saved there, and a saved state of the same run is continued from."""
    optimizer, groups = make_optimizer(net, trainable, settings)
    per_epoch = len(loaders["train"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(settings.epochs * per_epoch, per_epoch))
    targets = list(loaders["train"].dataset.targets)
    metric = selection_metric(getattr(settings, "select_by", "auto"), targets)
    n_classes = max([*targets, *loaders["val"].dataset.targets]) + 1
    weight = class_weights(targets, n_classes).to(device) if settings.class_weight == "balanced" else None
    criterion = nn.CrossEntropyLoss(weight=weight)
    log.info("fine-tuning: class_weight %s, early stopping on val %s", settings.class_weight, metric)
    saved = resume.load() if resume is not None else None
    if saved is None:
        best_val, best_val_loss = evaluate(net, loaders["val"], device, precision, metric)
        best_state = trainable_state(net.head, trainable)
        run = TrainingRun(0, best_val, best_val_loss, 0, 0.0)
        run.history.append({"epoch": 0, "loss": float("nan"), f"val_{metric}": best_val, "val_loss": best_val_loss})
        waited, stopped = 0, False
    else:
        run, best_state, waited, stopped = _restore(saved, net, trainable, optimizer, scheduler, loaders, device)
    start = time.perf_counter() - run.seconds
    for epoch in range(run.epochs + 1, 0 if stopped else settings.epochs + 1):
        run.epochs = epoch
        loaders["train"].dataset.epoch = epoch
        set_train_mode(net, trainable, settings.update_bn)
        bar = progress(
            total=len(loaders["train"].dataset), desc=f"finetune epoch {epoch}/{settings.epochs}", unit="img"
        )
        total, seen = 0.0, 0
        try:
            for x, y in labelled_batches(loaders["train"]):
                x, y = to_device(x, device), y.to(device)
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
            val, val_loss = evaluate(net, loaders["val"], device, precision, metric)
            bar.set_postfix_str(f"loss {total / max(seen, 1):.4f}, val {metric} {val:.4f}")
        finally:
            bar.close()
        run.history.append({"epoch": epoch, "loss": total / max(seen, 1), f"val_{metric}": val, "val_loss": val_loss})
        log.info("epoch %d: loss %.4f, val %s %.4f, val loss %.4f", epoch, total / max(seen, 1), metric, val, val_loss)
        # best = highest val score; among equals (a small val split saturates), the lowest val loss
        if (val, -val_loss) > (run.best_val, -run.best_val_loss):
            run.best_val, run.best_val_loss, run.best_epoch, waited = val, val_loss, epoch, 0
            best_state = trainable_state(net.head, trainable)
        else:
            waited += 1
        stopped = waited >= settings.patience
        run.seconds = time.perf_counter() - start
        if resume is not None:
            resume.save(_state(run, net, trainable, best_state, waited, stopped, optimizer, scheduler, loaders, device))
        if stopped:
            log.info("early stop: val %s has not improved for %d epochs", metric, waited)
            break
    run.seconds = time.perf_counter() - start
    load_trainable(net.head, trainable, best_state)
    return run


def _generators(loaders: dict[str, Any]) -> dict[str, torch.Generator]:
    return {split: g for split, loader in loaders.items() if (g := getattr(loader, "generator", None)) is not None}


def _state(  # noqa: PLR0913
    run: TrainingRun, net: FinetuneNet, trainable: Sequence[tuple[str, nn.Module]], best: dict[str, Any],
    waited: int, stopped: bool, optimizer: Any, scheduler: Any, loaders: dict[str, Any], device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    return {
        "epoch": run.epochs,
        "run": {**asdict(run), "history": run.history},
        "waited": waited,
        "stopped": stopped,
        "current": trainable_state(net.head, trainable),
        "best": best,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        "loaders": {split: g.get_state() for split, g in _generators(loaders).items()},
    }


def _restore(  # noqa: PLR0913
    saved: dict[str, Any], net: FinetuneNet, trainable: Sequence[tuple[str, nn.Module]], optimizer: Any,
    scheduler: Any, loaders: dict[str, Any], device: torch.device,
) -> tuple[TrainingRun, dict[str, Any], int, bool]:  # fmt: skip
    load_trainable(net.head, trainable, saved["current"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if device.type == "cuda" and saved["cuda_rng"]:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    for split, generator in _generators(loaders).items():
        generator.set_state(saved["loaders"][split])
    return TrainingRun(**saved["run"]), saved["best"], int(saved["waited"]), bool(saved["stopped"])
