"""The report stage's work: gather every stage's results, render reports/heads.md, its figures and plot data, and
metrics/summary.json (one test score per dataset x backbone x layer x head, for `dvc exp show`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headstart._files import atomic_path, write_json
from headstart.report.figures import confusion_figure, fewshot_csv, fewshot_figure
from headstart.report.tables import FIGURES, ReportRow, render_markdown, rows_from_results, selection_metric
from headstart.workflow import layout
from headstart.workflow.settings import ReportSettings

__all__ = ["gather_results", "report_stage", "summary_metrics", "write_report"]

log = logging.getLogger(__name__)


def _read(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def gather_results(settings: ReportSettings) -> dict[str, list[dict[str, Any]]]:
    """The fit, finetune, transfer and robustness results the settings name; every frozen backbone's must be
    there."""
    heads = [layout.results(ds, bb, h) for ds in settings.datasets for bb in settings.backbones for h in settings.heads]
    missing = [str(p) for p in heads if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"missing results {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
            "run `dvc repro` (the fit stages write them)"
        )
    pairs = [(ds, bb) for ds in settings.finetune_datasets for bb in settings.finetune_backbones]
    tuned = [layout.results(ds, layout.finetuned_name(bb), h) for ds, bb in pairs for h in settings.heads]
    return {
        "heads": _read(heads + tuned),  # the fine-tuned network as one more backbone
        "finetune": _read([layout.finetune_results(ds, bb) for ds, bb in pairs]),
        "transfer": _read([layout.transfer_results(name) for name in settings.transfer]),
        "robustness": _read([layout.robustness_results(ds) for ds in settings.datasets]),
    }


def write_report(
    results: dict[str, list[dict[str, Any]]], out_dir: str | Path, protocol: dict[str, Any] | None = None
) -> str:
    """Write ``heads.md``, the figures it links to and ``plots/fewshot.csv`` into ``out_dir``; return the text."""
    out_dir = Path(out_dir)
    rows = rows_from_results(results["heads"])
    text = render_markdown(
        rows,
        finetune=results.get("finetune", ()),
        transfer=results.get("transfer", ()),
        robustness=results.get("robustness", ()),
        protocol=protocol,
    )
    if rows:
        fewshot_figure(rows, out_dir / FIGURES[0])
        confusion_figure(rows, out_dir / FIGURES[1])
        fewshot_csv(rows, out_dir / "plots" / "fewshot.csv")
    with atomic_path(out_dir / "heads.md") as tmp:
        tmp.write_text(text)
    return text


def summary_metrics(rows: Sequence[ReportRow]) -> dict[str, float]:
    """The test score of each dataset's selection metric (the report's first score column), keyed
    ``dataset/backbone/layer/head``: the few columns an experiment comparison needs.

    >>> record = {"metrics": {"accuracy": 0.9312345678, "balanced_accuracy": 0.9}, "select_by": "accuracy"}
    >>> summary_metrics([ReportRow("digits", "mobilenet_v2", "features.13", "knn", record)])
    {'digits/mobilenet_v2/features.13/knn': 0.931235}
    """
    out = {}
    for dataset in dict.fromkeys(r.dataset for r in rows):
        subset = [r for r in rows if r.dataset == dataset]
        metric = selection_metric(subset)
        for row in subset:
            score = row.metric(metric)
            if score is not None:
                out[f"{dataset}/{row.label}"] = round(score, 6)
    return out


def report_stage(settings: ReportSettings) -> str:
    """The report stage: reports/heads.md and its figures from every result the settings name, and the summary
    metrics file."""
    results = gather_results(settings)
    text = write_report(results, layout.REPORT_DIR, protocol={"seeds": settings.seeds})
    write_json(layout.SUMMARY_METRICS, summary_metrics(rows_from_results(results["heads"])))
    log.info("wrote %s and %s", layout.REPORT, layout.SUMMARY_METRICS)
    return text
