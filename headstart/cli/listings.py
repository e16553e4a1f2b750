"""The listing sub-commands (``headstart backbones``, ``datasets``, ``heads``): what is available, printed from
what the library returns."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["cmd_backbones", "cmd_datasets", "cmd_heads", "print_provider_model", "print_providers"]

_WEIGHTS = {
    "present": "+ weights on this machine",
    "missing": "- weights missing",
    "fetchable": "~ weights fetchable offline (package registry)",
    "unknown": "? weights unknown",
}


def cmd_backbones(args: argparse.Namespace) -> int:
    from headstart.features.registry import backbone_entry, list_backbones, load_backbone
    from headstart.features.spec import BackboneSpec
    from headstart.features.weights import OFFLINE_SOURCES, checkpoint_path

    if not args.name or ":" in args.name:  # the providers (timm:, hf:, ...), or one provider model's layers
        from headstart.features.providers.listing import describe_model, provider_rows

        if args.name:
            print_provider_model(describe_model(args.name))
            return 0
        print_providers(provider_rows())
        print("torchvision (no prefix):")
    if args.name:
        backbone = load_backbone(BackboneSpec(args.name, weights=None))
        default = backbone.default_node()
        print(f"{args.name}: default layer = {default} ({backbone.declared_dim(default) or '?'}-d)")
        print("graph nodes (any of these, or a module name such as features.13, can be a layer):")
        for node in backbone.graph_nodes():
            print(f"  {node}")
        return 0
    import torchvision.models as tvm

    print(f"{'backbone':28s} weights (present on this machine: +, fetchable offline: ~, missing: -)")
    for name in list_backbones():
        entry = backbone_entry(name)
        if not entry.has_weights:
            print(f"{name:28s} (no weights: {entry.description})")
            continue
        try:
            enums = list(tvm.get_model_weights(name))
        except (ValueError, KeyError):
            enums = []
        marks = []
        for enum in enums:
            path = checkpoint_path(enum)
            mark = "+" if path.is_file() else "~" if path.name in OFFLINE_SOURCES else "-"
            marks.append(f"{mark}{enum.name}")
        print(f"{name:28s} {' '.join(marks) or '(none)'}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from headstart.data.builtin import BUILTIN_DATASETS
    from headstart.data.sources import SourceError, source_kind

    print("built-in datasets:")
    for name, ds in BUILTIN_DATASETS.items():
        where = ds.locate(None)
        print(f"  {name:15s} {'present' if where else 'missing'}  {ds.description}" + (f"  [{where}]" if where else ""))
    params = Path(args.params)
    if params.exists():
        from headstart.workflow.config import load_config

        cfg = load_config(params)
        print(f"datasets in {params}:")
        for name, ds in cfg.datasets.items():
            try:
                kind = source_kind(ds.source)
                present = kind != "builtin" or BUILTIN_DATASETS[ds.source].locate(ds.root) is not None
                state = f"{kind}, {'present' if present else 'missing'}"
            except SourceError as err:
                state = f"missing ({err})"
            extra = f", shift {ds.shift}" if ds.shift else ""
            print(f"  {name:15s} {ds.source} ({state}{extra})")
    return 0


def cmd_heads(args: argparse.Namespace) -> int:
    from headstart.heads.registry import list_heads

    for name, head in list_heads().items():
        probe = " (a linear probe: fine-tuning can start from it)" if head.linear_probe else ""
        print(f"{name}: {head.description}{probe}")
        for key, param in head.params.items():
            print(f"    {key}={param.default!r}  ({param.allowed}; a list or {{logspace: [a, b, n]}} is a grid)")
    return 0


def print_providers(rows: Sequence[Mapping[str, Any]], out: TextIO | None = None) -> None:
    """The providers of :func:`headstart.features.providers.listing.provider_rows`, one line each, with the
    weights of their example models."""
    out = out or sys.stdout
    print("providers (name a model as prefix:model):", file=out)
    for row in rows:
        state = "installed" if row["installed"] else f"not installed: {row['install']}"
        print(f"  {row['prefix']:22s} {state}  -- {row['description']}", file=out)
        for model in row["models"]:
            print(f"      {model['model']:48s} {_WEIGHTS[model['weights']]}", file=out)


def print_provider_model(info: Mapping[str, Any], out: TextIO | None = None) -> None:
    """One provider model as :func:`headstart.features.providers.listing.describe_model` describes it."""
    out = out or sys.stdout
    print(
        f"{info['name']}: default layer = {info['default_layer']} ({info['dim'] or '?'}-d, "
        f"{info['default_pooling']}); weights on this machine: {info['weights']}",
        file=out,
    )
    print("layers (pooled by `pooling:`):", file=out)
    for row in info["layers"]:
        print(f"  {row['layer']} ({row['width']}-d per token/channel)", file=out)
    print(f"preprocessing: {info['preprocessing']}", file=out)
