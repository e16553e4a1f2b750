"""Nothing to do costs nearly nothing: ``headstart embed`` on a folder whose images are all in the cache.

A benchmark, not a test. It embeds a folder of small images once (filling the cache), then times the same
command again in fresh processes, as a user would run it, against a plain ``python -c "import headstart"``
measured in the same run. Run from the repository root::

    python benchmarks/noop.py                 # 1,000 images
    python benchmarks/noop.py --images 200    # a quick run

Goal: <= 1 s for 1,000 cached images (and the ratio to the bare import, which carries the machine's speed).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _engine import run_cli
from _images import describe_folder, small_folder
from _report import REPO, header, load_average, note, quiet, section, table, verdict

GOAL_SECONDS = 1.0


def bare_import() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import headstart"], cwd=REPO, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="images in the folder (default 1000)")
    parser.add_argument("--size", type=int, default=64, help="side of the images in px (default 64)")
    parser.add_argument(
        "--image-size", type=int, default=64, help="crop size, so filling the cache stays cheap (default 64)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed no-op runs, the best counts (default 3)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".headstart" / "bench")
    args = parser.parse_args()
    quiet()
    header("The no-op run: `headstart embed` with every image cached")
    root = small_folder(args.data_dir, args.images, args.size)
    note(f"Image folder: {describe_folder(root)}.")
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as tmp:
        out, cache = str(Path(tmp) / "out.parquet"), str(Path(tmp) / "cache")
        command = ["embed", str(root), "-o", out, "--cache-dir", cache, "--image-size", str(args.image_size)]
        first, _ = run_cli(command)
        runs = [run_cli(command) for _ in range(args.repeats)]
        imports = [bare_import() for _ in range(args.repeats)]
    best, stderr = min(runs)
    embedded = re.search(r"(\d+) from the cache, (\d+) embedded now", stderr)
    cached, computed = (int(embedded.group(1)), int(embedded.group(2))) if embedded else (0, -1)
    base = min(imports)
    section(
        f"`headstart embed` on {args.images} images of {args.size} px, mobilenet_v2 IMAGENET1K_V1 "
        f"at {args.image_size} px (the no-op run does not depend on it)"
    )
    print(
        table(
            ["run", "seconds (best of %d)" % args.repeats, "x `import headstart`"],
            [
                ("first run: embeds every image, fills the cache", first, first / base),
                (f"again: {cached} from the cache, {computed} embedded", best, best / base),
                ('python -c "import headstart"', base, 1.0),
            ],
        )
    )
    print()
    ok = best <= GOAL_SECONDS and computed == 0
    print(table(["goal", "measured", "target", ""], [("no-op run", f"{best:.2f} s", f"<= {GOAL_SECONDS} s", verdict(ok))]))
    note(
        "The no-op run still lists and hashes the folder (to know which images it holds), checks the cache and "
        "rewrites the table from it; it loads no model and imports neither torch nor torchvision. "
        f"Load average (1/5/15 min) at the end: {load_average()}."
    )


if __name__ == "__main__":
    main()
