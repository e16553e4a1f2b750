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

from headstart._progress import ProgressFactory, null_progress
from headstart.data.images import is_jpeg, reduce_target
from headstart.features.cache import EmbeddingCache, holds_vectors, layer_key
from headstart.features.fingerprint import ENGINE_VERSION, layer_fingerprint
from headstart.features.registry import Backbone, fit_backbone, load_backbone
from headstart.features.resolved import Resolved, load_resolved, recall, remember, resolved_key
from headstart.features.runner import EmbedError, Job, Runner, RunStats
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
    engine: dict[str, Any] = field(default_factory=lambda: {"engine": "local"})

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
            **({"engine": self.engine} if self.engine.get("engine") != "local" else {}),
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
    beside it. When the cache already holds every image, the backbone is not loaded (nor torch imported).
    """
    if (out_dir is None) == (single_file is None):
        raise ValueError("give exactly one of out_dir and single_file")
    if prepared.empty:
        raise EmbedError("nothing to embed: the dataset has no images")
    # A backbone fitted on the train split (tfidf) is fitted first, and its fit is kept beside the tables it makes,
    # so heads fitted on them can embed new inputs as long as the tables exist; its digest is part of the spec.
    spec = fit_backbone(spec, prepared, Path(out_dir) if out_dir is not None else Path(single_file).parent)
    # The decode mode enters the fingerprint only when it can change a pixel: when there is a JPEG to reduce.
    scaled = options.decode == "jpeg-scaled" and _has_jpeg(prepared)
    key = resolved_key(spec, "jpeg-scaled" if scaled else "full", options)
    with tempfile.TemporaryDirectory(prefix="headstart-cache-") as scratch, contextlib.ExitStack() as decoding:
        cache_root = Path(options.cache_dir) if options.cache_dir is not None else Path(scratch)
        loaded, ahead = None, None
        resolved = recall(cache_root, key) if options.cache_dir is not None else None
        if resolved is None:  # with nothing cached under any backbone, every image is to compute
            everything = [] if holds_vectors(cache_root) else sorted(set(prepared["id"]))
            loaded, ahead = _load(spec, options, scaled, prepared, everything, decoding)
            resolved = loaded[0]
            remember(cache_root, key, resolved)
        keys = {(node, mode): layer_key(node, mode) for node in resolved.nodes for mode in spec.poolings}
        labels = {(node, mode): node if len(spec.poolings) == 1 else f"{node}-{mode}" for node, mode in keys}
        paths, failures_path = _outputs(labels, out_dir, single_file)
        cache, todo = _open_cache(prepared, resolved, cache_root, list(keys.values()), options)  # a first look
        if todo and loaded is None:
            loaded, ahead = _load(spec, options, scaled, prepared, todo, decoding)  # to compute: load the model
            if loaded[0] != resolved:
                log.info("the backbone resolved differently from %s/_resolved; using what it is now", cache_root)
                resolved = loaded[0]
                remember(cache_root, key, resolved)
                cache, todo = _open_cache(prepared, resolved, cache_root, list(keys.values()), options)
        # One process at a time per fingerprint: a second run waits, then finds the first one's work.
        with cache.lock() if options.cache_dir is not None else contextlib.nullcontext():
            cache.scan()
            todo = cache.missing(prepared["id"].tolist(), list(keys.values()))
            unique = len(set(prepared["id"]))
            from_cache = unique - len(todo)
            if from_cache:
                log.info("%d of %d images in the cache (%s); embedding %d", from_cache, unique, cache.dir, len(todo))
            stats = RunStats()
            engine: dict[str, Any] = {"engine": options.engine}
            if todo:
                loaded = loaded or load_resolved(spec, options, scaled)
                name = f"embed {(dataset or {}).get('name', '')} {spec.arch}".replace("  ", " ")
                job = _job(prepared, todo, loaded, keys, spec, options, name)
                stats, engine = _run(job, cache, progress, ahead)
                cache.scan()
        start = time.perf_counter()
        tables, provenance = [], {}
        base = {**resolved.base, "versions": resolved.versions}
        for key_, cache_key in keys.items():
            node, mode = key_
            prov = {
                **base,
                "engine_version": ENGINE_VERSION,
                "node": node,
                "pooling": mode,
                "pooling_applied": resolved.applied[key_],
                "dim": resolved.dims[key_],
                "default_node": resolved.default_node,
                "base_fingerprint": resolved.fingerprint,
                "fingerprint": layer_fingerprint(resolved.fingerprint, node, mode),
                "dataset": dict(dataset or {}),
            }
            provenance[labels[key_]] = prov
            info = {k: v for k, v in engine.items() if k != "rows_per_node"} if options.engine == "ray" else None
            shard = None if options.rows_per_shard == "auto" else options.rows_per_shard
            tables.append(TableOut(cache_key, paths[key_], resolved.dims[key_], prov, shard, info))
        failures = assemble_tables(prepared, cache, tables, failures_path, {**base, "dataset": dict(dataset or {})})
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
        engine=engine,
    )


def _has_jpeg(prepared: pd.DataFrame) -> bool:
    """Whether any image of ``prepared`` is a JPEG (by its first bytes, not its name)."""
    images = prepared["image"] if "image" in prepared.columns else [None] * len(prepared)
    return any(is_jpeg(_none(b) if _none(b) is not None else p) for p, b in zip(prepared["path"], images) if _ok(p, b))


def _ok(path: Any, image: Any) -> bool:
    return _none(image) is not None or isinstance(_none(path), str)


def _outputs(labels: dict, out_dir: Any, single_file: Any) -> tuple[dict, Path]:
    if single_file is not None:
        if len(labels) != 1:
            raise EmbedError(
                f"{len(labels)} tables ({', '.join(labels.values())}) cannot go into one file "
                f"{single_file}; give an output directory instead"
            )
        single_file = Path(single_file)
        return {k: single_file for k in labels}, single_file.with_name(single_file.stem + ".failures.parquet")
    out_dir = Path(out_dir)
    return {k: out_dir / f"{labels[k]}.parquet" for k in labels}, out_dir / "failures.parquet"


def _open_cache(
    prepared: pd.DataFrame, resolved: Resolved, root: Path, keys: list[str], options: EmbedOptions
) -> tuple[EmbeddingCache, list[str]]:
    cache = EmbeddingCache(root, resolved.fingerprint, meta={**resolved.base, "versions": resolved.versions})
    if cache.torn:
        log.info("cache %s: ignoring the torn end of an interrupted run (%s)", cache.dir, ", ".join(cache.torn))
    ids = prepared["id"].tolist()
    if options.on_error == "raise":
        for item_id in dict.fromkeys(ids):
            error = cache.failure(item_id)
            if error is not None:
                raise EmbedError(
                    f"image {_describe(prepared, item_id)} cannot be used: {error} (remembered from "
                    "an earlier run). Set `embed.on_error: skip` to list it in the failures table"
                )
    return cache, cache.missing(ids, keys)


def _describe(prepared: pd.DataFrame, item_id: str) -> str:
    rows = prepared.loc[prepared["id"] == item_id]
    path = rows["path"].iloc[0] if len(rows) else None
    return f"{path} (id {item_id})" if isinstance(path, str) else f"id {item_id}"


def _job(
    prepared: pd.DataFrame, todo: list[str], loaded: tuple, keys: dict, spec: BackboneSpec, options: EmbedOptions,
    name: str,
) -> Job:
    resolved, backbone, extractor, device = loaded
    scaled = resolved.base.get("decode") == "jpeg-scaled"
    return Job(
        prepared=prepared,
        todo=todo,
        backbone=backbone,
        extractor=extractor,
        device=device,
        keys=keys,
        precision=spec.precision,
        reduce_to=reduce_target(backbone.preprocessing.get("resize_size")) if scaled else None,
        options=options,
        describe=lambda i: _describe(prepared, i),
        name=name,
    )


def _load(  # noqa: PLR0913
    spec: BackboneSpec, options: EmbedOptions, scaled: bool, prepared: pd.DataFrame, todo: list[str],
    stack: contextlib.ExitStack,
) -> tuple[tuple, Any]:
    """Load the model of ``spec``; ``todo``'s images (when known) start decoding as soon as the backbone's
    preprocessing is known, while its extractor is built and probed (:func:`~headstart.features.local_engine.
    decode_ahead`). Returns what :func:`load_resolved` returns and those batches (or ``None``), whose decoding
    ``stack`` stops if the run leaves before reading them."""
    if not todo or options.engine != "local":
        return load_resolved(spec, options, scaled), None
    from headstart.features.forward import select_device  # torch: only a run with something to compute
    from headstart.features.local_engine import decode_ahead

    backbone = load_backbone(spec)
    reduce_to = reduce_target(backbone.preprocessing.get("resize_size")) if scaled else None
    ahead = decode_ahead(backbone, prepared, todo, select_device(options.device), options, reduce_to)
    stack.callback(ahead.close)
    return load_resolved(spec, options, scaled, backbone=backbone), ahead


def _runner(job: Job, ahead: Any = None) -> Runner:
    """The local runner (with the batches already decoding, if any), or the Ray one (Ray is an optional extra;
    both import torch, which a run with every image cached never needs, so they are imported here)."""
    if job.options.engine == "ray":
        from headstart.features.ray_engine import RayRunner

        if type(job.backbone).feed is not Backbone.feed:  # its own batches (texts): not Ray's image decoding
            raise EmbedError(f"embed.engine ray decodes images; {job.backbone.spec.arch} reads texts: use engine local")
        return RayRunner()
    from headstart.features.local_engine import LocalRunner

    return LocalRunner(ahead)


def _run(job: Job, cache: EmbeddingCache, progress: ProgressFactory, ahead: Any) -> tuple[RunStats, dict[str, Any]]:
    runner = _runner(job, ahead)
    bar = progress(total=len(job.todo), desc=job.name, unit="img")
    try:
        with cache.open_segment() as segment:
            return runner.run(job, segment.append, bar)
    finally:
        bar.close()


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value
