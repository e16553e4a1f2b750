"""The first run, a no-op rerun and a head-only rerun of the default pipeline: ``dvc repro`` timed three ways.

A benchmark, not a test: it prints markdown tables with the goals and PASS/MISS and never fails on a slow
machine. Run it from the repository root (it runs the whole default pipeline once: minutes)::

    .venv/bin/python benchmarks/dvc_rerun.py
    .venv/bin/python benchmarks/dvc_rerun.py --quick   # digits limited to 300 images, 32 px (a few minutes)

The tracked files of this repository (``git ls-files``, working-tree versions; untracked files are not copied,
so commit new modules first) are copied into a temporary git repository; there ``dvc repro`` of the default
pipeline from scratch (no dvc.lock, empty DVC cache and embedding cache), a no-change ``dvc repro`` (three times,
the best counts), and
``dvc repro`` after ``heads.knn.k`` changes in params.yaml (the head-only rerun), whose output must show no
embed stage (``embed@...``, ``embed_*@...``). ``--quick`` shrinks the copy's params.yaml (``limit`` on every
dataset, a smaller ``image_size``) so the same question is answered in a few minutes.

Goals (from the issues, the default pipeline on the 2-core reference machine): the head-only ``dvc repro``
takes <= 10% of the full run's seconds, with no embed stage rerun; the no-op ``dvc repro`` takes <= 3 s; the first
run (install + this full ``dvc repro``) takes < 10 minutes. ``--keep DIR`` keeps the copy (its outputs, dvc.lock).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _report import REPO, footer, header, note, percent, section, table, verdict

GOAL_HEAD_ONLY_SHARE = 0.10
GOAL_NOOP_SECONDS = 3.0
GOAL_FIRST_RUN_SECONDS = 600.0
INSTALL_SECONDS = 180.0  # `make .venv` on a fresh clone, measured separately (README): added to the full run
VENV_BIN = Path(sys.executable).parent  # dvc from the same environment as this Python


@dataclass
class Repro:
    label: str
    seconds: float
    stages: list[str]


def copy_repository(dest: Path) -> int:
    """The working-tree version of every tracked file (and dvc.yaml, params.yaml) into ``dest``, a new git repo."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    names = sorted({n for n in listed.decode().split("\0") if n} | {"dvc.yaml", "params.yaml"})
    copied = 0
    for name in names:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as in the working tree
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied += 1
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return copied


def dvc_repro(workdir: Path, label: str) -> Repro:
    """Time ``dvc repro`` in ``workdir`` with the venv first on PATH; the stages it ran, from its output."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(VENV_BIN / "dvc"), "repro"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`dvc repro` ({label}) failed with exit status {done.returncode}:\n{done.stdout[-4000:]}")
    stages = re.findall(r"Running stage '([^']+)'", done.stdout)
    print(f"  {label}: {seconds:.1f} s, {len(stages)} stage(s) ran", flush=True)
    return Repro(label, seconds, stages)


def is_embed_stage(stage: str) -> bool:
    """``embed@<dataset>-<backbone>`` and any other embed stage (``embed_<something>@...``)."""
    return re.match(r"embed(_\w+)?@", stage) is not None


def change_knn_k(params: Path, new_k: int) -> str:
    """Set ``heads.knn.k`` in params.yaml in place (a one-line edit, comments kept); the old value."""
    lines = params.read_text().splitlines(keepends=True)
    block: list[str] = []  # the keys leading to this line, by indentation (two spaces a level)
    for number, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z_][\w-]*):(.*)$", line.rstrip("\n"))
        if key is None:
            continue
        depth = len(key.group(1)) // 2
        block = block[:depth] + [key.group(2)]
        if block == ["heads", "knn", "k"]:
            value = re.match(r"^\s*([^\s#\[{]+)", key.group(3))
            if value is None or value.end(1) < len(key.group(3)) and key.group(3)[value.end(1)] not in " \t#":
                raise RuntimeError(f"heads.knn.k in {params} is not a single value ({line.strip()!r})")
            if value.group(1) == str(new_k):
                raise RuntimeError(f"heads.knn.k is already {new_k} in {params}; pass another --dvc-k")
            start = len(key.group(1)) + len("k:") + value.start(1)
            lines[number] = line[:start] + str(new_k) + line[start + len(value.group(1)) :]
            params.write_text("".join(lines))
            return value.group(1)
    raise RuntimeError(f"no heads.knn.k line in {params}")


def run_dvc(args: argparse.Namespace) -> None:
    section("dvc repro: the full run, a no-op rerun and a head-only rerun of the default pipeline")
    with tempfile.TemporaryDirectory(prefix="headstart-bench-dvc-") as tmp:
        workdir = Path(tmp) if args.keep is None else args.keep
        workdir.mkdir(parents=True, exist_ok=True)
        copied = copy_repository(workdir)
        for lock in ("dvc.lock", "headstart-sources/dvc.lock"):  # from scratch: the stages' records go too
            (workdir / lock).unlink(missing_ok=True)
        if args.quick:
            shrink(workdir / "params.yaml")
        note(
            f"{copied} tracked files copied to {workdir} (a fresh git repository: no dvc.lock, empty DVC cache, "
            "empty embedding cache).\n"
        )
        full = dvc_repro(workdir, "full run")
        noop = min((dvc_repro(workdir, "no change") for _ in range(3)), key=lambda r: r.seconds)
        old_k = change_knn_k(workdir / "params.yaml", args.dvc_k)
        head_only = dvc_repro(workdir, f"heads.knn.k {old_k} -> {args.dvc_k}")
        if args.keep is not None:  # leave the copy as the default pipeline makes it
            change_knn_k(workdir / "params.yaml", old_k)
            dvc_repro(workdir, f"heads.knn.k back to {old_k}")
    if not any(stage.startswith("fit@") for stage in head_only.stages):
        raise RuntimeError(f"changing heads.knn.k reran no fit stage ({head_only.stages}); nothing was measured")
    embed_reruns = [s for s in head_only.stages if is_embed_stage(s)]
    print()
    print(
        table(
            ["dvc repro", "seconds", "share of full", "stages run", "embed stages run"],
            [
                (
                    r.label,
                    r.seconds,
                    percent(r.seconds / full.seconds),
                    len(r.stages),
                    ", ".join(s for s in r.stages if is_embed_stage(s)) or "none",
                )
                for r in (full, noop, head_only)
            ],
        )
    )
    note("\n".join(f"Stages of the {r.label} run: {', '.join(r.stages) or 'none'}." for r in (noop, head_only)))
    share = head_only.seconds / full.seconds
    print()
    print(
        table(
            ["goal", "measured", "verdict"],
            [
                (
                    f"head-only rerun <= {percent(GOAL_HEAD_ONLY_SHARE)} of the full run",
                    percent(share),
                    verdict(share <= GOAL_HEAD_ONLY_SHARE),
                ),
                ("no embed stage reran", ", ".join(embed_reruns) or "none reran", verdict(not embed_reruns)),
                (
                    f"no-op rerun <= {GOAL_NOOP_SECONDS:.0f} s (best of 3)",
                    f"{noop.seconds:.2f} s",
                    verdict(noop.seconds <= GOAL_NOOP_SECONDS),
                ),
                (
                    f"first run < {GOAL_FIRST_RUN_SECONDS / 60:.0f} min "
                    f"(install {INSTALL_SECONDS / 60:.0f} min + full run)",
                    f"{(INSTALL_SECONDS + full.seconds) / 60:.1f} min",
                    verdict(INSTALL_SECONDS + full.seconds < GOAL_FIRST_RUN_SECONDS),
                ),
            ],
        )
    )


def shrink(params: Path, limit: int = 300, image_size: int = 32) -> None:
    """``--quick``: every dataset limited to ``limit`` images, every backbone at ``image_size`` px or less."""
    import yaml

    config = yaml.safe_load(params.read_text())
    for dataset in config.get("datasets", {}).values():
        dataset["limit"] = limit
    for backbone in config.get("backbones", {}).values():
        if isinstance(backbone.get("image_size"), int):
            backbone["image_size"] = min(backbone["image_size"], image_size)
    for finetune_key in ("epochs",):
        if finetune_key in config.get("finetune", {}):
            config["finetune"][finetune_key] = 1
    params.write_text(yaml.safe_dump(config, sort_keys=False))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shrink the copy's params.yaml (300 images, 32 px)")
    parser.add_argument("--dvc-k", type=int, default=10, help="the new heads.knn.k of the head-only run (default 10)")
    parser.add_argument("--keep", type=Path, help="run in DIR and keep it (its outputs, dvc.lock), not in a temp dir")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    version = subprocess.run([str(VENV_BIN / "dvc"), "--version"], capture_output=True, text=True).stdout.strip()
    header("headstart benchmark: head-only dvc rerun", [("dvc", version or "not found"), ("quick", args.quick)])
    started = time.perf_counter()
    run_dvc(args)
    footer(started)


if __name__ == "__main__":
    main()
