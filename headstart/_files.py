"""Writing files and folders so that a failure never leaves a partial one, and JSON that is the same bytes for the
same data.

Every output goes to a temporary sibling named ``.<name>.<pid>-<hex>.tmp`` and is renamed over the target only
when the whole write succeeded; a failed write (a full disk, a file-size limit, any error) removes the
temporary and leaves the previous output untouched. A run killed with ``kill -9`` can leave such a temporary
behind; the next write of the same target removes the temporaries of processes that no longer run. A folder
(a model directory) is swapped in whole: a reader sees the old folder or the new one, never a mix.

``HEADSTART_FAULT_AFTER_WRITES=N`` (for the fault tests, tests/faults/) kills the process with SIGKILL at the
N-th commit point: just before a rename, between the two renames of a folder swap on systems without an atomic
exchange, or after a record appended to the embedding cache.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from headstart.errors import UserError

__all__ = [
    "DiskFullError",
    "atomic_dir",
    "atomic_path",
    "clean_stale",
    "disk_full",
    "fault_point",
    "full_disk_names",
    "write_json",
]

log = logging.getLogger(__name__)

_FULL = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large (a file-size limit, `ulimit -f`)"}
if hasattr(errno, "EDQUOT"):
    _FULL[errno.EDQUOT] = "disk quota exceeded"
_TEMP = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")
_ARROW_ERRNO = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)
_faults_seen = 0


class DiskFullError(UserError, OSError):
    """A write ran out of space (or hit a size limit or quota); the previous output is unchanged."""


def _full_reason(err: BaseException) -> str | None:
    """Why ``err`` is a full disk, or None. Arrow reports the errno in its message only."""
    while err is not None:
        if isinstance(err, OSError) and not isinstance(err, DiskFullError):
            code = err.errno
            if code is None:
                match = _ARROW_ERRNO.search(str(err))
                code = int(match.group(1)) if match else None
            if code in _FULL:
                return _FULL[code]
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return None


def disk_full(err: BaseException, target: str | Path, kept: str | None = None) -> DiskFullError | None:
    """A one-line :class:`DiskFullError` for ``err`` if it is a full disk while writing ``target``, else None."""
    reason = _full_reason(err)
    if reason is None:
        return None
    target = Path(target)
    if kept is None:
        kept = f"the previous {target} is unchanged" if target.exists() else f"{target} was not written"
    full = DiskFullError(f"{reason} while writing {target}; {kept}. Free some space and run again")
    full.errno = errno.ENOSPC
    return full


@contextlib.contextmanager
def full_disk_names(path: str | Path) -> Iterator[None]:
    """Report a full disk inside the block as a :class:`DiskFullError` that names ``path``."""
    try:
        yield
    except OSError as err:
        _raise_full(err, Path(path), rewrap=False)
        raise


def fault_point() -> None:
    """Kill this process with SIGKILL at the N-th call if ``HEADSTART_FAULT_AFTER_WRITES=N`` (fault tests)."""
    global _faults_seen
    limit = os.environ.get("HEADSTART_FAULT_AFTER_WRITES")
    if not limit:
        return
    _faults_seen += 1
    if _faults_seen >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def _temp_name(path: Path, suffix: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(path: Path) -> None:
    """Remove the temporaries of dead processes beside ``path``; put back a folder a killed swap moved aside."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)-[0-9a-f]{{8}}\.(tmp|old)$")
    try:
        siblings = list(path.parent.iterdir())
    except FileNotFoundError:
        return
    for sibling in sorted(siblings):
        match = pattern.match(sibling.name)
        if not match or _alive(int(match.group(1))):
            continue
        if match.group(2) == "old" and not path.exists() and sibling.is_dir():
            os.rename(sibling, path)  # a swap killed between its two renames: the old folder goes back
            log.info("restored %s from an interrupted swap", path)
            continue
        log.debug("removing %s, left by an interrupted run", sibling)
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                sibling.unlink()


def _raise_full(err: BaseException, path: Path, rewrap: bool) -> None:
    if isinstance(err, DiskFullError) and not rewrap:
        return  # already names the file that hit the limit
    full = disk_full(err, path)
    if full is not None:
        raise full from err


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any error the temporary is removed and ``path`` keeps its previous content; a full disk is raised as a
    one-line :class:`DiskFullError` that names ``path``.
    """
    path = Path(path)
    if _TEMP.match(path.name):  # already the temporary of an enclosing atomic write, which commits it
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = _temp_name(path)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as handle:  # data on disk before the name points at it
                os.fsync(handle.fileno())
        fault_point()
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _raise_full(err, path, rewrap=False)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; swap it in for ``path`` in one step if the block succeeds.

    On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``; elsewhere the old folder is renamed aside first
    (a run killed between the two renames has its old folder put back by the next write). On any error the
    temporary folder is removed and ``path`` is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = _temp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_full(err, path, rewrap=True)
        raise


def _swap_in(tmp: Path, path: Path) -> None:
    fault_point()
    if not path.exists():
        os.rename(tmp, path)
        return
    if _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
        return
    old = _temp_name(path, "old")
    os.rename(path, old)
    fault_point()
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False  # a file system without the exchange: fall back to two renames
    raise OSError(code, f"cannot swap {a} and {b}: {os.strerror(code)}")


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, with sorted keys (so unchanged results give unchanged bytes)."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=_default) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
