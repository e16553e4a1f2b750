"""Thin stage entry points that DVC (dvc.yaml) and the CLI call: parse arguments, read params.yaml, call the
library. Each stage is ``python -m headstart.pipeline.<stage> ...``.
"""

from headstart.pipeline.config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "load_config"]
