"""Cheap heads on embeddings (faiss k-NN, logistic regression, SVM, nearest class mean), their selection on
val, the evaluation protocol, metrics, persistence and domain shift. This package never imports torch; its
names load on first use.
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "HeadEvaluation": "evaluate",
    "SplitData": "evaluate",
    "evaluate_head": "evaluate",
    "KNNClassifier": "knn",
    "StreamingLinearProbe": "stream",
    "fit_knn_stream": "knn_head",
    "fit_probe_stream": "stream",
    "knn_recall": "knn_head",
    "nearest": "neighbours",
    "nearest_rows": "neighbours",
    "NearestClassMean": "ncm",
    "HeadBundle": "persist",
    "ProvenanceMismatch": "persist",
    "check_provenance": "persist",
    "load_head": "persist",
    "save_head": "persist",
    "HeadError": "registry",
    "HeadType": "registry",
    "build_head": "registry",
    "get_head": "registry",
    "list_heads": "registry",
    "register_head": "registry",
    "Selection": "selection",
    "select": "selection",
    "sweep_logreg_C": "linear",
    "transfer_table": "transfer",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
