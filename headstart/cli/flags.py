"""The CLI's flags into the library's own settings types (the same ones params.yaml builds), checked before any
work starts; a bad flag is one :class:`CliError` line that names the flag, the value and what it takes."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from headstart.errors import SettingsError, UserError
from headstart.features.defaults import DEFAULT_LAYER, DEFAULT_POOLING

__all__ = [
    "CliError", "backbone_spec", "embed_options", "embedding_table", "evaluate_settings", "head_params", "positive",
    "split",
]  # fmt: skip

# settings fields whose flag is not --<field with dashes>
_FLAGS = {"num_workers": "--workers", "pooling": "--pooling", "layers": "--layer", "arch": "--backbone"}


class CliError(UserError, ValueError):
    """A flag holds a value headstart cannot use."""


def _flag(key: str) -> str:
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


@contextmanager
def _as_flags(what: str) -> Iterator[None]:
    """A settings type's complaint about a field, told in terms of its flag."""
    try:
        yield
    except SettingsError as err:
        raise CliError(f"{_flag(err.key)} {err.problem}" if err.key else f"{what}: {err.problem}") from err


def _number(text: Any, flag: str, kind: Callable[[str], Any], *, auto: bool = False, none: bool = False) -> Any:
    if text is None and none:
        return None
    if auto and text == "auto":
        return "auto"
    try:
        return kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise CliError(f"{flag} takes {what}{' or auto' if auto else ''}, got {text!r}") from None


def positive(text: Any, flag: str, *, none: bool = False) -> int | None:
    value = _number(text, flag, int, none=none)
    if value is not None and value < 1:
        raise CliError(f"{flag} must be at least 1, got {value}")
    return value


def embedding_table(path: str, command: str) -> str:
    """``path``, unless it is a file that is not Parquet (a CSV, a manifest): an embedding table is the Parquet
    file (or folder of shards) that ``headstart embed`` writes."""
    if Path(path).is_file():
        with open(path, "rb") as file:
            magic = file.read(4)
        if magic != b"PAR1":
            raise CliError(
                f"{path} is not a Parquet embedding table; `headstart {command}` takes one written by `headstart embed`"
            )
    return path


def embed_options(args: argparse.Namespace) -> Any:
    from headstart.features.spec import EmbedOptions, RayOptions

    with _as_flags("embed options"):
        return EmbedOptions(
            batch_size=_number(args.batch_size, "--batch-size", int, auto=True),
            num_workers=_number(args.workers, "--workers", int, auto=True),
            device=args.device,
            on_error=args.on_error,
            cache_dir=None if args.no_cache else args.cache_dir,
            engine=getattr(args, "engine", "local"),
            rows_per_shard=_number(getattr(args, "rows_per_shard", None) or "auto", "--rows-per-shard", int, auto=True),
            ray=RayOptions(address=getattr(args, "address", "auto")),
            decode=args.decode,
        )


def backbone_spec(args: argparse.Namespace) -> Any:
    """The spec the flags name, with the defaults of :mod:`headstart.features.defaults` (as ``headstart.embed``)."""
    from headstart.features.defaults import backbone_spec as default_spec

    with _as_flags("backbone"):
        return default_spec(
            args.backbone,
            weights=args.weights,
            layers=tuple(args.layers or [DEFAULT_LAYER]),
            pooling=tuple(args.poolings or [DEFAULT_POOLING]),
            image_size=positive(args.image_size, "--image-size", none=True),
            resize_size=positive(args.resize_size, "--resize-size", none=True),
            precision=args.precision,
        )


def split(args: argparse.Namespace) -> Any:
    from headstart.data.splits import SplitConfig

    with _as_flags("--val/--test"):
        return SplitConfig(val=_number(args.val, "--val", float), test=_number(args.test, "--test", float))


def evaluate_settings(args: argparse.Namespace) -> Any:
    from headstart.workflow.config import EvaluateConfig

    few_shot: list[int | str] = []
    for part in filter(None, (p.strip() for p in args.few_shot.split(","))):
        if part == "all":
            few_shot.append(part)
            continue
        try:
            few_shot.append(int(part))
        except ValueError:
            raise CliError(
                f"--few-shot takes labels per class as numbers >= 1 or all, e.g. 1,5,all; got {part!r}"
            ) from None
    seeds = _number(args.seeds, "--seeds", int)
    try:
        return EvaluateConfig(seeds=seeds, few_shot=tuple(few_shot))
    except SettingsError as err:
        flag = "--few-shot" if err.key.startswith("few_shot") else "--seeds"
        raise CliError(f"{flag} {err.problem}") from err


def head_params(kind: str, items: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` (YAML values) checked against what head ``kind`` declares."""
    import yaml

    from headstart.heads.registry import check_params, get_head

    get_head(kind, "--head")
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set takes KEY=VALUE, e.g. k=10 or C=[0.1,1]; got {item!r}")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise CliError(f"--set {key.strip()}: {value!r} is not a YAML value") from None
    check_params(kind, params, "--set")
    return params
