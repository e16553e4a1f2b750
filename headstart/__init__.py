"""headstart: embed a dataset once with a pretrained backbone, then compare cheap heads on the embeddings.

>>> import headstart
>>> emb = headstart.embed("photos/", backbone="mobilenet_v2")   # doctest: +SKIP
>>> head = headstart.fit(emb, "logreg")                         # doctest: +SKIP
>>> head.predict(["new/cat.jpg"])                               # doctest: +SKIP
>>> head.predict_proba(emb.X).shape                             # doctest: +SKIP
>>> tuned = headstart.finetune("photos/", "mobilenet_v2", "ft/")  # doctest: +SKIP
>>> headstart.Encoder(tuned).encode(["new/cat.jpg"])            # doctest: +SKIP
>>> headstart.Encoder("mobilenet_v2", layer="features.13").encode(["new/cat.jpg"])  # doctest: +SKIP
>>> frame, X, labels = headstart.load_embeddings("embeddings/digits/mobilenet_v2/features.13.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

__version__ = "0.1.0"

# Keep `import headstart` light: torch, pyarrow and pandas load on first use of these names.
_WHERE = {
    "Embeddings": "api",
    "Encoder": "api",
    "Head": "api",
    "audit": "api",
    "embed": "api",
    "finetune": "workflow.finetune",
    "fit": "api",
    "load_embeddings": "data.tables",
}
__all__ = ["__version__", *sorted(_WHERE)]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
