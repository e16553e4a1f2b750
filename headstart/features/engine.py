"""The extraction engine: embed a prepared dataset with a backbone, resumably, one table per layer.

Only images whose content id is not yet in the cache under this backbone's fingerprint go through the
network; the tables are then assembled from the cache in id order, so an interrupted-and-resumed run writes
the same bytes as an uninterrupted one.

Example
-------
>>> from headstart.data import prepare_dataset
>>> prepared = prepare_dataset("digits")                                                        # doctest: +SKIP
>>> spec = BackboneSpec("mobilenet_v2", "IMAGENET1K_V1", layers=("features.13", "default"), image_size=64)
>>> result = embed(prepared, spec, "embeddings/digits/mobilenet_v2")                           # doctest: +SKIP
>>> sorted(result.tables)                                                                       # doctest: +SKIP
['features.13', 'flatten']
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from headstart._progress import ProgressFactory, null_progress
from headstart.features.cache import EmbeddingCache, layer_key
from headstart.features.fingerprint import ENGINE_VERSION, base_fingerprint, layer_fingerprint, library_versions
from headstart.features.reader import ImageDataset, Item, auto_workers, forward_threads, make_loader
from headstart.features.registry import load_backbone
from headstart.features.runner import EmbedError, RunStats, autocast, run_batches, select_device
from headstart.features.spec import BackboneSpec, EmbedOptions
from headstart.features.writer import TableOut, assemble_tables

__all__ = ["EmbedOptions", "EmbedResult", "embed"]

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """What an embed run wrote and how it went."""

    tables: dict[str, Path]
    failures_path: Path | None
    failures: list[dict[str, Any]]
    images: int
    from_cache: int
    stats: RunStats
    assemble_seconds: float
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        head = (
            f"{self.images} images: {self.from_cache} from the cache, {self.stats.computed} embedded now, "
            f"{len(self.failures)} failed" + (f" (listed in {self.failures_path})" if self.failures else "")
        )
        return (
            head
            + (f"\n{self.stats.summary()}" if self.stats.computed or self.stats.failed else "")
            + f"\nassembling the tables took {self.assemble_seconds:.1f} s"
        )

    def metrics(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "embedded": self.images - len(self.failures),
            "failed": len(self.failures),
            "from_cache": self.from_cache,
            **{f"run_{k}": v for k, v in self.stats.as_dict().items()},
            "assemble_seconds": round(self.assemble_seconds, 3),
        }


def embed(
    prepared: pd.DataFrame,
    spec: BackboneSpec,
    out_dir: str | Path | None = None,
    *,
    single_file: str | Path | None = None,
    dataset: Mapping[str, Any] | None = None,
    options: EmbedOptions = EmbedOptions(),
    progress: ProgressFactory = null_progress,
) -> EmbedResult:
    """Embed every image of ``prepared`` (a prepared table, sorted by id) with ``spec``.

    Writes ``<out_dir>/<layer>.parquet`` per layer (``<layer>-<pooling>`` with several poolings) and
    ``<out_dir>/failures.parquet``; or, with ``single_file``, that one table and ``<stem>.failures.parquet``
    beside it.
    """
    if (out_dir is None) == (single_file is None):
        raise ValueError("give exactly one of out_dir and single_file")
    if prepared.empty:
        raise EmbedError("nothing to embed: the dataset has no images")
    backbone = load_backbone(spec)
    nodes = backbone.resolve_layers(spec.layers)
    poolings = spec.poolings
    versions = library_versions()
    base = backbone.provenance()
    default_node = backbone.default_node()
    fingerprint = base_fingerprint(base, versions)
    keys = {(node, mode): layer_key(node, mode) for node in nodes for mode in poolings}
    labels = {(node, mode): node if len(poolings) == 1 else f"{node}-{mode}" for node, mode in keys}
    if single_file is not None:
        if len(keys) != 1:
            raise EmbedError(
                f"{len(keys)} tables ({', '.join(labels.values())}) cannot go into one file "
                f"{single_file}; give an output directory instead"
            )
        single_file = Path(single_file)
        paths = {k: single_file for k in keys}
        failures_path = single_file.with_name(single_file.stem + ".failures.parquet")
    else:
        out_dir = Path(out_dir)  # type: ignore[arg-type]
        paths = {k: out_dir / f"{labels[k]}.parquet" for k in keys}
        failures_path = out_dir / "failures.parquet"

    device = select_device(options.device)
    extractor = backbone.extractor(nodes, poolings).eval()
    dims, applied = _probe(extractor, backbone, device, spec.precision)

    with tempfile.TemporaryDirectory(prefix="headstart-cache-") as scratch:
        cache_root = Path(options.cache_dir) if options.cache_dir is not None else Path(scratch)
        cache = EmbeddingCache(cache_root, fingerprint, meta={**base, "versions": versions})
        if cache.torn:
            log.info("cache %s: ignoring the torn end of an interrupted run (%s)", cache.dir, ", ".join(cache.torn))
        # One process at a time per fingerprint: a second run waits, then finds the first one's work.
        with cache.lock() if options.cache_dir is not None else contextlib.nullcontext():
            cache.scan()
            ids = prepared["id"].tolist()
            if options.on_error == "raise":
                for item_id in dict.fromkeys(ids):
                    error = cache.failure(item_id)
                    if error is not None:
                        raise EmbedError(
                            f"image {_describe(prepared, item_id)} cannot be used: {error} (remembered from "
                            "an earlier run). Set `embed.on_error: skip` to list it in the failures table"
                        )
            todo = cache.missing(ids, list(keys.values()))
            unique = len(set(ids))
            from_cache = unique - len(todo)
            if from_cache:
                log.info("%d of %d images in the cache (%s); embedding %d", from_cache, unique, cache.dir, len(todo))
            stats = RunStats()
            if todo:
                stats = _run(
                    prepared,
                    todo,
                    backbone,
                    extractor,
                    keys,
                    device,
                    spec.precision,
                    cache,
                    options,
                    progress,
                    name=f"embed {(dataset or {}).get('name', '')} {spec.arch}".replace("  ", " "),
                )
                cache.scan()
        start = time.perf_counter()
        tables = []
        provenance = {}
        for key, cache_key in keys.items():
            node, mode = key
            prov = {
                **base,
                "versions": versions,
                "engine_version": ENGINE_VERSION,
                "node": node,
                "pooling": mode,
                "pooling_applied": applied[key],
                "dim": dims[key],
                "default_node": default_node,
                "base_fingerprint": fingerprint,
                "fingerprint": layer_fingerprint(fingerprint, node, mode),
                "dataset": dict(dataset or {}),
            }
            provenance[labels[key]] = prov
            tables.append(TableOut(cache_key, paths[key], dims[key], prov))
        failures = assemble_tables(
            prepared, cache, tables, failures_path, {**base, "versions": versions, "dataset": dict(dataset or {})}
        )
        assemble_seconds = time.perf_counter() - start
    return EmbedResult(
        tables={labels[k]: paths[k] for k in keys},
        failures_path=failures_path,
        failures=failures,
        images=len(prepared),
        from_cache=from_cache,
        stats=stats,
        assemble_seconds=assemble_seconds,
        provenance=provenance,
    )


def _probe(extractor: Any, backbone: Any, device: Any, precision: str) -> tuple[dict, dict]:
    """One forward pass on a blank image: the width of every output and the pooling actually applied."""
    import torch
    from PIL import Image

    size = backbone.preprocessing["crop_size"]
    pixels = backbone.transform(Image.new("RGB", (size, size)))[None]
    extractor.to(device)
    with torch.inference_mode(), autocast(device, precision):
        outputs = extractor(pixels.to(device))
    dims = {k: int(v.shape[1]) for k, v in outputs.items()}
    applied = dict(getattr(extractor, "applied", {})) or {k: "none" for k in outputs}
    return dims, applied


def _describe(prepared: pd.DataFrame, item_id: str) -> str:
    rows = prepared.loc[prepared["id"] == item_id]
    path = rows["path"].iloc[0] if len(rows) else None
    return f"{path} (id {item_id})" if isinstance(path, str) else f"id {item_id}"


def _run(
    prepared: pd.DataFrame,
    todo: list[str],
    backbone: Any,
    extractor: Any,
    keys: dict,
    device: Any,
    precision: str,
    cache: EmbeddingCache,
    options: EmbedOptions,
    progress: ProgressFactory,
    name: str,
) -> RunStats:
    first = prepared.drop_duplicates("id").set_index("id")
    items = [
        Item(i, _none(first.at[i, "path"]), _none(first.at[i, "image"]) if "image" in first.columns else None)
        for i in todo
    ]
    dataset = ImageDataset(items, backbone.transform, options.max_image_pixels)
    batch_size = options.batch_size_for(device)
    batches = -(-len(items) // batch_size)
    workers = auto_workers(device, batches) if options.num_workers == "auto" else int(options.num_workers)
    loader = make_loader(dataset, batch_size, workers, pin_memory=device.type == "cuda")
    bar = progress(total=len(items), desc=name, unit="img")
    threads = torch.get_num_threads()
    torch.set_num_threads(forward_threads(device, workers))
    log.debug(
        "embedding %d images: batch %d, %d decoding workers, %d forward threads",
        len(items),
        batch_size,
        workers,
        torch.get_num_threads(),
    )
    try:
        with cache.open_segment() as segment:
            return run_batches(
                extractor,
                loader,
                keys=keys,
                device=device,
                precision=precision,
                sink=segment.append,
                strict=options.on_error == "raise",
                describe=lambda i: _describe(prepared, i),
                progress=bar,
            )
    finally:
        torch.set_num_threads(threads)
        bar.close()


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value
