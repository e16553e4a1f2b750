"""The transfer stage's work: load both domains' tables, run the regimes, write results, metrics and Markdown."""

from __future__ import annotations

from typing import Any

from headstart._files import atomic_path, write_json
from headstart.data.tables import load_embeddings
from headstart.heads.evaluate import SplitData
from headstart.heads.transfer import check_disjoint, transfer_table
from headstart.report.transfer import transfer_markdown
from headstart.workflow import layout
from headstart.workflow.settings import TransferSettings

__all__ = ["transfer_stage"]


def _table(dataset: str, backbone: str, layer: str) -> Any:
    if layer == "default":
        return load_embeddings(layout.default_table(dataset, backbone))
    tables = layout.layer_tables(dataset, backbone)
    if layer not in tables:
        raise FileNotFoundError(
            f"no table for layer {layer} in {layout.embeddings_dir(dataset, backbone)} "
            f"(there are: {', '.join(tables) or 'none'})"
        )
    return load_embeddings(tables[layer])


def _ids(table: Any) -> dict[str, list[str]]:
    return {s: table.frame.loc[table.frame["split"] == s, "id"].tolist() for s in ("train", "val", "test")}


def transfer_stage(settings: TransferSettings) -> str:
    """Run one transfer; write results/transfer/<name>.json, metrics/transfer/<name>.json and
    reports/transfer/<name>.md. Returns the title and table as text."""
    tr = settings.transfer
    source, target = _table(tr.source, tr.backbone, tr.layer), _table(tr.target, tr.backbone, tr.layer)
    check_disjoint(_ids(source), _ids(target))
    heads = [(h.name, h.kind, h.params) for h in settings.heads]
    rows = transfer_table(
        SplitData.from_table(source), SplitData.from_table(target), heads, adapt_steps=tr.adapt_steps,
        seed=settings.seed,
    )  # fmt: skip
    text = transfer_markdown(rows, tr.source, tr.target, tr.adapt_steps)
    title = f"{tr.source} -> {tr.target} ({tr.backbone}, layer {source.provenance['node']})"
    write_json(layout.transfer_results(tr.name), {"name": tr.name, "title": title, "rows": rows, "markdown": text})
    compact: dict[str, dict[str, Any]] = {}
    for row in rows:
        regime = row["regime"].replace(" ", "_").replace("->", "then").replace("+", "and")
        compact.setdefault(row["head"], {})[regime] = {
            "source_test": row["source_test"],
            "target_test": row["target_test"],
        }
    write_json(layout.transfer_metrics(tr.name), compact)
    with atomic_path(layout.transfer_report(tr.name)) as tmp:
        tmp.write_text(f"# Domain shift: {title}\n\nAccuracy on each domain's test split.\n\n{text}\n")
    return f"{title}\n{text}"
