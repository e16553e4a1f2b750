"""Fine-tuning hooks shared by the providers: what follows a model's blocks (it trains with the last of them), and
loading a provider's fine-tuned checkpoint on top of its base model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from headstart.features.finetune.checkpoint import Checkpoint, is_checkpoint
from headstart.features.providers.base import ProviderBackbone, pinned_file, weights_mode
from headstart.features.spec import BackboneSpec
from headstart.features.weights import ResolvedWeights, WeightsError, load_state_dict

__all__ = ["from_checkpoint", "tail_after"]


def tail_after(model: nn.Module, container: str, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What runs after the blocks in ``container`` (``encoder.layer``): at each level of its path, the children
    with parameters registered after it (final norms, projections, pooling heads), innermost first."""
    parts = container.split(".")
    names: list[str] = []
    for depth in range(len(parts), 0, -1):
        parent = model.get_submodule(".".join(parts[: depth - 1])) if depth > 1 else model
        prefix = ".".join(parts[: depth - 1])
        children = [name for name, _ in parent.named_children()]
        after = children[children.index(parts[depth - 1]) + 1 :]
        for name in after:
            child = getattr(parent, name)
            if name not in skip and any(True for _ in child.parameters()):
                names.append(f"{prefix}.{name}" if prefix else name)
    return tuple(names)


def from_checkpoint(spec: BackboneSpec, build: Callable[[BackboneSpec], ProviderBackbone]) -> ProviderBackbone | None:
    """The backbone of ``spec`` when its ``weights`` is a headstart fine-tuned checkpoint, else ``None``.

    The base model is built with the checkpoint's base weights (for its config, tokenizer and preprocessing),
    then takes the fine-tuned state dict; the checkpoint's sha256 becomes the weights' and so the fingerprint's.
    """
    mode, path = weights_mode(spec.weights)
    if mode != "path" or path is None or not path.is_file() or path.suffix not in (".pt", ".pth", ".ckpt"):
        return None
    state = load_state_dict(path)
    if not is_checkpoint(state):
        return None
    tuned = Checkpoint.from_dict(state, str(path))
    if tuned.arch != spec.arch:
        raise WeightsError(
            f"checkpoint {path} is a fine-tuned '{tuned.arch}', but the backbone is '{spec.arch}'; "
            f"use --backbone {tuned.arch}"
        )
    base = build(dataclasses.replace(spec, weights=tuned.base_weights))
    try:
        base.model.load_state_dict(tuned.state_dict)
    except RuntimeError as err:
        raise WeightsError(f"checkpoint {path} does not fit {spec.arch}: {str(err)[:300]}") from err
    sha, _ = pinned_file(path)
    return dataclasses.replace(
        base,
        spec=spec,
        weights=ResolvedWeights("checkpoint", str(spec.weights), path=path),
        weights_sha256=sha,
        files={path.name: sha, **{f"base/{k}": v for k, v in base.files.items()}},
        finetuned=tuned.provenance(),
    )
