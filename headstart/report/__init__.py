"""Presentation: the head comparison as Markdown, its figures and plot data, the domain-shift table.

``tables`` renders Markdown, ``figures`` draws PNGs and the few-shot CSV, ``transfer`` renders the domain-shift
table, ``robustness`` the table of heads on shifted test images. Everything here reads the JSON records the fit, finetune and transfer stages write; nothing computes a
score. Importing this package does not import matplotlib.
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "ReportRow": "tables",
    "markdown_table": "tables",
    "render_markdown": "tables",
    "rows_from_results": "tables",
    "confusion_figure": "figures",
    "fewshot_csv": "figures",
    "fewshot_figure": "figures",
    "transfer_markdown": "transfer",
    "robustness_markdown": "robustness",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
