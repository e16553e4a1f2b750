"""The frozen prefix of a text encoder, run once per fine-tuning call.

With the lower blocks frozen and texts never augmented, what enters the first trainable block is the same on
every pass: every training epoch, every val pass, the test passes before and after. So it is computed once, for
every text of every split, and each later pass runs only the trainable top blocks (and the pooling and head after
them) from it. On MiniLM with its last 2 of 6 layers unfrozen that is about a third of the work of a full pass.

The states are the first trainable block's input, one ``(tokens, width)`` tensor per text, kept in memory (tokens x
width x 4 bytes: about 280 MB for the 3,510 fortunes; more than :data:`MAX_BYTES` and the call trains on full
passes instead). They live for one ``finetune`` call and are never written anywhere, so there is nothing to
invalidate: another call, with other weights, texts or settings, computes its own.

Each text's states come from batches of texts of one padded length, as a full pass forms them, on the same one
intra-op thread, and a row's arithmetic does not depend on the other rows of its batch there: training from the
kept states gives the same checkpoint bytes as full passes every epoch (``tests/features/test_finetune_prefix.py``
checks it; MiniLM on 500 fortunes gave the same bytes too). Before training, one val batch is run both ways; a
model whose top blocks do not give the full pass's bytes from the kept states trains on full passes, with a
warning. ``finetune(..., keep_prefix=False)`` always trains on full passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from headstart.features.forward import autocast, to_device

__all__ = ["MAX_BYTES", "STATES", "FrozenPrefix", "PrefixLoader", "frozen_prefix"]

log = logging.getLogger(__name__)

MAX_BYTES = 4 << 30
STATES = "headstart_prefix_states"  # the key of a batch's kept states in its features (never passed to the model)


class FrozenPrefix:
    """Run ``blocks[:first]`` of a text encoder once and the rest from their output.

    ``blocks`` is the encoder's ``ModuleList`` (held by ``owner`` as ``attr``) and ``embeddings`` the module whose
    output enters ``blocks[0]``. A pass over the top truncates the list to ``blocks[first:]`` and replaces the
    embeddings' output with the kept states, so the model's own code builds the attention mask, pools and
    normalises as it always does.
    """

    def __init__(self, owner: nn.Module, attr: str, embeddings: nn.Module, first: int) -> None:
        self.owner, self.attr, self.embeddings, self.first = owner, attr, embeddings, first
        self.blocks: nn.ModuleList = getattr(owner, attr)
        self.states: dict[str, dict[str, torch.Tensor]] = {}  # split -> item id -> (tokens, width)
        self.nbytes = 0

    @contextlib.contextmanager
    def _only(self, blocks: Sequence[nn.Module]) -> Iterator[None]:
        setattr(self.owner, self.attr, nn.ModuleList(blocks))
        try:
            yield
        finally:
            setattr(self.owner, self.attr, self.blocks)

    def compute(self, body: nn.Module, loaders: dict[str, Any], device: torch.device, precision: str) -> bool:
        """Keep every text's states; ``False`` (nothing kept) when they would take more than :data:`MAX_BYTES`."""
        captured: list[torch.Tensor] = []

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, (tuple, list)) else output)

        handle = self.blocks[self.first - 1].register_forward_hook(hook)
        body.eval()
        try:
            with self._only(self.blocks[: self.first]), torch.inference_mode(), autocast(device, precision):
                for split, loader in loaders.items():
                    kept = self.states.setdefault(split, {})
                    for batch in loader:
                        if batch.pixels is None:
                            continue
                        captured.clear()
                        body(to_device(batch.pixels, device))
                        for item_id, row in zip(batch.ids, captured[0].cpu(), strict=True):
                            kept[item_id] = row
                            self.nbytes += row.numel() * row.element_size()
                        if self.nbytes > MAX_BYTES:
                            log.info("training on full passes: the frozen blocks' output exceeds %d bytes", MAX_BYTES)
                            self.states.clear()
                            return False
        finally:
            handle.remove()
        if not self._agrees(body, loaders["val"], device, precision):
            log.warning("training on full passes: this model's top blocks do not reproduce its output from the "
                        "frozen blocks' output")  # fmt: skip
            self.states.clear()
            return False
        texts = sum(len(kept) for kept in self.states.values())
        log.info("kept the frozen blocks' output of %d texts (%.0f MB)", texts, self.nbytes / 1e6)
        return True

    def _agrees(self, body: nn.Module, loader: Any, device: torch.device, precision: str) -> bool:
        """Whether a pass over the top blocks gives the full pass's bytes on the first batch (a model whose blocks
        take more than the previous block's output, such as a bias computed beside them, would not)."""
        batch = next((b for b in loader if b.pixels is not None), None)
        if batch is None:
            return True
        features = to_device(batch.pixels, device)
        rows = torch.stack([self.states["val"][i] for i in batch.ids]).to(device)
        with torch.inference_mode(), autocast(device, precision):
            full, top = body(features), self.forward(body, {**features, STATES: rows})
        return all(torch.equal(full[key], top[key]) for key in full)

    def loaders(self, loaders: dict[str, Any]) -> dict[str, Any]:
        """The loaders whose batches carry their kept states."""
        return {split: PrefixLoader(loader, self.states[split]) for split, loader in loaders.items()}

    def forward(self, body: nn.Module, features: dict[str, Any]) -> Any:
        """``body(features)`` with the frozen blocks' output taken from ``features[STATES]``."""
        features = dict(features)
        states = features.pop(STATES)
        handle = self.embeddings.register_forward_hook(lambda module, args, output: states)
        try:
            with self._only(self.blocks[self.first :]):
                return body(features)
        finally:
            handle.remove()


class PrefixLoader:
    """A text loader whose batches carry their texts' kept states (``features[STATES]``)."""

    def __init__(self, loader: Any, states: dict[str, torch.Tensor]) -> None:
        self.loader, self.states = loader, states
        self.dataset = loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if batch.pixels is not None:
                rows = torch.stack([self.states[i] for i in batch.ids])
                batch = dataclasses.replace(batch, pixels={**batch.pixels, STATES: rows})
            yield batch


def frozen_prefix(model: nn.Module, block_names: Sequence[str], trainable: int) -> FrozenPrefix | None:
    """The prefix of ``model`` before its last ``trainable`` blocks, or ``None`` when there is none to keep (every
    block trains) or the model is not an encoder whose blocks follow an ``embeddings`` module."""
    first = len(block_names) - trainable
    if not block_names or first <= 0:
        return None
    list_name = block_names[0].rsplit(".", 1)[0]
    if "." not in list_name:
        return None
    owner_name, attr = list_name.rsplit(".", 1)
    root = owner_name.rsplit(".", 1)[0] if "." in owner_name else ""
    modules = dict(model.named_modules())
    embeddings = modules.get(f"{root}.embeddings" if root else "embeddings")
    if not isinstance(modules.get(list_name), nn.ModuleList) or embeddings is None:
        return None
    return FrozenPrefix(modules[owner_name], attr, embeddings, first)
