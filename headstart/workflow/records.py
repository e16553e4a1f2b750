"""What a run keeps, split in two: quality (the same for the same inputs: metrics, results, model directories)
and timings and run counts (different on every run: ``timings/``, which no stage depends on)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the embed stage uses this module too, and never loads the heads
    from headstart.heads.evaluate import HeadEvaluation

__all__ = ["compact_metrics", "evaluation_record", "head_timings", "is_timing", "split_timings", "without_timings"]

# run counts of the embed stage that depend on what the cache held, not on the inputs
_RUN_COUNTS = ("from_cache",)


def is_timing(key: str) -> bool:
    """Keys that measure time or depend on the run (``fit_seconds``, ``predict_ms_per_image``, ``run_*``)."""
    return key.endswith(("seconds", "_per_image", "per_second")) or key.startswith("run_") or key in _RUN_COUNTS


def without_timings(value: Any) -> Any:
    """``value`` with every timing key dropped, at any depth."""
    if isinstance(value, Mapping):
        return {k: without_timings(v) for k, v in value.items() if not is_timing(str(k))}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def split_timings(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(quality, timings)`` of a flat mapping."""
    return (
        {k: v for k, v in flat.items() if not is_timing(k)},
        {k: v for k, v in flat.items() if is_timing(k)},
    )


def compact_metrics(evaluation: HeadEvaluation) -> dict[str, Any]:
    """The handful of quality numbers that go into ``dvc metrics show`` (no timings)."""
    out: dict[str, Any] = {}
    for key, value in split_timings(evaluation.metrics)[0].items():
        out[key] = round(value, 6)
    for key, interval in evaluation.test_intervals.items():  # test sampling: Wilson or bootstrap
        out[f"{key}_test_low"] = round(interval["low"], 6)
        out[f"{key}_test_high"] = round(interval["high"], 6)
    ci = evaluation.intervals.get("accuracy")
    if evaluation.randomized and ci and ci["n"] > 1:  # seed spread, for heads whose fit depends on the seed
        out["accuracy_ci95_low"] = round(ci["ci95_low"], 6)
        out["accuracy_ci95_high"] = round(ci["ci95_high"], 6)
    metric = evaluation.selection.metric
    if evaluation.selection.best_score is not None:
        out[f"val_{metric}"] = round(evaluation.selection.best_score, 6)
    for row in evaluation.few_shot_summary():
        if row["n"] != "all":
            out[f"fewshot_{row['n']}_accuracy"] = round(row["accuracy_mean"], 6)
            if metric == "balanced_accuracy":
                out[f"fewshot_{row['n']}_balanced_accuracy"] = round(row["balanced_accuracy_mean"], 6)
    return out


def head_timings(evaluation: HeadEvaluation) -> dict[str, Any]:
    """Fit and predict times (means over seeds) and the time the selection on val took."""
    out = {k: round(v, 6) for k, v in split_timings(evaluation.metrics)[1].items()}
    out["selection_seconds"] = round(evaluation.selection.seconds, 6)
    return out


def evaluation_record(evaluation: HeadEvaluation, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the report needs about one head on one table (quality only)."""
    return without_timings(
        {
            "head": evaluation.head,
            "params": evaluation.params,
            "metrics": evaluation.metrics,
            "intervals": evaluation.intervals if evaluation.randomized else {},
            "test_intervals": evaluation.test_intervals,
            "randomized": evaluation.randomized,
            "select_by": evaluation.selection.metric,
            "val_score": evaluation.selection.best_score,
            "per_seed": evaluation.per_seed,
            "per_class": evaluation.per_class,
            "confusion": {"classes": evaluation.classes, "matrix": evaluation.confusion},
            "selection": [{"params": p, f"val_{evaluation.selection.metric}": s} for p, s in evaluation.selection.scores],
            "few_shot": evaluation.few_shot_summary(),
            "few_shot_runs": [{k: v for k, v in r.items() if k != "per_class"} for r in evaluation.few_shot],
            "provenance": dict(provenance),
            **({"left_out": evaluation.left_out} if evaluation.left_out else {}),
        }
    )


def write_embed_records(dataset: str, backbone: str, counts: Mapping[str, Any]) -> None:
    """The embed stage's counts: images, embedded and failed to metrics/embed/, the run's timings and cache
    counts to timings/embed/."""
    from headstart._files import write_json
    from headstart.workflow import layout

    quality, timings = split_timings(counts)
    write_json(layout.embed_metrics(dataset, backbone), quality)
    write_json(layout.timings("embed", dataset, backbone), timings)
