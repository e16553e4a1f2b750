"""Stage `transfer`: heads trained on a source domain, a target domain, both, and source-then-adapted,
each scored on both test splits. Writes results/transfer/<name>.json, metrics/transfer/<name>.json and
reports/transfer/<name>.md."""

from __future__ import annotations

import argparse
import logging

from headstart._files import atomic_path, write_json
from headstart._terminal import run_main, setup_logging
from headstart.data.tables import load_embeddings
from headstart.heads.evaluate import SplitData
from headstart.heads.transfer import check_disjoint, markdown, transfer_table
from headstart.pipeline import layout
from headstart.pipeline.config import load_config

log = logging.getLogger("headstart.pipeline.transfer")


def _table(dataset: str, backbone: str, layer: str):  # noqa: ANN202
    if layer == "default":
        return load_embeddings(layout.default_table(dataset, backbone))
    tables = layout.layer_tables(dataset, backbone)
    if layer not in tables:
        raise FileNotFoundError(
            f"no table for layer {layer} in {layout.embeddings_dir(dataset, backbone)} "
            f"(there are: {', '.join(tables) or 'none'})"
        )
    return load_embeddings(tables[layer])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headstart.pipeline.transfer", description=__doc__)
    parser.add_argument("name", help="an entry of params.yaml's transfer section")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_config(args.params)
    if args.name not in cfg.transfer:
        raise FileNotFoundError(f"transfer.{args.name} is not in {args.params}; known: {', '.join(cfg.transfer)}")
    tr = cfg.transfer[args.name]
    source, target = _table(tr.source, tr.backbone, tr.layer), _table(tr.target, tr.backbone, tr.layer)
    check_disjoint(
        {s: source.frame.loc[source.frame["split"] == s, "id"].tolist() for s in ("train", "val", "test")},
        {s: target.frame.loc[target.frame["split"] == s, "id"].tolist() for s in ("train", "val", "test")},
    )
    heads = [(name, cfg.head(name).kind, cfg.head(name).params) for name in tr.heads]
    rows = transfer_table(
        SplitData.from_table(source), SplitData.from_table(target), heads, adapt_steps=tr.adapt_steps, seed=cfg.seed
    )
    text = markdown(rows, tr.source, tr.target, tr.adapt_steps)
    layer = source.provenance["node"]
    title = f"{tr.source} -> {tr.target} ({tr.backbone}, layer {layer})"
    write_json(layout.transfer_results(tr.name), {"name": tr.name, "title": title, "rows": rows, "markdown": text})
    compact: dict = {}
    for row in rows:
        regime = row["regime"].replace(" ", "_").replace("->", "then").replace("+", "and")
        compact.setdefault(row["head"], {})[regime] = {
            "source_test": row["source_test"],
            "target_test": row["target_test"],
        }
    write_json(layout.transfer_metrics(tr.name), compact)
    with atomic_path(layout.REPORT_DIR / "transfer" / f"{tr.name}.md") as tmp:
        tmp.write_text(f"# Domain shift: {title}\n\nAccuracy on each domain's test split.\n\n{text}\n")
    print(f"{title}\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
