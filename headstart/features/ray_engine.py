"""The Ray engine: the forward pass of :func:`headstart.features.engine.embed` on a Ray cluster (Ray Data).

The local engine's steps, spread out over an actor pool (``map_batches`` with a callable class): each actor holds
the truncated backbone and runs it through the same forward pass as the local engine
(:class:`~headstart.features.forward.Forward`: one intra-op thread per pass on a CPU, batches padded). On CPUs
there is one actor per CPU, and each reads and decodes its own work items with the local engine's code
(:class:`~headstart.features.reader.ImageDataset` and its collate), from their paths or from the prepared table's
``image`` column (reading only the row groups that hold them): every CPU busy with the whole job, as the local
engine's forward workers are, and only vectors cross the object store. With GPUs (one actor per GPU,
``num_gpus=1``), Ray Data tasks decode on the CPUs and send 8-bit pixels to the actors. The driver appends what
comes back to the per-image cache, batch by batch, so everything stays as it is locally: a killed run (driver or
worker) resumes where it stopped, broken images end in the failures table, and the tables are assembled from the
cache in id order.

Every work item is one batch of the local engine's size, padded as the local engine pads it, on the device type
the run's fingerprint names, so the vectors are the same bits as the local engine's.

Example
-------
>>> options = EmbedOptions(engine="ray", ray=RayOptions(address="auto"))   # doctest: +SKIP
>>> embed(prepared, spec, "embeddings/digits/mobilenet_v2", options=options)   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import warnings
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from headstart._progress import Progress
from headstart.features.ray_tasks import UNIT_IMAGES, Embedder, decode_batches, work_items
from headstart.features.runner import EmbedError, Job, RunStats, Sink, strict_failure

__all__ = ["RayRun", "RayRunner", "connect", "run_on_ray"]

log = logging.getLogger(__name__)


@dataclass
class RayRun:
    """How a Ray run went: the forward loop's account, the cluster it ran on, and rows per node."""

    stats: RunStats
    cluster: dict[str, Any]
    rows_per_node: dict[str, int] = field(default_factory=dict)


def connect(address: str = "auto") -> bool:
    """Join the cluster at ``address``; ``auto`` joins a running one, or starts a local one when there is none.

    Returns whether this call started Ray (and so should shut it down).
    """
    try:
        import ray
    except ImportError as err:
        raise EmbedError("embed.engine: ray needs Ray; install it with `pip install 'headstart[ray]'`") from err
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError:
        if address != "auto":
            raise EmbedError(
                f"no Ray cluster at ray.address={address}; start one (`ray start --head`) or use `auto`"
            ) from None
        log.info("no running Ray cluster found; starting a local one")
        # Ray says at warning level that it turned on token authentication, its default, for the cluster it starts
        notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
        level = notice.level
        notice.setLevel(logging.ERROR)
        try:
            ray.init(address="local", **kwargs)
        finally:
            notice.setLevel(level)
    return True


def cluster_info() -> dict[str, Any]:
    """Alive nodes and their CPUs and GPUs."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = [float(n["Resources"].get("CPU", 0)) for n in nodes]
    gpus = [float(n["Resources"].get("GPU", 0)) for n in nodes]
    return {"nodes": len(nodes), "cpus": sum(cpus), "gpus": sum(gpus), "min_node_cpus": min(cpus, default=0.0)}


def run_on_ray(
    prepared: pd.DataFrame,
    todo: list[str],
    *,
    transform: Any,
    extractor: Any,
    keys: Mapping[tuple[str, str], str],
    precision: str,
    device: str,
    batch_size: int,
    max_pixels: int,
    sink: Sink,
    reduce_to: int | None = None,
    finish: Any = None,
    strict: bool,
    describe: Callable[[str], str],
    progress: Progress,
    address: str = "auto",
    actors: int | str = "auto",
) -> RayRun:
    """Embed ``todo`` (sorted ids of ``prepared``) on Ray; every batch's vectors go to ``sink`` on the driver.

    ``device`` (``cpu`` or ``cuda``) and ``batch_size`` are the run's (both are in the fingerprint), so each work
    item is one of the local engine's batches, computed on that type of device. ``finish`` (the backbone's batch
    stage) turns what ``transform`` decodes into the model's input, in the actors. On CPU ``actors: auto`` is one
    per CPU (each decodes its work items and runs one pass at a time, on one thread); on CUDA, one per GPU.
    Ray does not restart a lost actor (``max_restarts=0``: Ray Data keeps the actors' constructor arguments in the
    object store, which a restart cannot count on); the run stops, and the next one resumes from the cache.
    """
    import ray
    import ray.data

    started = connect(address)
    try:
        cluster = cluster_info()
        gpus = int(cluster["gpus"]) if device == "cuda" else 0
        if device == "cuda" and not gpus:
            raise EmbedError("embed.device asks for CUDA but the Ray cluster has no GPU; use `device: cpu`")
        pool = (gpus or max(1, int(cluster["cpus"]))) if actors == "auto" else int(actors)
        # with GPUs, a CPU for each actor and each decoding task where nodes have two or more, half of one on
        # smaller nodes; on CPUs an actor does both, on one CPU
        cpus = 1.0 if cluster["min_node_cpus"] >= 2 or not gpus else 0.5
        units = work_items(prepared, todo, batch_size, prepared.attrs.get("headstart_path"), pool)
        pool = min(pool, len(units))  # an actor with no work item would only load the model
        cluster = {**cluster, "actors": pool}
        log.info(
            "ray: %d images in %d work items on %d node(s) (%g CPUs, %d GPUs), %d actor(s)",
            len(todo),
            len(units),
            cluster["nodes"],
            cluster["cpus"],
            gpus,
            pool,
        )
        decode = {"transform": transform, "max_pixels": max_pixels, "reduce_to": reduce_to}
        ds = ray.data.from_items(units, override_num_blocks=len(units))
        if gpus:
            crop = int(getattr(transform, "crop_size", [224])[0])
            ds = ds.map_batches(
                decode_batches,
                fn_kwargs=decode,
                batch_size=1,
                num_cpus=cpus,
                # a worker with torch loaded, plus its decoded pixels (twice: the batch and its bytes), and the
                # quarter more that Ray Data's memory check wants above what a task used; as the model actors ask
                # for no memory, Ray Data does not fuse the decoding into them, and CPU tasks decode the next
                # batches while the GPUs run the network
                memory=5 * (2**29 + 2 * 4 * 3 * crop * crop * UNIT_IMAGES) // 4,
            )
        forward = Embedder, {
            "extractor": extractor, "keys": dict(keys), "precision": precision, "rows": batch_size, "finish": finish,
            "device": device, "decode": None if gpus else decode,
        }  # fmt: skip
        ds = _embed_batches(ds, forward, pool, gpus, cpus)
        stats = RunStats()
        per_node: Counter[str] = Counter()
        start = time.perf_counter()
        first = None
        for row in ds.iter_rows():
            first = first or time.perf_counter() - start
            ids = json.loads(row["ids"])
            failures = [tuple(f) for f in json.loads(row["failures"])]
            if failures and strict:
                raise strict_failure(describe, failures[0])
            arrays, offset = {}, 0
            for key, dim in json.loads(row["layers"]):
                arrays[key] = np.frombuffer(row["vectors"], "<f4", len(ids) * dim, offset).reshape(len(ids), dim)
                offset += len(ids) * dim * 4
            t0 = time.perf_counter()
            sink(ids, arrays, failures)
            stats.write_seconds += time.perf_counter() - t0
            stats.forward_seconds += float(row["seconds"])
            stats.decode_cpu_seconds += float(row["decode_seconds"])
            stats.computed += len(ids)
            stats.failed += len(failures)
            per_node[row["node"]] += len(ids)
            progress.update(len(ids) + len(failures))
        stats.wall_seconds = time.perf_counter() - start
        stats.wait_seconds = max(0.0, stats.wall_seconds - stats.write_seconds)
        stats.forward_workers = pool
        where = "decoding tasks on the CPUs" if gpus else "the actors decoding their own"
        stats.plan = f"{pool} actor(s), {len(units)} work items, {where}; first vectors after {first or 0:.1f} s"
        return RayRun(stats, cluster, dict(sorted(per_node.items())))
    finally:
        if started:
            ray.shutdown()


def _embed_batches(ds: Any, forward: tuple[type, dict[str, Any]], pool: int, gpus: int, cpus: float) -> Any:
    """The actor pool's step: every work item (or decoded batch) through ``forward``, a
    :class:`~headstart.features.ray_tasks.Embedder` and its arguments, on actors that Ray does not restart (see
    :func:`run_on_ray`)."""
    import ray.data

    with warnings.catch_warnings():  # Ray 2.60 takes max_restarts only through the deprecated **ray_remote_args
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ds.map_batches(
            forward[0],
            fn_constructor_kwargs=forward[1],
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_gpus=1 if gpus else 0,
            num_cpus=cpus,
            max_restarts=0,
        )


class RayRunner:
    """Runs a :class:`~headstart.features.runner.Job` on a Ray cluster (see the module's docstring)."""

    def run(self, job: Job, sink: Sink, progress: Progress) -> tuple[RunStats, dict[str, Any]]:
        backbone, options = job.backbone, job.options
        stages = backbone.preprocessing_stages()  # the local engine's split: 8-bit pixels cross the object store
        run = run_on_ray(
            job.prepared,
            job.todo,
            transform=stages[0] if stages is not None else backbone.transform,
            finish=stages[1] if stages is not None else None,
            reduce_to=job.reduce_to,
            extractor=job.extractor.to("cpu"),
            keys=job.keys,
            precision=job.precision,
            device=job.device.type,
            batch_size=options.batch_size_for(job.device),
            max_pixels=options.max_image_pixels,
            sink=sink,
            strict=job.strict,
            describe=job.describe,
            progress=progress,
            address=options.ray.address,
            actors=options.ray.actors,
        )
        cluster = {k: run.cluster[k] for k in ("nodes", "cpus", "gpus", "actors")}
        return run.stats, {"engine": "ray", **cluster, "rows_per_node": run.rows_per_node}
