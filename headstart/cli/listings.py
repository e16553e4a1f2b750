"""The terminal form of the listings the library returns as rows (``headstart backbones``)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

__all__ = ["print_provider_model", "print_providers"]

_WEIGHTS = {
    "present": "+ weights on this machine",
    "missing": "- weights missing",
    "fetchable": "~ weights fetchable offline (package registry)",
    "unknown": "? weights unknown",
}


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
