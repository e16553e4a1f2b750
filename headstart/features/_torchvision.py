"""Importing torchvision without importing TorchDynamo: 0.8-2 s of every run that loads a torchvision model.

``torchvision.ops.roi_align`` runs ``from torch._dynamo.utils import is_compile_supported`` when torchvision is
imported (``torchvision.models`` imports ``torchvision.ops``), and that one line imports all of TorchDynamo
(``torch._dynamo``: 0.8 s of the 1.9 s that ``import torch, torchvision`` takes on an Intel Xeon, 2 s on an AMD
EPYC), for a function that only detection models call, at run time. :func:`import_torchvision` imports
torchvision while ``torch._dynamo.utils`` is a stand-in whose attributes are functions that import the real
module on their first call; the stand-in is removed right after, so ``torch._dynamo`` and ``torch.compile``
import the real thing as usual. Should anything import the real ``torch._dynamo`` while torchvision is being
imported, the stand-in is taken out before that import runs (a finder on ``sys.meta_path`` watches for it), so
TorchDynamo never sees it. When TorchDynamo is imported already, torchvision is imported plainly.

What this saves is the embed path of torchvision's models (their presets use ``torchvision.transforms``).
``torchvision.transforms.v2`` imports TorchDynamo itself (``torch.compiler.disable`` in ``tv_tensors``), so the
raw-pixel baseline and fine-tuning's augmentation, which use it, still pay for it; so they are not routed here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading
import types
from typing import Any

__all__ = ["import_torchvision"]

_DYNAMO, _UTILS = "torch._dynamo", "torch._dynamo.utils"
_lock = threading.Lock()


class _StandIn(types.ModuleType):
    """``torch._dynamo.utils`` until first use: each attribute is a function that calls the real one."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def deferred(*args: Any, **kwargs: Any) -> Any:
            _remove(self)
            return getattr(importlib.import_module(_UTILS), name)(*args, **kwargs)

        deferred.__name__ = deferred.__qualname__ = name
        return deferred


class _Watch(importlib.abc.MetaPathFinder):
    """Takes the stand-in out before the real ``torch._dynamo`` (or its ``utils``) is imported."""

    def __init__(self, stand_in: _StandIn) -> None:
        self.stand_in = stand_in

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname in (_DYNAMO, _UTILS):
            _remove(self.stand_in)
        return None  # the usual finders do the import


def _remove(stand_in: _StandIn) -> None:
    if sys.modules.get(_UTILS) is stand_in:
        del sys.modules[_UTILS]


def import_torchvision() -> types.ModuleType:
    """``import torchvision``, without importing TorchDynamo along with it (see the module's docstring)."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    with _lock:
        import torch  # noqa: F401 - first, and whole: its own import must not see the stand-in

        if _DYNAMO in sys.modules or _UTILS in sys.modules:
            import torchvision

            return torchvision
        stand_in = _StandIn(_UTILS)
        watch = _Watch(stand_in)
        sys.modules[_UTILS] = stand_in
        sys.meta_path.insert(0, watch)
        try:
            import torchvision
        finally:
            sys.meta_path.remove(watch)
            _remove(stand_in)
    return torchvision
