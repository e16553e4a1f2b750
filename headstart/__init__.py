"""headstart: embed a dataset once with a pretrained backbone, then compare cheap heads on the embeddings.

>>> import headstart
>>> frame, X, labels = headstart.load_embeddings("embeddings/digits/mobilenet_v2/features.13.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_embeddings"]


def __getattr__(name: str) -> Any:
    # Keep `import headstart` light: pyarrow and pandas load on first use.
    if name == "load_embeddings":
        from headstart.data.tables import load_embeddings

        return load_embeddings
    raise AttributeError(f"module 'headstart' has no attribute {name!r}")
