"""What an embedding table says about its own data: near-duplicates and train/test leakage, likely label errors,
outliers, the classes a head confuses, and a 2-D map. Every finding is computed from the embeddings, the labels,
and (for images) a perceptual hash and the low frequencies of the pixels; nothing here imports torch.

The thresholds, and how they were calibrated, are stated beside each finding's code and in docs/audit.md.
"""

from __future__ import annotations

from headstart._lazy import lazy_exports

_WHERE = {
    "COSINE_DUPLICATE": "duplicates",
    "HASH_BITS": "duplicates",
    "PIXEL_CORRELATION": "duplicates",
    "PixelSignatures": "duplicates",
    "low_frequencies": "duplicates",
    "find_duplicates": "duplicates",
    "leaked_rows": "duplicates",
    "LabelScores": "labels",
    "label_issues": "labels",
    "out_of_sample_scores": "labels",
    "outlier_scores": "outliers",
    "flag_outliers": "outliers",
    "confused_pairs": "confusion",
    "misclassified_with_neighbours": "confusion",
    "pixel_signatures": "pixels",
    "map_2d": "projection",
    "map_rows": "projection",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
