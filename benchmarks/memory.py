"""Does memory stay flat as the dataset grows? Peak RSS of ``embed`` in a fresh process, small vs large folder.

A benchmark, not a test. Run from the repository root: ``python benchmarks/memory.py``
(``--small 500 --large 2000`` for a quick run).

Goal: peak RSS of the main process grows <= 10% from 2,000 to 20,000 images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _engine import engine_batch, mobilenet_spec, prepare
from _images import small_folder
from _report import (
    REPO,
    current_rss,
    header,
    load_average,
    mib,
    note,
    peak_rss,
    peak_rss_children,
    quiet,
    section,
    table,
    verdict,
)

BATCH = engine_batch()
GOAL_RSS_GROWTH = 0.10


def memory_child(spec_json: str) -> None:
    """Run in a fresh process: prepare + embed one folder, print peak RSS figures as JSON on the last line."""
    import logging

    from headstart.features.embed import EmbedOptions, embed

    logging.basicConfig(level=logging.WARNING)
    job = json.loads(spec_json)
    base = current_rss()
    prepared, prepare_seconds = prepare(Path(job["root"]), "bench-memory")
    before = current_rss()
    with tempfile.TemporaryDirectory(dir=job["scratch"], prefix="memory-") as tmp:
        start = time.perf_counter()
        result = embed(
            prepared,
            mobilenet_spec(image_size=job["image_size"]),
            Path(tmp) / "out",
            dataset={"name": "bench-memory"},
            options=EmbedOptions(batch_size=BATCH, cache_dir=Path(tmp) / "cache"),
        )
        seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "images": len(prepared),
                "computed": result.stats.computed,
                "seconds": seconds,
                "prepare_seconds": prepare_seconds,
                "rss_at_start": base,
                "rss_before_embed": before,
                "peak_self": peak_rss(),
                "peak_workers": peak_rss_children(),
                "ips": result.stats.images_per_second,
            }
        )
    )


def run_memory(data_dir: Path, scratch: Path, counts: Sequence[int], size: int, image_size: int) -> list[dict]:
    rows = []
    for count in counts:
        root = small_folder(data_dir, count, size)
        job = json.dumps({"root": str(root), "scratch": str(scratch), "image_size": image_size})
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", job],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
            raise RuntimeError(f"the memory run on {count} images failed (exit {proc.returncode})")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def report_memory(rows: list[dict], image_size: int) -> None:
    section(f"Memory: peak RSS of `embed` in a fresh process (mobilenet_v2 fp32, {image_size} px, batch {BATCH})")
    print(
        table(
            [
                "images",
                "embed s",
                "images/s",
                "RSS after imports (MiB)",
                "RSS before embed (MiB)",
                "peak RSS, main (MiB)",
                "peak RSS, largest worker (MiB)",
            ],
            [
                (
                    r["images"],
                    r["seconds"],
                    r["ips"],
                    mib(r["rss_at_start"]),
                    mib(r["rss_before_embed"]),
                    mib(r["peak_self"]),
                    mib(r["peak_workers"]),
                )
                for r in rows
            ],
        )
    )
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        growth = large["peak_self"] / small["peak_self"] - 1
        workers = large["peak_workers"] / small["peak_workers"] - 1 if small["peak_workers"] else float("nan")
        print()
        print(
            table(
                ["growth", "measured", "goal", ""],
                [
                    (
                        f"peak RSS, main, {small['images']} -> {large['images']} images",
                        f"{growth:+.1%}",
                        f"<= {GOAL_RSS_GROWTH:.0%}",
                        verdict(growth <= GOAL_RSS_GROWTH),
                    ),
                    (
                        f"peak RSS, largest worker, {small['images']} -> {large['images']} images",
                        f"{workers:+.1%}",
                        "(information)",
                        "",
                    ),
                ],
            )
        )
    note(
        f"Each run: a fresh Python process that prepares the folder (listing + hashing) and embeds it with a fresh "
        f"cache and default workers. The memory runs use {image_size} px crops to stay affordable on 2 cores (the "
        "decoded files are the same size as above); what matters is that RSS does not grow with the number of "
        "images. 'main' is the peak RSS (VmHWM) of that process (torch, model, prepared table, cache index, "
        "table assembly); 'worker' is ru_maxrss of its largest DataLoader worker (RUSAGE_CHILDREN; it counts "
        "the pages it shares with the main process since the fork)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000, help="images of the small run (default 2000)")
    parser.add_argument("--large", type=int, default=20000, help="images of the large run (default 20000)")
    parser.add_argument("--size", type=int, default=256, help="side of the generated images (default 256)")
    parser.add_argument("--image-size", type=int, default=64, help="crop size, to stay affordable (default 64)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".headstart" / "bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(args.child)
        return
    quiet()
    header("Memory: peak RSS of `embed` as the dataset grows", [("engine batch", BATCH)])
    counts = sorted({args.small, args.large})
    for count in sorted(counts, reverse=True):  # make the folders before torch starts threads (the generator forks)
        small_folder(args.data_dir, count, args.size)
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as tmp:
        report_memory(run_memory(args.data_dir, Path(tmp), counts, args.size, args.image_size), args.image_size)
    note(f"Load average (1/5/15 min) at the end: {load_average()}.")


if __name__ == "__main__":
    main()
