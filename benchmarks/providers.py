"""Provider backbones through the engine against their forward-only ceiling, in the same run.

    python benchmarks/providers.py                 # 2,048 sentences, 256 images
    python benchmarks/providers.py --small         # 128 sentences, 32 images (a smoke run)

``text``    all-MiniLM-L6-v2 (the offline registry copy) on sentences of 4 to 60 words: sentences/s of
            ``embed()`` (decode, tokenise in length buckets, forward, cache) against the model's forward pass
            alone on the same batches already tokenised in memory (the ceiling). Goal: >= 0.85 of the ceiling.
``vision``  timm ``vit_small_patch14_dinov2`` with random weights (``pretrained=False``) at 224 px on PNG files:
            images/s of ``embed()`` against the forward pass alone on preprocessed tensors in memory.

Ceiling and engine runs alternate (ceiling, engine, ceiling, engine) and each keeps its best, so a machine whose
load drifts (a shared one) hits both alike. The sentences are made from the words of MiniLM's own vocabulary
(synthetic, not a real corpus): the throughput
depends on their token lengths, not on their meaning.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import cpu_model, git_commit, note, section, table, usable_cores, verdict  # noqa: E402
from headstart.features.engine import embed  # noqa: E402
from headstart.features.registry import load_backbone  # noqa: E402
from headstart.features.spec import BackboneSpec, EmbedOptions  # noqa: E402

GOAL = 0.85


def sentences(count: int, seed: int = 0) -> list[str]:
    from headstart.features.providers.text_weights import locate_model

    directory, _ = locate_model("all-MiniLM-L6-v2")
    words = [w for w in (directory / "vocab.txt").read_text().split() if w.isalpha() and len(w) > 2]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 60))) + "." for _ in range(count)]


def text_prepared(texts: list[str]) -> pd.DataFrame:
    from headstart.data.text import text_id

    frame = pd.DataFrame(
        {
            "id": [text_id(t) for t in texts],
            "label": "x",
            "split": "train",
            "path": None,
            "image": [t.encode() for t in texts],
        }
    )
    return frame.sort_values("id").reset_index(drop=True)


def ceiling(extractor: torch.nn.Module, batches: list, items: int, repeats: int = 2) -> float:
    """Items/s of the forward pass alone over ``batches`` already in memory (best of ``repeats``)."""
    best = float("inf")
    with torch.inference_mode():
        extractor(batches[0])
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches:
                extractor(batch)
            best = min(best, time.perf_counter() - start)
    return items / best


def alternate(top: Callable[[], float], run: Callable[[], tuple[float, float]], rounds: int = 2) -> tuple:
    """Best ceiling, best engine loop and best end-to-end rate over ``rounds`` alternating runs."""
    tops, loops, totals = [], [], []
    for _ in range(rounds):
        tops.append(top())
        loop, total = run()
        loops.append(loop)
        totals.append(total)
    return max(tops), max(loops), max(totals)


def engine(prepared: pd.DataFrame, spec: BackboneSpec, options: EmbedOptions) -> tuple[float, float]:
    """(loop items/s, end-to-end items/s incl. loading the model and writing the table) of one fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = embed(prepared, spec, single_file=Path(tmp) / "e.parquet", options=options)
        total = time.perf_counter() - start
    return result.stats.images_per_second, len(prepared) / total


def run_text(count: int, batch: int) -> list:
    spec = BackboneSpec("sentence-transformers:all-MiniLM-L6-v2", "pretrained")
    prepared = text_prepared(sentences(count))
    options = EmbedOptions(batch_size=batch, num_workers=0, cache_dir=None)
    backbone = load_backbone(spec)
    from headstart.features.reader import Item

    items = [Item(i, None, b) for i, b in zip(prepared["id"], prepared["image"])]
    loader, _ = backbone.feed(items, torch.device("cpu"), batch, 0, 0, None)
    batches = [b.pixels for b in loader if b.pixels is not None]
    extractor = backbone.extractor(("default",), ("avg",)).eval()
    top, loop, total = alternate(
        lambda: ceiling(extractor, batches, count, repeats=1), lambda: engine(prepared, spec, options)
    )
    row = ["all-MiniLM-L6-v2, text", count, batch, top, loop, loop / top, total, total / top]
    return row + [verdict(loop / top >= GOAL)]


def run_vision(count: int, batch: int) -> list:
    from PIL import Image
    from sklearn.datasets import load_digits

    spec = BackboneSpec("timm:vit_small_patch14_dinov2", "none", image_size=224)
    backbone = load_backbone(spec)
    digits = load_digits()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(count):
            pixels = np.rint(digits.images[i % len(digits.images)] * 255 / 16).astype(np.uint8)
            path = Path(tmp) / f"{i:05d}.png"
            Image.fromarray(pixels).resize((256, 256)).convert("RGB").save(path)
            paths.append(str(path))
        from headstart.data.hashing import file_id

        prepared = pd.DataFrame(
            {"id": [file_id(p) for p in paths], "label": "x", "split": "train", "path": paths, "image": None}
        ).sort_values("id").reset_index(drop=True)
        tensors = torch.stack([backbone.transform(Image.open(p).convert("RGB")) for p in paths[:batch]])
        extractor = backbone.extractor(("default",), ("avg",)).eval()
        batches = [tensors.contiguous(memory_format=torch.channels_last)] * (count // batch)
        options = EmbedOptions(batch_size=batch, cache_dir=None)
        top, loop, total = alternate(
            lambda: ceiling(extractor, batches, batch * (count // batch), repeats=1),
            lambda: engine(prepared, spec, options),
        )
    row = ["vit_small_patch14_dinov2 (random init), 224 px", count, batch, top, loop, loop / top, total]
    return row + [total / top, verdict(loop / top >= GOAL)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a smoke run: 128 sentences, 32 images")
    parser.add_argument("--sections", default="text,vision")
    parser.add_argument("--batch", type=int, default=16, help="batch size of both (the engine's CPU default)")
    args = parser.parse_args()
    print(f"# Providers: engine vs forward-only ceiling\n\n{cpu_model()}, {usable_cores()} usable cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, commit {git_commit()}")
    rows = []
    if "text" in args.sections:
        rows.append(run_text(128 if args.small else 2048, args.batch))
    if "vision" in args.sections:
        rows.append(run_vision(32 if args.small else 256, args.batch))
    section("Throughput (items/s)")
    print(table(["backbone", "items", "batch", "ceiling", "engine loop", "loop/ceiling", "end to end", "e2e/ceiling",
                 f">= {GOAL}"], rows))
    note("ceiling: the forward pass alone on the same batches in memory; engine loop: embed()'s forward loop "
         "(decode/tokenise, forward, cache writes); end to end: the whole embed() call incl. loading the model "
         "and writing the table.")


if __name__ == "__main__":
    main()
