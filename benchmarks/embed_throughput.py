"""How fast does ``headstart embed`` go, what does bf16 buy, does memory stay flat, how fast do tables load?

A benchmark, not a test: it prints markdown tables with PASS/MISS against the goals and never fails on a
slow machine. Run it from the repository root on a quiet machine::

    .venv/bin/python benchmarks/embed_throughput.py                       # everything
    .venv/bin/python benchmarks/embed_throughput.py --sections naive,ceiling,engine
    .venv/bin/python benchmarks/embed_throughput.py --sections load --load-rows 50000
    .venv/bin/python benchmarks/embed_throughput.py --images 200 --naive-images 40 \\
        --sections naive,ceiling,engine,bf16,accuracy --bf16-images 128      # a quick smoke run

Sections (``--sections``, comma-separated; default all):

``naive``     (a) the img2vec way: per image, PIL open -> RGB -> the weights' transform -> ``model(x[None])``.
``ceiling``   (b) the forward pass alone, on one batch of tensors already in memory (the engine's batch
              size), through the same
              truncated model the engine runs (channels-last, inference mode): the most (c) can reach.
``engine``    (c) ``headstart.features.engine.embed`` on the image folder, with a fresh cache.
``bf16``      forward-only images/s in fp32 and bf16 (autocast) for mobilenet_v2 and resnet18 (random weights).
``accuracy``  logistic-regression test accuracy on digits from fp32 and from bf16 embeddings.
``memory``    peak RSS of ``embed`` in a fresh process for ``--mem-small`` and ``--mem-large`` images.
``load``      ``headstart.load_embeddings`` on a 50,000 x 2,048 float32 table, against np.load and pandas.

The image folder is made from Fashion-MNIST (the IDX files in /usr/share/datasets/fashion-mnist): each 28x28
garment is upscaled to ``--size`` px (256 by default), coloured and composited at a random place and scale on a
noisy colour gradient, so files are neither tiny nor trivially compressible; 3 in 4 are JPEG (quality 90) and
1 in 4 PNG. Files are generated once into ``--data-dir`` (default ``.headstart/bench``, git-ignored) and reused;
each folder of N images (``root/<class>/<file>``) is made of hard links to the first N generated files.

Goals (from the issue; mobilenet_v2 IMAGENET1K_V1, fp32, 224 px, on the 2-core reference machine):
(c) >= 85% of (b) and >= 3x (a); bf16 accuracy within 0.5 points of fp32; peak RSS grows <= 10% from 2,000
to 20,000 images; ``load_embeddings`` of 50,000 x 2,048 float32 in < 1.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from _report import cpu_flags, cpu_model, git_commit, mib, note, section, table, usable_cores, verdict

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("naive", "ceiling", "engine", "bf16", "accuracy", "memory", "load")
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
FMNIST_LABEL_FILES = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FMNIST_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def _engine_batch() -> int:
    """The batch size the engine itself picks on this machine (``batch_size: auto``)."""
    import torch

    from headstart.features.engine import EmbedOptions

    return EmbedOptions().batch_size_for(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


BATCH = _engine_batch()

GOAL_ENGINE_VS_CEILING = 0.85
GOAL_ENGINE_VS_NAIVE = 3.0
GOAL_BF16_POINTS = 0.5
GOAL_RSS_GROWTH = 0.10
GOAL_LOAD_SECONDS = 1.5


# ---- output ---------------------------------------------------------------------------------------------

# ---- the machine ---------------------------------------------------------------------------------------


def print_header(args: argparse.Namespace) -> None:
    import PIL
    import torch
    import torchvision

    import headstart

    print("# headstart embedding benchmark\n")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("CPU", cpu_model()),
        ("cores (usable / logical)", f"{usable_cores()} / {os.cpu_count()}"),
        ("CPU flags", cpu_flags()),
        ("torch threads", torch.get_num_threads()),
        ("load average (1/5/15 min) at start", load),
        ("python", platform.python_version()),
        ("torch / torchvision", f"{torch.__version__} / {torchvision.__version__}"),
        ("pillow / numpy", f"{PIL.__version__} / {np.__version__}"),
        ("headstart", f"{headstart.__version__} ({git_commit()})"),
        ("sections", ", ".join(args.sections)),
    ]
    print(table(["", ""], rows))
    busy = os.getloadavg()[0]
    print(
        "\nThe load average should be near 0 for the figures to mean anything"
        + (
            f"; it is {busy:.1f} on {usable_cores()} cores: WARNING, these figures are not reference figures."
            if busy > 0.5
            else "."
        ),
        flush=True,
    )


# ---- timing and memory -----------------------------------------------------------------------------------


def best_of(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _status_kib(field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def current_rss() -> int:
    """This process's resident set size now, in bytes (Linux: VmRSS)."""
    return _status_kib("VmRSS")


def peak_rss() -> int:
    """This process's peak resident set size, in bytes (Linux: VmHWM).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's RSS across fork + exec into it, so a
    fresh child of a big parent would report the parent's size.
    """
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_children() -> int:
    """Peak RSS of the largest waited-for child, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


# ---- the image folder ------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST format, gzip) as a numpy array."""
    with gzip.open(path, "rb") as handle:
        magic = struct.unpack(">I", handle.read(4))[0]
        dims = magic & 0xFF
        shape = struct.unpack(">" + "I" * dims, handle.read(4 * dims))
        return np.frombuffer(handle.read(), dtype=np.uint8).reshape(shape)


def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 Fashion-MNIST images (train then test) and their labels."""
    missing = [f for f in FMNIST_FILES + FMNIST_LABEL_FILES if not (FMNIST_DIR / f).is_file()]
    if missing:
        sys.exit(
            f"Fashion-MNIST IDX files {missing} are not in {FMNIST_DIR}; the benchmark builds its image "
            "folder from them"
        )
    images = np.concatenate([read_idx(FMNIST_DIR / f) for f in FMNIST_FILES])
    labels = np.concatenate([read_idx(FMNIST_DIR / f) for f in FMNIST_LABEL_FILES])
    return images, labels


def file_name(index: int) -> str:
    return f"{index:06d}.png" if index % 4 == 3 else f"{index:06d}.jpg"


def render(garment: np.ndarray, index: int, size: int) -> Any:
    """One RGB image: the garment, coloured, at a random place and scale on a noisy colour gradient."""
    from PIL import Image

    rng = np.random.default_rng(index)
    # background: a gradient between two random colours, plus grain
    top, bottom = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    angle = rng.integers(0, 4)
    background = np.broadcast_to(top + (bottom - top) * ramp, (size, size, 3))
    background = np.rot90(background, k=angle)
    # the garment: upscaled, at 55-100% of the side, somewhere in the frame
    side = int(size * rng.uniform(0.55, 1.0))
    mask = np.asarray(Image.fromarray(garment).resize((side, side), Image.BICUBIC), dtype=np.float32) / 255.0
    y, x = rng.integers(0, size - side + 1, size=2)
    alpha = np.zeros((size, size, 1), np.float32)
    alpha[y : y + side, x : x + side, 0] = np.clip(mask * 1.4, 0.0, 1.0)
    colour = rng.uniform(0, 255, size=3).astype(np.float32)
    shade = np.zeros((size, size, 1), np.float32)
    shade[y : y + side, x : x + side, 0] = mask
    foreground = colour * (0.35 + 0.65 * shade)
    pixels = background * (1.0 - alpha) + foreground * alpha
    pixels += rng.normal(0.0, 6.0, size=(size, size, 3)).astype(np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), mode="RGB")


def _render_job(job: tuple[np.ndarray, int, int, str]) -> int:
    garment, index, size, target = job
    image = render(garment, index, size)
    tmp = f"{target}.{os.getpid()}.tmp"
    if target.endswith(".png"):
        image.save(tmp, format="PNG", compress_level=6)
    else:
        image.save(tmp, format="JPEG", quality=90)
    os.replace(tmp, target)
    return os.path.getsize(target)


def ensure_pool(data_dir: Path, count: int, size: int) -> Path:
    """Generate (once) the first ``count`` images of the pool; returns the pool directory."""
    pool_dir = data_dir / f"fashion-mnist-{size}px" / "pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in range(count) if not (pool_dir / file_name(i)).is_file()]
    if not todo:
        return pool_dir
    images, _ = fashion_mnist()
    if count > len(images):
        sys.exit(f"at most {len(images)} images can be made from Fashion-MNIST, asked for {count}")
    print(f"generating {len(todo)} images of {size}x{size} px in {pool_dir} ...", end=" ", flush=True)
    start = time.perf_counter()
    jobs = [(images[i], i, size, str(pool_dir / file_name(i))) for i in todo]
    with Pool(max(1, usable_cores())) as pool:
        sizes = list(pool.imap_unordered(_render_job, jobs, chunksize=64))
    print(
        f"{time.perf_counter() - start:.1f} s, {mib(sum(sizes)) / len(sizes) * 1024:.0f} KiB per file on average",
        flush=True,
    )
    return pool_dir


def ensure_folder(data_dir: Path, count: int, size: int) -> Path:
    """An image folder ``root/<class>/<file>`` of the first ``count`` pool images (hard links, made once)."""
    root = data_dir / f"fashion-mnist-{size}px" / f"n{count}"
    marker = root.with_name(root.name + ".complete")
    if marker.is_file() and root.is_dir():
        return root
    pool_dir = ensure_pool(data_dir, count, size)
    _, labels = fashion_mnist()
    if root.exists():
        shutil.rmtree(root)
    for name in FMNIST_CLASSES:
        (root / name).mkdir(parents=True)
    for i in range(count):
        source, target = pool_dir / file_name(i), root / FMNIST_CLASSES[labels[i]] / file_name(i)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    marker.write_text(json.dumps({"images": count, "size": size}))
    return root


def folder_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.suffix in (".jpg", ".png"))


def describe_folder(root: Path) -> str:
    files = folder_files(root)
    sizes = [p.stat().st_size for p in files]
    jpg = sum(p.suffix == ".jpg" for p in files)
    from PIL import Image

    with Image.open(files[0]) as first:
        width, height = first.size
    return (
        f"{len(files)} files in {root} ({jpg} JPEG, {len(files) - jpg} PNG, {width}x{height} px, "
        f"{mib(sum(sizes)):.0f} MiB, {sum(sizes) / len(sizes) / 1024:.0f} KiB per file)"
    )


def prepare(root: Path, name: str) -> tuple[Any, float]:
    from headstart.data import prepare_dataset

    start = time.perf_counter()
    prepared = prepare_dataset(str(root), name=name, val=0.15, test=0.30, seed=0)
    return prepared, time.perf_counter() - start


# ---- models ----------------------------------------------------------------------------------------------


def mobilenet_spec(
    precision: str = "fp32", image_size: int | None = None, layers: tuple[str, ...] = ("default",)
) -> Any:
    from headstart.features.registry import BackboneSpec

    return BackboneSpec("mobilenet_v2", "IMAGENET1K_V1", layers=layers, image_size=image_size, precision=precision)


def channels_last_extractor(backbone: Any) -> Any:
    """The truncated model the engine runs, set up as the engine sets it up."""
    import torch

    extractor = backbone.extractor(backbone.spec.layers, backbone.spec.poolings).eval()
    return extractor.to(memory_format=torch.channels_last)


def load_batch(files: Sequence[Path], transform: Callable[[Any], Any], n: int = BATCH) -> Any:
    """The first ``n`` files, decoded and transformed, stacked into one tensor."""
    import torch

    from headstart.data.images import decode_image

    return torch.stack([transform(decode_image(str(p))) for p in files[:n]])


def forward_throughput(extractor: Any, batch: Any, images: int, precision: str) -> dict[str, float]:
    """Images/s of the forward pass alone on ``batch`` (already in memory), after one warm-up batch."""
    import torch

    from headstart.features.runner import autocast

    device = torch.device("cpu")
    pixels = batch.contiguous(memory_format=torch.channels_last)
    batches = max(1, -(-images // len(pixels)))
    with torch.inference_mode():
        with autocast(device, precision):
            extractor(pixels)  # warm-up: oneDNN primitives, allocator
        start = time.perf_counter()
        for _ in range(batches):
            with autocast(device, precision):
                outputs = extractor(pixels)
            for value in outputs.values():
                value.float().numpy()
        seconds = time.perf_counter() - start
    done = batches * len(pixels)
    return {"images": done, "seconds": seconds, "ips": done / seconds}


# ---- (a) naive, (b) ceiling, (c) engine --------------------------------------------------------------------


def run_naive(files: Sequence[Path], count: int) -> dict[str, float]:
    """(a) img2vec: one image at a time, PIL open -> RGB -> transform -> full model(x[None]), fp32."""
    import torch
    from PIL import Image

    from headstart.features.registry import load_backbone

    backbone = load_backbone(mobilenet_spec())
    model, transform = backbone.model, backbone.transform
    subset = list(files[:count])

    def one(path: Path) -> Any:
        with Image.open(path) as image:
            x = transform(image.convert("RGB"))
        return model(x[None])

    with torch.inference_mode():
        one(subset[0])  # warm-up
        start = time.perf_counter()
        for path in subset:
            one(path).numpy()
        seconds = time.perf_counter() - start
    return {"images": len(subset), "seconds": seconds, "ips": len(subset) / seconds}


def run_ceiling(files: Sequence[Path], images: int) -> dict[str, float]:
    """(b) the forward pass of the engine's truncated model on 64 preloaded tensors, repeated."""
    from headstart.features.registry import load_backbone

    backbone = load_backbone(mobilenet_spec())
    batch = load_batch(files, backbone.transform)
    return forward_throughput(channels_last_extractor(backbone), batch, images, "fp32")


def run_engine(root: Path, scratch: Path, workers: int | str = "auto") -> dict[str, Any]:
    """(c) ``embed`` on the folder, the engine's batch size, ``workers`` decoding workers, fresh cache."""
    from headstart.features.engine import EmbedOptions, embed

    prepared, prepare_seconds = prepare(root, "bench")
    with tempfile.TemporaryDirectory(dir=scratch, prefix="engine-") as tmp:
        options = EmbedOptions(
            batch_size=BATCH, num_workers=workers, device="auto", on_error="skip", cache_dir=Path(tmp) / "cache"
        )
        start = time.perf_counter()
        result = embed(prepared, mobilenet_spec(), Path(tmp) / "out", dataset={"name": "bench"}, options=options)
        end_to_end = time.perf_counter() - start
    stats = result.stats
    return {
        "images": len(prepared),
        "computed": stats.computed,
        "failed": len(result.failures),
        "ips": stats.images_per_second,
        "wall": stats.wall_seconds,
        "end_to_end": end_to_end,
        "ips_end_to_end": stats.computed / end_to_end,
        "prepare_seconds": prepare_seconds,
        "workers": _resolved_workers(workers, len(prepared)),
        "summary": result.summary(),
    }


def _resolved_workers(workers: int | str, images: int) -> int:
    import torch

    from headstart.features.reader import auto_workers

    if workers != "auto":
        return int(workers)
    return auto_workers(torch.device("cuda" if torch.cuda.is_available() else "cpu"), -(-images // BATCH))


def report_throughput(results: dict[str, dict[str, Any]]) -> None:
    section("Throughput: mobilenet_v2 IMAGENET1K_V1, fp32, 224 px, CPU")
    rows = []
    naive, ceiling, engine = results.get("naive"), results.get("ceiling"), results.get("engine")
    forced = results.get("engine_worker")
    if naive:
        rows.append(("(a) naive per-image loop (img2vec)", naive["images"], naive["seconds"], naive["ips"]))
    if ceiling:
        rows.append(
            (
                f"(b) forward pass alone, batch {BATCH} in memory (ceiling)",
                ceiling["images"],
                ceiling["seconds"],
                ceiling["ips"],
            )
        )
    if engine:
        rows.append(("(c) headstart embed (forward loop wall)", engine["computed"], engine["wall"], engine["ips"]))
        rows.append(
            (
                "(c') headstart embed, end to end incl. model load + tables",
                engine["computed"],
                engine["end_to_end"],
                engine["ips_end_to_end"],
            )
        )
    if forced:
        rows.append(
            (
                f"(c'') headstart embed, num_workers: {forced['workers']} forced, for comparison",
                forced["computed"],
                forced["wall"],
                forced["ips"],
            )
        )
    print(table(["what", "images", "seconds", "images/s"], rows))
    goals = []
    if engine and ceiling:
        ratio = engine["ips"] / ceiling["ips"]
        goals.append(
            ("(c) / (b)", f"{ratio:.0%}", f">= {GOAL_ENGINE_VS_CEILING:.0%}", verdict(ratio >= GOAL_ENGINE_VS_CEILING))
        )
    if engine and naive:
        ratio = engine["ips"] / naive["ips"]
        goals.append(
            ("(c) / (a)", f"{ratio:.2f}x", f">= {GOAL_ENGINE_VS_NAIVE:.0f}x", verdict(ratio >= GOAL_ENGINE_VS_NAIVE))
        )
        goals.append(
            ("(c') / (a), end to end (for information)", f"{engine['ips_end_to_end'] / naive['ips']:.2f}x", "", "")
        )
    if goals:
        print()
        print(table(["ratio", "measured", "goal", ""], goals))
    if engine:
        note(
            f"(c) ran on all {engine['images']} images ({engine['failed']} failed); preparing the dataset "
            f"(listing + hashing) took {engine['prepare_seconds']:.2f} s beforehand. The engine's own account:\n"
        )
        print("    " + engine["summary"].replace("\n", "\n    "))
    if forced:
        note(
            f"(c) used num_workers: auto ({engine['workers']} here); (c'') the same with num_workers: "
            f"{forced['workers']}:\n"
        )
        print("    " + forced["summary"].replace("\n", "\n    "))
    if naive:
        note(
            "(a) runs the full model (classifier included, as img2vec does with a hook), default memory format, "
            "under torch.inference_mode, after one warm-up image."
        )


# ---- bf16 speed and accuracy -------------------------------------------------------------------------------


def run_bf16_speed(files: Sequence[Path], images: int) -> list[dict[str, Any]]:
    import torch

    from headstart.features.registry import BackboneSpec, load_backbone
    from headstart.features.runner import autocast

    specs = [mobilenet_spec(), BackboneSpec("resnet18", None)]
    rows = []
    for spec in specs:
        backbone = load_backbone(spec)
        extractor = channels_last_extractor(backbone)
        batch = load_batch(files, backbone.transform)
        fp32 = forward_throughput(extractor, batch, images, "fp32")
        bf16 = forward_throughput(extractor, batch, images, "bf16")
        with torch.inference_mode():
            pixels = batch.contiguous(memory_format=torch.channels_last)
            a = next(iter(extractor(pixels).values())).float()
            with autocast(torch.device("cpu"), "bf16"):
                b = next(iter(extractor(pixels).values())).float()
            cosine = torch.nn.functional.cosine_similarity(a, b, dim=1).min().item()
        rows.append(
            {
                "arch": spec.arch,
                "weights": spec.weights or "none (random)",
                "fp32": fp32["ips"],
                "bf16": bf16["ips"],
                "speedup": bf16["ips"] / fp32["ips"],
                "cosine": cosine,
                "images": fp32["images"],
            }
        )
    return rows


def report_bf16_speed(rows: list[dict[str, Any]]) -> None:
    section(f"bf16 against fp32: forward pass alone, batch {BATCH} in memory, 224 px, CPU")
    print(
        table(
            ["backbone", "weights", "fp32 images/s", "bf16 images/s", "bf16 speed-up", "min cosine fp32~bf16"],
            [
                (r["arch"], r["weights"], r["fp32"], r["bf16"], f"{r['speedup']:.2f}x", f"{r['cosine']:.4f}")
                for r in rows
            ],
        )
    )
    note(
        f"{rows[0]['images']} images per figure (the same {BATCH} repeated), after one warm-up batch; bf16 is "
        "torch.autocast('cpu', dtype=torch.bfloat16), as the engine runs it. Whether bf16 pays off depends on "
        f"the CPU's bf16 instructions (here: {cpu_flags()})."
    )


def run_accuracy(scratch: Path) -> list[dict[str, Any]]:
    """Embed digits in fp32 and bf16 and compare logistic-regression test accuracy per layer."""
    from headstart.data import load_embeddings, prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.heads.evaluate import SplitData, evaluate_head

    prepared = prepare_dataset("digits", name="digits")
    layers = ("features.13", "default")
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    splits: dict[str, dict[str, Any]] = {}
    for precision in ("fp32", "bf16"):
        spec = mobilenet_spec(precision, image_size=64, layers=layers)
        with tempfile.TemporaryDirectory(dir=scratch, prefix=f"digits-{precision}-") as tmp:
            result = embed(
                prepared,
                spec,
                Path(tmp),
                dataset={"name": "digits"},
                options=EmbedOptions(batch_size=BATCH, cache_dir=None),
            )
            for layer, path in result.tables.items():
                data = SplitData.from_table(load_embeddings(path))
                splits.setdefault(layer, {})[precision] = data
                evaluation = evaluate_head("logreg", {}, data, seeds=1, few_shot=())
                scores.setdefault(layer, {})[precision] = {
                    "accuracy": evaluation.metrics["accuracy"],
                    "C": evaluation.params["C"],
                    "test": len(data.y_test),
                    "ips": result.stats.images_per_second,
                }
    rows = []
    for layer, by_precision in scores.items():
        fp32, bf16 = by_precision["fp32"], by_precision["bf16"]
        # the same head on both: bf16 embeddings at the C the fp32 run chose, which isolates the precision
        same_c = evaluate_head("logreg", {"C": fp32["C"]}, splits[layer]["bf16"], seeds=1, few_shot=())
        rows.append(
            {
                "layer": layer,
                "fp32": fp32["accuracy"],
                "bf16": bf16["accuracy"],
                "points": 100 * (bf16["accuracy"] - fp32["accuracy"]),
                "C": (fp32["C"], bf16["C"]),
                "bf16_same_c": same_c.metrics["accuracy"],
                "points_same_c": 100 * (same_c.metrics["accuracy"] - fp32["accuracy"]),
                "test": fp32["test"],
                "ips": (fp32["ips"], bf16["ips"]),
            }
        )
    return rows


def report_accuracy(rows: list[dict[str, Any]]) -> None:
    section("bf16 against fp32: logistic regression on digits embeddings (mobilenet_v2 IMAGENET1K_V1, 64 px)")
    print(
        table(
            [
                "layer",
                "fp32 test acc.",
                "bf16, same C",
                "change (points)",
                "goal",
                "",
                "bf16, its own C on val",
                "change (points)",
                "C chosen (fp32 / bf16)",
            ],
            [
                (
                    r["layer"],
                    f"{100 * r['fp32']:.2f}%",
                    f"{100 * r['bf16_same_c']:.2f}%",
                    f"{r['points_same_c']:+.2f}",
                    f"within {GOAL_BF16_POINTS}",
                    verdict(abs(r["points_same_c"]) <= GOAL_BF16_POINTS + 1e-9),
                    f"{100 * r['bf16']:.2f}%",
                    f"{r['points']:+.2f}",
                    f"{r['C'][0]:.3g} / {r['C'][1]:.3g}",
                )
                for r in rows
            ],
        )
    )
    first = rows[0]
    note(
        f"The project's protocol (headstart.heads.evaluate, `logreg`: C chosen on val, refit on train+val, scored "
        f"once on the {first['test']} test images; one image = {100 / first['test']:.2f} points). 'same C' scores the "
        "bf16 embeddings with the C the fp32 run chose: that is the change the precision makes, and what the goal "
        "judges. 'its own C' lets the bf16 run choose again; 45 grid points on 269 val images often tie, so the choice "
        "can flip between runs and move test accuracy by more than the precision does. Both tables come "
        f"from one embed run per precision ({first['ips'][0]:.0f} vs {first['ips'][1]:.0f} images/s at 64 px)."
    )


# ---- memory ----------------------------------------------------------------------------------------------


def memory_child(spec_json: str) -> None:
    """Run in a fresh process: prepare + embed one folder, print peak RSS figures as JSON on the last line."""
    import logging

    from headstart.features.engine import EmbedOptions, embed

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
        root = ensure_folder(data_dir, count, size)
        job = json.dumps({"root": str(root), "scratch": str(scratch), "image_size": image_size})
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--memory-child", job],
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


# ---- load_embeddings -------------------------------------------------------------------------------------


def run_load(scratch: Path, rows: int, dim: int) -> dict[str, Any]:
    import pandas as pd

    import headstart
    from headstart.data.table_writer import EmbeddingWriter

    with tempfile.TemporaryDirectory(dir=scratch, prefix="load-") as tmp:
        parquet, npy = Path(tmp) / "table.parquet", Path(tmp) / "table.npy"
        X = np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32)
        ids = [f"{i:032x}" for i in range(rows)]
        labels = [str(i % 10) for i in range(rows)]
        splits = [("train", "val", "test")[i % 3] for i in range(rows)]
        paths = [f"images/{i % 10}/{i:06d}.jpg" for i in range(rows)]
        start = time.perf_counter()
        with EmbeddingWriter(parquet, dim, {"backbone": "random", "node": "none", "pooling": "none"}) as writer:
            for lo in range(0, rows, 4096):
                hi = min(rows, lo + 4096)
                writer.write(ids[lo:hi], labels[lo:hi], splits[lo:hi], paths[lo:hi], X[lo:hi])
        write_seconds = time.perf_counter() - start
        np.save(npy, X)
        del X
        out: dict[str, Any] = {
            "rows": rows,
            "dim": dim,
            "write_seconds": write_seconds,
            "parquet_bytes": parquet.stat().st_size,
            "npy_bytes": npy.stat().st_size,
        }
        out["load"], table_ = best_of(lambda: headstart.load_embeddings(parquet))
        ok = table_.X.shape == (rows, dim) and table_.X.dtype == np.float32 and table_.X.flags["C_CONTIGUOUS"]
        out["load_ok"] = ok
        del table_
        out["npy"], _ = best_of(lambda: np.load(npy))
        out["npy_mmap"], _ = best_of(lambda: np.array(np.load(npy, mmap_mode="r")))

        def pandas_matrix() -> np.ndarray:
            frame = pd.read_parquet(parquet)
            return np.stack(frame["embedding"].to_numpy())

        out["pandas"], _ = best_of(pandas_matrix)
    return out


def report_load(result: dict[str, Any]) -> None:
    rows, dim = result["rows"], result["dim"]
    section(f"Reading a {rows:,} x {dim:,} float32 embedding table into numpy")
    full = rows == 50_000 and dim == 2_048
    print(
        table(
            ["reader", "file (MiB)", "best of 3 (s)", "goal", ""],
            [
                (
                    "headstart.load_embeddings (Parquet)",
                    mib(result["parquet_bytes"]),
                    result["load"],
                    f"< {GOAL_LOAD_SECONDS} s" + ("" if full else " (at 50,000 x 2,048)"),
                    verdict(result["load"] < GOAL_LOAD_SECONDS and result["load_ok"]) if full else "n/a",
                ),
                ("np.load (.npy)", mib(result["npy_bytes"]), result["npy"], "", ""),
                ("np.load(mmap_mode='r') + copy", mib(result["npy_bytes"]), result["npy_mmap"], "", ""),
                ("pandas.read_parquet + np.stack", mib(result["parquet_bytes"]), result["pandas"], "", ""),
            ],
        )
    )
    note(
        f"Random normal floats (the worst case for compression), written with EmbeddingWriter in "
        f"{result['write_seconds']:.1f} s; timings after one warm read (file in the page cache). "
        f"load_embeddings returned a C-contiguous float32 matrix: {result['load_ok']}."
    )


# ---- main ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, any of {', '.join(SECTIONS)} (default: all)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO / ".headstart" / "bench",
        help="where the generated images (and scratch files) go (default .headstart/bench)",
    )
    parser.add_argument("--images", type=int, default=2000, help="images in the folder for (c) (default 2000)")
    parser.add_argument("--size", type=int, default=256, help="side of the generated images in px (default 256)")
    parser.add_argument("--naive-images", type=int, default=300, help="images timed in (a) (default 300)")
    parser.add_argument("--ceiling-images", type=int, default=1024, help="images timed in (b) (default 1024)")
    parser.add_argument("--bf16-images", type=int, default=640, help="images per bf16/fp32 figure (default 640)")
    parser.add_argument("--mem-small", type=int, default=2000, help="images of the small memory run (default 2000)")
    parser.add_argument("--mem-large", type=int, default=20000, help="images of the large memory run (default 20000)")
    parser.add_argument(
        "--mem-image-size",
        type=int,
        default=64,
        help="crop size of the memory runs, to keep them affordable (default 64)",
    )
    parser.add_argument("--load-rows", type=int, default=50_000, help="rows of the load table (default 50000)")
    parser.add_argument("--load-dim", type=int, default=2_048, help="width of the load table (default 2048)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.size < 224:
        parser.error("--size must be at least 224 px")
    return args


@contextlib.contextmanager
def scratch_dir(data_dir: Path) -> Iterator[Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix="scratch-") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    print_header(args)
    wanted = set(args.sections)
    started = time.perf_counter()
    # make every image folder first, before torch starts its threads (the generator forks)
    counts = sorted({args.mem_small, args.mem_large}) if "memory" in wanted else []
    for count in sorted(counts, reverse=True):
        ensure_folder(args.data_dir, count, args.size)
    with scratch_dir(args.data_dir) as scratch:
        files: list[Path] = []
        if wanted & {"naive", "ceiling", "engine", "bf16"}:
            root = ensure_folder(args.data_dir, args.images, args.size)
            files = folder_files(root)
            note(f"Image folder: {describe_folder(root)}.")
        throughput: dict[str, dict[str, Any]] = {}
        if "naive" in wanted:
            throughput["naive"] = run_naive(files, args.naive_images)
        if "ceiling" in wanted:
            throughput["ceiling"] = run_ceiling(files, args.ceiling_images)
        if "engine" in wanted:
            throughput["engine"] = run_engine(root, scratch)
            other = 1 if throughput["engine"]["workers"] == 0 else 0
            throughput["engine_worker"] = run_engine(root, scratch, workers=other)
        if throughput:
            report_throughput(throughput)
        if "bf16" in wanted:
            report_bf16_speed(run_bf16_speed(files, args.bf16_images))
        if "accuracy" in wanted:
            report_accuracy(run_accuracy(scratch))
        if "memory" in wanted:
            report_memory(
                run_memory(args.data_dir, scratch, counts, args.size, args.mem_image_size), args.mem_image_size
            )
        if "load" in wanted:
            report_load(run_load(scratch, args.load_rows, args.load_dim))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    note(f"Done in {time.perf_counter() - started:.0f} s; load average (1/5/15 min) at the end: {load}.")


if __name__ == "__main__":
    main()
