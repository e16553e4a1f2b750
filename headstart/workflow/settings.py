"""The settings file of each stage: what the `settings` stage writes from params.yaml, and what a stage reads.

params.yaml is read and checked once, by the `settings` stage (:func:`headstart.workflow.config.load_config`),
which writes one small JSON file per stage under ``settings/``, each only when its content changed. Every other
stage depends on its own file and reads only that file: the file is the plain form of one frozen type below, and
:func:`read_settings` builds the type back (the checks of :mod:`headstart.workflow._build`).

- ``settings/<dataset>/<backbone>.json`` (:class:`EmbedSettings`): the backbone as that dataset embeds with it
  (its overrides applied) and the embed keys that change what the embed stage writes (the batch size and the
  device among them: they change the forward pass's arithmetic).
- ``settings/heads/<head>.json`` (:class:`FitSettings`): the head, the evaluation protocol and the seed; a head's
  fit stages depend on its file only.
- ``settings/transfer-<name>.json`` (:class:`TransferSettings`): the transfer with the heads it names.
- ``settings/prepare-<dataset>.json``, ``settings/finetune.json``, ``settings/robustness.json``,
  ``settings/report.json``: what those stages read (the report's and robustness' hold the names they iterate).
- ``settings/embed.json`` (:class:`~headstart.features.spec.EmbedOptions`): how the embed engine runs (decoding
  workers, engine, cache). The embed and robustness stages read it and no stage depends on it: it changes how
  they run, not what they write (the keys that do change it come from the stage's own file).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from headstart.features.spec import BackboneSpec, EmbedOptions, FinetuneSettings
from headstart.heads.spec import HeadSpec
from headstart.workflow import layout
from headstart.workflow._build import ConfigError, build
from headstart.workflow.config import Config, DatasetConfig, EvaluateConfig, RobustnessConfig, TransferConfig
from headstart.workflow.sources import write_json_if_changed

__all__ = [
    "EmbedOutput",
    "EmbedSettings",
    "FinetuneStageSettings",
    "FitSettings",
    "PrepareSettings",
    "ReportSettings",
    "RobustnessSettings",
    "TransferSettings",
    "embed_settings",
    "finetune_settings",
    "fit_settings",
    "plain",
    "prepare_settings",
    "read_settings",
    "report_settings",
    "robustness_settings",
    "transfer_settings",
    "write_all",
]


@dataclasses.dataclass(frozen=True)
class EmbedOutput:
    """The embed keys that change what the embed stage writes: the batch size and the device change the forward
    pass's arithmetic (:mod:`headstart.features.forward`); decoding workers, engine and cache do not."""

    batch_size: int | Literal["auto"] = "auto"
    device: str = "auto"
    on_error: Literal["skip", "raise"] = "skip"
    max_image_pixels: int = EmbedOptions.max_image_pixels
    rows_per_shard: int | Literal["auto"] = "auto"
    decode: Literal["jpeg-scaled", "full"] = "jpeg-scaled"

    def options(self, run: EmbedOptions) -> EmbedOptions:
        """``run`` (how the engine runs) with these keys."""
        return dataclasses.replace(run, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class EmbedSettings:
    """One dataset x backbone: the backbone's settings as the dataset embeds with them."""

    dataset: str
    backbone: str
    spec: BackboneSpec
    overridden: tuple[str, ...] = ()  # the keys this dataset sets for itself
    embed: EmbedOutput = EmbedOutput()


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """One head with the evaluation protocol and the seed: what its fit stages read."""

    head: HeadSpec
    evaluate: EvaluateConfig
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    dataset: DatasetConfig
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class TransferSettings:
    transfer: TransferConfig
    heads: tuple[HeadSpec, ...]
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class FinetuneStageSettings:
    """How to fine-tune and the linear probe it starts from (not which datasets and backbones: they make the
    stages, and a stage does not depend on which others there are)."""

    probe: HeadSpec
    settings: FinetuneSettings


@dataclasses.dataclass(frozen=True)
class RobustnessSettings:
    robustness: RobustnessConfig
    backbones: tuple[str, ...]
    heads: tuple[str, ...]
    finetune_datasets: tuple[str, ...] = ()
    finetune_backbones: tuple[str, ...] = ()
    embed: EmbedOutput = EmbedOutput()


@dataclasses.dataclass(frozen=True)
class ReportSettings:
    """The names the report gathers results for, and the protocol it states."""

    datasets: tuple[str, ...]
    backbones: tuple[str, ...]
    heads: tuple[str, ...]
    finetune_datasets: tuple[str, ...] = ()
    finetune_backbones: tuple[str, ...] = ()
    transfer: tuple[str, ...] = ()
    seeds: int = 5


def _embed_output(cfg: Config) -> EmbedOutput:
    return EmbedOutput(**{f.name: getattr(cfg.embed, f.name) for f in dataclasses.fields(EmbedOutput)})


def embed_settings(cfg: Config, dataset: str, backbone: str) -> EmbedSettings:
    cfg.dataset(dataset)  # a name params.yaml knows
    base, own = cfg.backbone(backbone), cfg.backbone(backbone, dataset)
    changed = tuple(f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(own, f.name))
    return EmbedSettings(dataset, backbone, own, changed, _embed_output(cfg))


def fit_settings(cfg: Config, head: str) -> FitSettings:
    return FitSettings(cfg.head(head), cfg.evaluate, cfg.seed)


def prepare_settings(cfg: Config, dataset: str) -> PrepareSettings:
    return PrepareSettings(cfg.dataset(dataset), cfg.seed)


def transfer_settings(cfg: Config, name: str) -> TransferSettings:
    if name not in cfg.transfer:
        raise ConfigError(f"transfer.{name} is not in params.yaml; known: {', '.join(cfg.transfer) or 'none'}")
    tr = cfg.transfer[name]
    return TransferSettings(tr, tuple(cfg.head(h) for h in tr.heads), cfg.seed)


def finetune_settings(cfg: Config) -> FinetuneStageSettings | None:
    """None when params.yaml has no linear probe (then it fine-tunes nothing)."""
    probe = cfg.finetune.probe_head
    return FinetuneStageSettings(cfg.head(probe), cfg.finetune.settings) if probe else None


def robustness_settings(cfg: Config) -> RobustnessSettings:
    return RobustnessSettings(
        cfg.robustness, tuple(cfg.backbones), tuple(cfg.heads), cfg.finetune.datasets, cfg.finetune.backbones,
        _embed_output(cfg),
    )  # fmt: skip


def report_settings(cfg: Config) -> ReportSettings:
    return ReportSettings(
        tuple(cfg.datasets), tuple(cfg.backbones), tuple(cfg.heads), cfg.finetune.datasets, cfg.finetune.backbones,
        tuple(cfg.transfer), cfg.evaluate.seeds,
    )  # fmt: skip


def plain(value: Any) -> Any:
    """A settings value as JSON data: dataclasses and mappings become dicts, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


_T = TypeVar("_T")


def read_settings(cls: type[_T], path: str | Path) -> _T:
    """The settings type ``cls`` from the file the settings stage wrote (``cls`` checks it on the way in)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run `dvc repro` (the settings stage writes it from params.yaml)") from None
    return build(cls, raw, str(path))


def write_all(cfg: Config) -> list[Path]:
    """Every settings file params.yaml implies, each rewritten only when its content changed; files under
    ``settings/`` that params.yaml no longer implies are removed."""
    files: dict[Path, Any] = {
        layout.settings_file(d, b): embed_settings(cfg, d, b) for d in cfg.datasets for b in cfg.backbones
    }
    files |= {layout.head_settings(h): fit_settings(cfg, h) for h in cfg.heads}
    files |= {layout.transfer_settings(t): transfer_settings(cfg, t) for t in cfg.transfer}
    files |= {layout.prepare_settings(d): prepare_settings(cfg, d) for d in cfg.datasets}
    files[layout.finetune_settings()] = finetune_settings(cfg)
    files[layout.robustness_settings()] = robustness_settings(cfg)
    files[layout.report_settings()] = report_settings(cfg)
    files[layout.embed_run_settings()] = cfg.embed
    for path, value in files.items():
        write_json_if_changed(path, plain(value))
    for stale in set(layout.SETTINGS_DIR.rglob("*.json")) - set(files):
        stale.unlink()
    return sorted(files)
