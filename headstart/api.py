"""headstart in a notebook: embed a folder, fit a head, predict, in a few lines.

>>> import headstart
>>> emb = headstart.embed("photos/", backbone="mobilenet_v2")     # doctest: +SKIP
>>> head = headstart.fit(emb, "logreg")                           # doctest: +SKIP
>>> head.metrics["accuracy"]                                      # doctest: +SKIP
>>> head.predict(["new/cat.jpg", "new/dog.jpg"])                  # doctest: +SKIP

These call the same library functions as the CLI (``headstart embed``, ``headstart fit``, ``headstart
predict``): the same per-image cache, the same protocol (grids chosen on val, refit on train+val, scored on
test), the same provenance checks. Nothing here is a second code path.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from headstart._files import atomic_dir
from headstart.data.prepare import prepare_dataset
from headstart.data.tables import EmbeddingTable, EmbeddingWriter, load_embeddings
from headstart.features.defaults import (
    DEFAULT_BACKBONE,
    DEFAULT_CACHE_DIR,
    DEFAULT_LAYER,
    DEFAULT_POOLING,
    DEFAULT_PRECISION,
    PRETRAINED,
    backbone_spec,
)
from headstart.features.engine import embed as embed_prepared
from headstart.features.spec import EmbedOptions
from headstart.heads.evaluate import SplitData, evaluate_head
from headstart.heads.metrics import class_scores
from headstart.heads.persist import HeadBundle, load_head, save_head
from headstart.heads.registry import check_params, get_head
from headstart.workflow.encode import Encoder
from headstart.workflow.audit import AuditOptions, audit_table
from headstart.workflow.predict import classify_images, list_images, predict_table, spec_from_provenance
from headstart.workflow.ray_check import check_engine

__all__ = ["Embeddings", "Encoder", "Head", "audit", "embed", "fit"]


@dataclass
class Embeddings:
    """An embedding table in memory: row ``i`` of ``X`` belongs to row ``i`` of ``frame``.

    ``frame`` has ``id, label, split, path`` (then ``text`` for texts, and a manifest's own columns), the provenance in
    ``frame.attrs["headstart"]``; ``X`` is C-contiguous float32. ``failures`` lists the images that could not be read (``id, path, error``).
    """
    frame: pd.DataFrame
    X: np.ndarray
    failures: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Embeddings:
        """Read a table written by :meth:`save`, ``headstart embed`` or the embed stage."""
        table = load_embeddings(path)
        return cls(table.frame, table.X)

    @property
    def labels(self) -> np.ndarray:
        """The label of each row (``None`` in an unlabelled collection, which heads refuse)."""
        labels = self.frame["label"].to_numpy(dtype=object)
        missing = self.frame["label"].isna()
        return np.where(missing, None, labels) if missing.any() else labels.astype(str)

    @property
    def ids(self) -> np.ndarray:
        return self.frame["id"].to_numpy(dtype=object).astype(str)

    @property
    def provenance(self) -> dict[str, Any]:
        return self.frame.attrs["headstart"]

    @property
    def table(self) -> EmbeddingTable:
        return EmbeddingTable(self.frame, self.X, self.labels)

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        p = self.provenance
        return (
            f"Embeddings({len(self)} images x {self.X.shape[1]}, {p.get('backbone')} {p.get('weights')} "
            f"{p.get('node')} {p.get('pooling')}, classes: {len(set(self.labels))})"
        )

    def save(self, path: str | Path) -> Path:
        """Write the table to ``path`` (.parquet), atomically, in the format ``headstart fit`` and the readers take."""
        path, frame = Path(path), self.frame
        extra = [c for c in frame.columns if c not in ("id", "label", "split", "path")]
        labelled = not frame["label"].isna().any()
        with EmbeddingWriter(path, self.X.shape[1], self.provenance, labelled=labelled, extra=extra) as writer:
            writer.write(
                frame["id"].tolist(),
                [_none(v) for v in frame["label"]],
                frame["split"].tolist(),
                [_none(v) for v in frame["path"]],
                self.X,
                extra={c: [_none(v) for v in frame[c]] for c in extra} or None,
            )
        return path


def embed(
    source: str | Path,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: str | None = PRETRAINED,
    layer: str = DEFAULT_LAYER,
    pooling: str = DEFAULT_POOLING,
    image_size: int | None = None,
    precision: str = DEFAULT_PRECISION,
    val: float = 0.15,
    test: float = 0.30,
    seed: int = 0,
    limit: int | None = None,
    text_column: str | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    **options: Any,
) -> Embeddings:
    """Embed ``source`` (an image folder ``root/<class>/<image>``, a manifest, a text table or a built-in name).

    Like ``headstart embed``, with the same defaults (:mod:`headstart.features.defaults`): ``weights``
    ``"pretrained"`` is the backbone's standard weights (``IMAGENET1K_V1`` for torchvision models, the model's
    own for ``provider:model`` names, none for ``pixels``); ``None`` is random initialisation; or an exact weights
    name or a checkpoint path. ``image_size`` ``None`` is the weights' own. Images already in the per-image cache
    (``cache_dir``; ``None`` for a throw-away one) are not embedded again. ``options`` are
    :class:`~headstart.features.EmbedOptions` fields (``batch_size``, ``num_workers``, ``device``, ``on_error``).
    """
    spec = backbone_spec(backbone, weights=weights, layers=(layer,), pooling=pooling, image_size=image_size,
                         precision=precision)  # fmt: skip
    settings = EmbedOptions(cache_dir=cache_dir, **options)
    check_engine(settings)
    name = Path(source).name if Path(source).exists() else str(source)
    prepared = prepare_dataset(str(source), name=name, val=val, test=test, seed=seed, limit=limit,
                               text_column=text_column)  # fmt: skip
    meta = prepared.attrs["headstart"]
    with tempfile.TemporaryDirectory(prefix="headstart-embed-") as tmp:
        result = embed_prepared(
            prepared,
            spec,
            single_file=Path(tmp) / "embeddings.parquet",
            dataset={"name": name, "source": meta["source"], "shift": meta["shift"]},
            options=settings,
        )
        table = load_embeddings(Path(tmp) / "embeddings.parquet")
    return Embeddings(table.frame, table.X, failures=list(result.failures))


@dataclass
class Head:
    """A fitted head, shaped like a scikit-learn classifier: ``predict``, ``predict_proba`` (ordered by
    ``classes_``), ``estimator`` (the fitted scikit-learn estimator), ``save`` and ``Head.load``.

    ``X`` may be an ``(n, dim)`` array of embeddings from the head's space, an :class:`Embeddings` (its provenance
    is checked), or items to embed with the head's own backbone settings: image files or folders, PIL images, or
    texts for a text head (see :class:`Encoder`).

    >>> head = headstart.fit(emb, "logreg")                       # doctest: +SKIP
    >>> head.predict_proba(emb.X).shape == (len(emb), len(head.classes_))   # doctest: +SKIP
    True
    """
    kind: str
    estimator: Any
    params: dict[str, Any]
    classes: list[str]
    provenance: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: Any = field(default=None, repr=False)

    @property
    def classes_(self) -> np.ndarray:
        """The class labels, in the order of :meth:`predict_proba`'s columns (the estimator's ``classes_``)."""
        return np.asarray(self.estimator.classes_).astype(str)

    def _bundle(self) -> HeadBundle:
        return HeadBundle(self.estimator, self.kind, self.kind, self.params, self.classes, self.provenance, Path("."))

    def _embeddings(self, X: Any, options: Mapping[str, Any]) -> np.ndarray:
        if isinstance(X, Embeddings):
            self._bundle().check(X.provenance, "the given Embeddings")
            return X.X
        if isinstance(X, np.ndarray) and X.dtype.kind in "fiu":
            if X.ndim != 2 or X.shape[1] != self.provenance.get("dim", X.shape[1]):
                raise ValueError(f"X has shape {X.shape}; this head takes (n, {self.provenance.get('dim')}) embeddings")
            return np.ascontiguousarray(X, dtype=np.float32)
        items = [X] if isinstance(X, (str, Path)) else list(X)
        if self.provenance.get("modality") != "text":  # folders of images are listed, as `headstart predict` does
            items = [p for i in items for p in (list_images([i]) if _is_dir(i) else [i])]
        encoder = Encoder.from_spec(spec_from_provenance(self.provenance), EmbedOptions(**options))
        vectors = encoder.encode(items)
        self._bundle().check(encoder.provenance or {}, "the given items")
        return vectors

    def predict_proba(self, X: Any, **options: Any) -> np.ndarray:
        """``(n_samples, n_classes)`` float64 class probabilities, columns ordered by :attr:`classes_`, each row
        summing to 1 (heads without probabilities: the softmax of their decision function; heads that compute in
        float32 are renormalised in float64, which keeps every row's argmax)."""
        scores = np.asarray(class_scores(self.estimator, self._embeddings(X, options)), dtype=np.float64)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X: Any, **options: Any) -> np.ndarray:
        """The label of each row or item: the argmax of :meth:`predict_proba`."""
        return self.classes_[np.argmax(self.predict_proba(X, **options), axis=1)]

    def top_classes(
        self, inputs: str | Path | Sequence[str | Path] | Embeddings, *, top: int = 5, **options: Any
    ) -> pd.DataFrame:
        """What ``headstart predict`` writes: one row per image (``path, predicted, probability, top<k>``, and an
        ``error`` for an unreadable image), for image files, folders, a text head's .txt files, or an
        :class:`Embeddings`."""
        if isinstance(inputs, Embeddings):
            return predict_table(self._bundle(), inputs.table, "the given Embeddings", top=top)
        items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
        return classify_images(self._bundle(), items, options=EmbedOptions(**options), top=top)

    def save(self, model_dir: str | Path) -> Path:
        """Write the head where ``headstart predict`` and :meth:`load` read it; the folder is swapped in whole."""
        with atomic_dir(model_dir) as building:
            save_head(building, self.estimator, head=self.kind, name=self.kind, params=self.params,
                      classes=self.classes, provenance=self.provenance)  # fmt: skip
        return Path(model_dir)

    @classmethod
    def load(cls, model_dir: str | Path) -> Head:
        """A head written by :meth:`save`, ``headstart fit`` or the fit stage (with its test metrics, when the
        folder holds ``metrics.json``); loading runs no code from the files."""
        bundle = load_head(model_dir)
        metrics_file = Path(model_dir) / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        return cls(bundle.head, bundle.estimator, bundle.params, list(bundle.classes), dict(bundle.provenance), metrics)


def fit(
    embeddings: Embeddings | str | Path,
    head: str = "logreg",
    *,
    seeds: int = 1,
    few_shot: Sequence[int | str] = (),
    seed: int = 0,
    **params: Any,
) -> Head:
    """Fit ``head`` (any kind from ``headstart heads``) on the train split, choosing list- or grid-valued
    ``params`` on val and refitting on train+val, then score it on test; as ``headstart fit`` does.

    >>> head = fit(emb, "knn", k=[5, 10, 20])   # doctest: +SKIP
    """
    emb = embeddings if isinstance(embeddings, Embeddings) else Embeddings.load(embeddings)
    get_head(head)
    check_params(head, params, "fit()")
    data = SplitData.from_table(emb.table, source="the given Embeddings")
    evaluation = evaluate_head(head, _plain(params), data, seeds=seeds, few_shot=few_shot, seed=seed)
    return Head(
        kind=head,
        estimator=evaluation.model,
        params=evaluation.params,
        classes=list(evaluation.classes),
        provenance=dict(emb.provenance),
        metrics=dict(evaluation.metrics),
        evaluation=evaluation,
    )


def audit(
    embeddings: Embeddings | str | Path, out_dir: str | Path = "audit", *, head: str = "logreg",
    prepared: str | Path | pd.DataFrame | None = None, **options: Any,
) -> dict[str, Any]:  # fmt: skip
    """Audit a table as ``headstart audit`` does (duplicates and leakage, label errors by ``head`` cross-validated
    on train+val, outliers, confusions, a 2-D map) into ``out_dir``, replaced whole; returns the summary.
    ``prepared``: the prepared table (path or frame) with the pixels of built-in images, for thumbnails and pixel
    duplicates. ``options``: :class:`~headstart.workflow.audit.AuditOptions` fields (``cosine``, ``hash_bits``, ...).

    >>> headstart.audit(emb, "audit/", prepared=prepare_dataset("digits"))["score_without_leaked"]  # doctest: +SKIP
    """
    emb = embeddings if isinstance(embeddings, Embeddings) else Embeddings.load(embeddings)
    settings = AuditOptions(head=head, **options)
    return audit_table(emb.table, out_dir, prepared=prepared, options=settings, title="Audit")


def _is_dir(item: Any) -> bool:
    return isinstance(item, (str, Path)) and Path(item).is_dir()


def _none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
