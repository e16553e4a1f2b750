"""params.yaml, parsed once into frozen dataclasses.

Every stage and the CLI read the configuration through :func:`load_config`. Unknown keys are errors that
name the key and list the valid ones, so a typo never silently falls back to a default.

Example
-------
>>> cfg = load_config("params.yaml")                       # doctest: +SKIP
>>> cfg.backbones["mobilenet_v2"].layers                   # doctest: +SKIP
('features.13', 'default')
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "BackboneConfig",
    "Config",
    "ConfigError",
    "DatasetConfig",
    "EmbedConfig",
    "EvaluateConfig",
    "FinetuneConfig",
    "HeadConfig",
    "SplitConfig",
    "TransferConfig",
    "load_config",
    "parse_config",
]


class ConfigError(ValueError):
    """params.yaml (or a --set override) holds a key or value headstart cannot use."""


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Fractions of each class that go to val and test; the rest is train."""

    val: float = 0.15
    test: float = 0.30

    def __post_init__(self) -> None:
        for name in ("val", "test"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"split.{name} must be in [0, 1), got {value}")
        if self.val + self.test >= 1.0:
            raise ConfigError(f"split.val + split.test must leave room for train, got {self.val} + {self.test}")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """One dataset: a built-in name, an image folder or a manifest file, with an optional shift."""

    name: str
    source: str
    split: SplitConfig = SplitConfig()
    shift: str | None = None
    limit: int | None = None
    root: str | None = None


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """A truncated backbone and everything that changes its output."""

    name: str
    arch: str
    weights: str | None = None
    layers: tuple[str, ...] = ("default",)
    pooling: str | tuple[str, ...] = "avg"
    image_size: int | None = None
    resize_size: int | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """A head: its registered kind and its parameters (a list or ``{logspace: [a, b, n]}`` is a grid)."""

    name: str
    head: str
    params: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """Where ``embed.engine: ray`` runs: ``auto`` joins a running cluster, or starts a local one."""

    address: str = "auto"
    actors: int | Literal["auto"] = "auto"


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """How the embed stage runs; none of these change the embeddings."""

    batch_size: int | Literal["auto"] = "auto"
    num_workers: int | Literal["auto"] = "auto"
    device: str = "auto"
    on_error: Literal["skip", "raise"] = "skip"
    cache_dir: str = ".headstart/cache"
    max_image_pixels: int = 89_478_485
    engine: Literal["local", "ray"] = "local"
    rows_per_shard: int | Literal["auto"] = "auto"
    ray: RayConfig = RayConfig()


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """The evaluation protocol shared by every head."""

    seeds: int = 5
    few_shot: tuple[int | Literal["all"], ...] = (1, 2, 5, 10, 20, "all")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning the last blocks of a backbone from the linear probe (the `finetune` stage)."""

    datasets: tuple[str, ...] = ()
    backbones: tuple[str, ...] = ()
    unfreeze: int | Literal["all"] = 2
    optimizer: Literal["adamw", "sgd"] = "adamw"
    head_lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    weight_decay: float = 1e-4
    epochs: int = 10
    patience: int = 3
    batch_size: int = 64
    update_bn: bool = False
    augment: bool = True
    device: str = "auto"


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """One domain-shift experiment: a source and a target dataset with the same labels."""

    name: str
    source: str
    target: str
    backbone: str
    layer: str = "default"
    heads: tuple[str, ...] = ("logreg", "svm", "knn")
    adapt_steps: int = 1


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole of params.yaml."""

    seed: int
    datasets: Mapping[str, DatasetConfig]
    backbones: Mapping[str, BackboneConfig]
    heads: Mapping[str, HeadConfig]
    embed: EmbedConfig = EmbedConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    transfer: Mapping[str, TransferConfig] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))

    def dataset(self, name: str) -> DatasetConfig:
        return _lookup(self.datasets, name, "datasets")

    def backbone(self, name: str) -> BackboneConfig:
        return _lookup(self.backbones, name, "backbones")

    def head(self, name: str) -> HeadConfig:
        return _lookup(self.heads, name, "heads")


def _lookup(table: Mapping[str, Any], name: str, section: str) -> Any:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "(none)"
        raise ConfigError(f"{section}.{name} is not in params.yaml; known {section}: {known}") from None


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from the repository root or pass --params") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    return parse_config(raw or {}, where=str(path))


def parse_config(raw: Mapping[str, Any], where: str = "params.yaml") -> Config:
    """Validate a params mapping (as loaded from YAML) into a :class:`Config`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping at the top level")
    _reject_unknown(raw, {"seed", "datasets", "backbones", "heads", "embed", "evaluate", "finetune", "transfer"}, "")
    for required in ("datasets", "backbones", "heads"):
        if not raw.get(required):
            raise ConfigError(f"{where} needs a non-empty '{required}' section")

    datasets = {}
    for name, body in _section(raw, "datasets").items():
        body = dict(_mapping(body, f"datasets.{name}"))
        if "split" in body:
            body["split"] = _build(SplitConfig, body["split"], f"datasets.{name}.split")
        datasets[name] = _build(DatasetConfig, body, f"datasets.{name}", name=name)

    backbones = {}
    for name, body in _section(raw, "backbones").items():
        body = dict(_mapping(body, f"backbones.{name}"))
        body.setdefault("arch", name)
        if isinstance(body.get("layers"), str):
            body["layers"] = [body["layers"]]
        backbones[name] = _build(BackboneConfig, body, f"backbones.{name}", name=name)

    heads = {}
    for name, body in _section(raw, "heads").items():
        body = dict(_mapping(body if body is not None else {}, f"heads.{name}"))
        kind = body.pop("head", name)
        heads[name] = HeadConfig(name=name, head=str(kind), params=types.MappingProxyType(body))

    transfer = {}
    for name, body in _section(raw, "transfer").items():
        transfer[name] = _build(TransferConfig, body, f"transfer.{name}", name=name)
        for role in ("source", "target"):
            ds = getattr(transfer[name], role)
            if ds not in datasets:
                raise ConfigError(
                    f"transfer.{name}.{role} names dataset '{ds}', which is not in datasets: {sorted(datasets)}"
                )
        if transfer[name].backbone not in backbones:
            raise ConfigError(
                f"transfer.{name}.backbone names '{transfer[name].backbone}', not in backbones: {sorted(backbones)}"
            )

    finetune = _build(FinetuneConfig, raw.get("finetune") or {}, "finetune")
    for ds in finetune.datasets:
        if ds not in datasets:
            raise ConfigError(f"finetune.datasets names '{ds}', which is not in datasets: {sorted(datasets)}")
    for bb in finetune.backbones:
        if bb not in backbones:
            raise ConfigError(f"finetune.backbones names '{bb}', which is not in backbones: {sorted(backbones)}")

    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    return Config(
        seed=seed,
        datasets=types.MappingProxyType(datasets),
        backbones=types.MappingProxyType(backbones),
        heads=types.MappingProxyType(heads),
        embed=_build(EmbedConfig, raw.get("embed") or {}, "embed"),
        evaluate=_build(EvaluateConfig, raw.get("evaluate") or {}, "evaluate"),
        finetune=finetune,
        transfer=types.MappingProxyType(transfer),
    )


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _mapping(raw.get(key) or {}, key)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__} {value!r}")
    return value


def _reject_unknown(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in raw:
        if key not in known:
            prefix = f"{where}." if where else ""
            raise ConfigError(
                f"unknown key '{prefix}{key}' in params.yaml; valid keys here: {', '.join(sorted(known))}"
            )


_T = typing.TypeVar("_T")


def _build(cls: type[_T], raw: Any, where: str, **given: Any) -> _T:
    """Build a frozen dataclass from a mapping, checking unknown keys and simple types.

    ``given`` holds fields that do not come from the mapping (a section's name is its key).
    """
    if isinstance(raw, cls):
        return raw
    raw = _mapping(raw, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    _reject_unknown(raw, set(fields) - set(given), where)
    kwargs = dict(given)
    for key, value in raw.items():
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        missing = [
            f
            for f, fd in fields.items()
            if fd.default is dataclasses.MISSING and fd.default_factory is dataclasses.MISSING and f not in kwargs
        ]
        raise ConfigError(f"{where} is missing required key(s): {', '.join(missing)}") from err


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type hint; lists become tuples so configs stay frozen."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        # "none" in YAML is a string; try the None branch first so `weights: none` means no weights.
        for arg in sorted(args, key=lambda a: a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        allowed = " or ".join(_describe(a) for a in args)
        raise ConfigError(f"{where} must be {allowed}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
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
        return _build(hint, value, where)
    return value


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "none"
    if typing.get_origin(hint) is Literal:
        return "/".join(map(str, typing.get_args(hint)))
    return getattr(hint, "__name__", str(hint))
