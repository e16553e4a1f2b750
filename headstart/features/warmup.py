"""Importing the engine while the images are listed and hashed, for a run that will load a model anyway.

Importing torch and torchvision takes seconds on one core, and listing and hashing a folder leaves the other
cores mostly idle (file reads and blake2b release the GIL), so a run that will load its backbone starts the
import in a thread before it prepares the dataset. A run whose backbone is remembered in the cache
(:mod:`headstart.features.resolved`) may have nothing to compute, and a run with nothing to compute never
imports torch, so it does not warm up.

Example
-------
>>> with warm_up(BackboneSpec("mobilenet_v2", "IMAGENET1K_V1"), EmbedOptions()):   # doctest: +SKIP
...     prepared = prepare_dataset("photos/")
...     result = embed(prepared, spec, "out/")
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from headstart.features.resolved import recall, resolved_key
from headstart.features.spec import BackboneSpec, EmbedOptions

__all__ = ["warm_up"]

log = logging.getLogger(__name__)

_MODULES = ("headstart.features.local_engine", "torchvision")  # torch with them


@contextlib.contextmanager
def warm_up(spec: BackboneSpec, options: EmbedOptions) -> Iterator[None]:
    """Import the local engine in a thread while the block runs, when the run with ``spec`` and ``options`` will
    load the model whatever its images (no record of the backbone in the cache). The block's end waits for the
    import, so no thread is left importing while the interpreter exits."""
    if options.engine != "local" or _remembered(spec, options):
        yield
        return
    thread = threading.Thread(target=_import, name="headstart-warm-up", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


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
