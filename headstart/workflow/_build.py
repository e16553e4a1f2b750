"""Building settings types from a params mapping: unknown keys, types and each type's own checks, with the
dotted key in every message (the machinery behind :mod:`headstart.workflow.config`)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from headstart.errors import SettingsError, UserError

__all__ = ["ConfigError", "build", "check_plain_name", "mapping", "reject_unknown"]

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class ConfigError(UserError, ValueError):
    """params.yaml (or a --set override) holds a key or value headstart cannot use."""


def check_plain_name(name: Any, where: str) -> str:
    """A name that becomes part of a path (``embeddings/<dataset>/<backbone>``) must stay one plain folder name."""
    if not isinstance(name, str) or not _PLAIN.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{where}: {name!r} is not a plain name; use letters, digits, '_', '-' and '.' only "
            "(no '/', no '..', no leading '.' or '-')"
        )
    return name


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__} {value!r}")
    return value


def reject_unknown(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in raw:
        if key not in known:
            prefix = f"{where}." if where else ""
            raise ConfigError(
                f"unknown key '{prefix}{key}' in params.yaml; valid keys here: {', '.join(sorted(known))}"
            )


_T = typing.TypeVar("_T")


def build(cls: type[_T], raw: Any, where: str, **given: Any) -> _T:
    """Build the frozen dataclass ``cls`` from a mapping, checking unknown keys, simple types and the type's own
    checks (its :class:`~headstart.errors.SettingsError` gets the dotted key ``where.field``).

    ``given`` holds fields that do not come from the mapping (a section's name is its key).
    """
    if isinstance(raw, cls):
        return raw
    raw = mapping(raw, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    reject_unknown(raw, set(fields) - set(given), where)
    kwargs = dict(given)
    for key, value in raw.items():
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}")
    missing = [
        f
        for f, fd in fields.items()
        if fd.default is dataclasses.MISSING and fd.default_factory is dataclasses.MISSING and f not in kwargs
    ]
    if missing:
        raise ConfigError(f"{where} is missing required key(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except SettingsError as err:
        key = f"{where}.{err.key}" if err.key else where
        raise ConfigError(f"{key} {err.problem}" if err.key else f"{where}: {err.problem}") from err


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type hint; lists become tuples so configs stay frozen."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        # "none" in YAML is a string; try the None branch first so `weights: none` means no weights.
        for arg in sorted(args, key=lambda a: a is not type(None)):
            try:
                return coerce(value, arg, where)
            except ConfigError:
                pass
        allowed = " or ".join(_describe(a) for a in args)
        raise ConfigError(f"{where} must be {allowed}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is type(None):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        raise ConfigError(f"{where} must be none, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if isinstance(hint, type) and not isinstance(value, (str, hint)):
        raise ConfigError(f"{where} must be a {hint.__name__} or a string, got {value!r}")
    return value


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "none"
    if typing.get_origin(hint) is Literal:
        return "/".join(map(str, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))
