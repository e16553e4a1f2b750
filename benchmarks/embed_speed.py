"""How close does ``headstart embed`` come to the forward pass alone, on small images?

A benchmark, not a test: it prints markdown tables with PASS/MISS against the goals and never fails on a slow
machine. Run it from the repository root on a quiet machine (``--images 300 --cli-images 300`` for a quick run)::

    python benchmarks/embed_speed.py

(a) the img2vec way: per image, PIL open -> RGB -> the weights' transform -> ``model(x[None])``;
(b) the ceiling: the forward pass alone on one batch of tensors already in memory (the engine's batch size),
    through the same truncated, channels-last model the engine runs, at every thread plan this machine allows
    (one pass at 1..cores threads, or 2..cores passes side by side at one thread each): the best of them;
(c) ``headstart.features.engine.embed`` on the folder with a fresh cache (and the other worker choice, for
    comparison);
(d) the whole command as a user times it: ``headstart embed FOLDER -o OUT.parquet`` in a fresh process on a fresh
    folder and cache, start-up, model load, preparing and writing the table included.

Goals (mobilenet_v2 IMAGENET1K_V1, fp32, 224 px, CPU): (c) >= 95% of (b), (d) >= 85% of (b), (c) >= 3x (a).
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _engine import channels_last_extractor, engine_batch, load_batch, mobilenet_spec, run_cli, run_engine
from _images import describe_folder, folder_files, small_folder
from _report import REPO, header, load_average, note, quiet, section, table, verdict

GOAL_ENGINE = 0.95
GOAL_COMMAND = 0.85
GOAL_NAIVE = 3.0


def run_naive(files: list[Path], count: int) -> dict[str, float]:
    """(a) img2vec: one image at a time, PIL open -> RGB -> transform -> full model(x[None]), fp32."""
    import torch
    from PIL import Image

    from headstart.features.registry import load_backbone

    backbone = load_backbone(mobilenet_spec())
    model, transform = backbone.model, backbone.transform

    def one(path: Path) -> Any:
        with Image.open(path) as image:
            return model(transform(image.convert("RGB"))[None])

    with torch.inference_mode():
        one(files[0])
        start = time.perf_counter()
        for path in files[:count]:
            one(path).numpy()
        seconds = time.perf_counter() - start
    return {"images": min(count, len(files)), "seconds": seconds, "ips": min(count, len(files)) / seconds}


def forward_rate(forward: Any, batch: Any, images: int, workers: int, threads: int) -> float:
    """Images/s of ``forward`` on ``batch`` repeated: ``workers`` passes side by side at ``threads`` threads each."""
    import torch

    def init() -> None:
        torch.set_num_threads(threads)

    init()
    forward(batch)  # warm-up: oneDNN primitives, allocator
    batches = max(workers, -(-images // len(batch)))
    start = time.perf_counter()
    with ThreadPoolExecutor(workers, initializer=init) as pool:
        list(pool.map(lambda _: forward(batch), range(batches)))
    return batches * len(batch) / (time.perf_counter() - start)


def ceiling(files: list[Path], images: int, batch: int) -> dict[str, Any]:
    """(b) the best forward-only rate over every thread plan, with the plan that gave it."""
    import torch

    from headstart.features.forward import Forward, torch_threads
    from headstart.features.reader import cpu_cores
    from headstart.features.registry import load_backbone

    backbone = load_backbone(mobilenet_spec())
    extractor = channels_last_extractor(backbone)
    forward = Forward(extractor, {k: str(k) for k in extractor(load_batch(files, backbone.transform, 1))},
                      torch.device("cpu"), "fp32", batch)
    pixels = load_batch(files, backbone.transform, batch)
    cores, threads = cpu_cores(), torch_threads()
    plans = [(1, t) for t in range(1, cores + 1)] + [(w, 1) for w in range(2, cores + 1)]
    try:
        rates = {plan: forward_rate(forward, pixels, images, *plan) for plan in plans}
    finally:
        torch_threads(threads)
    (workers, per), best = max(rates.items(), key=lambda kv: kv[1])
    plan = f"{workers} pass{'es' if workers > 1 else ''} at {per} thread{'s' if per > 1 else ''}"
    return {"images": images, "seconds": images / best, "ips": best, "plan": plan, "rates": rates}


def run_command(root: Path, scratch: Path) -> dict[str, Any]:
    """(d) ``headstart embed`` in a fresh process, fresh cache; its images/s over the whole wall time."""
    out, cache = scratch / "cli.parquet", scratch / "cli-cache"
    seconds, stderr = run_cli(["embed", str(root), "-o", str(out), "--cache-dir", str(cache)])
    images = int(re.search(r"(\d+) embedded now", stderr).group(1)) if "embedded now" in stderr else 0
    plan = re.search(r"CPU s; (.*)", stderr)
    return {"images": images, "seconds": seconds, "ips": images / seconds, "plan": plan.group(1) if plan else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the folder of (c) (default 2000)")
    parser.add_argument("--size", type=int, default=256, help="side of the images of (c) in px (default 256)")
    parser.add_argument("--naive-images", type=int, default=300, help="images timed in (a) (default 300)")
    parser.add_argument("--ceiling-images", type=int, default=1024, help="images timed in (b) (default 1024)")
    parser.add_argument("--cli-images", type=int, default=1500, help="fresh 224 px images of (d) (default 1500)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".headstart" / "bench")
    args = parser.parse_args()
    quiet()
    batch = engine_batch()
    header("How close does `headstart embed` come to the forward pass alone?", [("engine batch", batch)])
    root = small_folder(args.data_dir, args.images, args.size)
    fresh_parent = Path(tempfile.mkdtemp(dir=args.data_dir, prefix="fresh-"))
    try:
        fresh = small_folder(fresh_parent, args.cli_images, 224, tag="-fresh")
        files = folder_files(root)
        note(f"Image folder of (a)-(c): {describe_folder(root)}.\nFresh folder of (d): {describe_folder(fresh)}.")
        with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as tmp:
            scratch = Path(tmp)
            naive = run_naive(files, args.naive_images)
            top = ceiling(files, args.ceiling_images, batch)
            engine = run_engine(root, scratch, batch)
            other = 1 if "decoding in line" in engine["plan"] else 0
            forced = run_engine(root, scratch, batch, workers=other)
            command = run_command(fresh, scratch)
    finally:
        shutil.rmtree(fresh_parent, ignore_errors=True)
    report(naive, top, engine, forced, command, other, batch)
    note(f"Load average (1/5/15 min) at the end: {load_average()}.")


def report(naive: dict, top: dict, engine: dict, forced: dict, command: dict, other: int, batch: int) -> None:
    section("Throughput: mobilenet_v2 IMAGENET1K_V1, fp32, 224 px, CPU")
    rows = [
        ("(a) naive per-image loop (img2vec)", naive["images"], naive["seconds"], naive["ips"]),
        (f"(b) forward pass alone, batch {batch} in memory, {top['plan']} (ceiling)", top["images"], top["seconds"],
         top["ips"]),
        ("(c) headstart embed, num_workers: auto (forward loop wall)", engine["computed"], engine["wall"], engine["ips"]),
        (f"(c') the same with num_workers: {other} forced", forced["computed"], forced["wall"], forced["ips"]),
        ("(d) `headstart embed FOLDER -o OUT` as a user times it", command["images"], command["seconds"], command["ips"]),
    ]
    print(table(["what", "images", "seconds", "images/s"], rows))
    print()
    goals = [
        ("(c) / (b)", engine["ips"] / top["ips"], GOAL_ENGINE),
        ("(d) / (b)", command["ips"] / top["ips"], GOAL_COMMAND),
        ("(c) / (a)", engine["ips"] / naive["ips"], GOAL_NAIVE),
    ]
    print(
        table(
            ["ratio", "measured", "goal", ""],
            [(n, f"{v:.2f}", f">= {g:.2f}", verdict(v >= g)) for n, v, g in goals],
        )
    )
    rates = ", ".join(f"{w}x{t}: {r:.0f}" for (w, t), r in top["rates"].items())
    note(f"(b) at every plan (passes x threads: images/s): {rates}.")
    note("(c), the engine's own account:\n")
    print("    " + engine["summary"].replace("\n", "\n    "))
    note(f"(c') with num_workers: {other}:\n")
    print("    " + forced["summary"].replace("\n", "\n    "))
    note(f"(d) chose: {command['plan'] or 'see its summary'}.")


if __name__ == "__main__":
    main()
