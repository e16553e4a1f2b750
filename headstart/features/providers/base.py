"""What every provider shares: the missing-extra error, seeded random init, pinned weight files, and a backbone
whose layers are named modules captured by forward hooks and pooled over their tokens or feature map.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from headstart.features.pooling import pool
from headstart.features.registry import RANDOM_INIT_SEED, Backbone, BackboneError
from headstart.features.weights import WeightsError, file_sha256

__all__ = [
    "WEIGHT_FILES",
    "HookExtractor",
    "MissingExtra",
    "ProviderBackbone",
    "hub_file",
    "pinned_file",
    "pool_tokens",
    "require",
    "seeded",
    "split_name",
    "weights_mode",
]

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class MissingExtra(BackboneError):
    """A provider's library is not installed; the message names the pip extra that installs it."""


def require(module: str, extra: str, name: str) -> Any:
    """Import ``module`` for backbone ``name`` or raise a one-line :class:`MissingExtra`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtra(
            f"backbone '{name}' needs the {module} library, which is not installed; "
            f"pip install 'headstart[{extra}]'"
        ) from err


def split_name(arch: str) -> tuple[str, str]:
    """``"timm:resnet50.a1_in1k"`` -> ``("timm", "resnet50.a1_in1k")``."""
    prefix, _, model = arch.partition(":")
    if not model:
        raise BackboneError(f"backbone '{arch}' names no model after '{prefix}:'")
    return prefix, model


def weights_mode(weights: str | None) -> tuple[str, Path | None]:
    """``("none", None)`` for random init, ``("pretrained", None)`` for the model's own pinned weights, or
    ``("path", p)`` for a local file or directory."""
    if weights is None or str(weights).lower() in ("none", "null", "random"):
        return "none", None
    if str(weights).lower() in ("pretrained", "default", "hub"):
        return "pretrained", None
    path = Path(str(weights)).expanduser()
    if not path.exists():
        raise WeightsError(
            f"weights {weights} is neither `pretrained`, `none` nor an existing file or directory; "
            "put the weight files there or use `weights: pretrained`"
        )
    return "path", path


@contextlib.contextmanager
def seeded() -> Iterator[None]:
    """Seeded random initialisation: the same `weights: none` backbone gives the same embeddings every run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        yield


def pinned_file(path: Path) -> tuple[str, str | None]:
    """The sha256 of a weights file and, for a file in a Hugging Face cache, the hub revision (commit hash)."""
    match = re.search(r"/snapshots/([0-9a-f]{40})/", str(path))
    return file_sha256(path), match.group(1) if match else None


def pool_tokens(x: torch.Tensor, mode: str, prefix_tokens: int, width: int | None = None) -> tuple[torch.Tensor, str]:
    """Pool one layer's output to ``(N, D)``.

    Token sequences ``(N, T, C)`` pool over the patch tokens (the first ``prefix_tokens`` are the CLS and
    register tokens): ``cls`` takes token 0, ``clsavg`` concatenates it with the mean of the patch tokens (as in
    DINOv2's linear evaluation). Feature maps pool over space; channels-last maps (timm's Swin) are turned first.
    """
    if isinstance(x, (tuple, list)):
        x = x[0]
    if x.ndim == 4 and width is not None and x.shape[-1] == width and x.shape[1] != width:
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 3:
        return pool(x, mode)
    x = x.float()
    patches = x[:, prefix_tokens:] if x.shape[1] > prefix_tokens else x
    if mode == "cls":
        return x[:, 0], "cls"
    if mode == "clsavg":
        return torch.cat([x[:, 0], patches.mean(dim=1)], dim=1), "clsavg"
    vectors, applied = pool(patches, mode)
    return vectors, applied + ("(patch tokens)" if prefix_tokens else "")


def hub_file(repo: str, candidates: list[str] | tuple[str, ...], name: str) -> Path:
    """A file of a Hugging Face repo from the local cache, or downloaded when online."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    repo = repo.split("@")[0].rstrip("/")
    for candidate in candidates:
        cached = try_to_load_from_cache(repo, candidate)
        if isinstance(cached, str):
            return Path(cached)
    errors = []
    for candidate in candidates:
        try:
            return Path(hf_hub_download(repo, candidate, etag_timeout=10))
        except Exception as err:  # noqa: BLE001 - offline or no such file: try the next name, then explain
            errors.append(f"{type(err).__name__}")
            if "EntryNotFound" not in type(err).__name__:
                break  # no connection: the other names would fail the same way, after the same retries
    raise WeightsError(
        f"the weights of {name} ({repo}/{' or '.join(candidates)}) are not on this machine and cannot be "
        f"downloaded ({errors[-1]}); put them in the Hugging Face cache ({HF_HUB_CACHE}, `huggingface-cli download "
        f"{repo}` on a machine with internet) or set `weights:` to the file"
    )


class _Stop(Exception):
    """Raised by a hook once every wanted layer is captured and the model's own output is not needed."""


class HookExtractor(nn.Module):
    """One forward pass of a provider's model: ``{(layer, pooling): (N, D)}``.

    ``run_default(model, x)`` gives the model's own embedding (the ``default`` layer, already pooled the way the
    model pools); other layers are module outputs captured by hooks and pooled with :func:`pool_tokens`.
    """

    def __init__(
        self,
        model: nn.Module,
        run_default: Callable[[nn.Module, Any], torch.Tensor],
        default_layer: str,
        default_applied: str,
        default_tokens: bool,
        layers: tuple[str, ...],
        poolings: tuple[str, ...],
        prefix_tokens: int,
        widths: dict[str, int],
    ) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).eval()
        self.run_default = run_default
        self.default_layer = default_layer
        self.default_applied = default_applied
        self.default_tokens = default_tokens
        self.layers = layers
        self.poolings = poolings
        self.prefix_tokens = prefix_tokens
        self.widths = widths
        self.hooked = [layer for layer in layers if layer != default_layer]
        self.applied: dict[tuple[str, str], str] = {}
        self._captured: dict[str, Any] = {}
        modules = dict(self.model.named_modules())
        for layer in self.hooked:
            modules[layer].register_forward_hook(self._capture(layer))

    def _capture(self, layer: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            self._captured[layer] = output
            if self.default_layer not in self.layers and len(self._captured) == len(self.hooked):
                raise _Stop

        return hook

    def forward(self, x: Any) -> dict[tuple[str, str], torch.Tensor]:
        self._captured = {}
        own = None
        try:
            own = self.run_default(self.model, x)
        except _Stop:
            pass
        out = {}
        for layer in self.layers:
            for mode in self.poolings:
                if layer == self.default_layer and not self.default_tokens:
                    vectors, applied = own, self.default_applied
                elif layer == self.default_layer:
                    vectors, applied = pool_tokens(own, mode, self.prefix_tokens)
                else:
                    vectors, applied = pool_tokens(
                        self._captured[layer], mode, self.prefix_tokens, self.widths.get(layer)
                    )
                self.applied[(layer, mode)] = applied
                out[(layer, mode)] = vectors.float()
        return out


@dataclass
class ProviderBackbone(Backbone):
    """A provider's backbone: named layers (module names), the model's own embedding as ``default``.

    ``files`` maps each weights file used to its sha256; ``revision`` is the hub commit they came from (when
    known). Both go into the provenance and so into the fingerprint of every table made with it.
    """

    provider: str = ""
    model_name: str = ""
    revision: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    layer_widths: dict[str, int] = field(default_factory=dict)
    default_layer: str = "embedding"
    default_dim: int = 0
    default_applied: str = "model"
    default_tokens: bool = False
    prefix_tokens: int = 0
    run_default: Callable[[nn.Module, Any], torch.Tensor] | None = None
    modality: str = "image"
    library: dict[str, str] = field(default_factory=dict)
    # fine-tuning hooks: the model's blocks in execution order and what follows the last one (final norm,
    # projection), both as the model names them; ``finetuned`` is a fine-tuned checkpoint's own provenance
    block_names: tuple[str, ...] = ()
    tail_names: tuple[str, ...] = ()
    finetuned: dict[str, Any] = field(default_factory=dict)

    def graph_nodes(self) -> list[str]:
        return [self.default_layer, *self.layer_widths]

    def default_node(self) -> str:
        return self.default_layer

    def resolve_layers(self, layers: tuple[str, ...]) -> tuple[str, ...]:
        resolved: list[str] = []
        for layer in layers:
            node = self.default_layer if layer == "default" else layer
            if node not in self.graph_nodes():
                names = self.graph_nodes()[1:]
                some = ", ".join(names) if len(names) <= 6 else f"{', '.join(names[:3])} ... {', '.join(names[-3:])}"
                raise BackboneError(
                    f"{self.spec.arch} has no layer '{layer}'; its layers are default ({self.default_layer}), "
                    f"{some} (all: `headstart backbones {self.spec.arch}`)"
                )
            if node not in resolved:
                resolved.append(node)
        return tuple(resolved)

    def declared_dim(self, node: str, pooling: str | None = None) -> int | None:
        """The width of ``node`` under ``pooling``: the model's embedding width for ``default``."""
        if node in (self.default_layer, "default") and not self.default_tokens:
            return self.default_dim
        width = self.default_dim if node in (self.default_layer, "default") else self.layer_widths.get(node)
        if width is None:
            return None
        return 2 * width if pooling in ("clsavg", "avgmax") else width

    def extractor(self, layers: tuple[str, ...], poolings: tuple[str, ...]) -> nn.Module:
        assert self.run_default is not None
        return HookExtractor(
            self.model,
            self.run_default,
            self.default_layer,
            self.default_applied,
            self.default_tokens,
            self.resolve_layers(layers),
            poolings,
            self.prefix_tokens,
            self.layer_widths,
        )

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "provider": self.provider,
            "model": self.model_name,
            "revision": self.revision,
            "weight_files": dict(sorted(self.files.items())),
            "modality": self.modality,
            "library": self.library,
            **({"finetuned": self.finetuned} if self.finetuned else {}),
        }

