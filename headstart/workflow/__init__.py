"""What the stages and the CLI do, and the files they write: between the library (data -> features -> heads,
report) and its callers (``headstart.pipeline`` stages, ``headstart.cli``).

``fit`` (a head on a table, into a model directory; the fit stage), ``finetune``, ``transfer``, ``report``
(one function per stage), ``records`` (what is kept, split into quality and timings: metrics and everything DVC
tracks hold quality only, ``timings/`` the rest).
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "fit_stage": "fit",
    "fit_table": "fit",
    "finetune_stage": "finetune",
    "compact_metrics": "records",
    "evaluation_record": "records",
    "write_embed_records": "records",
    "report_stage": "report",
    "write_report": "report",
    "transfer_stage": "transfer",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
