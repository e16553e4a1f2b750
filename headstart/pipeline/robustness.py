"""Stage `robustness`: every fitted head of one dataset on shifted copies of its test split (noise, blur,
contrast, rotate, JPEG re-compression, ...), without refitting -> results/ and metrics/robustness/<dataset>.json
(see headstart.workflow.robustness). Reads settings/robustness.json and settings/<dataset>/."""

from __future__ import annotations

import argparse

from headstart._terminal import run_main, setup_logging, tqdm_progress
from headstart.features.spec import EmbedOptions
from headstart.workflow import layout
from headstart.workflow.robustness import robustness_stage
from headstart.workflow.settings import EmbedSettings, RobustnessSettings, read_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.robustness", description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args(argv)
    setup_logging()
    settings = read_settings(RobustnessSettings, layout.robustness_settings())
    specs = {b: read_settings(EmbedSettings, layout.settings_file(args.dataset, b)).spec for b in settings.backbones}
    options = read_settings(EmbedOptions, layout.embed_run_settings())
    lines = robustness_stage(settings, specs, args.dataset, options=options, progress=tqdm_progress)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
