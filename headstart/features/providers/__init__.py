"""Backbone providers: the model zoos people use for frozen features, behind the one backbone registry.

A backbone named ``prefix:model`` loads through the provider registered for ``prefix``; a name without a prefix
is a torchvision model. Each provider is an optional extra:

=========================  ==========================================  =============================
prefix                     example                                     install
=========================  ==========================================  =============================
``timm``                   ``timm:vit_small_patch14_dinov2.lvd142m``   ``pip install 'headstart[timm]'``
``hf``                     ``hf:facebook/dinov2-small``                ``pip install 'headstart[hf]'``
``open_clip``              ``open_clip:ViT-B-32/laion2b_s34b_b79k``    ``pip install 'headstart[open_clip]'``
``sentence-transformers``  ``sentence-transformers:all-MiniLM-L6-v2``  ``pip install 'headstart[text]'``
=========================  ==========================================  =============================

Importing this package registers the four providers without importing their libraries.

>>> sorted(provider_info())
['hf', 'open_clip', 'sentence-transformers', 'timm']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headstart.features.registry import register_provider

__all__ = ["ProviderInfo", "get_provider", "provider_info"]


@dataclass(frozen=True)
class ProviderInfo:
    """What ``headstart backbones`` says of a provider: the library it needs (``requires``), the pip extra that
    installs it, and the module (in this package) that builds its models."""

    prefix: str
    module: str
    requires: str
    extra: str
    description: str
    trainable: bool

    def installed(self) -> bool:
        import importlib.util

        try:
            return importlib.util.find_spec(self.requires) is not None
        except (ImportError, ValueError):
            return False

    def _attr(self, name: str) -> Any:
        return getattr(importlib.import_module(f"headstart.features.providers.{self.module}"), name)

    def load(self, spec: Any) -> Any:
        return self._attr("load")(spec)

    def list_models(self) -> list[str]:
        return [name.split(":", 1)[1] for name in self._attr("list_models")()]

    def weights_present(self, name: str) -> bool | None:
        """Whether the weights of ``prefix:model`` are on this machine (``None``: cannot tell)."""
        return self._attr("weights_present")(name)


_INFO = {
    info.prefix: info
    for info in (
        ProviderInfo(
            "timm", "timm", "timm", "timm", "timm's image models (ViT, DINOv2, ConvNeXt, ...), pretrained_cfg", True
        ),
        # fine-tuning needs a classifier child to replace (timm's `head`); HF vision towers have none yet
        ProviderInfo("hf", "hf", "transformers", "hf", "Hugging Face transformers: DINOv2, CLIP, SigLIP towers", False),
        ProviderInfo("open_clip", "open_clip", "open_clip", "open_clip", "open_clip image encoders (LAION...)", False),
        ProviderInfo(
            "sentence-transformers",
            "sentence_transformers",
            "sentence_transformers",
            "text",
            "sentence-transformers text encoders (all-MiniLM-L6-v2 ships offline)",
            False,
        ),
    )
}


def provider_info() -> dict[str, ProviderInfo]:
    """The built-in providers by prefix."""
    return dict(_INFO)


def get_provider(name: str) -> ProviderInfo | None:
    """The built-in provider of a ``prefix:model`` name, or ``None``."""
    return _INFO.get(name.split(":", 1)[0])


def _register(info: ProviderInfo) -> None:
    register_provider(
        info.prefix,
        load=info.load,
        list_models=info.list_models,
        trainable=info.trainable,
        description=f"{info.description} (pip install 'headstart[{info.extra}]')",
    )


for _info in _INFO.values():
    _register(_info)
