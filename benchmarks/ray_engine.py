"""The Ray engine against the local engine on the same images, and across two raylets on this machine.

1. local engine vs ray engine (a local Ray cluster with this machine's cores, started before the timed calls, as
   a running cluster is what ``address: auto`` joins) on the same N images (default 2,000; MobileNetV2
   IMAGENET1K_V1 at 224 px, its native input and what users run on photos; ``--image-size 64`` is the default
   pipeline's size for 8x8 digits, where the forward pass is so cheap that Ray's fixed costs dominate):
   throughput of the forward loop and of the whole ``embed()`` call, taken in turns (``--repeats``, the best of
   each counts, so that other work on the machine weighs on both alike), and whether the tables are the same bits.
   Ray starts its workers at niceness 15; the cluster started here runs them at niceness 0, as the local
   engine's threads run, so that other work on a shared machine does not take from one engine only;
2. two "nodes": ``ray start --head`` plus ``ray start --address ...`` (``--num-cpus 1`` each, 127.0.0.1 only,
   a private temporary directory), the ray engine across both: rows embedded per node.

    python benchmarks/ray_engine.py            # 2,000 images
    python benchmarks/ray_engine.py --small    # 300 images
    python benchmarks/ray_engine.py --repeats 1 --skip-two-nodes

The raylets started in part 2 are stopped by process id (every process whose command line names the private
temporary directory), never with ``ray stop``, which would stop other clusters on the machine too.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import (  # noqa: E402
    cpu_model, git_commit, load_average, note, section, table, usable_cores, verdict,
)

GOAL = 0.85  # the Ray engine's whole embed() call against the local engine's, on one machine


def make_folder(root: Path, n: int, size: int = 96) -> None:
    """``n`` PNGs in 10 class folders: digits upscaled with a little noise, so each image differs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    for i in range(n):
        k = i % len(digits.images)
        pixels = np.kron(digits.images[k] * 15, np.ones((size // 8, size // 8)))
        pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
        path = root / f"class_{digits.target[k]}" / f"img_{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(path)


def run(
    folder: Path, out: Path, cache: Path, engine: str, address: str = "auto", image_size: int = 224
) -> tuple[float, object]:
    from headstart.data import prepare_dataset
    from headstart.features.engine import embed
    from headstart.features.registry import BackboneSpec
    from headstart.features.spec import EmbedOptions, RayOptions

    spec = BackboneSpec("mobilenet_v2", "IMAGENET1K_V1", layers=("default",), image_size=image_size)
    options = EmbedOptions(cache_dir=cache, engine=engine, ray=RayOptions(address=address))
    prepared = prepare_dataset(str(folder), name="bench")
    start = time.perf_counter()
    result = embed(prepared, spec, out, options=options)
    return time.perf_counter() - start, result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_two_raylets(temp: Path) -> str:
    port = _free_port()
    common = ["--num-cpus", "1", "--num-gpus", "0", "--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    subprocess.run(
        [_ray_cli(), "start", "--head", "--port", str(port), "--temp-dir", str(temp), "--include-dashboard=false", *common],
        check=True,
        capture_output=True,
    )
    address = f"127.0.0.1:{port}"
    subprocess.run([_ray_cli(), "start", "--address", address, *common], check=True, capture_output=True)
    return address


def stop_raylets(temp: Path) -> int:
    """SIGTERM, then SIGKILL, every process whose command line names ``temp`` (ours, by id)."""
    mine = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(temp).encode() in (entry / "cmdline").read_bytes():
                    mine.append(int(entry.name))
            except OSError:
                continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)
    return len(mine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--small", action="store_true", help="300 images")
    parser.add_argument("--skip-two-nodes", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="turns of each engine (default 2; the best counts)")
    parser.add_argument("--image-size", type=int, default=224, help="the backbone's input side (default 224)")
    args = parser.parse_args()
    n = 300 if args.small else args.images
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    print(f"# Ray engine vs local engine, {n} images, MobileNetV2 at {args.image_size} px\n")
    print(f"machine: {cpu_model()}, {usable_cores()} cores; commit {git_commit()}; load {load_average()}")
    import ray

    from headstart.data.tables import load_embeddings

    with tempfile.TemporaryDirectory(prefix="headstart-ray-bench-") as tmp:
        root = Path(tmp)
        make_folder(root / "images", n)
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False)
        runs: dict[str, list[tuple[float, object]]] = {"local": [], "ray": []}
        try:
            for i in range(args.repeats):
                for engine in ("local", "ray"):
                    runs[engine].append(
                        run(root / "images", root / f"{engine}{i}", root / f"c-{engine}{i}", engine,
                            image_size=args.image_size)
                    )  # fmt: skip
        finally:
            ray.shutdown()
        (local_s, local), (ray_s, on_ray) = (min(runs[e], key=lambda r: r[0]) for e in ("local", "ray"))
        same = all(
            np.array_equal(load_embeddings(local.tables["flatten"]).X, load_embeddings(r.tables["flatten"]).X)
            for _, r in runs["ray"]
        )
        section(f"Same images, one machine (the best of {args.repeats} turns each)")
        ratio = on_ray.stats.images_per_second / local.stats.images_per_second
        print(
            table(
                ["engine", "images", "loop s", "loop img/s", "embed() s", "embed() img/s", "every embed() s"],
                [
                    ["local", local.stats.computed, local.stats.wall_seconds, local.stats.images_per_second,
                     local_s, n / local_s, " ".join(f"{s:.1f}" for s, _ in runs["local"])],
                    ["ray (local cluster)", on_ray.stats.computed, on_ray.stats.wall_seconds,
                     on_ray.stats.images_per_second, ray_s, n / ray_s, " ".join(f"{s:.1f}" for s, _ in runs["ray"])],
                ],
            )
        )  # fmt: skip
        whole = local_s / ray_s
        note(
            f"ray / local throughput of the whole embed() call: {whole:.2f} (goal >= {GOAL}: "
            f"{verdict(whole >= GOAL)}); of the loop: {ratio:.2f}. Embeddings the same bits in every run: {same}. "
            f"The loop's wall time on Ray includes starting the actors (a process each, importing torch and "
            f"receiving the model) and their first work item: {on_ray.stats.plan}. Local: {local.stats.plan}. "
            "The rest of embed() (loading the backbone, the cache, writing the tables) is shared."
        )
        if args.skip_two_nodes:
            return
        temp = Path(tempfile.mkdtemp(prefix="hsray-", dir="/tmp"))
        try:
            address = start_two_raylets(temp)
            ray_s2, two = run(
                root / "images", root / "two", root / "c-two", "ray", address=address, image_size=args.image_size
            )
        finally:
            stopped = stop_raylets(temp)
        section("Two raylets on this machine (--num-cpus 1 each)")
        per_node = two.engine["rows_per_node"]
        print(table(["node", "rows"], [[node[:12], rows] for node, rows in per_node.items()]))
        note(
            f"{two.engine['nodes']} nodes, {two.engine['actors']} actors, {two.stats.computed} images in "
            f"{two.stats.wall_seconds:.1f} s ({two.stats.images_per_second:.1f} img/s; embed() {ray_s2:.1f} s). "
            f"Both raylets did work: {verdict(len(per_node) == 2 and min(per_node.values()) > 0)}. "
            f"Stopped {stopped} processes of this cluster by id."
        )


if __name__ == "__main__":
    main()
