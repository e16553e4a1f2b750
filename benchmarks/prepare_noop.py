"""Does a second `prepare` re-read anything? A folder of many small files, prepared twice with the stat cache.

A benchmark, not a test: it prints a markdown table and never fails. Run it from the repository root::

    python benchmarks/prepare_noop.py                    # 100,000 files in 100 class folders (a few minutes)
    python benchmarks/prepare_noop.py --files 5000       # a quick smoke run

It writes ``--files`` tiny distinct PNG-named files (64 bytes each: ``prepare`` hashes bytes, it does not decode)
into a temporary folder, ages their mtimes out of the racy window, then times ``prepare_dataset`` three times
with one stat cache: cold (every file read), no-op (goal: 0 files read) and after editing one file (goal: 1).
Reads are counted by wrapping the hash function that ``prepare`` calls for every file it opens. Then the DVC
stage itself (``python -m headstart.pipeline.prepare``, a fresh process as DVC starts it) twice on the same
folder: the second run is a no-op that its memo answers from stats alone (no pandas, no hashing). Last, the
`versions` stage that `dvc repro` runs every time, twice: it lists the folder's files by name and content (from
the stat cache `prepare` filled), then, unchanged, from stats alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import headstart.data.prepare as prepare_module  # noqa: E402
from benchmarks._report import table, verdict  # noqa: E402
from headstart.data.hashing import file_id  # noqa: E402


def make_folder(root: Path, files: int, classes: int) -> None:
    past = time.time_ns() - 3600 * 10**9
    for i in range(files):
        folder = root / f"class_{i % classes:03d}"
        if i < classes:
            folder.mkdir(parents=True)
        path = folder / f"img_{i:07d}.png"
        path.write_bytes(i.to_bytes(8, "little") * 8)
        os.utime(path, ns=(past, past))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=100)
    args = parser.parse_args()
    reads = [0]

    def counting(path: str) -> str:
        reads[0] += 1
        return file_id(path)

    prepare_module.file_id = counting  # type: ignore[assignment]
    rows = []
    with tempfile.TemporaryDirectory(prefix="headstart-noop-") as tmp:
        root = Path(tmp) / "images"
        start = time.perf_counter()
        make_folder(root, args.files, args.classes)
        print(f"wrote {args.files:,} files in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        cache = Path(tmp) / "stat.sqlite"
        edited = root / "class_000" / "img_0000000.png"
        for run, goal in (("cold", args.files), ("no-op", 0), ("one file edited", 1)):
            if run == "one file edited":
                edited.write_bytes(b"edited" * 20)
                os.utime(edited, ns=(time.time_ns() - 60 * 10**9,) * 2)
            reads[0] = 0
            start = time.perf_counter()
            frame = prepare_module.prepare_dataset(str(root), name="noop", stat_cache=cache)
            seconds = time.perf_counter() - start
            rows.append([run, len(frame), reads[0], goal, verdict(reads[0] == goal), seconds])
        work = Path(tmp) / "repo"
        work.mkdir()
        (work / "params.yaml").write_text(
            f"datasets:\n  noop:\n    source: {root}\nbackbones:\n  px: {{arch: pixels}}\nheads:\n  ncm: {{}}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

        def stage(*argv: str) -> tuple[float, str]:
            """``python -m ARGV`` in the work folder, a fresh process as DVC starts it: its seconds and stderr."""
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", *argv], cwd=work, env=env, capture_output=True, text=True,
                                  check=True)  # fmt: skip
            return time.perf_counter() - start, done.stderr

        for run in ("stage, first run", "stage, no-op"):
            seconds, stderr = stage("headstart.pipeline.prepare", "noop")
            skipped = "left as it is" in stderr
            rows.append([run, args.files, "0 (memo)" if skipped else "(stat cache)", "", "", seconds])
        # the `versions` stage, which `dvc repro` runs every time: the dataset's files by name and content
        for run in ("versions stage, first run", "versions stage, no-op"):
            seconds, _ = stage("headstart.pipeline.versions", "v.json", "--sources", "sources")
            rows.append([run, args.files, "(not counted)", "", "", seconds])
        # the same listing in this process, reads counted: from the stage's stat cache, then from stats alone
        import headstart.data.hashing as hashing
        from headstart.data.contents import source_contents

        hashing.file_id = counting  # type: ignore[assignment]
        for run in ("versions listing, first run (in process)", "versions listing, no-op (in process)"):
            reads[0] = 0
            start = time.perf_counter()
            source_contents("noop", str(root), stat_cache=work / ".headstart/stat.sqlite", memo_dir=work / "memo")
            seconds = time.perf_counter() - start
            rows.append([run, args.files, reads[0], 0, verdict(reads[0] == 0), seconds])
    print(table(["prepare run", "files", "files read", "goal", "", "seconds"], rows))


if __name__ == "__main__":
    main()
