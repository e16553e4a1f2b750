"""What does bf16 buy on this CPU, and what does it cost in accuracy? A table to decide ``precision: bf16`` by.

A benchmark, not a test. Three studies, each fp32 against bf16 (``torch.autocast``, as the engine runs it):

- speed: forward-only images/s for mobilenet_v2 and resnet18 (random weights) at 224 px, one intra-op thread per
  pass as the engine runs them, fp32 and bf16 in alternating turns (the best of each counts);
- photographs: top-1 agreement of the full ImageNet classifier (the backbone's own weights and head) on real
  photographs, the ones ``benchmarks/photos.py`` uses (KDE Plasma's camera wallpapers and scikit-image's photos;
  ``--photos DIR`` for others), each whole and in ``--crops`` random crops, and the cosine of the default node's
  embeddings;
- heads: logistic-regression test accuracy on the default pipeline's datasets (digits and digits inverted, 64 px)
  from fp32 and from bf16 embeddings, and the test images whose prediction changes.

Run from the repository root: ``python benchmarks/precision.py`` (``--images 160`` for a quick run; ``--skip-speed``
for the equality studies alone).

Goals: top-1 agreement 100% on the photographs (a change is listed with the classifier's top two probabilities);
bf16 head accuracy within 0.5 points of fp32 (same C) on every default dataset.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from _engine import channels_last_extractor, engine_batch, forward_throughput, load_batch, mobilenet_spec
from _images import folder_files, small_folder
from _report import REPO, cpu_flags, header, load_average, note, quiet, section, table, verdict
from photos import PLASMA_DIR, photo_name, real_photos

BATCH = engine_batch()
GOAL_BF16_POINTS = 0.5
DATASETS = {"digits": None, "digits_inverted": "invert"}  # the default pipeline's datasets and their shifts
PHOTO_BACKBONES = ("mobilenet_v2", "resnet18")
CONFIDENT = 0.5  # a top class the classifier gives at least this probability


def run_bf16_speed(files: Sequence[Path], images: int, turns: int) -> list[dict[str, Any]]:
    """Forward-only images/s in fp32 and bf16, on one intra-op thread as the engine runs each pass, in alternating
    turns of ``images / turns`` images each; the best turn of each counts (other work on the machine weighs on both
    alike)."""
    import torch

    from headstart.features.forward import FORWARD_THREADS, autocast, torch_threads
    from headstart.features.registry import BackboneSpec, load_backbone

    specs = [mobilenet_spec(), BackboneSpec("resnet18", None)]
    rows = []
    threads = torch_threads()
    try:
        torch_threads(FORWARD_THREADS)
        for spec in specs:
            backbone = load_backbone(spec)
            extractor = channels_last_extractor(backbone)
            batch = load_batch(files, backbone.transform, BATCH)
            best = {"fp32": 0.0, "bf16": 0.0}
            for _ in range(turns):
                for precision in best:
                    ips = forward_throughput(extractor, batch, max(BATCH, images // turns), precision)["ips"]
                    best[precision] = max(best[precision], ips)
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
                    "fp32": best["fp32"],
                    "bf16": best["bf16"],
                    "speedup": best["bf16"] / best["fp32"],
                    "cosine": cosine,
                    "images": max(BATCH, images // turns) // BATCH * BATCH,
                    "turns": turns,
                }
            )
    finally:
        torch_threads(threads)
    return rows


def report_bf16_speed(rows: list[dict[str, Any]]) -> None:
    section(f"bf16 against fp32: forward pass alone, batch {BATCH} in memory, 224 px, one CPU thread per pass")
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
        f"The best of {rows[0]['turns']} alternating turns of {rows[0]['images']} images each (the same {BATCH} "
        "repeated, after one warm-up batch), one intra-op thread, as the engine runs every pass (one per core side "
        "by side); bf16 is torch.autocast('cpu', dtype=torch.bfloat16), as the engine runs it. Whether bf16 pays "
        f"off depends on the CPU's bf16 instructions (here: {cpu_flags()})."
    )


def views(image: Any, crops: int, rng: np.random.Generator) -> list[Any]:
    """The photograph and ``crops`` random square crops of it (half to nine tenths of its shorter side)."""
    out = [image]
    width, height = image.size
    for _ in range(crops):
        side = int(min(width, height) * rng.uniform(0.5, 0.9))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        out.append(image.crop((left, top, left + side, top + side)))
    return out


def run_photos(files: Sequence[Path], archs: Sequence[str], crops: int) -> list[dict[str, Any]]:
    """Top-1 of each backbone's ImageNet classifier and its embedding's cosine, fp32 against bf16, on every view
    (the photograph and ``crops`` random crops of it)."""
    import torch

    from headstart.data.images import decode_image
    from headstart.errors import UserError
    from headstart.features.forward import autocast
    from headstart.features.registry import BackboneSpec, load_backbone

    rows = []
    for arch in archs:
        try:
            backbone = load_backbone(BackboneSpec(arch, "IMAGENET1K_V1"))
        except UserError as err:  # weights neither here nor downloadable: say so, go on
            note(f"{arch}: skipped ({type(err).__name__}: {err})")
            continue
        model = backbone.model.eval()
        embed_ = backbone.extractor(backbone.resolve_layers(("default",)), ("avg",)).eval()
        rng = np.random.default_rng(0)
        whole, same, confident, confident_same, cosines, changed = 0, 0, 0, 0, [], []
        with torch.inference_mode():
            for path in files:
                for k, view in enumerate(views(decode_image(path), crops, rng)):
                    x = backbone.transform(view).unsqueeze(0)
                    logits, vectors = [], []
                    for precision in ("fp32", "bf16"):
                        with autocast(torch.device("cpu"), precision):
                            logits.append(model(x).float()[0])
                            vectors.append(next(iter(embed_(x).values())).float())
                    cosines.append(float(torch.nn.functional.cosine_similarity(vectors[0], vectors[1])))
                    agree = bool(logits[0].argmax() == logits[1].argmax())
                    top2 = torch.softmax(logits[0], 0).topk(2).values
                    same += agree
                    whole += agree and k == 0
                    confident += bool(top2[0] >= CONFIDENT)
                    confident_same += agree and bool(top2[0] >= CONFIDENT)
                    if not agree:
                        what = photo_name(path) + (f" crop {k}" if k else "")
                        changed.append(f"{what} (p {top2[0]:.2f} vs {top2[1]:.2f})")
        n = len(cosines)
        rows.append({"arch": arch, "photos": len(files), "n": n, "whole": whole / max(1, len(files)),
                     "top1": same / max(1, n), "confident": confident, "confident_same": confident_same,
                     "changed": changed, "mean": float(np.mean(cosines)), "min": float(np.min(cosines))})  # fmt: skip
    return rows


def report_photos(rows: list[dict[str, Any]], crops: int) -> None:
    section("bf16 against fp32: the ImageNet classifier on real photographs (IMAGENET1K_V1, 224 px)")
    print(
        table(
            ["backbone", "photos", "agreement", "views", "agreement", f"where fp32 p >= {CONFIDENT}", "goal", "",
             "mean cosine", "min cosine (default node)"],
            [
                (r["arch"], r["photos"], f"{r['whole']:.0%}", r["n"], f"{r['top1']:.1%}",
                 f"{r['confident_same']}/{r['confident']}", "100%", verdict(r["top1"] == 1.0), f"{r['mean']:.4f}",
                 f"{r['min']:.4f}")
                for r in rows
            ],
        )  # fmt: skip
    )
    note(
        f"Top-1 agreement of the full classifier, fp32 against bf16: on the photographs, and on every view (each "
        f"photograph and {crops} random square crops of it, half to nine tenths of its shorter side, seeded), and "
        f"among the views where fp32's top class has probability >= {CONFIDENT}."
    )
    for r in rows:
        if r["changed"]:
            note(f"{r['arch']}: top-1 changed on " + ", ".join(r["changed"]) + " (p: fp32's top two).")


def run_accuracy(scratch: Path) -> list[dict[str, Any]]:
    """Embed the default datasets in fp32 and bf16 and compare logistic-regression test accuracy per layer."""
    from headstart.data import prepare_dataset
    from headstart.heads.evaluate import evaluate_head

    layers = ("features.13", "default")
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    splits: dict[str, dict[str, Any]] = {}
    for dataset, shift in DATASETS.items():
        prepared = prepare_dataset("digits", name=dataset, shift=shift)
        _embed_both(prepared, dataset, layers, scratch, scores, splits)
    rows = []
    for label, by_precision in scores.items():
        fp32, bf16 = by_precision["fp32"], by_precision["bf16"]
        # the same head on both: bf16 embeddings at the C the fp32 run chose, which isolates the precision
        same_c = evaluate_head("logreg", {"C": fp32["C"]}, splits[label]["bf16"], seeds=1, few_shot=())
        truth, before, after = fp32["y_true"], fp32["y_pred"], same_c.y_pred
        moved = before != after
        rows.append(
            {
                "layer": label,
                "fp32": fp32["accuracy"],
                "bf16": bf16["accuracy"],
                "points": 100 * (bf16["accuracy"] - fp32["accuracy"]),
                "C": (fp32["C"], bf16["C"]),
                "bf16_same_c": same_c.metrics["accuracy"],
                "points_same_c": 100 * (same_c.metrics["accuracy"] - fp32["accuracy"]),
                "moved": int(moved.sum()),
                "fixed": int((moved & (after == truth)).sum()),
                "broken": int((moved & (before == truth)).sum()),
                "test": fp32["test"],
                "ips": (fp32["ips"], bf16["ips"]),
            }
        )
    return rows


def _embed_both(  # noqa: PLR0913
    prepared: Any, dataset: str, layers: tuple[str, ...], scratch: Path, scores: dict, splits: dict
) -> None:
    """Embed ``prepared`` in fp32 and in bf16; the logreg scores and the splits go into ``scores`` and ``splits``
    under ``<dataset> <layer>``."""
    from headstart.data import load_embeddings
    from headstart.features.engine import EmbedOptions, embed
    from headstart.heads.evaluate import SplitData, evaluate_head

    for precision in ("fp32", "bf16"):
        spec = mobilenet_spec(precision, image_size=64, layers=layers)
        with tempfile.TemporaryDirectory(dir=scratch, prefix=f"digits-{precision}-") as tmp:
            result = embed(
                prepared,
                spec,
                Path(tmp),
                dataset={"name": dataset},
                options=EmbedOptions(batch_size=BATCH, cache_dir=None),
            )
            for layer, path in result.tables.items():
                data = SplitData.from_table(load_embeddings(path))
                splits.setdefault(f"{dataset} {layer}", {})[precision] = data
                evaluation = evaluate_head("logreg", {}, data, seeds=1, few_shot=())
                scores.setdefault(f"{dataset} {layer}", {})[precision] = {
                    "accuracy": evaluation.metrics["accuracy"],
                    "C": evaluation.params["C"],
                    "y_true": evaluation.y_true,
                    "y_pred": evaluation.y_pred,
                    "test": len(data.y_test),
                    "ips": result.stats.images_per_second,
                }


def report_accuracy(rows: list[dict[str, Any]]) -> None:
    section("bf16 against fp32: logistic regression on the default datasets (mobilenet_v2 IMAGENET1K_V1, 64 px)")
    print(
        table(
            [
                "dataset, layer",
                "fp32 test acc.",
                "bf16, same C",
                "change (points)",
                "goal",
                "",
                "test predictions changed (right now / wrong now)",
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
                    f"{r['moved']} ({r['fixed']} / {r['broken']})",
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
        "judges; 'test predictions changed' counts the test images whose predicted class differs between the two, "
        "and how many of them bf16 gets right that fp32 got wrong, and the reverse. 'its own C' lets the bf16 run "
        "choose again; 45 grid points on 269 val images often tie, so the choice can flip between runs and move "
        "test accuracy by more than the precision does. Both tables come from one "
        f"embed run per precision ({first['ips'][0]:.0f} vs {first['ips'][1]:.0f} images/s at 64 px)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=640, help="images per speed figure (default 640)")
    parser.add_argument("--turns", type=int, default=4, help="alternating fp32/bf16 turns; the best counts (default 4)")
    parser.add_argument("--skip-speed", action="store_true", help="the equality studies only")
    parser.add_argument("--photos", type=Path, help="a folder of real photographs (default: Plasma's, scikit-image's)")
    parser.add_argument("--plasma", type=Path, default=PLASMA_DIR, help=f"Plasma's wallpapers (default {PLASMA_DIR})")
    parser.add_argument("--crops", type=int, default=7, help="random crops per photograph (default 7)")
    parser.add_argument("--backbones", nargs="+", default=PHOTO_BACKBONES, help="classifiers for the photo study")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".headstart" / "bench")
    args = parser.parse_args()
    quiet()
    header("bf16 against fp32", [("engine batch", BATCH), ("CPU's bf16 instructions", cpu_flags())])
    if not args.skip_speed:
        files = folder_files(small_folder(args.data_dir, max(BATCH, 64), 256))
        report_bf16_speed(run_bf16_speed(files, args.images, args.turns))
    report_photos(run_photos(real_photos(args.photos, args.plasma), args.backbones, args.crops), args.crops)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.data_dir, prefix="scratch-") as tmp:
        report_accuracy(run_accuracy(Path(tmp)))
    note(f"Load average (1/5/15 min) at the end: {load_average()}.")


if __name__ == "__main__":
    main()
