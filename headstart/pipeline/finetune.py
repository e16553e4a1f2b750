"""Stage `finetune`: start from the linear probe on the default layer, unfreeze the last blocks, train a little.

Reads settings/finetune.json and settings/<dataset>/<backbone>.json; writes finetuned/<dataset>/<backbone>/model.pt
(+ .sha256), results/, metrics/ and timings/finetune/<dataset>/<backbone>.json (see headstart.workflow.finetune).
"""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.workflow import layout
from headstart.workflow.finetune import finetune_stage
from headstart.workflow.settings import EmbedSettings, FinetuneStageSettings, read_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.finetune", description=__doc__)
    parser.add_argument("dataset")
    parser.add_argument("backbone")
    args = parser.parse_args(argv)
    setup_logging()
    settings = read_settings(FinetuneStageSettings, layout.finetune_settings())
    spec = read_settings(EmbedSettings, layout.settings_file(args.dataset, args.backbone)).spec
    print(finetune_stage(settings, spec, args.dataset, args.backbone, progress=tqdm_progress))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
