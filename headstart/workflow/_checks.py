"""The checks of params.yaml that look across sections or ask a registry (heads, backbones)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headstart.features.registry import backbone_entry
from headstart.heads.registry import HeadError, check_params, get_head
from headstart.workflow._build import ConfigError

if TYPE_CHECKING:
    from headstart.workflow.config import Config

__all__ = ["check_references"]


def _known(name: str, table: object, where: str, section: str) -> None:
    if name not in table:  # type: ignore[operator]
        raise ConfigError(f"{where} names '{name}', which is not in {section}: {', '.join(sorted(table))}")  # type: ignore[call-overload]


def check_references(cfg: Config) -> str | None:
    """Heads against the head registry, and every name one section gives another.

    Returns the head fine-tuning starts from (``finetune.probe_head``, or else the first linear probe).
    """
    for name, head in cfg.heads.items():
        try:
            check_params(head.kind, head.params, f"heads.{name}")
        except HeadError as err:
            raise ConfigError(str(err)) from err

    for name, tr in cfg.transfer.items():
        where = f"transfer.{name}"
        _known(tr.source, cfg.datasets, f"{where}.source", "datasets")
        _known(tr.target, cfg.datasets, f"{where}.target", "datasets")
        _known(tr.backbone, cfg.backbones, f"{where}.backbone", "backbones")
        for i, head in enumerate(tr.heads):
            _known(head, cfg.heads, f"{where}.heads[{i}]", "heads")
        spec = cfg.backbone(tr.backbone, tr.source)
        if cfg.backbone(tr.backbone, tr.target) != spec:
            raise ConfigError(
                f"{where}: datasets.{tr.source} and datasets.{tr.target} embed with different settings of "
                f"backbones.{tr.backbone} (datasets.<name>.backbones.{tr.backbone}); heads fitted on one apply to "
                "the other only when both use the same, so give them the same overrides"
            )
        tables = ["default", *spec.layers]
        if len(spec.poolings) > 1:
            tables += [f"{layer}-{mode}" for layer in spec.layers for mode in spec.poolings]
        if tr.layer not in tables:
            raise ConfigError(
                f"{where}.layer names '{tr.layer}', which backbones.{tr.backbone} does not embed; "
                f"known: {', '.join(dict.fromkeys(tables))}"
            )

    ft = cfg.finetune
    for i, ds in enumerate(ft.datasets):
        _known(ds, cfg.datasets, f"finetune.datasets[{i}]", "datasets")
    for i, bb in enumerate(ft.backbones):
        _known(bb, cfg.backbones, f"finetune.backbones[{i}]", "backbones")
        entry = backbone_entry(cfg.backbones[bb].arch)
        if not entry.trainable:
            raise ConfigError(
                f"finetune.backbones[{i}] names '{bb}' (arch {cfg.backbones[bb].arch}), which has nothing to "
                "fine-tune; list a trainable backbone"
            )
    probes = [name for name, head in cfg.heads.items() if get_head(head.kind).linear_probe]
    if ft.probe_head is not None:
        _known(ft.probe_head, cfg.heads, "finetune.probe_head", "heads")
        if ft.probe_head not in probes:
            raise ConfigError(
                f"finetune.probe_head names '{ft.probe_head}', which is not a linear probe fine-tuning can start "
                f"from; heads that are: {', '.join(probes) or 'none (add a logreg head)'}"
            )
        return ft.probe_head
    if ft.datasets and ft.backbones and not probes:
        raise ConfigError("finetune starts from a linear probe; add a logreg head to params.yaml's heads")
    return probes[0] if probes else None
