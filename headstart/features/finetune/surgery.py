"""Model surgery for fine-tuning: the backbone's blocks, which of them train, BatchNorm kept frozen, and the
linear probe folded into a new head that starts where the frozen features left off."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from headstart.errors import SettingsError
from headstart.features.finetune.prefix import STATES, FrozenPrefix
from headstart.features.spec import BackboneError
from headstart.features.truncate import classifier_name

__all__ = [
    "FinetuneNet",
    "LinearInit",
    "blocks",
    "build_net",
    "build_provider_net",
    "head_name",
    "named_parts",
    "set_train_mode",
]


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


def head_name(model: nn.Module) -> str:
    """The name of the model's classifier (its last linear layer's top-level module)."""
    head = classifier_name(model)
    if head is None:
        raise BackboneError(
            f"cannot find the classifier of {type(model).__name__}: it has no linear layer to fine-tune from"
        )
    return head


def blocks(model: nn.Module, head: str | None = None) -> list[tuple[str, nn.Module]]:
    """The model's blocks in execution order, the classifier left out: containers are opened one level at a
    time (``features.0`` ... ``features.18`` for MobileNetV2, ``layer4.1`` for ResNets, encoder layers for ViTs)."""
    head = head or head_name(model)

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


class FinetuneNet(nn.Module):
    """Backbone body + fixed standardisation + new linear head. The body is the model with its classifier
    replaced by identity, or (``head_name`` ``None``) a provider's extractor whose output ``key`` is the
    default layer's embedding."""

    def __init__(
        self,
        body: nn.Module,
        head_name: str | None,
        head: nn.Linear,
        standardize: nn.Module,
        key: tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.head_name = head_name
        self.key = key
        self.original_head = getattr(body, head_name) if head_name else None
        if head_name:
            setattr(self.body, head_name, nn.Identity())
        self.standardize = standardize
        self.head = head
        self.prefix: FrozenPrefix | None = None  # set when the frozen blocks' output is kept (text batches carry it)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_prefix = self.prefix is not None and isinstance(x, dict) and STATES in x
        features = self.prefix.forward(self.body, x) if use_prefix else self.body(x)  # type: ignore[union-attr]
        if self.key is not None:
            features = features[self.key]
        return self.head(self.standardize(features.flatten(1).float()))

    def restored_state_dict(self) -> dict[str, torch.Tensor]:
        """The full architecture's state dict, with its original classifier back in place (a provider's: its
        model's state dict, as the provider builds it)."""
        if self.head_name is None:
            return {k: v.detach().cpu().clone() for k, v in self.body.model.state_dict().items()}
        setattr(self.body, self.head_name, self.original_head)
        try:
            return {k: v.detach().cpu().clone() for k, v in self.body.state_dict().items()}
        finally:
            setattr(self.body, self.head_name, nn.Identity())

    def original_classes(self) -> int:
        """How many classes the original classifier has (the checkpoint rebuilds the architecture with it)."""
        if self.original_head is None:
            return 0
        out = getattr(self.original_head, "out_features", None)
        if out:
            return int(out)
        return [m for m in self.original_head.modules() if isinstance(m, nn.Linear)][-1].out_features

    def head_state(self, classes: Sequence[str]) -> dict[str, object]:
        return {
            "weight": self.head.weight.detach().cpu().clone(),
            "bias": self.head.bias.detach().cpu().clone(),
            "mean": self.standardize.mean.detach().cpu().clone(),
            "scale": self.standardize.scale.detach().cpu().clone(),
            "classes": list(classes),
        }


def named_parts(model: nn.Module, names: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """The modules (or single parameters, as a one-entry ``ParameterList``) of ``model`` with these names."""
    modules, params = dict(model.named_modules()), dict(model.named_parameters())
    out: list[tuple[str, nn.Module]] = []
    for name in names:
        if name in modules:
            out.append((name, modules[name]))
        elif name in params:
            out.append((name, nn.ParameterList([params[name]])))
        else:
            raise BackboneError(f"{type(model).__name__} has no module or parameter '{name}' to fine-tune")
    return out


def _unfrozen(every: list[tuple[str, nn.Module]], unfreeze: int | str, arch: str) -> list[tuple[str, nn.Module]]:
    n = len(every) if unfreeze == "all" else int(unfreeze)
    if n < 0 or n > len(every):
        raise SettingsError(f"must be between 0 and {len(every)} (or all) for {arch}, got {n}", "unfreeze")
    return every[len(every) - n :]


def _freeze_but(model: nn.Module, trainable: Sequence[tuple[str, nn.Module]]) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    for _, block in trainable:
        for p in block.parameters():
            p.requires_grad_(True)


def build_net(
    model: nn.Module, init: LinearInit, unfreeze: int | str, arch: str
) -> tuple[FinetuneNet, list[tuple[str, nn.Module]], int]:
    """Freeze ``model`` but its last ``unfreeze`` blocks (or ``"all"``), put the probe on top as a new head.

    Returns the network, the trainable blocks and how many blocks the model has.
    """
    name = head_name(model)
    every = blocks(model, name)
    trainable = _unfrozen(every, unfreeze, arch)
    _freeze_but(model, trainable)
    return FinetuneNet(model, name, *_probe_head(init)), trainable, len(every)


def build_provider_net(  # noqa: PLR0913
    extractor: nn.Module,
    key: tuple[str, str],
    block_names: Sequence[str],
    tail_names: Sequence[str],
    init: LinearInit,
    unfreeze: int | str,
    arch: str,
) -> tuple[FinetuneNet, list[tuple[str, nn.Module]], int]:
    """A provider's model (``extractor.model``, which gives the default layer's embedding under ``key``) with
    all but its last ``unfreeze`` blocks frozen; what follows the last block (``tail_names``: final norm,
    projection) trains with them. ``"all"`` trains every parameter, the embeddings included."""
    model = extractor.model
    if unfreeze == "all":
        trainable = [(n, m) for n, m in model.named_children() if any(True for _ in m.parameters())]
        trainable += named_parts(model, [n for n, _ in model.named_parameters(recurse=False)])
        n_blocks = len(block_names)
    else:
        trainable = _unfrozen(named_parts(model, block_names), unfreeze, arch)
        n_blocks = len(block_names)
        if trainable:
            trainable += named_parts(model, tail_names)
    _freeze_but(model, trainable)
    return FinetuneNet(extractor, None, *_probe_head(init), key=key), trainable, n_blocks


def _probe_head(init: LinearInit) -> tuple[nn.Linear, nn.Module]:
    head = nn.Linear(init.weight.shape[1], init.weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(init.weight))
        head.bias.copy_(torch.from_numpy(init.bias))
    d = init.weight.shape[1]
    standardize = _Standardize(
        init.mean if init.mean is not None else np.zeros(d, np.float32),
        init.scale if init.scale is not None else np.ones(d, np.float32),
    )
    return head, standardize


def set_train_mode(net: FinetuneNet, trainable: Sequence[tuple[str, nn.Module]], update_bn: bool) -> None:
    """Frozen blocks in eval mode (dropout off, BatchNorm statistics fixed); the trainable ones and the head
    train, with their BatchNorm statistics frozen too unless ``update_bn``."""
    net.eval()
    net.head.train()
    for _, block in trainable:
        block.train()
        if not update_bn:
            for module in block.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
