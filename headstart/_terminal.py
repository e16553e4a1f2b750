"""What the CLI and the stage entry points show on the terminal: progress bars and logging."""

from __future__ import annotations

import logging
import sys

from headstart._progress import Progress

__all__ = ["setup_logging", "tqdm_progress"]


def tqdm_progress(total: int | None = None, desc: str = "", unit: str = "it") -> Progress:
    """A tqdm bar on stderr (it shows the rate, e.g. images/s, by itself)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr, smoothing=0.1,
                disable=None)  # disable=None: no bar when stderr is not a terminal (CI logs stay readable)


def setup_logging(verbose: bool = False) -> None:
    """Log headstart's messages to stderr as one short line each."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("PIL", "matplotlib", "fsspec", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
