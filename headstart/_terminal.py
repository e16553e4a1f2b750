"""What the CLI and the stage entry points show on the terminal: progress bars and logging."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from headstart._progress import Progress
from headstart.errors import UserError

__all__ = ["run_main", "setup_logging", "tqdm_progress"]


def tqdm_progress(total: int | None = None, desc: str = "", unit: str = "it") -> Progress:
    """A tqdm bar on stderr (it shows the rate, e.g. images/s, by itself)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr, smoothing=0.1, disable=None
    )  # disable=None: no bar when stderr is not a terminal (CI logs stay readable)


def setup_logging(verbose: bool = False) -> None:
    """Log headstart's messages to stderr as one short line each."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("PIL", "matplotlib", "fsspec", "urllib3", "faiss", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run a CLI or stage ``main``; a user's mistake (:class:`headstart.errors.UserError`, a missing file) prints
    one line that names the input and the fix, and exits with status 2. Any other exception is a fault of
    headstart and keeps its traceback.

    ``-v`` (or ``HEADSTART_DEBUG=1``) shows the traceback of a user error too.
    """

    args = sys.argv[1:] if argv is None else argv
    verbose = bool(os.environ.get("HEADSTART_DEBUG")) or any(a in ("-v", "--verbose") for a in args)

    try:
        return int(main(argv) or 0)
    except BrokenPipeError:  # `headstart ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("headstart: interrupted; finished batches are kept in the cache, the next run resumes", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001
        if verbose or not _is_user_error(err):
            raise
        print(f"headstart: error: {err}", file=sys.stderr)
        return 2


def _is_user_error(err: BaseException) -> bool:

    return isinstance(err, (UserError, FileNotFoundError, NotADirectoryError))
