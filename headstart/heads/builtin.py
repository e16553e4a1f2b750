"""The built-in heads, in the order ``headstart heads`` lists them; each is declared beside its estimator."""

from __future__ import annotations

from headstart.heads.knn_head import KNN
from headstart.heads.linear import LOGREG, SVM
from headstart.heads.ncm import NCM
from headstart.heads.params import HeadType
from headstart.heads.stream import LOGREG_STREAM

__all__ = ["BUILTIN_HEADS"]

BUILTIN_HEADS: tuple[HeadType, ...] = (KNN, LOGREG, LOGREG_STREAM, SVM, NCM)
