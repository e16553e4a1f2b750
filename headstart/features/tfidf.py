"""The ``tfidf`` backbone: the honest baseline for text, as ``pixels`` is for images.

scikit-learn's TF-IDF of word 1-2-grams and character 2-5-grams (within word boundaries), each L2-normalised,
side by side, reduced by TruncatedSVD to :data:`WIDTH` dimensions and L2-normalised again (latent semantic
analysis). It is fitted on the **train split only**: :func:`fit_spec` fits it on a prepared table's train texts,
saves the fit as ``tfidf-<digest>.npz`` (arrays only, no pickle) and returns the spec with that file as its
``weights``; the engine does this before it embeds a ``tfidf`` spec. The fit's digest (of its vocabulary, idf
and components) is the backbone's ``weights_sha256``, so it enters the fingerprint: tables and cache entries of
two fits never mix. A fit with fewer than :data:`WIDTH` components (a small train split) pads with zeros.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from threadpoolctl import threadpool_limits
from torch import nn

from headstart._files import atomic_path
from headstart.features.balance import Plan
from headstart.features.reader import Batch, Item
from headstart.features.registry import Backbone
from headstart.features.spec import BackboneError, BackboneSpec
from headstart.features.weights import ResolvedWeights, WeightsError

__all__ = ["ANALYZERS", "WIDTH", "TfidfBackbone", "build_tfidf", "fit_spec", "needs_fit"]

WIDTH = 256
ANALYZERS: dict[str, dict[str, Any]] = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 1, "max_features": 50_000, "sublinear_tf": True},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 1, "max_features": 50_000, "sublinear_tf": True},
}
_SVD = {"n_iter": 7, "random_state": 0}


def needs_fit(spec: BackboneSpec) -> bool:
    """Whether ``spec`` is a ``tfidf`` backbone not yet fitted (its ``weights`` names no fit file)."""
    return spec.arch == "tfidf" and not (spec.weights and Path(str(spec.weights)).is_file())


def fit_spec(spec: BackboneSpec, prepared: pd.DataFrame, directory: str | Path) -> BackboneSpec:
    """Fit TF-IDF + SVD on ``prepared``'s train texts, save the fit in ``directory`` (named by its digest) and
    return ``spec`` with that file as its weights (a spec already fitted, as it is)."""
    if not needs_fit(spec):
        return spec
    train = prepared[prepared["split"] == "train"] if "split" in prepared.columns else prepared.iloc[0:0]
    if train.empty:
        raise BackboneError("the tfidf backbone is fitted on the train split, and this dataset has no train rows")
    images = train["image"] if "image" in train.columns else [None] * len(train)
    texts = [_text(Item(str(i), p, b)) for i, (p, b) in enumerate(zip(train["path"], images, strict=True))]
    arrays = _fit(texts)
    digest = _digest(arrays)
    path = Path(directory) / f"tfidf-{digest[:16]}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez(file, **arrays)
    return dataclasses.replace(spec, weights=str(path))


def _text(item: Item) -> str:
    data = item.image if item.image is not None else Path(item.path).read_bytes()
    return bytes(data).decode("utf-8", errors="replace")


def _fit(texts: list[str]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"params": np.array(json.dumps({"analyzers": ANALYZERS, "svd": _SVD}))}
    blocks = []
    with threadpool_limits(1):  # the same components on any number of cores
        for name, params in ANALYZERS.items():
            vectorizer = TfidfVectorizer(**params, dtype=np.float64).fit(texts)
            arrays[f"{name}_terms"] = vectorizer.get_feature_names_out().astype(str)
            arrays[f"{name}_idf"] = vectorizer.idf_
            blocks.append(vectorizer.transform(texts))
        X = sparse.hstack(blocks).tocsr()
        k = min(WIDTH, X.shape[1] - 1, X.shape[0])
        components = TruncatedSVD(k, **_SVD).fit(X).components_ if k > 0 else np.zeros((0, X.shape[1]))
    arrays["components"] = np.vstack([components, np.zeros((WIDTH - len(components), X.shape[1]))])
    return arrays


def _digest(arrays: dict[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    for key in sorted(arrays):
        sha.update(key.encode())
        value = arrays[key]
        sha.update("\x00".join(value.tolist()).encode() if value.dtype.kind == "U" else value.tobytes())
    return sha.hexdigest()


class _Transform(nn.Module):
    """Texts -> their ``WIDTH``-d vectors; stateless, so passes may run in several threads at once."""

    reentrant = True

    def __init__(self, arrays: dict[str, np.ndarray], poolings: tuple[str, ...]) -> None:
        super().__init__()
        self.vectorizers = []
        for name, params in ANALYZERS.items():
            terms = arrays[f"{name}_terms"]
            vectorizer = TfidfVectorizer(**params, dtype=np.float64, vocabulary={t: i for i, t in enumerate(terms)})
            vectorizer.fit([""])
            vectorizer.idf_ = arrays[f"{name}_idf"]
            self.vectorizers.append(vectorizer)
        self.components_t = np.ascontiguousarray(arrays["components"].T)
        self.poolings = poolings
        self.applied = {("tfidf", mode): "none" for mode in poolings}

    def forward(self, batch: dict[str, Any]) -> dict[tuple[str, str], torch.Tensor]:
        X = sparse.hstack([v.transform(batch["texts"]) for v in self.vectorizers]).tocsr()
        vectors = torch.from_numpy(normalize(np.asarray(X @ self.components_t)).astype(np.float32))
        return {("tfidf", mode): vectors for mode in self.poolings}


class TfidfBackbone(Backbone):
    modality = "text"

    def graph_nodes(self) -> list[str]:
        return ["tfidf"]

    def default_node(self) -> str:
        return "tfidf"

    def resolve_layers(self, layers: tuple[str, ...]) -> tuple[str, ...]:
        for layer in layers:
            if layer not in ("default", "tfidf"):
                raise BackboneError(f"the tfidf backbone has one layer, 'tfidf' (or 'default'), not '{layer}'")
        return ("tfidf",)

    def extractor(self, layers: tuple[str, ...], poolings: tuple[str, ...]) -> nn.Module:
        self.resolve_layers(layers)
        return _Transform(self.model, poolings)

    def declared_dim(self, node: str, pooling: str | None = None) -> int:
        return WIDTH

    def example_input(self) -> Any:
        return {"rows": torch.arange(1), "texts": ["headstart"]}

    def feed(  # noqa: PLR0913
        self, items: list[Any], device: Any, batch_size: int, num_workers: int | str, max_pixels: int, reduce_to: Any
    ) -> tuple[Any, Any]:
        plan = Plan(0, 1, "texts read in line")
        return _batches(items, batch_size), lambda: plan

    def batch_stage(self) -> None:
        return None

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "modality": "text"}


def _batches(items: list[Any], batch_size: int) -> Iterator[Batch]:
    for start in range(0, len(items), batch_size):
        t0 = time.perf_counter()
        texts, ids, failures = [], [], []
        for item in items[start : start + batch_size]:
            try:
                text = bytes(item.image if item.image is not None else Path(item.path).read_bytes()).decode("utf-8")
                if not text.strip():
                    raise ValueError("empty text")
            except (UnicodeDecodeError, ValueError, OSError) as err:
                failures.append((item.id, f"cannot read the text: {err}"))
                continue
            texts.append(text)
            ids.append(item.id)
        inputs = {"rows": torch.arange(len(ids)), "texts": texts} if ids else None
        yield Batch(ids=ids, pixels=inputs, failures=failures, decode_seconds=time.perf_counter() - t0)


def build_tfidf(spec: BackboneSpec) -> Backbone:
    """The builder registered as ``tfidf``: ``weights`` is a fit file written by :func:`fit_spec`."""
    if needs_fit(spec):
        raise WeightsError(
            "the tfidf backbone is fitted on a dataset's train split; embed with it (headstart embed, "
            "headstart.embed, the embed stage), which fits it first, or set `weights:` to a tfidf-*.npz fit"
        )
    path = Path(str(spec.weights))
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError) as err:
        raise WeightsError(f"{path} is not a tfidf fit written by headstart ({err}); embed again to refit") from err
    params = json.loads(str(arrays["params"]))
    preprocessing = {"transform": "tfidf+svd+l2", **params, "width": WIDTH, "decode": "UTF-8 text"}
    return TfidfBackbone(
        spec=spec,
        model=arrays,
        transform=lambda text: text,
        preprocessing=preprocessing,
        weights=ResolvedWeights("checkpoint", str(path), path=path),
        weights_sha256=_digest(arrays),
    )
