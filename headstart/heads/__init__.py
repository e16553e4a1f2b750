"""Cheap heads on embeddings (faiss k-NN, logistic regression, SVM, nearest class mean), their selection on
val, the evaluation protocol, metrics, the report and domain shift. This package never imports torch; its
names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "HeadEvaluation": "evaluate",
    "SplitData": "evaluate",
    "evaluate_head": "evaluate",
    "KNNClassifier": "knn",
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
    "sweep_logreg_C": "selection",
    "transfer_table": "transfer",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"headstart.heads.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'headstart.heads' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
