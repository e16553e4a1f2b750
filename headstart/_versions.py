"""Installed versions of packages, read from their metadata (nothing is imported), written one way everywhere."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

__all__ = ["NOT_INSTALLED", "installed_version", "installed_versions"]

NOT_INSTALLED = "not installed"


def installed_version(name: str) -> str:
    """The installed version of distribution ``name`` without a local part (``2.14.1``, not ``2.14.1+cpu``), or
    :data:`NOT_INSTALLED`.

    >>> installed_version("no-such-distribution-xyz")
    'not installed'
    """
    try:
        return metadata.version(name).split("+")[0]
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def installed_versions(names: Iterable[str]) -> dict[str, str]:
    """``{name: installed_version(name)}`` in the order given."""
    return {name: installed_version(name) for name in names}
