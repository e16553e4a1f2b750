"""Does the audit find planted faults in the built-in digits, and what does it flag on the clean digits?

A benchmark, not a test: it prints a markdown table and never fails. Run it from the repository root::

    .venv/bin/python benchmarks/audit.py              # about two minutes on 2 cores (embedding included)

The pipeline's own settings: the digits split (val 0.15, test 0.30, seed 0), MobileNetV2 IMAGENET1K_V1 at 64 px,
``features.13`` average-pooled, the logreg head with its C grid (``logspace: [-4, 4, 17]``). Planted faults:
5% of the train labels flipped to another class (seeded), and near-copies of 25 test images put into train
(resized to 3/4 and back, re-encoded as JPEG at quality 85). Goals (issue 23): label issues recall >= 0.85 with
precision >= 0.85; train/test duplicate pairs recall >= 0.95 with precision >= 0.9; the leakage-free test score
next to the plain one. The clean digits are audited the same way, to show what it flags there.
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
from headstart.features.engine import embed
from headstart.features.spec import BackboneSpec, EmbedOptions
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
    """Hash bits and cosine of the planted pairs, and how many other pairs come as close (for the thresholds)."""
    from headstart.data.thumbnails import perceptual_hash, row_images
    from headstart.heads.audit.duplicates import hash_pairs

    hashes = [perceptual_hash(im) if im is not None else None for im in row_images(table.frame, stored)]
    unit = table.X / np.linalg.norm(table.X, axis=1, keepdims=True)
    ids = table.frame["id"].to_numpy()
    close = hash_pairs(hashes, 8)
    planted = [(b, float(unit[i] @ unit[j])) for (i, j), b in close.items() if frozenset((ids[i], ids[j])) in pairs]
    natural = [(b, float(unit[i] @ unit[j])) for (i, j), b in close.items() if frozenset((ids[i], ids[j])) not in pairs]
    lines = [f"planted pairs within 8 bits: {len(planted)} of {len(pairs)}; bits {sorted(b for b, _ in planted)}; "
             f"cosine {min((c for _, c in planted), default=0):.3f}-{max((c for _, c in planted), default=0):.3f}"]
    for bits in (2, 4, 6):
        for cos in (0.0, 0.95, 0.97):
            lines.append(f"bits <= {bits}, cosine >= {cos}: planted {sum(b <= bits and c >= cos for b, c in planted)}, "
                         f"other pairs {sum(b <= bits and c >= cos for b, c in natural)}")
    return "\n".join(lines)


def run(prepared: pd.DataFrame, workdir: Path, name: str, seed: int) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    table_path = workdir / f"{name}.parquet"
    embed(prepared, SPEC, single_file=table_path, dataset={"name": name}, options=EmbedOptions(cache_dir=None))
    table = load_embeddings(table_path)
    stored = dict(zip(prepared["id"], prepared["image"]))
    options = AuditOptions(params={"C": LOGREG_C}, seed=seed)
    if name.endswith("planted"):
        print(calibration(table, stored, PAIRS), flush=True)
    summary = audit_table(table, workdir / name, stored=stored, options=options, title=f"Audit of {name}")
    from headstart.data.tables.findings import read_findings

    issues = read_findings(workdir / name / "label_issues.parquet", "label_issues")
    duplicates = read_findings(workdir / name / "duplicates.parquet", "duplicates")
    return summary, issues, duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="write the two audits here instead of a temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
