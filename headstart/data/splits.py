"""Seeded, stratified splits that stay put when images are added, and few-shot subsets.

Each image's place is decided by a hash of ``(seed, id)``: within each class the images are ordered by that
hash and cut at the val/test fractions. The same seed and images give the same split on every machine; without
groups, adding an image to a class moves at most the images of that class at the cut points, and none of another.

Every image gets a split, however small its class. A class's counts are the rounded fractions, except that a
class keeps at least one image in each split whose fraction is above zero as long as it has images to spare,
in this order: train first, then test, then val. One image goes to train; two to train and test; three or more
to train, test and val (``val 0 test 0`` puts every image in train). Whether a class can then be evaluated is
the question of the heads' protocol (:func:`unscored_classes`), not of the split.

With ``groups`` (a manifest's ``group_column``: a patient, a site, ...), whole groups are placed instead, like
scikit-learn's ``StratifiedGroupKFold``: groups in the order of their hash go, one by one, to the split whose
per-class shortfall they fill best, so every group lands in one split and the classes stay close to the fractions.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

from headstart.errors import SettingsError

__all__ = ["SplitConfig", "assign_splits", "few_shot_indices", "seeded_rank", "stratified_limit", "unscored_classes"]


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Fractions of each class that go to val and test; the rest is train."""

    val: float = 0.15
    test: float = 0.30

    def __post_init__(self) -> None:
        for name in ("val", "test"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise SettingsError(f"must be in [0, 1), got {value}", name)
        if self.val + self.test >= 1.0:
            raise SettingsError(f"val + test must leave room for train (below 1), got {self.val} + {self.test}")


def _order_key(seed: int, item_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()


def seeded_rank(ids: Sequence[str], seed: int) -> np.ndarray:
    """Positions of ``ids`` in the order of a seeded hash of each id (the same on every machine)."""
    return np.asarray(sorted(range(len(ids)), key=lambda i: _order_key(seed, ids[i])), dtype=int)


def assign_splits(
    ids: Sequence[str],
    labels: Sequence[str],
    preset: Sequence[str | None],
    *,
    val: float,
    test: float,
    seed: int,
    groups: Sequence[Hashable | None] | None = None,
) -> np.ndarray:
    """Give every row a split (``train``, ``val`` or ``test``).

    Rows whose ``preset`` split is set keep it (a manifest's own ``split`` column wins). If the preset names
    any test rows, no other row becomes test (the source has an official test set); likewise for val. Copies
    of the same image (same id) always land in the same split, so nothing leaks from train into test; with
    ``groups``, so do all rows of a group (a null group is no group), and a group with a preset row follows it.

    >>> assign_splits(["a", "b", "c", "d"], ["x"] * 4, [None] * 4, val=0.25, test=0.25, seed=0).tolist()
    ['train', 'val', 'test', 'train']
    """
    if not len(ids) == len(labels) == len(preset):
        raise ValueError("ids, labels and preset must have the same length")
    out = np.array([p if p is not None else "" for p in preset], dtype=object)
    if any(p == "test" for p in preset):
        test = 0.0
    if any(p == "val" for p in preset):
        val = 0.0
    if groups is not None:
        return _assign_groups(ids, labels, preset, groups, out, val=val, test=test, seed=seed)
    by_class: dict[str, dict[str, list[int]]] = {}
    for i, (item_id, label, p) in enumerate(zip(ids, labels, preset, strict=True)):
        if p is None:
            by_class.setdefault(label, {}).setdefault(item_id, []).append(i)
    for label in sorted(by_class):
        groups = by_class[label]
        order = sorted(groups, key=lambda item_id: _order_key(seed, item_id))
        n = len(order)
        n_test = max(int(np.floor(n * test + 0.5)), int(test > 0))
        n_val = max(int(np.floor(n * val + 0.5)), int(val > 0))
        while n_test + n_val >= n and (n_test or n_val):  # train first, then test, then val
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        for rank, item_id in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            for i in groups[item_id]:
                out[i] = split
    return out.astype(str)


def unscored_classes(labels: Sequence[str], splits: Sequence[str]) -> dict[str, str]:
    """The classes that lack an image in a split the protocol needs, each with the first such split.

    A class needs a train image (to be learned), a test image (to be scored) and, when any row is in val, a val
    image (to take part in choosing the parameters). Classes in order; null labels are ignored.

    >>> unscored_classes(["a", "a", "a", "b", "c", "c"], ["train", "val", "test", "train", "train", "val"])
    {'b': 'test', 'c': 'test'}
    """
    labels, splits = np.asarray(labels, dtype=object), np.asarray(splits, dtype=object)
    needed = ("train", "test", "val") if (splits == "val").any() else ("train", "test")
    present = {name: set(labels[splits == name].tolist()) for name in needed}
    out = {}
    for label in sorted({x for x in labels.tolist() if x is not None and x == x}, key=str):
        missing = next((name for name in needed if label not in present[name]), None)
        if missing is not None:
            out[str(label)] = missing
    return out


def few_shot_indices(labels: Sequence[str], n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` images per class (all of a class if it has fewer), chosen by ``seed``.

    Subsets are nested: under one seed the 1-shot set is inside the 2-shot set, and so on, and every head
    sees the same subset for the same ``(n, seed)``.
    """
    if n < 1:
        raise ValueError(f"few-shot n must be at least 1, got {n}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        chosen.append(members[rng.permutation(len(members))][:n])
    return np.sort(np.concatenate(chosen))


def stratified_limit(ids: Sequence[str], labels: Sequence[str], limit: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of at most ``limit`` rows (each class keeps its share)."""
    labels = np.asarray(labels)
    if limit >= len(labels):
        return np.arange(len(labels))
    keep = []
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts / counts.sum() * limit).astype(int)
    # hand out the rounding remainder to the largest fractional parts, deterministically
    remainder = limit - quotas.sum()
    fractions = counts / counts.sum() * limit - quotas
    for j in np.argsort(-fractions, kind="stable")[:remainder]:
        quotas[j] += 1
    for label, quota in zip(classes, quotas, strict=True):
        members = np.flatnonzero(labels == label)
        ranked = sorted(members, key=lambda i: _order_key(seed, ids[i]))
        keep.extend(ranked[:quota])
    return np.sort(np.asarray(keep, dtype=int))


def _assign_groups(
    ids: Sequence[str],
    labels: Sequence[str],
    preset: Sequence[str | None],
    groups: Sequence[Hashable | None],
    out: np.ndarray,
    *,
    val: float,
    test: float,
    seed: int,
) -> np.ndarray:
    if len(groups) != len(ids):
        raise ValueError("groups must have the same length as ids")
    # Units: rows joined by a shared group or a shared id (copies of an image stay together across groups).
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, Hashable], int] = {}
    for i, (item_id, group) in enumerate(zip(ids, groups, strict=True)):
        keys = [("id", item_id)] + ([] if group is None or group != group else [("group", group)])
        for key in keys:
            j = first.setdefault(key, i)
            parent[find(i)] = find(j)
    units: dict[int, list[int]] = {}
    for i in range(len(ids)):
        units.setdefault(find(i), []).append(i)
    fractions = {"test": test, "val": val, "train": 1.0 - test - val}
    totals = Counter(labels)
    want = {s: {c: f * n for c, n in totals.items()} for s, f in fractions.items()}
    have: dict[str, Counter] = {s: Counter() for s in fractions}
    free = []
    for rows in units.values():
        fixed = next((preset[i] for i in rows if preset[i] is not None), None)
        if fixed is None:
            name = min(str(ids[i]) if groups[i] is None else f"{groups[i]}" for i in rows)
            free.append((_order_key(seed, name), rows))
            continue
        for i in rows:
            out[i] = fixed
        have[fixed].update(labels[i] for i in rows)
    for _, rows in sorted(free):
        counts = Counter(labels[i] for i in rows)

        def gain(split: str, counts: Counter = counts) -> float:
            if fractions[split] <= 0:
                return -np.inf
            short = {c: want[split][c] - have[split][c] for c in counts}
            return sum(min(n, max(short[c], 0.0)) - max(n - max(short[c], 0.0), 0.0) for c, n in counts.items())

        split = max(("test", "val", "train"), key=gain)  # ties: test, then val, then train
        have[split].update(counts)
        for i in rows:
            out[i] = split
    if "train" not in set(out.tolist()) and free:  # always keep at least one training group
        _, rows = sorted(free)[-1]
        for i in rows:
            out[i] = "train"
    return out.astype(str)
