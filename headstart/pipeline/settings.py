"""Stage `settings`: the backbone settings one dataset embeds with -> settings/<dataset>/<backbone>.json.

A dataset may set its own ``image_size``, ``resize_size``, ``layers`` or ``pooling`` for a backbone
(``datasets.my_photos.backbones.mobilenet_v2.image_size: 224``). DVC cannot list a params key that may be absent,
so this stage resolves each dataset x backbone pair into a small file, and the embed stage of the pair depends on
that file instead of on the params: an override reruns that pair's embed stage only. It imports no torch and
writes the same bytes when the resolved settings are unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses

from headstart._files import write_json
from headstart._terminal import run_main
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

__all__ = ["main", "resolved_settings"]


def resolved_settings(cfg, dataset: str, backbone: str) -> dict:
    """The dataset's settings of the backbone, as plain JSON data (tuples become lists)."""
    cfg.dataset(dataset)  # a name params.yaml knows
    spec = cfg.backbone(backbone, dataset)
    return {
        "dataset": dataset,
        "backbone": backbone,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()},
        "overridden": _changed(cfg, dataset, backbone),  # the keys this dataset sets for itself
    }


def _changed(cfg, dataset: str, backbone: str) -> list[str]:
    base, own = cfg.backbone(backbone), cfg.backbone(backbone, dataset)
    return [f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(own, f.name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.settings", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    cfg = load_config(args.params)
    write_json(layout.settings_file(args.dataset, args.backbone), resolved_settings(cfg, args.dataset, args.backbone))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
