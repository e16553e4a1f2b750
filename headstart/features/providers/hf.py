"""Hugging Face transformers vision models: ``hf:<repo>[@<revision>]`` (``hf:facebook/dinov2-small``) or
``hf:<local directory>``.

- DINOv2: the ``default`` layer is the final (normed) token sequence, pooled by the ``pooling:`` setting:
  ``cls``, ``avg`` (mean of the patch tokens) or ``clsavg`` (both concatenated, as in DINOv2's linear evaluation).
- CLIP and SigLIP vision towers: the ``default`` layer is the projected image embedding (SigLIP: the pooled
  output), L2-normalised, as in CLIP_benchmark.
- Any other ``AutoModel``: the last hidden state, pooled.

Other layers are the encoder's blocks (``encoder.layer.N``, ``vision_model.encoder.layers.N``). Preprocessing is
the repo's own image processor config (size, crop, resample, mean, std), applied with torchvision.
Weights: ``pretrained`` loads the repo from the Hugging Face cache (``HF_HOME``), downloading only when online;
a directory loads from it; ``none`` is a seeded random init of the repo's config.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from headstart.features.providers.base import (
    ProviderBackbone,
    pinned_file,
    require,
    seeded,
    split_name,
    weights_mode,
)
from headstart.features.providers.finetuning import from_checkpoint, tail_after
from headstart.features.registry import BackboneError, BackboneSpec
from headstart.features.weights import ResolvedWeights, WeightsError

__all__ = ["image_transform", "list_models", "load", "weights_present"]

log = logging.getLogger(__name__)

_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def load(spec: BackboneSpec) -> ProviderBackbone:
    transformers = require("transformers", "hf", spec.arch)
    tuned = from_checkpoint(spec, load)
    if tuned is not None:
        return tuned
    _, name = split_name(spec.arch)
    repo, _, revision = name.partition("@")
    mode, path = weights_mode(spec.weights)
    source = str(path) if mode == "path" else repo
    options = {"revision": revision or None} if mode != "path" and not Path(repo).is_dir() else {}
    config = _fetch(lambda **kw: transformers.AutoConfig.from_pretrained(source, **options, **kw), name, "config.json")
    cls = _model_class(transformers, config)
    if cls is not transformers.AutoModel and hasattr(config, "vision_config"):
        config = config.vision_config
    if mode == "none":
        with seeded():
            build = cls.from_config if cls is transformers.AutoModel else cls._from_config
            model = build(config).float()
        files, commit = {}, None
    else:
        model = _fetch(lambda **kw: cls.from_pretrained(source, dtype=torch.float32, **options, **kw), name, "weights")
        files, commit = _weight_files(source, options.get("revision"))
    model.eval()
    processor = _fetch(
        lambda **kw: transformers.AutoImageProcessor.from_pretrained(source, **options, **kw),
        name,
        "preprocessor_config.json",
    )
    transform, preprocessing = image_transform(processor, spec.image_size, spec.resize_size)
    kind = getattr(model.config, "model_type", "")
    hidden = int(model.config.hidden_size)
    layers = _block_names(model)
    prefix = 0 if "siglip" in kind else 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
    if "clip" in kind or "siglip" in kind:
        default, dim, applied = "image_embeds", int(getattr(model.config, "projection_dim", 0) or hidden), "model+l2"
        tokens = False
    else:
        default, dim, applied, tokens = "last_hidden_state", hidden, "", True
    sha = next(iter(files.values()), None)
    return ProviderBackbone(
        spec=spec,
        model=model,
        transform=transform,
        preprocessing=preprocessing,
        weights=ResolvedWeights("none" if mode == "none" else "provider", None if mode == "none" else name),
        weights_sha256=sha,
        provider="hf",
        model_name=repo,
        revision=commit or revision or None,
        files=files,
        layer_widths={layer: hidden for layer in layers},
        default_layer=default,
        default_dim=dim,
        default_applied=applied,
        default_tokens=tokens,
        prefix_tokens=prefix,
        run_default=_embed_projected if not tokens else _embed_tokens,
        library={"transformers": transformers.__version__},
        block_names=tuple(layers),
        tail_names=tail_after(model, layers[-1].rsplit(".", 1)[0]) if layers else (),
    )


def _model_class(transformers: Any, config: Any) -> Any:
    kind = getattr(config, "model_type", "")
    if kind in ("clip", "clip_vision_model"):
        return transformers.CLIPVisionModelWithProjection
    if kind in ("siglip", "siglip_vision_model"):
        return transformers.SiglipVisionModel
    return transformers.AutoModel


def _embed_projected(model: Any, x: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values=x)
    vectors = out.image_embeds if getattr(out, "image_embeds", None) is not None else out.pooler_output
    return torch.nn.functional.normalize(vectors.float(), dim=-1)


def _embed_tokens(model: Any, x: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=x).last_hidden_state


def _fetch(call: Any, name: str, what: str) -> Any:
    """Load from the local cache first; online only when that fails; offline: one line naming the files."""
    try:
        return call(local_files_only=True)
    except (OSError, ValueError) as local:
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - no internet: say which files and where
            from huggingface_hub.constants import HF_HUB_CACHE

            raise WeightsError(
                f"hf:{name}: its {what} is not on this machine and cannot be downloaded ({type(err).__name__}); "
                f"put the repo in the Hugging Face cache ({HF_HUB_CACHE}; `huggingface-cli download "
                f"{name.split('@')[0]}` on a machine with internet) or set `weights:` to a directory with "
                f"config.json, model.safetensors and preprocessor_config.json"
            ) from local


def _weight_files(source: str, revision: str | None) -> tuple[dict[str, str], str | None]:
    """sha256 of the weight files used and the hub commit they came from."""
    names = ("model.safetensors", "pytorch_model.bin")
    if Path(source).is_dir():
        paths = [Path(source) / n for n in names if (Path(source) / n).is_file()]
    else:
        from huggingface_hub import try_to_load_from_cache

        paths = [Path(p) for n in names if isinstance(p := try_to_load_from_cache(source, n, revision=revision), str)]
    files, commit = {}, None
    for path in paths[:1]:
        files[path.name], commit = pinned_file(path)
    if not files:
        raise WeightsError(f"hf:{source}: no model.safetensors or pytorch_model.bin found to pin; re-download it")
    return files, commit


def _block_names(model: Any) -> list[str]:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith(("encoder.layer", "encoder.layers")):
            return [f"{name}.{i}" for i in range(len(module))]
    return []


def image_transform(processor: Any, image_size: int | None, resize_size: int | None) -> tuple[Any, dict[str, Any]]:
    """A torchvision transform doing what ``processor`` (an HF image processor) does, and its description."""
    size = dict(getattr(processor, "size", None) or {})
    crop = dict(getattr(processor, "crop_size", None) or {}) if getattr(processor, "do_center_crop", False) else {}
    resample = _RESAMPLE.get(int(getattr(processor, "resample", 3) or 3), "bicubic")
    if "shortest_edge" in size:
        resize: Any = int(size["shortest_edge"])
    else:
        resize = (int(size.get("height", 224)), int(size.get("width", 224)))
    crop_size = int(crop["height"]) if crop else (resize if isinstance(resize, int) else resize[0])
    if image_size is not None:
        scale = image_size / crop_size
        new = resize_size or (int(round(resize * scale)) if isinstance(resize, int) else None)
        resize = new if new is not None else (image_size, image_size)
        crop_size = image_size
        crop = crop and {"height": image_size}
    factor = float(getattr(processor, "rescale_factor", 1 / 255))
    if abs(factor - 1 / 255) > 1e-9:
        raise BackboneError(f"image processor {type(processor).__name__} rescales by {factor}, not 1/255")
    mean = [float(v) for v in getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5)]
    std = [float(v) for v in getattr(processor, "image_std", None) or (0.5, 0.5, 0.5)]
    steps = [T.ToImage(), T.Resize(resize, interpolation=InterpolationMode(resample), antialias=True)]
    if crop:
        steps.append(T.CenterCrop(crop_size))
    steps += [T.ToDtype(torch.float32, scale=True)]
    if getattr(processor, "do_normalize", True):
        steps.append(T.Normalize(mean, std))
    info = {
        "transform": f"{type(processor).__name__} (as torchvision v2)",
        "from_weights": "preprocessor_config.json",
        "crop_size": crop_size,
        "resize_size": resize,
        "center_crop": bool(crop),
        "mean": mean,
        "std": std,
        "interpolation": resample,
        "antialias": True,
        "decode": "PIL, EXIF-transposed, 8-bit RGB (16-bit grey rescaled)",
    }
    return T.Compose(steps), info


def list_models() -> list[str]:
    return [
        "facebook/dinov2-small", "facebook/dinov2-base", "openai/clip-vit-base-patch32", "google/siglip-base-patch16-224"
    ]  # fmt: skip


def weights_present(name: str) -> bool | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo, _, revision = split_name(name)[1].partition("@")
    return any(
        isinstance(try_to_load_from_cache(repo, f, revision=revision or None), str)
        for f in ("model.safetensors", "pytorch_model.bin")
    )
