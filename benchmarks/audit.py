"""Does the audit find planted faults in the built-in digits, and what does it flag on the clean digits?

A benchmark, not a test: it prints a markdown table and never fails. Run it from the repository root::

    .venv/bin/python benchmarks/audit.py              # about two minutes on 2 cores (embedding included)

The pipeline's own settings: the digits split (val 0.15, test 0.30, seed 0), MobileNetV2 IMAGENET1K_V1 at 64 px,
``features.13`` average-pooled, the logreg head with its C grid (``logspace: [-4, 4, 17]``). Planted faults:
5% of the train labels flipped to another class (seeded), and near-copies of 25 test images put into train
(resized to 3/4 and back, re-encoded as JPEG at quality 85). Goals (issue 23): label issues recall >= 0.85 with
precision >= 0.85; train/test duplicate pairs recall >= 0.95 with precision >= 0.9; the leakage-free test score
next to the plain one. The clean digits are audited the same way, to show what it flags there.

So that the duplicate thresholds are not tuned to 8x8 digits alone, the photo case (``--photos DIR``, by default
/usr/share/wallpapers when Debian's ``plasma-workspace-wallpapers`` is installed) cuts 8 random 224 px crops from
each photograph, re-saves 30 of them three ways (to 3/4 and back at JPEG 85; 160 px at JPEG 70; doubled,
brightened and at JPEG 60) and prints how many copies the audit finds and which other pairs it flags.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from headstart.data.hashing import content_id
from headstart.data.images import decode_image
from headstart.data.prepare import prepare_dataset
from headstart.data.tables import load_embeddings
from headstart.data.tables.findings import read_findings
from headstart.features.engine import embed
from headstart.features.spec import BackboneSpec, EmbedOptions
from headstart.heads.audit.duplicates import hash_pairs
from headstart.heads.audit.pixels import pixel_signatures
from headstart.workflow.audit import AuditOptions, audit_table

SPEC = BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1", layers=("features.13",), image_size=64)
LOGREG_C = {"logspace": [-4, 4, 17]}
PAIRS: set = set()


def resaved(png: bytes, side: int = 64) -> bytes:
    """The image as the pipeline sees it (``side`` px), resized to 3/4 and back, re-encoded as JPEG (quality 85)."""
    image = decode_image(png).resize((side, side), Image.Resampling.BILINEAR)
    image = image.resize((side * 3 // 4, side * 3 // 4), Image.Resampling.BILINEAR).resize((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def plant(prepared: pd.DataFrame, flip: float, copies: int, seed: int) -> tuple[pd.DataFrame, set, set]:
    rng = np.random.default_rng(seed)
    frame = prepared.copy()
    train = np.flatnonzero(frame["split"].to_numpy() == "train")
    flipped = rng.choice(train, round(flip * len(train)), replace=False)
    classes = sorted(frame["label"].unique())
    for row in flipped:
        others = [c for c in classes if c != frame.at[row, "label"]]
        frame.at[row, "label"] = others[rng.integers(len(others))]
    test = np.flatnonzero(frame["split"].to_numpy() == "test")
    originals = frame.iloc[rng.choice(test, copies, replace=False)]
    added = originals.copy()
    added["image"] = [resaved(b) for b in originals["image"]]
    added["id"] = [content_id(b) for b in added["image"]]
    added["split"] = "train"
    out = pd.concat([frame, added], ignore_index=True).sort_values("id", ignore_index=True)
    out.attrs = prepared.attrs
    pairs = {frozenset(p) for p in zip(originals["id"], added["id"])}
    return out, set(frame["id"].iloc[flipped]), pairs


def calibration(table, stored, pairs: set) -> str:
    """Hash bits, low-frequency correlation and embedding cosine of the planted pairs, and how many other pairs
    come as close (for the thresholds)."""
    pixels = pixel_signatures(table, stored)
    unit = table.X / np.linalg.norm(table.X, axis=1, keepdims=True)
    ids = table.frame["id"].to_numpy()
    found = {"planted": [], "other": []}
    for (i, j), bits in hash_pairs(pixels.hashes, 8).items():
        kind = "planted" if frozenset((ids[i], ids[j])) in pairs else "other"
        found[kind].append((bits, float(pixels.low[i] @ pixels.low[j]), float(unit[i] @ unit[j])))
    planted, other = (np.array(found[k]).reshape(-1, 3) for k in ("planted", "other"))
    lines = [f"planted pairs within 8 bits: {len(planted)} of {len(pairs)}; bits {int(planted[:, 0].min())}-"
             f"{int(planted[:, 0].max())}; correlation {planted[:, 1].min():.4f}-{planted[:, 1].max():.4f}; "
             f"cosine {planted[:, 2].min():.3f}-{planted[:, 2].max():.3f}",
             f"other pairs within 8 bits: {len(other)}; highest correlation {other[:, 1].max():.4f}"]  # fmt: skip
    for bits in (4, 6, 8):
        for corr in (0.985, 0.99):
            lines.append(f"bits <= {bits}, correlation >= {corr}: planted "
                         f"{int(((planted[:, 0] <= bits) & (planted[:, 1] >= corr)).sum())}, other pairs "
                         f"{int(((other[:, 0] <= bits) & (other[:, 1] >= corr)).sum())}")  # fmt: skip
    return "\n".join(lines)


PHOTO_DIRS = ("/usr/share/wallpapers", "/usr/share/backgrounds")
PHOTO_SIDE = 224


def photo_copy(image: Image.Image, kind: int) -> Image.Image:
    """Three ways photos get copied: to 3/4 and back at JPEG 85 (as the digits), 160 px at JPEG 70, doubled and
    brightened 8% at JPEG 60."""
    if kind == 0:
        image, quality = image.resize((168, 168), Image.Resampling.BILINEAR).resize((224, 224)), 85
    elif kind == 1:
        image, quality = image.resize((160, 160), Image.Resampling.LANCZOS), 70
    else:
        image = image.resize((448, 448), Image.Resampling.BICUBIC).point(lambda v: min(255, round(v * 1.08)))
        quality = 60
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def photo_case(folder: Path, workdir: Path, seed: int, crops: int = 8, copies: int = 30) -> str:
    """The duplicate rule on photographs: ``crops`` random square crops of each photo under ``folder`` (224 px
    JPEGs; crops of one photo overlap, the hardest distinct pairs), ``copies`` of them re-saved three ways."""
    rng = np.random.default_rng(seed)
    sources = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    by_stem: dict[str, tuple[Path, int]] = {}
    for path in (p for p in sources if p.stem != "screenshot"):  # a wallpaper comes in many sizes: the one
        key = f"{path.parents[2].name}/{path.parent.name}" if path.parent.name.startswith("images") else str(path)
        with Image.open(path) as im:  # nearest 1920 px wide
            width = im.width
        if key not in by_stem or abs(width - 1920) < abs(by_stem[key][1] - 1920):
            by_stem[key] = (path, width)
    root = workdir / "photos"
    originals = []
    for n, (path, _) in enumerate(by_stem[k] for k in sorted(by_stem)):
        photo = decode_image(path)
        for c in range(crops):
            side = int(min(photo.size) * rng.uniform(0.3, 0.9))
            x, y = rng.integers(0, photo.width - side + 1), rng.integers(0, photo.height - side + 1)
            crop = photo.crop((x, y, x + side, y + side)).resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
            target = root / f"photo{n:02d}" / f"crop{c}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            crop.save(target, quality=92)
            originals.append(target)
    pairs = set()
    for k, t in enumerate(rng.choice(len(originals), copies, replace=False)):
        target = originals[t].with_name(f"copy{k:02d}.jpg")
        photo_copy(decode_image(originals[t]), k % 3).save(target, quality=95)
        pairs.add(frozenset((str(originals[t]), str(target))))
    prepared = prepare_dataset(str(root), name="photos", seed=seed)
    spec = BackboneSpec("mobilenet_v2", weights="IMAGENET1K_V1", layers=("features.13",), image_size=PHOTO_SIDE)
    embed(prepared, spec, single_file=workdir / "photos.parquet", dataset={"name": "photos"},
          options=EmbedOptions(cache_dir=None))  # fmt: skip
    table = load_embeddings(workdir / "photos.parquet")
    summary = audit_table(table, workdir / "photos-audit", options=AuditOptions(map_method="pca", seed=seed))
    dups = read_findings(workdir / "photos-audit" / "duplicates.parquet", "duplicates")
    got = {frozenset(p) for p in zip(dups["path_a"], dups["path_b"])}
    planted = dups[[frozenset(p) in pairs for p in zip(dups["path_a"], dups["path_b"])]]
    paths = table.frame["path"].tolist()
    unit = table.X / np.linalg.norm(table.X, axis=1, keepdims=True)
    cosines = [float(unit[paths.index(a)] @ unit[paths.index(b)]) for a, b in (sorted(p) for p in pairs)]
    return (f"photos: {len(by_stem)} photographs, {len(originals)} crops, {copies} copies; flagged {len(got)} pairs "
            f"({summary['duplicates']}), copies found {len(got & pairs)} of {copies}, other pairs {len(got - pairs)}; "
            f"copies: bits {planted['hash_bits'].min()}-{planted['hash_bits'].max()}, correlation "
            f"{planted['pixel_correlation'].min():.4f}-{planted['pixel_correlation'].max():.4f}, embedding cosine "
            f"{min(cosines):.3f}-{max(cosines):.3f}; other pairs flagged, by: "
            f"{dups[[frozenset(p) not in pairs for p in zip(dups['path_a'], dups['path_b'])]]['found_by'].tolist()}")


def run(prepared: pd.DataFrame, workdir: Path, name: str, seed: int) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    table_path = workdir / f"{name}.parquet"
    embed(prepared, SPEC, single_file=table_path, dataset={"name": name}, options=EmbedOptions(cache_dir=None))
    table = load_embeddings(table_path)
    stored = dict(zip(prepared["id"], prepared["image"]))
    options = AuditOptions(params={"C": LOGREG_C}, seed=seed)
    if name.endswith("planted"):
        print(calibration(table, stored, PAIRS), flush=True)
    summary = audit_table(table, workdir / name, stored=stored, options=options, title=f"Audit of {name}")
    issues = read_findings(workdir / name / "label_issues.parquet", "label_issues")
    duplicates = read_findings(workdir / name / "duplicates.parquet", "duplicates")
    return summary, issues, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="write the two audits here instead of a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", help="a folder of photographs for the photo case (default: the first of "
                        f"{', '.join(PHOTO_DIRS)} that exists; skipped without one)")  # fmt: skip
    args = parser.parse_args()
    photos = args.photos or next((d for d in PHOTO_DIRS if Path(d).is_dir()), None)
    prepared = prepare_dataset("digits", name="digits", seed=0)
    planted, flipped, pairs = plant(prepared, 0.05, 25, args.seed)
    PAIRS.update(pairs)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print("| run | label issues flagged | recall | precision | dup pairs flagged | train/test pairs | "
              "recall | precision | test accuracy | without leaked (n) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, frame in (("planted", planted), ("clean", prepared)):
            summary, issues, dups = run(frame, workdir, f"digits-{name}", args.seed)
            found = set(issues["id"])
            seen = ["train", "val"]
            cross = dups[dups["split_a"].isin(seen) & (dups["split_b"] == "test")
                         | dups["split_b"].isin(seen) & (dups["split_a"] == "test")]
            got = {frozenset(p) for p in zip(cross["id_a"], cross["id_b"])}
            if name == "planted":
                recall, precision = len(found & flipped) / len(flipped), len(found & flipped) / max(len(found), 1)
                d_recall, d_precision = len(got & pairs) / len(pairs), len(got & pairs) / max(len(got), 1)
                figures = (f"{recall:.2f} | {precision:.2f} | {len(dups)} | {len(got)} | {d_recall:.2f} | "
                           f"{d_precision:.2f}")
            else:
                figures = f"- | - | {len(dups)} | {len(got)} | - | -"
            print(f"| {name} | {len(found)} | {figures} | {summary['score']:.4f} | "
                  f"{summary['score_without_leaked']:.4f} ({summary['leaked']}) |")
        if args.keep:
            print(f"\npages: {workdir}/digits-planted/index.html, {workdir}/digits-clean/index.html")
        if photos:
            print("\n" + photo_case(Path(photos), workdir, args.seed), flush=True)
        else:
            print("\nphotos: skipped; give --photos DIR (e.g. Debian's plasma-workspace-wallpapers, unpacked)")


if __name__ == "__main__":
    main()
