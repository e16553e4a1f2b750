"""Importing the engine while the images are listed and hashed, for a run that will load a model anyway.

Importing torch and torchvision takes seconds on one core, and listing and hashing a folder leaves the other
cores mostly idle (file reads and blake2b release the GIL), so a run that will load its backbone starts the
import in a thread before it prepares the dataset. A run whose backbone is remembered in the cache
(:mod:`headstart.features.resolved`) may have nothing to compute, and a run with nothing to compute never
imports torch, so it does not warm up.

Example
-------
>>> with warm_up(spec, options, "photos/"):                     # doctest: +SKIP
...     prepared = prepare_dataset("photos/")
>>> result = embed(prepared, spec, "out/", options=options)     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from headstart.data.sources import source_kind
from headstart.errors import UserError
from headstart.features.resolved import recall, resolved_key
from headstart.features.spec import BackboneSpec, EmbedOptions

__all__ = ["warm_up"]

log = logging.getLogger(__name__)

_MODULES = ("headstart.features.local_engine", "torchvision")  # torch with them


@contextlib.contextmanager
def warm_up(spec: BackboneSpec, options: EmbedOptions, source: str) -> Iterator[None]:
    """Import the local engine in a thread while the block prepares ``source``, when the run with ``spec`` and
    ``options`` will load the model whatever its images (no record of the backbone in the cache).

    The block's end waits for the import: the engine must not import the same packages from another thread at the
    same time (a package with circular imports entered from two threads can fail to import). For the same reason a
    built-in dataset, which imports its own libraries while it loads, gets no warm-up.
    """
    if options.engine != "local" or _builtin(source) or _remembered(spec, options):
        yield
        return
    thread = threading.Thread(target=_import, name="headstart-warm-up", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _builtin(source: str) -> bool:
    try:
        return source_kind(source) == "builtin"
    except UserError:
        return True  # not a source at all: the block reports it


def _remembered(spec: BackboneSpec, options: EmbedOptions) -> bool:
    if options.cache_dir is None:
        return False
    root = Path(options.cache_dir)
    return any(recall(root, resolved_key(spec, decode, options)) is not None for decode in ("jpeg-scaled", "full"))


def _import() -> None:
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - the run imports it again and reports the error there
            log.debug("warm-up: importing %s failed (%s)", name, err)
            return
