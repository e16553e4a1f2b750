"""Stage `settings`: the settings each stage reads, resolved into small files the stages depend on.

- ``settings/<dataset>/<backbone>.json``: the backbone settings the dataset embeds with and the embed keys that
  change embeddings. A dataset may set its own ``image_size``, ``resize_size``, ``layers`` or ``pooling`` for a
  backbone (``datasets.my_photos.backbones.mobilenet_v2.image_size: 224``); DVC cannot list a params key that may
  be absent, so the embed stage of the pair depends on this file instead: an override reruns that pair's embed
  stage only.
- ``settings/heads.json``: every head's kind and parameters with the evaluation protocol and the seed, what the
  fit stages read (each keeps a head whose own settings did not change: ``headstart.workflow.fit``).
- ``settings/transfer-<name>.json``: the transfer entry with the parameters of the heads it names, so that the
  transfer stage reruns when one of its own heads changes, not when any does.
- ``settings/prepare-<dataset>.json``, ``settings/finetune.json``, ``settings/robustness.json``: what the
  prepare, finetune and robustness stages read. Only this stage lists params (and the report depends on the
  whole folder): DVC parses params.yaml once for each stage that lists params, on every `dvc repro`.

The pipeline has one `settings` stage that writes them all (no arguments), each file only when its content
changed, and removes the ones params.yaml no longer implies; ``DATASET BACKBONE``, ``--heads`` or
``--transfer NAME`` write one. Depending on these files instead of listing params keeps `dvc status` and a no-op
`dvc repro` fast: DVC parses params.yaml once per stage that lists params (the fit stages did), and a stage of its
own per file would cost DVC the same again. It imports no torch.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from headstart._files import write_json
from headstart.workflow import layout
from headstart.workflow.config import load_config

__all__ = [
    "EMBED_KEYS",
    "finetune_settings",
    "head_settings",
    "prepare_settings",
    "robustness_settings",
    "main",
    "resolved_settings",
    "transfer_settings",
    "write_all",
    "write_json_if_changed",
]

# the embed keys that change what the embed stage writes (batch size, workers, device, engine do not)
EMBED_KEYS = ("on_error", "max_image_pixels", "rows_per_shard", "decode")


def resolved_settings(cfg, dataset: str, backbone: str) -> dict:
    """The dataset's settings of the backbone, as plain JSON data (tuples become lists)."""
    cfg.dataset(dataset)  # a name params.yaml knows
    spec = cfg.backbone(backbone, dataset)
    return {
        "dataset": dataset,
        "backbone": backbone,
        "settings": _plain(dataclasses.asdict(spec)),
        "overridden": _changed(cfg, dataset, backbone),  # the keys this dataset sets for itself
        "embed": {key: getattr(cfg.embed, key) for key in EMBED_KEYS},
    }


def head_settings(cfg, name: str) -> dict:
    """``heads.<name>`` (kind and parameters), the evaluation protocol and the seed, as plain JSON data."""
    head = cfg.head(name)
    return {
        "head": name,
        "kind": head.kind,
        "params": _plain(head.params),
        "evaluate": _plain(dataclasses.asdict(cfg.evaluate)),
        "seed": cfg.seed,
    }


def _changed(cfg, dataset: str, backbone: str) -> list[str]:
    base, own = cfg.backbone(backbone), cfg.backbone(backbone, dataset)
    return [f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(own, f.name)]


def transfer_settings(cfg, name: str) -> dict:
    """``transfer.<name>`` with the kind and parameters of each head it names, as plain JSON data."""
    from headstart.workflow.config import ConfigError

    if name not in cfg.transfer:
        raise ConfigError(f"transfer.{name} is not in params.yaml; known: {', '.join(cfg.transfer) or 'none'}")
    tr = cfg.transfer[name]
    heads = {h: {"kind": cfg.head(h).kind, "params": _plain(cfg.head(h).params)} for h in tr.heads}
    return {"transfer": _plain(dataclasses.asdict(tr)), "heads": heads, "seed": cfg.seed}


def prepare_settings(cfg, dataset: str) -> dict:
    """``datasets.<dataset>`` and the seed (the split and the subsets), as plain JSON data."""
    return {"dataset": _plain(dataclasses.asdict(cfg.dataset(dataset))), "seed": cfg.seed}


def finetune_settings(cfg) -> dict:
    """The finetune section, the seed and the settings of the probe head fine-tuning starts from."""
    probe = cfg.finetune.probe_head
    section = {k: v for k, v in dataclasses.asdict(cfg.finetune).items() if k not in ("datasets", "backbones")}
    return {  # the datasets and backbones make the stages; a stage does not depend on which others there are
        "finetune": _plain(section),
        "probe": head_settings(cfg, probe) if probe else None,
        "seed": cfg.seed,
    }


def robustness_settings(cfg) -> dict:
    """The shifts and the embed keys that change the shifted embeddings."""
    embed = {key: getattr(cfg.embed, key) for key in ("on_error", "max_image_pixels", "decode")}
    return {"robustness": _plain(dataclasses.asdict(cfg.robustness)), "embed": embed}


def _plain(value):
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json_if_changed(path: str | Path, payload: dict) -> None:
    """``write_json``, except that a file with the same content is left alone (its stat too, so DVC does not even
    re-hash it)."""
    try:
        if json.loads(Path(path).read_text()) == payload:
            return
    except (OSError, ValueError):
        pass
    write_json(path, payload)


def write_all(cfg) -> list[Path]:
    """Every settings file params.yaml implies (each dataset x backbone, the heads, each transfer, each dataset's
    prepare, finetune, robustness), each rewritten
    only when its content changed; files under ``settings/`` that params.yaml no longer implies are removed."""
    files = {layout.settings_file(d, b): resolved_settings(cfg, d, b) for d in cfg.datasets for b in cfg.backbones}
    files[layout.heads_settings()] = {h: head_settings(cfg, h) for h in cfg.heads}
    # one file per head too: the fit stages of a dvc.yaml written by an earlier `headstart init` (one stage per
    # head) depend on them; `headstart init --force` rewrites such a dvc.yaml to the current layout
    files |= {layout.settings_file("x", "x").parents[1] / f"head-{h}.json": head_settings(cfg, h) for h in cfg.heads}
    files |= {layout.transfer_settings(t): transfer_settings(cfg, t) for t in cfg.transfer}
    files |= {layout.prepare_settings(d): prepare_settings(cfg, d) for d in cfg.datasets}
    files[layout.finetune_settings()] = finetune_settings(cfg)
    files[layout.robustness_settings()] = robustness_settings(cfg)
    for path, payload in files.items():
        write_json_if_changed(path, payload)
    root = layout.settings_file("x", "x").parents[1]
    for stale in set(root.rglob("*.json")) - set(files):
        stale.unlink()
    return sorted(files)
