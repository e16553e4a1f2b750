"""Class counts of a prepared dataset: thinning a class to make an imbalanced dataset.

>>> import pandas as pd
>>> frame = pd.DataFrame({"id": [f"i{n}" for n in range(20)], "label": ["a"] * 10 + ["b"] * 10})
>>> thin_classes(frame, {"b": 0.3}, "demo", seed=0)["label"].value_counts().to_dict()
{'a': 10, 'b': 3}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from headstart.data.sources import DatasetError
from headstart.data.splits import seeded_rank

__all__ = ["IMBALANCE_RATIO", "thin_classes"]

log = logging.getLogger(__name__)

# largest / smallest class count above which selecting by `auto` means balanced accuracy (heads and fine-tuning)
IMBALANCE_RATIO = 1.5


def thin_classes(frame: pd.DataFrame, imbalance: Mapping[str, float], name: str, seed: int) -> pd.DataFrame:
    """Keep ``fraction`` of each named class's images (rounded, at least one), ranked by a seeded hash of id."""
    labels = frame["label"].astype(str)
    known = sorted(labels.unique())
    drop: list[int] = []
    for label, fraction in sorted((str(k), float(v)) for k, v in imbalance.items()):
        if label not in known:
            raise DatasetError(
                f"datasets.{name}.imbalance names class {label!r}, which the dataset does not have; "
                f"its classes: {', '.join(known[:20])}"
            )
        members = np.flatnonzero((labels == label).to_numpy())
        ranked = members[seeded_rank([f"imbalance:{i}" for i in frame["id"].iloc[members]], seed)]
        keep = max(1, int(np.floor(len(members) * fraction + 0.5)))
        drop.extend(ranked[keep:].tolist())
        log.info("dataset %s: class %s keeps %d of its %d images", name, label, keep, len(members))
    return frame.drop(frame.index[sorted(drop)]).reset_index(drop=True)

