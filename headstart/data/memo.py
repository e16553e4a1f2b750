"""Is a prepared table already what `prepare` would write? A stat-level answer, without pandas or reading images.

DVC runs the `prepare` stage on every `dvc repro` (its sources live outside DVC). The memo lets a no-op run
finish in a fraction of a second: it records a signature of everything the prepared table's bytes depend on

- the dataset's settings and the seed,
- the source's files by ``(path, size, mtime_ns, inode)``, as the stat cache trusts them (an image folder's
  files and sub-folders, a CSV manifest and the images it lists, a built-in's data files),
- the code that prepares it (the bytes of ``headstart/data`` and the stage) and the libraries' versions,

together with a digest of the bytes of the table it wrote (not its stat: DVC re-links a stage's outputs after
caching them, which gives them another mtime). When both are unchanged, the table is left alone. Anything it cannot vouch for (a file changed in the last two seconds, a
missing memo or table) makes it answer "not fresh", and `prepare` runs in full: the memo can only skip work.
It lives beside the stat cache, in ``.headstart/prepare/<dataset>.json``, and is machine-local.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from headstart.data.contents import SourceUnknown, source_files

__all__ = ["PrepareMemo"]

RACY_SECONDS = 2.0
_LIBRARIES = ("numpy", "pandas", "pyarrow", "pillow", "scikit-learn")
_PACKAGE = Path(__file__).parents[1]
_CODE = [_PACKAGE / "data", _PACKAGE / "pipeline" / "prepare.py", _PACKAGE / "_files.py"]


class PrepareMemo:
    """``fresh()`` says whether ``output`` is still what preparing ``settings`` would write; ``record()`` after
    writing it."""

    def __init__(self, output: str | Path, settings: Mapping[str, Any], memo_dir: str | Path = ".headstart/prepare"):
        self.output = Path(output)
        self.settings = dict(settings)
        self.path = Path(memo_dir) / f"{self.output.stem}.json"
        self._before: str | None = None

    def fresh(self) -> bool:
        """True when the table is still what preparing would write; call it before preparing."""
        try:
            self._before = self.signature()
        except (OSError, _Unsure):
            self._before = None
            return False
        try:
            saved = json.loads(self.path.read_text())
            return saved["signature"] == self._before and saved["output"] == _digest(self.output)
        except (OSError, ValueError, KeyError):
            return False

    def record(self) -> None:
        """Remember the table just written, under the signature :meth:`fresh` saw before preparing (nothing is
        remembered when the source could not be vouched for then: a file changing during the run must not be
        taken for the state the table was made from)."""
        try:
            if self._before is None:
                raise _Unsure(self.output)
            payload = {"output": _digest(self.output), "signature": self._before}
        except (OSError, _Unsure):
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, self.path)

    def signature(self) -> str:
        """A digest of the settings, the code, the libraries' versions and the source files' stats."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(json.dumps(self.settings, sort_keys=True, default=str).encode())
        for path in _code_files():
            digest.update(f"\0{path.name}\0".encode() + path.read_bytes())
        for name in _LIBRARIES:
            digest.update(f"\0{name}={_version(name)}".encode())
        racy = time.time_ns() - int(RACY_SECONDS * 1e9)
        try:
            files = list(source_files(str(self.settings["source"]), self.settings.get("root"),
                                      self.settings.get("text_column") or None))
        except SourceUnknown as err:
            raise _Unsure(self.settings["source"]) from err
        for path in files:
            size, mtime_ns, inode = _stat(path)
            if mtime_ns >= racy:
                raise _Unsure(path)
            digest.update(f"\0{os.path.abspath(path)}\0{size}\0{mtime_ns}\0{inode}".encode())
        return digest.hexdigest()


class _Unsure(Exception):
    """The memo cannot vouch for this source; prepare runs in full."""


def _stat(path: str | Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def _digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _code_files() -> list[Path]:
    out = []
    for where in _CODE:
        out += sorted(where.glob("*.py")) if where.is_dir() else [where]
    return out
