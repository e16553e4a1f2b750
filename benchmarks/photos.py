"""Phone photos: how fast does ``headstart embed`` go on 12 MP JPEGs, and what does reduced decoding change?

A benchmark, not a test: it prints markdown tables with PASS/MISS against the goals. It needs real photographs,
``--photos DIR`` (JPEG/PNG files, searched recursively), or by default both of these where they are present:

- the camera photographs among KDE Plasma's wallpapers (Debian's ``plasma-workspace-wallpapers``, 93 MB:
  ``apt-get install plasma-workspace-wallpapers``, or without installing it ``apt-get download
  plasma-workspace-wallpapers && dpkg-deb -x plasma-workspace-wallpapers_*.deb DIR`` and ``--plasma
  DIR/usr/share/wallpapers``): 11 photographs of 2560x1600 (4 MP) as their photographers' JPEGs, so reduced
  decoding applies to them as they are (at 1/2);
- the photographs that scikit-image ships in its wheel (``skimage/data``: astronaut, chelsea the cat, coffee,
  rocket, ...; mostly 512 px; found without importing the package, so an unpacked wheel on PYTHONPATH does).

Run from the repository root::

    python benchmarks/photos.py                      # 200 photos of 4032x3024
    python benchmarks/photos.py --count 24           # a quick run

It writes ``--count`` JPEGs of 4032x3024 px (quality 90, about as large as a phone's), each a real photograph
cropped to 4:3 at a random place, upscaled and given sensor-like grain so the file is as hard to decode as a
real one, and measures:

(b) the ceiling: the forward pass alone on one batch of those photos already decoded and preprocessed;
(c) ``embed`` with ``decode: jpeg-scaled`` (the default) and with ``decode: full`` (what headstart did before);
(d) the whole command as a user times it, ``headstart embed FOLDER -o OUT --cache-dir FRESH`` in a fresh process
    (start-up, hashing, model load and writing included), against the machine's physical limit for the job,
    measured in the same run: every core busy with what a photo needs, ``cores / (t_prep + cores / (b))``, where
    ``t_prep`` is one photo's reading and hashing (its blake2b id), reduced-scale decoding and resizing on one core
    (as the engine does them) and ``cores / (b)`` its forward pass in core-seconds. It also prints (d) against
    the stricter reading ``cores / (t_prep + 1 / (b))``, which counts the forward pass at its wall time per image
    with every core running it, as if it cost each core that little;
(q) on the real photographs themselves (at their own size; PNGs saved as JPEG quality 90) and on the 4032x3024
    ones: the cosine similarity of the embeddings from full and from reduced decoding, and whether the full
    ImageNet classifier (MobileNetV2 IMAGENET1K_V1, the default backbone's weights) gives the same top-1 class.

Goals (2 cores): (c) >= 0.45 of (b), 0.6 as the stretch; (d) >= 0.6 of the limit; mean cosine >= 0.995; top-1
agreement 100%.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from _engine import engine_batch, forward_throughput, load_batch, mobilenet_spec, run_cli, run_engine
from _report import REPO, header, load_average, mib, note, quiet, section, table, usable_cores, verdict

REAL = (
    "astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png motorcycle_right.png coins.png "
    "camera.png moon.png brick.png grass.png gravel.png hubble_deep_field.jpg retina.jpg ihc.png cell.png "
    "clock_motion.png page.png"
).split()
# the camera photographs among Plasma 5.27's wallpapers (the others are renders and drawings)
PLASMA = "BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am"
PLASMA_DIR = Path("/usr/share/wallpapers")
SIZE = (4032, 3024)
GOAL_RATIO, STRETCH, GOAL_COSINE, GOAL_LIMIT = 0.45, 0.6, 0.995, 0.6


def plasma_photos(folder: Path) -> list[Path]:
    """The largest JPEG of each camera photograph among Plasma's wallpapers in ``folder``."""
    found = []
    for name in PLASMA.split():
        images = sorted((folder / name / "contents" / "images").glob("*.jpg"), key=lambda p: p.stat().st_size)
        found += images[-1:]
    return found


def skimage_photos() -> list[Path]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [folder / name for name in REAL if (folder / name).is_file()]


def real_photos(folder: Path | None, plasma: Path) -> list[Path]:
    if folder is not None:
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    found = plasma_photos(plasma) + skimage_photos()
    if not found:
        raise SystemExit(
            "no real photographs: `apt-get install plasma-workspace-wallpapers` (or give --plasma DIR of its "
            "unpacked wallpapers), make scikit-image importable, or give --photos DIR"
        )
    return found


def _phone_photo(job: tuple[str, int, str]) -> int:
    from PIL import Image

    source, index, target = job
    rng = np.random.default_rng(index)
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    w, h = image.size
    cw, ch = (w, int(w * 3 / 4)) if w * 3 <= h * 4 else (int(h * 4 / 3), h)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((x, y, x + cw, y + ch)).resize(SIZE, Image.BICUBIC)
    if index % 2:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    grain = rng.integers(-7, 8, size=(SIZE[1], SIZE[0], 3), dtype=np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    tmp = f"{target}.{os.getpid()}.tmp"
    Image.fromarray(pixels).save(tmp, format="JPEG", quality=90)
    os.replace(tmp, target)
    return os.path.getsize(target)


def photo_name(source: Path) -> str:
    """A photograph's name: its file's stem, or for Plasma's ``<name>/contents/images/<W>x<H>.jpg`` the name."""
    return source.parents[2].name if re.fullmatch(r"\d+x\d+", source.stem) else source.stem


def phone_folder(data_dir: Path, sources: list[Path], count: int) -> Path:
    which = hashlib.sha256("\n".join(str(p) for p in sources).encode()).hexdigest()[:8]  # other sources, other set
    root = data_dir / f"photos-{SIZE[0]}x{SIZE[1]}" / f"n{count}-{which}"
    jobs = []
    for i in range(count):
        source = sources[i % len(sources)]
        target = root / photo_name(source).replace("_", "-") / f"{i:04d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            jobs.append((str(source), i, str(target)))
    if jobs:
        print(f"writing {len(jobs)} photos of {SIZE[0]}x{SIZE[1]} px into {root} ...", end=" ", flush=True)
        start = time.perf_counter()
        with Pool(usable_cores()) as pool:
            list(pool.imap_unordered(_phone_photo, jobs))
        print(f"{time.perf_counter() - start:.0f} s", flush=True)
    return root


def quality(files: list[Path]) -> dict[str, Any]:
    """Cosine of full vs reduced embeddings (the default node) and top-1 agreement of the full classifier."""
    import torch

    from headstart.data.images import decode_image
    from headstart.features.registry import load_backbone
    from headstart.data.images import DECODE_MARGIN

    backbone = load_backbone(mobilenet_spec())
    model, transform = backbone.model, backbone.transform
    target = backbone.preprocessing["resize_size"] * DECODE_MARGIN  # what the engine reduces to
    cosines, same, reduced_sizes, changed = [], 0, [], []
    with torch.inference_mode():
        for path in files:
            full, small = decode_image(path), decode_image(path, reduce_to=target)
            reduced_sizes.append(min(small.size) / min(full.size))
            x = torch.stack([transform(full), transform(small)])
            embedding = torch.nn.functional.adaptive_avg_pool2d(model.features(x), 1).flatten(1)
            logits = model.classifier(embedding)
            cosines.append(float(torch.nn.functional.cosine_similarity(embedding[:1], embedding[1:])))
            agree = int(logits[0].argmax() == logits[1].argmax())
            same += agree
            if not agree:  # how sure the classifier was of the full-decoding class
                p = torch.softmax(logits[0], 0)
                top2 = p.topk(2).values
                changed.append(f"{path.parent.name}/{path.name} (p {top2[0]:.2f} vs {top2[1]:.2f})")
    return {
        "n": len(files),
        "mean": float(np.mean(cosines)),
        "min": float(np.min(cosines)),
        "top1": same / len(files),
        "scale": float(np.median(reduced_sizes)),
        "changed": changed,
    }


def prep_seconds(backbone: Any, files: list[Path], count: int) -> float:
    """One photo's reading and hashing, reduced-scale decoding and resizing, on one core, as the engine does them
    (the mean over ``count`` photos)."""
    from headstart.data.hashing import file_id
    from headstart.data.images import decode_image, reduce_target

    per_image = backbone.preprocessing_stages()[0]
    target = reduce_target(backbone.preprocessing.get("resize_size"))
    chosen = files[:count]
    start = time.process_time()
    for path in chosen:
        file_id(path)
        per_image(decode_image(str(path), reduce_to=target))
    return (time.process_time() - start) / len(chosen)


def whole_command(root: Path, scratch: Path) -> dict[str, Any]:
    """(d) ``headstart embed ROOT -o OUT --cache-dir FRESH`` in a fresh process: photos over its wall time."""
    seconds, stderr = run_cli(["embed", str(root), "-o", str(scratch / "cli.parquet"), "--cache-dir",
                               str(scratch / "cli-cache" / "cache")])
    found = re.search(r"(\d+) embedded now", stderr)
    photos = int(found.group(1)) if found else 0
    loop = re.search(r"\d+ images in .*", stderr)
    return {"photos": photos, "seconds": seconds, "ips": photos / seconds, "loop": loop.group(0) if loop else ""}


def native_jpegs(sources: list[Path], folder: Path) -> list[Path]:
    """The real photographs at their own size: JPEGs as they are, the others saved as JPEG (quality 90), so
    reduced decoding applies where it can."""
    from PIL import Image

    out = []
    for source in sources:
        if source.suffix.lower() in (".jpg", ".jpeg"):
            out.append(source)
            continue
        with Image.open(source) as image:
            target = folder / f"{source.stem}.jpg"
            image.convert("RGB").save(target, quality=90)
        out.append(target)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, help="a folder of real photographs (default: Plasma's, scikit-image's)")
    parser.add_argument("--plasma", type=Path, default=PLASMA_DIR, help=f"Plasma's wallpapers (default {PLASMA_DIR})")
    parser.add_argument("--count", type=int, default=200, help="4032x3024 JPEGs to write and embed (default 200)")
    parser.add_argument("--ceiling-images", type=int, default=160, help="images timed for (b) (default 160)")
    parser.add_argument("--skip-full", action="store_true", help="do not time `decode: full` (slow)")
    parser.add_argument("--skip-quality", action="store_true", help="do not compare full and reduced decoding")
    parser.add_argument("--prep-photos", type=int, default=24, help="photos timed for t_prep of (d) (default 24)")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".headstart" / "bench")
    args = parser.parse_args()
    quiet()
    batch = engine_batch()
    sources = real_photos(args.photos, args.plasma)
    header("Phone photos: `headstart embed` on 12 MP JPEGs", [("real photographs", f"{len(sources)} files")])
    root = phone_folder(args.data_dir, sources, args.count)
    files = sorted(root.glob("*/*.jpg"))
    note(f"{len(files)} JPEGs of {SIZE[0]}x{SIZE[1]} in {root}, {mib(sum(f.stat().st_size for f in files)) / len(files):.1f} MiB each.")
    from headstart.features.registry import load_backbone

    backbone = load_backbone(mobilenet_spec())
    extractor = backbone.extractor(backbone.spec.layers, backbone.spec.poolings).eval()
    top = forward_throughput(extractor, load_batch(files, backbone.transform, batch), args.ceiling_images)
    prep = prep_seconds(backbone, files, args.prep_photos)
    cores = usable_cores()
    limit = cores / (prep + cores / top["ips"])
    strict = cores / (prep + 1 / top["ips"])  # the forward pass counted as its wall time per image, not core time
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as tmp:
        command = whole_command(root, Path(tmp))
        scaled = run_engine(root, Path(tmp), batch, decode="jpeg-scaled")
        full = None if args.skip_full else run_engine(root, Path(tmp), batch, decode="full")
        native = None if args.skip_quality else quality(native_jpegs(sources, Path(tmp)))
    phones = None if args.skip_quality else quality(files)
    section("Speed: mobilenet_v2 IMAGENET1K_V1, fp32, 224 px, CPU")
    rows = [(f"(b) forward pass alone, batch {batch} in memory (ceiling)", top["images"], top["seconds"], top["ips"], "")]
    for name, run in (("jpeg-scaled (default)", scaled), ("full", full)):
        if run:
            ratio = run["ips"] / top["ips"]
            rows.append((f"(c) headstart embed, decode: {name}", run["computed"], run["wall"], run["ips"], f"{ratio:.2f}"))
    rows.append(("(d) `headstart embed FOLDER -o OUT` as a user times it", command["photos"], command["seconds"],
                 command["ips"], f"{command['ips'] / top['ips']:.2f}"))
    rows.append((f"the limit: {cores} / ({1000 * prep:.1f} ms + {cores} / (b))", "", "", limit, ""))
    rows.append((f"the stricter reading: {cores} / ({1000 * prep:.1f} ms + 1 / (b))", "", "", strict, ""))
    print(table(["what", "photos", "seconds", "photos/s", "x ceiling"], rows))
    ratio, whole = scaled["ips"] / top["ips"], command["ips"] / limit
    print()
    print(
        table(
            ["goal", "measured", "target", ""],
            [
                ("(c) jpeg-scaled / (b)", f"{ratio:.2f}", f">= {GOAL_RATIO}", verdict(ratio >= GOAL_RATIO)),
                ("(c) jpeg-scaled / (b), stretch", f"{ratio:.2f}", f">= {STRETCH}", verdict(ratio >= STRETCH)),
                ("(d) / the limit", f"{whole:.2f}", f">= {GOAL_LIMIT}", verdict(whole >= GOAL_LIMIT)),
                ("(d) / the stricter reading", f"{command['ips'] / strict:.2f}", f">= {GOAL_LIMIT}",
                 verdict(command["ips"] / strict >= GOAL_LIMIT)),
            ],
        )
    )
    timed = min(args.prep_photos, len(files))
    note(f"t_prep, one photo's read + blake2b id + reduced decoding + resize on one core: {1000 * prep:.1f} ms "
         f"(CPU time over {timed} photos).\n(d), the engine's own account: {command['loop']}.")
    for name, run in (("jpeg-scaled", scaled), ("full", full)):
        if run:
            note(f"decode: {name}, the engine's own account:\n")
            print("    " + run["summary"].replace("\n", "\n    "))
    if native is None or phones is None:
        note(f"Load average (1/5/15 min) at the end: {load_average()}.")
        return
    section("Full against reduced decoding (default node, 1280-d; top-1 of the full ImageNet classifier)")
    print(
        table(
            ["photos", "n", "decoded at (median)", "mean cosine", "min cosine", "top-1 agreement", "goal", ""],
            [
                (
                    name,
                    q["n"],
                    f"{q['scale']:.3g} of the side",
                    f"{q['mean']:.4f}",
                    f"{q['min']:.4f}",
                    f"{q['top1']:.0%}",
                    f"mean >= {GOAL_COSINE}, 100%",
                    verdict(q["mean"] >= GOAL_COSINE and q["top1"] == 1.0),
                )
                for name, q in (("real, own size", native), (f"{SIZE[0]}x{SIZE[1]} versions", phones))
            ],
        )
    )
    for name, q in (("real, own size", native), (f"{SIZE[0]}x{SIZE[1]} versions", phones)):
        if q["changed"]:
            note(f"{name}: top-1 changed on " + ", ".join(q["changed"]) + " (p: the full decoding's top two).")
    note(f"Load average (1/5/15 min) at the end: {load_average()}.")


if __name__ == "__main__":
    main()
