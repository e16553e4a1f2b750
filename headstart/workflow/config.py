"""params.yaml, parsed and checked whole: by the `settings` stage, which writes each other stage's settings file
(:mod:`headstart.workflow.settings`), and by the CLI's commands that read it.

The library owns its settings types (:mod:`headstart.features.spec`: ``BackboneSpec``, ``EmbedOptions``,
``FinetuneSettings``; :mod:`headstart.heads.spec`: ``HeadSpec``); this module builds exactly those from
params.yaml and keeps only what belongs to the pipeline (datasets, transfer, the evaluation protocol, the seed).
Every key of every section is checked here, before any stage does work: unknown keys, types, each type's own
checks, head parameters against what each head declares, names that become paths, and references between
sections. A mistake raises :class:`ConfigError` with the dotted key, the bad value and the allowed ones.

Example
-------
>>> cfg = load_config("params.yaml")                       # doctest: +SKIP
>>> cfg.backbones["mobilenet_v2"].layers                   # doctest: +SKIP
('features.13', 'default')
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from headstart.data.shifts import ShiftError, parse_shift
from headstart.data.splits import SplitConfig
from headstart.errors import SettingsError
from headstart.features.defaults import PRETRAINED, default_weights
from headstart.features.spec import BackboneSpec, EmbedOptions, FinetuneSettings
from headstart.heads.spec import HeadSpec
from headstart.workflow._build import ConfigError, build, check_plain_name, mapping, reject_unknown
from headstart.workflow._checks import check_references

__all__ = [
    "OVERRIDABLE", "Config", "ConfigError", "DatasetConfig", "EvaluateConfig", "FinetuneStage", "RobustnessConfig",
    "SplitConfig", "TransferConfig", "load_config", "parse_config",
]  # fmt: skip


# the backbone settings a dataset may set for itself (datasets.<dataset>.backbones.<backbone>.<key>)
OVERRIDABLE = ("image_size", "resize_size", "layers", "pooling")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """One dataset: a built-in name, an image folder or a manifest file, with an optional shift."""

    name: str
    source: str
    split: SplitConfig = SplitConfig()
    shift: str | None = None
    limit: int | None = None
    root: str | None = None
    text_column: str | None = None  # a text dataset: a CSV/Parquet table whose texts are in this column
    labels: Literal["auto", "none"] = "auto"  # none: an unlabelled collection (null labels)
    group_column: str | None = None  # a manifest column whose groups each stay in one split
    # {class: fraction of its images kept}, e.g. {3: 0.1}; held as sorted (class, fraction) pairs
    imbalance: Mapping[str, float] | tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise SettingsError(f"must be a positive number of images or none, got {self.limit}", "limit")
        if self.imbalance is not None:
            if isinstance(self.imbalance, (tuple, list)):  # already (class, fraction) pairs (a settings file)
                object.__setattr__(self, "imbalance", dict(self.imbalance))
            if not isinstance(self.imbalance, Mapping) or not self.imbalance:
                raise SettingsError(f"must be a mapping {{class: fraction}}, got {self.imbalance!r}", "imbalance")
            for label, fraction in self.imbalance.items():
                if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
                    raise SettingsError(f"must be a fraction in (0, 1], got {fraction!r}", f"imbalance.{label}")
            # sorted (class, fraction) pairs: frozen, and the same in a settings file
            pairs = tuple(sorted((str(k), float(v)) for k, v in self.imbalance.items()))
            object.__setattr__(self, "imbalance", pairs)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """The evaluation protocol shared by every head."""

    seeds: int = 5
    few_shot: tuple[int | Literal["all"], ...] = (1, 2, 5, 10, 20, "all")

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise SettingsError(f"must be at least 1, got {self.seeds}", "seeds")
        for i, n in enumerate(self.few_shot):
            if n != "all" and n < 1:
                raise SettingsError(f"must be a number of images per class >= 1 or all, got {n}", f"few_shot[{i}]")


@dataclasses.dataclass(frozen=True)
class FinetuneStage:
    """The `finetune` stage: which datasets x backbones, the head it starts from, and how it trains."""

    datasets: tuple[str, ...] = ()
    backbones: tuple[str, ...] = ()
    probe_head: str | None = None  # a head of params.yaml whose kind is a linear probe; None: the first such
    settings: FinetuneSettings = FinetuneSettings()


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

    def __post_init__(self) -> None:
        if self.adapt_steps < 1:
            raise SettingsError(
                f"must be at least 1 (epochs of SGD on the target), got {self.adapt_steps}", "adapt_steps"
            )


@dataclasses.dataclass(frozen=True)
class RobustnessConfig:
    """The `robustness` stage: the shifts every fitted head is scored on (shifted copies of each test split)."""

    shifts: tuple[str, ...] = ("noise:0.03", "blur:0.5", "contrast:0.5", "rotate:15", "jpeg:30")

    def __post_init__(self) -> None:
        for i, shift in enumerate(self.shifts):
            try:
                parse_shift(shift)
            except ShiftError as err:
                raise SettingsError(f"is not a shift headstart can apply: {err}", f"shifts[{i}]") from None
        if len(set(self.shifts)) != len(self.shifts):
            raise SettingsError(f"lists a shift twice: {list(self.shifts)}", "shifts")


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole of params.yaml."""

    seed: int
    datasets: Mapping[str, DatasetConfig]
    backbones: Mapping[str, BackboneSpec]
    heads: Mapping[str, HeadSpec]
    embed: EmbedOptions = EmbedOptions()
    evaluate: EvaluateConfig = EvaluateConfig()
    finetune: FinetuneStage = FinetuneStage()
    transfer: Mapping[str, TransferConfig] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    robustness: RobustnessConfig = RobustnessConfig()
    # per-dataset backbone settings: {dataset: {backbone: the BackboneSpec with the dataset's overrides}}
    overrides: Mapping[str, Mapping[str, BackboneSpec]] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )

    def dataset(self, name: str) -> DatasetConfig:
        return _lookup(self.datasets, name, "datasets")

    def backbone(self, name: str, dataset: str | None = None) -> BackboneSpec:
        """The backbone's settings; with ``dataset``, as that dataset overrides them
        (``datasets.<dataset>.backbones.<name>``)."""
        spec = _lookup(self.backbones, name, "backbones")
        if dataset is not None:
            return self.overrides.get(dataset, {}).get(name, spec)
        return spec

    def head(self, name: str) -> HeadSpec:
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
    sections = {"seed", "datasets", "backbones", "heads", "embed", "evaluate", "finetune", "transfer", "robustness"}
    reject_unknown(raw, sections, "")
    for required in ("datasets", "backbones", "heads"):
        if not raw.get(required):
            raise ConfigError(f"{where} needs a non-empty '{required}' section")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be an integer, got {seed!r}")

    datasets, raw_overrides = {}, {}
    for name, body in _section(raw, "datasets").items():
        check_plain_name(name, f"datasets.{name}")
        if name == "heads":  # settings/heads/ holds the heads' settings files, settings/<dataset>/ a dataset's
            raise ConfigError("datasets.heads: 'heads' names the heads' settings folder; call the dataset otherwise")
        body = dict(mapping(body, f"datasets.{name}"))
        raw_overrides[name] = body.pop("backbones", None)
        datasets[name] = build(DatasetConfig, body, f"datasets.{name}", name=name)

    backbones = {}
    for name, body in _section(raw, "backbones").items():
        check_plain_name(name, f"backbones.{name}")
        body = dict(mapping(body, f"backbones.{name}"))
        body.setdefault("arch", name)
        if isinstance(body.get("layers"), str):
            body["layers"] = [body["layers"]]
        body.setdefault("weights", PRETRAINED)
        spec = build(BackboneSpec, body, f"backbones.{name}")
        backbones[name] = dataclasses.replace(spec, weights=default_weights(spec.arch, spec.weights))

    overrides = {
        name: types.MappingProxyType(_overrides(body, backbones, f"datasets.{name}.backbones"))
        for name, body in raw_overrides.items()
        if body is not None
    }

    heads = {}
    for name, body in _section(raw, "heads").items():
        check_plain_name(name, f"heads.{name}")
        body = dict(mapping(body if body is not None else {}, f"heads.{name}"))
        heads[name] = HeadSpec(name=name, kind=str(body.pop("head", name)), params=body)

    transfer = {}
    for name, body in _section(raw, "transfer").items():
        check_plain_name(name, f"transfer.{name}")
        transfer[name] = build(TransferConfig, body, f"transfer.{name}", name=name)

    cfg = Config(
        seed=seed,
        datasets=types.MappingProxyType(datasets),
        backbones=types.MappingProxyType(backbones),
        heads=types.MappingProxyType(heads),
        embed=build(EmbedOptions, raw.get("embed") or {}, "embed"),
        evaluate=build(EvaluateConfig, raw.get("evaluate") or {}, "evaluate"),
        finetune=_finetune(raw.get("finetune") or {}, seed),
        transfer=types.MappingProxyType(transfer),
        robustness=build(RobustnessConfig, raw.get("robustness") or {}, "robustness"),
        overrides=types.MappingProxyType(overrides),
    )
    probe = check_references(cfg)
    return dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, probe_head=probe))


def _overrides(raw: Any, backbones: Mapping[str, BackboneSpec], where: str) -> dict[str, BackboneSpec]:
    """A dataset's own settings for some backbones: ``{backbone: {image_size, resize_size, layers, pooling}}``."""
    resolved = {}
    for name, body in mapping(raw, where).items():
        if name not in backbones:
            known = ", ".join(sorted(backbones))
            raise ConfigError(f"{where}.{name}: no backbone '{name}' in params.yaml's backbones; known: {known}")
        body = dict(mapping(body if body is not None else {}, f"{where}.{name}"))
        reject_unknown(body, set(OVERRIDABLE), f"{where}.{name}")
        if isinstance(body.get("layers"), str):
            body["layers"] = [body["layers"]]
        base = {f.name: getattr(backbones[name], f.name) for f in dataclasses.fields(BackboneSpec)}
        resolved[name] = build(BackboneSpec, {**base, **body}, f"{where}.{name}")
    return resolved


def _finetune(raw: Any, seed: int) -> FinetuneStage:
    raw = mapping(raw, "finetune")
    stage_keys = {f.name for f in dataclasses.fields(FinetuneStage)} - {"settings"}
    settings_keys = {f.name for f in dataclasses.fields(FinetuneSettings)} - {"seed"}
    reject_unknown(raw, stage_keys | settings_keys, "finetune")
    settings = build(FinetuneSettings, {k: v for k, v in raw.items() if k in settings_keys}, "finetune", seed=seed)
    return build(FinetuneStage, {k: v for k, v in raw.items() if k in stage_keys}, "finetune", settings=settings)


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return mapping(raw.get(key) or {}, key)
