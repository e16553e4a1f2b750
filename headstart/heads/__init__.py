"""Cheap heads on embeddings (faiss k-NN, logistic regression, SVM, nearest class mean), their selection on
val, the evaluation protocol, metrics and the report. This package never imports torch.
"""

from headstart.heads.evaluate import HeadEvaluation, SplitData, evaluate_head
from headstart.heads.knn import KNNClassifier
from headstart.heads.ncm import NearestClassMean
from headstart.heads.persist import HeadBundle, ProvenanceMismatch, check_provenance, load_head, save_head
from headstart.heads.registry import HeadError, HeadType, build_head, get_head, list_heads, register_head
from headstart.heads.selection import Selection, select, sweep_logreg_C

__all__ = [
    "HeadBundle",
    "HeadError",
    "HeadEvaluation",
    "HeadType",
    "KNNClassifier",
    "NearestClassMean",
    "ProvenanceMismatch",
    "Selection",
    "SplitData",
    "build_head",
    "check_provenance",
    "evaluate_head",
    "get_head",
    "list_heads",
    "load_embeddings",
    "load_head",
    "register_head",
    "save_head",
    "select",
    "sweep_logreg_C",
]

from headstart.data.tables import load_embeddings  # noqa: E402  (re-exported for convenience)
