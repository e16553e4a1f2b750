"""Resuming a fine-tuning run at epoch granularity.

At the end of every epoch the loop writes ``<checkpoint>.resume`` atomically: the head's and the trainable
blocks' state (the current one and the best so far), the optimizer, the schedule, the random states (torch's
generator that dropout draws from, each data loader's shuffling generator), the epoch, the patience count and
the history. A rerun of the same call continues after that epoch and gives the same bytes as a run that was never
interrupted; the file goes when the checkpoint is written.

The state is used only by a run with the same fingerprint: a sha256 of the backbone's settings and base weights'
sha256, the fine-tuning settings, the probe it starts from, the prepared table's rows (with each file's size and
modification time), whether the frozen prefix is kept, and torch's version. A state with another fingerprint, or
one that cannot be read, is removed (with a warning) and the run starts from the probe.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from headstart._files import atomic_path

__all__ = ["Resume", "fingerprint", "load_trainable", "trainable_state"]

log = logging.getLogger(__name__)

FORMAT = "headstart-finetune-resume-v1"


def fingerprint(spec: Any, base_sha256: str | None, settings: Any, init: Any, prepared: pd.DataFrame,
                **extra: Any) -> str:  # fmt: skip
    """What decides a run's training, as a sha256 (see the module's docstring); ``extra``: how it runs (the
    device, whether the frozen prefix is kept)."""
    digest = hashlib.sha256()
    head = {"spec": asdict(spec), "base": base_sha256, "settings": asdict(settings), "extra": extra,
            "torch": torch.__version__, "classes": list(init.classes)}  # fmt: skip
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for array in (init.weight, init.bias, init.mean, init.scale):
        digest.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
    columns = [c for c in ("id", "path", "image", "label", "split") if c in prepared.columns]
    for row in prepared[columns].to_dict("records"):
        for value in row.values():
            is_bytes = isinstance(value, (bytes, bytearray, memoryview))
            digest.update(bytes(value) if is_bytes else repr(value).encode())
            digest.update(b"\0")
        path, data = row.get("path"), row.get("image")
        if data is None and isinstance(path, str) and os.path.isfile(path):
            stat = os.stat(path)
            digest.update(f"{stat.st_size} {stat.st_mtime_ns}".encode())
        digest.update(b"\n")
    return digest.hexdigest()


def trainable_state(head: nn.Module, trainable: Sequence[tuple[str, nn.Module]]) -> dict[str, Any]:
    """A copy of what training changes: the head and the trainable blocks (parameters and buffers)."""

    def copy(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    return {"head": copy(head), "blocks": {name: copy(block) for name, block in trainable}}


def load_trainable(head: nn.Module, trainable: Sequence[tuple[str, nn.Module]], state: dict[str, Any]) -> None:
    """Put a :func:`trainable_state` back, in place (the optimizer keeps its parameters)."""
    head.load_state_dict(state["head"])
    for name, block in trainable:
        block.load_state_dict(state["blocks"][name])


class Resume:
    """The resume state of the run that will write the checkpoint at ``checkpoint``."""

    def __init__(self, checkpoint: str | Path, fingerprint: str) -> None:
        self.path = Path(checkpoint).with_name(Path(checkpoint).name + ".resume")
        self.fingerprint = fingerprint

    def load(self) -> dict[str, Any] | None:
        """The saved state of this run, or ``None`` (a state of another run is removed)."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable state is discarded the same way
            log.warning("removing %s: it cannot be read (%s); fine-tuning starts from the probe", self.path, err)
            self.clear()
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("fingerprint") != self.fingerprint:
            log.warning("removing %s: it is another run's (other inputs or settings); fine-tuning starts from the "
                        "probe", self.path)  # fmt: skip
            self.clear()
            return None
        log.info("resuming fine-tuning after epoch %d from %s", state["epoch"], self.path)
        return state

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "fingerprint": self.fingerprint, **state}, buffer)
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(buffer.getvalue())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
