"""open_clip image encoders: ``open_clip:<model>/<pretrained tag>`` (``open_clip:ViT-B-32/laion2b_s34b_b79k``).

The ``default`` layer is ``encode_image`` L2-normalised, with open_clip's own preprocess for the weights (size,
resize mode, interpolation, mean, std); other layers are the vision transformer's blocks
(``transformer.resblocks.N``) pooled by the ``pooling:`` setting. Only the image tower is kept.
Weights: ``pretrained`` takes the tag's file from the Hugging Face cache (``HF_HOME``), downloading only when
online; a path takes that file; ``none`` is a seeded random init.
"""

from __future__ import annotations

from typing import Any

import torch

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
from headstart.features.providers.finetuning import from_checkpoint, tail_after
from headstart.features.registry import BackboneError, BackboneSpec
from headstart.features.weights import ResolvedWeights, WeightsError

__all__ = ["list_models", "load", "weights_present"]


def load(spec: BackboneSpec) -> ProviderBackbone:
    open_clip = require("open_clip", "open_clip", spec.arch)
    tuned = from_checkpoint(spec, load)
    if tuned is not None:
        return tuned
    _, name = split_name(spec.arch)
    arch, _, tag = name.partition("/")
    if arch not in open_clip.list_models():
        raise BackboneError(f"open_clip has no model '{arch}'; known: {', '.join(open_clip.list_models()[:8])}, ...")
    mode, path = weights_mode(spec.weights)
    files: dict[str, str] = {}
    revision = None
    if mode == "none":
        pretrained = None
    elif mode == "path":
        pretrained = str(path)
        files[path.name], revision = pinned_file(path)  # type: ignore[union-attr]
    else:
        if not tag:
            raise WeightsError(
                f"{spec.arch} names no pretrained tag; write open_clip:{arch}/<tag> (open_clip.list_pretrained())"
            )
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        if not cfg or not cfg.get("hf_hub"):
            raise WeightsError(f"open_clip has no hub weights '{tag}' for {arch}; set `weights:` to the file")
        file = hub_file(cfg["hf_hub"], WEIGHT_FILES[2:], spec.arch)
        files[file.name], revision = pinned_file(file)
        pretrained = str(file)
    kwargs = {"force_image_size": spec.image_size} if spec.image_size else {}
    with seeded():
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained, **kwargs)
    visual = model.visual.eval()
    cfg = dict(visual.preprocess_cfg)
    size = spec.image_size or int(cfg["size"][0] if isinstance(cfg["size"], (tuple, list)) else cfg["size"])
    preprocessing = {
        "transform": "open_clip preprocess (eval)",
        "from_weights": "preprocess_cfg",
        "crop_size": size,
        "resize_size": size,
        "resize_mode": cfg.get("resize_mode"),
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": cfg.get("interpolation"),
        "decode": "PIL, EXIF-transposed, 8-bit RGB (16-bit grey rescaled)",
    }
    transformer = getattr(visual, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    width = int(getattr(transformer, "width", 0) or 0)
    layers = {f"transformer.resblocks.{i}": width for i in range(len(blocks))} if blocks is not None else {}
    return ProviderBackbone(
        spec=spec,
        model=visual,
        transform=preprocess,
        preprocessing=preprocessing,
        weights=ResolvedWeights("none" if mode == "none" else "provider", None if mode == "none" else name),
        weights_sha256=next(iter(files.values()), None),
        provider="open_clip",
        model_name=name,
        revision=revision,
        files=files,
        layer_widths=layers,
        default_layer="image_embeds",
        default_dim=int(visual.output_dim),
        default_applied="encode_image+l2",
        prefix_tokens=1,
        run_default=_embed,
        library={"open_clip": open_clip.__version__},
        block_names=tuple(layers),
        tail_names=_tail(visual) if layers else (),
    )


def _tail(visual: Any) -> tuple[str, ...]:
    """After the blocks: the final norm and pooling modules, then the ``proj`` matrix (a bare parameter)."""
    after = tail_after(visual, "transformer.resblocks")
    return after + (("proj",) if isinstance(getattr(visual, "proj", None), torch.nn.Parameter) else ())


def _embed(visual: Any, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(visual(x).float(), dim=-1)


def list_models() -> list[str]:
    return [f"{m}/{t}" for m, t in require("open_clip", "open_clip", "open_clip:*").list_pretrained()]


def weights_present(name: str) -> bool | None:
    try:
        import open_clip
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    arch, _, tag = split_name(name)[1].partition("/")
    cfg = open_clip.get_pretrained_cfg(arch, tag) if tag else None
    if not cfg or not cfg.get("hf_hub"):
        return None
    repo = cfg["hf_hub"].rstrip("/")
    return any(isinstance(try_to_load_from_cache(repo, f), str) for f in WEIGHT_FILES[2:])
