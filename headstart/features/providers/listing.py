"""What ``headstart backbones`` says about the providers: installed or not, which weights are on this machine, and
one provider model's layers."""

from __future__ import annotations

import sys
from typing import Any

from headstart.features.providers import provider_info
from headstart.features.providers.base import MissingExtra

__all__ = ["EXAMPLES", "print_providers"]

# a few models per provider that `headstart backbones` always shows (with whether their weights are here)
EXAMPLES = {
    "timm": ["timm:vit_small_patch14_dinov2.lvd142m", "timm:resnet50.a1_in1k", "timm:convnext_tiny.fb_in22k"],
    "hf": ["hf:facebook/dinov2-small", "hf:openai/clip-vit-base-patch32", "hf:google/siglip-base-patch16-224"],
    "open_clip": ["open_clip:ViT-B-32/laion2b_s34b_b79k"],
    "sentence-transformers": ["sentence-transformers:all-MiniLM-L6-v2"],
}


def print_providers(name: str | None, out: Any = None) -> bool:
    """Print the providers (no ``name``; returns False so the torchvision list follows) or one provider model's
    layers (returns True)."""
    out = out or sys.stdout
    providers = provider_info()
    if name:
        return _print_model(name, out)
    print("providers (name a model as prefix:model):", file=out)
    for prefix, provider in providers.items():
        installed = provider.installed()
        state = "installed" if installed else f"not installed: pip install 'headstart[{provider.extra}]'"
        print(f"  {prefix:22s} {state}  -- {provider.description}", file=out)
        for model in EXAMPLES.get(prefix, []) if installed else []:
            present = _safe(provider.weights_present, model)
            mark = {True: "+ weights on this machine", False: "- weights missing", None: "? weights unknown"}[present]
            if present is False and prefix == "sentence-transformers" and model.endswith("all-MiniLM-L6-v2"):
                mark = "~ weights fetchable offline (package registry)"
            print(f"      {model:48s} {mark}", file=out)
    print("torchvision (no prefix):", file=out)
    return False


def _safe(check: Any, model: str) -> bool | None:
    try:
        return check(model)
    except Exception:  # noqa: BLE001 - a listing never fails on one model
        return None


def _print_model(name: str, out: Any) -> bool:
    from headstart.features.registry import BackboneSpec, load_backbone

    prefix = name.split(":", 1)[0]
    provider = provider_info().get(prefix)
    if provider is not None and not provider.installed():
        raise MissingExtra(f"backbone '{name}' needs {provider.requires}: pip install 'headstart[{provider.extra}]'")
    backbone = load_backbone(BackboneSpec(name, weights=None))
    present = _safe(provider.weights_present, name) if provider else None
    default = backbone.default_node()
    print(f"{name}: default layer = {default} ({backbone.declared_dim(default) or '?'}-d, "
          f"{backbone.default_applied}); weights on this machine: {present}", file=out)
    print("layers (pooled by `pooling:`):", file=out)
    for layer in backbone.graph_nodes()[1:]:
        print(f"  {layer} ({backbone.layer_widths[layer]}-d per token/channel)", file=out)
    print(f"preprocessing: {backbone.preprocessing}", file=out)
    return True
