"""How much does fine-tuning all-MiniLM-L6-v2 on some `fortunes` topics cost the others (the forgetting table)?

    python benchmarks/forgetting_text.py                  # the full protocol (a few minutes on 2 cores)
    python benchmarks/forgetting_text.py --limit 900      # a smoke run

One split of the built-in `fortunes` (seed 0, as `headstart embed` makes it). The encoder is fine-tuned as
`headstart finetune` does (logreg probe on train, C on val, then the last --unfreeze layers and the head, early
stopping on val) on the texts of the tuned topics only (--tune, by default the first half of the topics in
alphabetical order). Then the frozen and the fine-tuned encoder each embed every text, and a k-NN head (the
default: cosine, k=20, temperature votes, class weights balanced) is fitted on one topic group's train split and
scored on its test split: the tuned topics (what fine-tuning was for) and the other topics (what it may forget).
Each cell carries its 95% interval over the test texts (Wilson for accuracy, bootstrap for balanced accuracy).
This is the text side of the image domain-shift table in docs/finetune.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import cpu_model, git_commit, load_average, note, section, table, usable_cores  # noqa: E402
from headstart.data.prepare import prepare_dataset  # noqa: E402
from headstart.data.tables import load_embeddings  # noqa: E402
from headstart.features.engine import embed  # noqa: E402
from headstart.features.spec import BackboneSpec, EmbedOptions, FinetuneSettings  # noqa: E402
from headstart.heads.evaluate import SplitData  # noqa: E402
from headstart.heads.registry import build_head  # noqa: E402
from headstart.workflow.finetune import finetune_prepared, test_scores  # noqa: E402

MINILM = "sentence-transformers:all-MiniLM-L6-v2"


def _cell(scores: dict, key: str) -> str:
    return f"{scores[key]:.3f} [{scores[f'{key}_test_low']:.3f}, {scores[f'{key}_test_high']:.3f}]"


def knn_scores(table_path: Path, topics: list[str]) -> dict[str, float]:
    """k-NN fitted on ``topics``' train texts, scored on their test texts."""
    data = SplitData.from_table(load_embeddings(table_path))
    train, test = np.isin(data.y_train, topics), np.isin(data.y_test, topics)
    head = build_head("knn", {}).fit(data.X_train[train], data.y_train[train])
    return test_scores(list(data.y_test[test]), list(head.predict(data.X_test[test])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="a stratified subset of this many fortunes")
    parser.add_argument("--tune", help="the topics to fine-tune on, comma-separated (default: the first half)")
    parser.add_argument("--unfreeze", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    settings = FinetuneSettings(unfreeze=args.unfreeze, epochs=args.epochs, patience=2, batch_size=32, num_workers=0,
                                device="cpu")  # fmt: skip
    section(f"fortunes x all-MiniLM-L6-v2: k-NN on tuned and other topics, frozen vs fine-tuned ({cpu_model()}, "
            f"{usable_cores()} cores, load {load_average()}, commit {git_commit()})")  # fmt: skip
    prepared = prepare_dataset("fortunes", name="fortunes", limit=args.limit)
    topics = sorted(prepared["label"].unique())
    tuned = args.tune.split(",") if args.tune else topics[: len(topics) // 2]
    others = [t for t in topics if t not in tuned]
    counts = prepared.groupby(prepared["label"].isin(tuned))["split"].value_counts().unstack().to_dict("index")
    note(f"tuned topics {tuned} {counts.get(True)}; other topics {others} {counts.get(False)}; {settings}")
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="headstart-forgetting-") as tmp:
        options = EmbedOptions(cache_dir=Path(tmp) / "cache", num_workers=0, device="cpu")
        subset = prepared[prepared["label"].isin(tuned)].reset_index(drop=True)
        report = finetune_prepared(subset, BackboneSpec(MINILM, "pretrained"), Path(tmp) / "ft", settings, options)
        checkpoint = str(report.backbone.checkpoint)
        encoders = {"frozen": BackboneSpec(MINILM, "pretrained"),
                    "fine-tuned on the tuned topics": BackboneSpec(MINILM, checkpoint)}  # fmt: skip
        scores = {}
        for name, spec in encoders.items():
            path = Path(tmp) / f"{len(scores)}.parquet"
            embed(prepared, spec, single_file=path, options=options)
            scores[name] = {"tuned": knn_scores(path, tuned), "other": knn_scores(path, others)}
            rows.append([name, *(_cell(scores[name][group], key) for group in ("tuned", "other")
                                 for key in ("accuracy", "balanced_accuracy"))])  # fmt: skip
    seconds = time.perf_counter() - start
    headers = ["encoder", "tuned topics: k-NN accuracy", "balanced", "other topics: k-NN accuracy", "balanced"]
    print(table(headers, rows))
    before, after = scores["frozen"], scores["fine-tuned on the tuned topics"]
    gain = {group: after[group]["accuracy"] - before[group]["accuracy"] for group in ("tuned", "other")}
    note(f"fine-tuned minus frozen, k-NN accuracy: tuned topics {gain['tuned']:+.3f}, other topics "
         f"{gain['other']:+.3f}; fine-tuning's own head on the tuned topics: accuracy {report.test['accuracy']:.3f} "
         f"(best epoch {report.result.best_epoch} of {report.result.epochs}); {seconds:.0f} s in all")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
