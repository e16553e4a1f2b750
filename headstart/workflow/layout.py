"""Where every stage reads and writes. dvc.yaml spells the same paths (tests/pipeline/test_dvc_yaml.py checks)."""

from __future__ import annotations

from pathlib import Path

from headstart.data.tables import read_embedding_metadata

__all__ = [
    "REPORT",
    "REPORT_DIR",
    "confusion_plot",
    "confusion_plots",
    "embed_metrics",
    "embeddings_dir",
    "default_table",
    "finetune_dir",
    "finetune_metrics",
    "finetune_results",
    "finetuned_name",
    "head_metrics",
    "head_models",
    "layer_tables",
    "model_dir",
    "prepared",
    "results",
    "robustness_metrics",
    "robustness_results",
    "SETTINGS_DIR",
    "SUMMARY_METRICS",
    "settings_file",
    "embed_run_settings",
    "finetune_settings",
    "head_settings",
    "prepare_settings",
    "report_settings",
    "robustness_settings",
    "timings",
    "transfer_metrics",
    "transfer_settings",
    "transfer_report",
    "transfer_results",
]

REPORT_DIR = Path("reports")
REPORT = REPORT_DIR / "heads.md"
SUMMARY_METRICS = Path("metrics") / "summary.json"  # the report stage's one score per head, for `dvc exp show`
SETTINGS_DIR = Path("settings")  # written by the settings stage from params.yaml: one file per stage


def prepared(dataset: str) -> Path:
    return Path("data/prepared") / f"{dataset}.parquet"


def settings_file(dataset: str, backbone: str) -> Path:
    """The backbone settings this dataset embeds with (its overrides applied; the embed stage's dependency)."""
    return SETTINGS_DIR / dataset / f"{backbone}.json"


def transfer_settings(name: str) -> Path:
    """transfer.<name> with its heads' parameters (the transfer stage's dependency instead of all of ``heads``)."""
    return SETTINGS_DIR / f"transfer-{name}.json"


def prepare_settings(dataset: str) -> Path:
    """datasets.<dataset> and the seed (the prepare stage's dependency instead of params)."""
    return SETTINGS_DIR / f"prepare-{dataset}.json"


def finetune_settings() -> Path:
    """The finetune section, the seed and the probe head's settings (the finetune stages' dependency)."""
    return SETTINGS_DIR / "finetune.json"


def robustness_settings() -> Path:
    """The robustness section, the names it scores and the embed keys its shifted embeddings depend on."""
    return SETTINGS_DIR / "robustness.json"


def report_settings() -> Path:
    """The datasets, backbones, heads and transfers the report gathers, and the protocol it states."""
    return SETTINGS_DIR / "report.json"


def embed_run_settings() -> Path:
    """How the embed engine runs (decoding workers, engine, cache): read, and depended on by none."""
    return SETTINGS_DIR / "embed.json"


def head_settings(head: str) -> Path:
    """One head's kind and parameters with the evaluation protocol and the seed (its fit stages' dependency)."""
    return SETTINGS_DIR / "heads" / f"{head}.json"


def embeddings_dir(dataset: str, backbone: str) -> Path:
    return Path("embeddings") / dataset / backbone


def layer_tables(dataset: str, backbone: str) -> dict[str, Path]:
    """The embedding tables of a dataset x backbone, by layer name (the failures table left out)."""
    directory = embeddings_dir(dataset, backbone)
    return {p.stem: p for p in sorted(directory.glob("*.parquet")) if p.name != "failures.parquet"}


def embed_metrics(dataset: str, backbone: str) -> Path:
    return Path("metrics/embed") / dataset / f"{backbone}.json"


def head_models(dataset: str, backbone: str, head: str) -> Path:
    """The saved head of every layer of a dataset x backbone (one fit stage's output)."""
    return Path("models") / dataset / backbone / head


def model_dir(dataset: str, backbone: str, head: str, layer: str) -> Path:
    return head_models(dataset, backbone, head) / layer


def head_metrics(dataset: str, backbone: str, head: str) -> Path:
    return Path("metrics/heads") / dataset / backbone / f"{head}.json"


def results(dataset: str, backbone: str, head: str) -> Path:
    return Path("results/heads") / dataset / backbone / f"{head}.json"


def finetune_results(dataset: str, backbone: str) -> Path:
    return Path("results/finetune") / dataset / f"{backbone}.json"


def transfer_results(name: str) -> Path:
    return Path("results/transfer") / f"{name}.json"


def robustness_results(dataset: str) -> Path:
    return Path("results/robustness") / f"{dataset}.json"


def robustness_metrics(dataset: str) -> Path:
    return Path("metrics/robustness") / f"{dataset}.json"


def finetune_metrics(dataset: str, backbone: str) -> Path:
    return Path("metrics/finetune") / dataset / f"{backbone}.json"


def transfer_metrics(name: str) -> Path:
    return Path("metrics/transfer") / f"{name}.json"


def timings(stage: str, *parts: str) -> Path:
    """Where a stage writes its timings and run counts: outputs that no stage depends on, and not metrics, so
    that `dvc metrics diff` shows quality only (``timings/heads/<dataset>/<backbone>/<head>.json``, ...)."""
    *folders, last = parts
    return Path("timings") / stage / Path(*folders) / f"{last}.json"


def transfer_report(name: str) -> Path:
    return REPORT_DIR / "transfer" / f"{name}.md"


def confusion_plots(dataset: str, backbone: str, head: str) -> Path:
    """The confusion plot data of every layer of a dataset x backbone x head (one fit stage's output)."""
    return Path("plots/confusion") / dataset / backbone / head


def confusion_plot(dataset: str, backbone: str, head: str, layer: str) -> Path:
    return confusion_plots(dataset, backbone, head) / f"{layer}.csv"


def finetuned_name(backbone: str) -> str:
    """The name the fine-tuned copy of a backbone goes by in embeddings/, models/, results/ and the report."""
    return f"{backbone}-finetuned"


def finetune_dir(dataset: str, backbone: str) -> Path:
    return Path("finetuned") / dataset / backbone


def default_table(dataset: str, backbone: str) -> Path:
    """The table of the backbone's default layer (the pooled features before its classifier)."""
    tables = layer_tables(dataset, backbone)
    for path in tables.values():
        meta = read_embedding_metadata(path)
        if meta.get("node") == meta.get("default_node"):
            return path
    raise FileNotFoundError(
        f"no table of the default layer in {embeddings_dir(dataset, backbone)} (found "
        f"{', '.join(tables) or 'none'}); add `default` to backbones.{backbone}.layers"
    )
