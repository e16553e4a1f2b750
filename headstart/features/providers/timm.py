"""timm's zoo: ``timm:<model>[.<tag>]`` (``timm:vit_small_patch14_dinov2.lvd142m``, ``timm:resnet50.a1_in1k``).

Preprocessing is timm's own data config of the weights (``pretrained_cfg``: mean, std, input size, crop_pct,
interpolation); the ``default`` layer is ``forward_head(forward_features(x), pre_logits=True)``, the model's own
pooling (the CLS token for ViTs); other layers are the modules in ``feature_info`` (``blocks.N`` for ViTs,
``stages.N`` / ``layerN`` for CNNs), pooled with the ``pooling:`` setting.

Weights: ``pretrained`` takes the file timm names for the tag from the Hugging Face cache (``HF_HOME``) or
torch's (``TORCH_HOME``), downloading it only when online; a path takes that file (or a headstart fine-tuned
checkpoint); ``none`` is a seeded random init.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from headstart.features.finetune.checkpoint import is_checkpoint
from headstart.features.providers.base import (
    WEIGHT_FILES,
    ProviderBackbone,
    hub_file,
    pinned_file,
    require,
    seeded,
    split_name,
    weights_mode,
)
from headstart.features.registry import BackboneError, BackboneSpec
from headstart.features.weights import ResolvedWeights, WeightsError, load_state_dict

__all__ = ["list_models", "load", "weights_present"]

log = logging.getLogger(__name__)


def load(spec: BackboneSpec) -> ProviderBackbone:
    timm = require("timm", "timm", spec.arch)
    _, name = split_name(spec.arch)
    mode, path = weights_mode(spec.weights)
    kwargs: dict[str, Any] = {}
    files: dict[str, str] = {}
    revision = None
    if mode == "path" and path is not None and path.is_file() and _is_headstart_checkpoint(path):
        state = load_state_dict(path)
        kwargs["num_classes"] = int(state["num_classes"])
        model = _create(timm, name, spec, pretrained=False, **kwargs)
        model.load_state_dict(state["state_dict"])
        files[path.name], revision = pinned_file(path)
    elif mode == "none":
        with seeded():
            model = _create(timm, name, spec, pretrained=False)
    else:
        file = _locate(timm, name, path)
        files[file.name], revision = pinned_file(file)
        model = _create(timm, name, spec, pretrained=True, pretrained_cfg_overlay={"file": str(file)})
    model.eval()
    transform, preprocessing = _transform(timm, model, spec)
    widths = _layers(model)
    width = int(getattr(model, "head_hidden_size", 0) or model.num_features)
    label = None if mode == "none" else f"{name}:{next(iter(files.values()))[:12]}"
    return ProviderBackbone(
        spec=spec,
        model=model,
        transform=transform,
        preprocessing=preprocessing,
        weights=ResolvedWeights("none" if mode == "none" else "provider", label),
        weights_sha256=next(iter(files.values()), None),
        provider="timm",
        model_name=name,
        revision=revision,
        files=files,
        layer_widths=widths,
        default_layer="pre_logits",
        default_dim=width,
        default_applied=f"timm global_pool={getattr(model, 'global_pool', '?')}",
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0) or 0),
        run_default=_embed,
        library={"timm": timm.__version__},
    )


def _embed(model: Any, x: Any) -> Any:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _create(timm: Any, name: str, spec: BackboneSpec, **kwargs: Any) -> Any:
    try:
        if spec.image_size is not None and "vit" in name:
            try:
                return timm.create_model(name, img_size=spec.image_size, **kwargs)
            except TypeError:
                pass
        return timm.create_model(name, **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err) or "Invalid pretrained tag" in str(err):
            close = timm.list_models(f"*{name.split('.')[0][:12]}*", pretrained=True)[:5]
            raise BackboneError(f"timm has no model '{name}'; e.g. {', '.join(close) or 'see timm.list_pretrained()'}")
        raise


def _is_headstart_checkpoint(path: Path) -> bool:
    if path.suffix not in (".pt", ".pth", ".ckpt"):
        return False
    return is_checkpoint(load_state_dict(path))


def _locate(timm: Any, name: str, path: Path | None) -> Path:
    """The weights file of ``name``: a given file or directory, else the HF / torch caches (download if online)."""
    if path is not None:
        if path.is_file():
            return path
        for candidate in WEIGHT_FILES:
            if (path / candidate).is_file():
                return path / candidate
        raise WeightsError(f"{path} holds none of {', '.join(WEIGHT_FILES)} for timm:{name}")
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise WeightsError(f"timm:{name} has no pretrained weights; name a tag (e.g. {name}.<tag>) or `weights: none`")
    hub_id, url = getattr(cfg, "hf_hub_id", None), getattr(cfg, "url", None)
    if hub_id:
        names = [cfg.hf_hub_filename] if getattr(cfg, "hf_hub_filename", None) else WEIGHT_FILES
        return hub_file(hub_id, names, f"timm:{name}")
    if url:
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if not target.is_file():
            try:
                torch.hub.download_url_to_file(url, str(target), progress=False)
            except Exception as err:  # noqa: BLE001 - offline: say where the file goes
                raise WeightsError(
                    f"the weights of timm:{name} ({Path(url).name}) are not on this machine and cannot be "
                    f"downloaded ({type(err).__name__}); copy {url} to {target} or set `weights:` to the file"
                ) from err
        return target
    raise WeightsError(f"timm:{name} names no weights file; set `weights:` to a local file")


def _transform(timm: Any, model: Any, spec: BackboneSpec) -> tuple[Any, dict[str, Any]]:
    config = timm.data.resolve_model_data_config(model)
    size = spec.image_size or config["input_size"][-1]
    crop_pct = float(config.get("crop_pct") or 1.0)
    if spec.resize_size is not None:
        if spec.resize_size < size:
            raise BackboneError(f"resize_size {spec.resize_size} is smaller than image_size {size}")
        crop_pct = size / spec.resize_size
    config = {**config, "input_size": (3, size, size), "crop_pct": crop_pct}
    transform = timm.data.create_transform(**config, is_training=False)
    info = {
        "transform": "timm create_transform (eval)",
        "from_weights": "pretrained_cfg",
        "crop_size": size,
        "resize_size": int(round(size / crop_pct)),
        "crop_pct": crop_pct,
        "crop_mode": config.get("crop_mode", "center"),
        "mean": [float(v) for v in config["mean"]],
        "std": [float(v) for v in config["std"]],
        "interpolation": config["interpolation"],
        "decode": "PIL, EXIF-transposed, 8-bit RGB (16-bit grey rescaled)",
    }
    return transform, info


def _layers(model: Any) -> dict[str, int]:
    """Named layers and their widths: ``feature_info`` modules, every ViT block, the final norm."""
    widths: dict[str, int] = {}
    info = getattr(model, "feature_info", None) or []
    for entry in info if isinstance(info, list) else []:
        if isinstance(entry, dict) and "module" in entry:
            widths[entry["module"]] = int(entry["num_chs"])
    modules = dict(model.named_modules())
    blocks = modules.get("blocks")
    if blocks is not None and hasattr(blocks, "__len__"):
        for i in range(len(blocks)):
            widths.setdefault(f"blocks.{i}", int(model.num_features))
    if "norm" in modules and hasattr(model, "num_features") and not isinstance(modules["norm"], type(None)):
        widths.setdefault("norm", int(model.num_features))
    return {k: v for k, v in widths.items() if k in modules}


def list_models() -> list[str]:
    return list(require("timm", "timm", "timm:*").list_pretrained())


def weights_present(name: str) -> bool | None:
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    cfg = timm.models.get_pretrained_cfg(split_name(name)[1])
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    return any(isinstance(try_to_load_from_cache(hub_id, f), str) for f in WEIGHT_FILES)
