"""Stage `settings`: the backbone settings one dataset embeds with -> settings/<dataset>/<backbone>.json.

A dataset may set its own ``image_size``, ``resize_size``, ``layers`` or ``pooling`` for a backbone
(``datasets.my_photos.backbones.mobilenet_v2.image_size: 224``). DVC cannot list a params key that may be absent,
so this stage resolves each dataset x backbone pair into a small file, and the embed stage of the pair depends on
that file instead of on the params: an override reruns that pair's embed stage only. It imports no torch and
writes the same bytes when the resolved settings are unchanged.

With ``--transfer NAME`` it writes ``settings/transfer-NAME.json``: the transfer entry with the parameters of
the heads it names, so that the transfer stage reruns when one of its own heads changes, not when any does (DVC
cannot list ``heads.<h>`` for each head of a list).
"""

from __future__ import annotations

import argparse
import dataclasses

from headstart._files import write_json
from headstart._terminal import run_main
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

__all__ = ["main", "resolved_settings", "transfer_settings"]


def resolved_settings(cfg, dataset: str, backbone: str) -> dict:
    """The dataset's settings of the backbone, as plain JSON data (tuples become lists)."""
    cfg.dataset(dataset)  # a name params.yaml knows
    spec = cfg.backbone(backbone, dataset)
    return {
        "dataset": dataset,
        "backbone": backbone,
        "settings": _plain(dataclasses.asdict(spec)),
        "overridden": _changed(cfg, dataset, backbone),  # the keys this dataset sets for itself
    }


def _changed(cfg, dataset: str, backbone: str) -> list[str]:
    base, own = cfg.backbone(backbone), cfg.backbone(backbone, dataset)
    return [f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(own, f.name)]


def transfer_settings(cfg, name: str) -> dict:
    """``transfer.<name>`` with the kind and parameters of each head it names, as plain JSON data."""
    from headstart.pipeline.config import ConfigError

    if name not in cfg.transfer:
        raise ConfigError(f"transfer.{name} is not in params.yaml; known: {', '.join(cfg.transfer) or 'none'}")
    tr = cfg.transfer[name]
    heads = {h: {"kind": cfg.head(h).kind, "params": _plain(cfg.head(h).params)} for h in tr.heads}
    return {"transfer": _plain(dataclasses.asdict(tr)), "heads": heads}


def _plain(value):
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.settings", description=__doc__)
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("backbone", nargs="?")
    parser.add_argument("--transfer", metavar="NAME", help="write the settings of transfer.NAME instead")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    if (args.transfer is None) == (args.dataset is None or args.backbone is None):
        parser.error("give DATASET BACKBONE, or --transfer NAME")
    cfg = load_config(args.params)
    if args.transfer is not None:
        write_json(layout.transfer_settings(args.transfer), transfer_settings(cfg, args.transfer))
    else:
        write_json(layout.settings_file(args.dataset, args.backbone), resolved_settings(cfg, args.dataset, args.backbone))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
