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

>>> sorted(list_providers())
['hf', 'open_clip', 'sentence-transformers', 'timm']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Provider", "get_provider", "list_providers", "register_provider"]


@dataclass(frozen=True)
class Provider:
    """A family of backbones named ``prefix:model``.

    ``load(spec)`` builds the backbone; ``requires`` is the import name of the library it needs and ``extra``
    the pip extra that installs it; ``list_models()`` names the models it knows; ``weights_present(model)``
    says whether a model's weights are on this machine (``None``: cannot tell without loading).
    """

    prefix: str
    load: Callable[[Any], Any]
    list_models: Callable[[], list[str]]
    requires: str
    extra: str
    description: str
    weights_present: Callable[[str], bool | None]

    def installed(self) -> bool:
        import importlib.util

        try:
            return importlib.util.find_spec(self.requires) is not None
        except (ImportError, ValueError):
            return False


_PROVIDERS: dict[str, Provider] = {}


def register_provider(provider: Provider) -> Provider:
    """Register ``provider``; names ``<prefix>:<model>`` then load through it."""
    from headstart.features.registry import BackboneError

    if provider.prefix in _PROVIDERS:
        raise BackboneError(f"backbone provider '{provider.prefix}' is registered twice")
    _PROVIDERS[provider.prefix] = provider
    return provider


def list_providers() -> dict[str, Provider]:
    """The registered providers by prefix."""
    _register_builtin()
    return dict(_PROVIDERS)


def get_provider(name: str) -> Provider:
    """The provider of a ``prefix:model`` name; an unknown prefix lists the known ones."""
    from headstart.features.registry import BackboneError

    prefix = name.split(":", 1)[0]
    providers = list_providers()
    if prefix not in providers:
        raise BackboneError(
            f"unknown backbone provider '{prefix}' in '{name}'; known prefixes: {', '.join(sorted(providers))} "
            "(torchvision models take no prefix)"
        )
    return providers[prefix]


def _register_builtin() -> None:
    if _PROVIDERS.keys() >= {"timm", "hf", "open_clip", "sentence-transformers"}:
        return
    from headstart.features.providers import hf, open_clip, sentence_transformers, timm

    for module in (timm, hf, open_clip, sentence_transformers):
        if module.PROVIDER.prefix not in _PROVIDERS:
            register_provider(module.PROVIDER)
