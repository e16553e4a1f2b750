"""Seeded, stratified splits that stay put when images are added, and few-shot subsets.

Each image's place is decided by a hash of ``(seed, id)``: within each class the images are ordered by that
hash and cut at the val/test fractions. The same seed and images give the same split on every machine, and
adding an image moves at most the images at the cut points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["assign_splits", "few_shot_indices", "seeded_rank", "stratified_limit"]


def _order_key(seed: int, item_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()


def seeded_rank(ids: Sequence[str], seed: int) -> np.ndarray:
    """Positions of ``ids`` in the order of a seeded hash of each id (the same on every machine)."""
    return np.asarray(sorted(range(len(ids)), key=lambda i: _order_key(seed, ids[i])), dtype=int)


def assign_splits(
    ids: Sequence[str], labels: Sequence[str], preset: Sequence[str | None], *, val: float, test: float, seed: int
) -> np.ndarray:
    """Give every row a split (``train``, ``val`` or ``test``).

    Rows whose ``preset`` split is set keep it (a manifest's own ``split`` column wins). If the preset names
    any test rows, no other row becomes test (the source has an official test set); likewise for val. Copies
    of the same image (same id) always land in the same split, so nothing leaks from train into test.

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
    by_class: dict[str, dict[str, list[int]]] = {}
    for i, (item_id, label, p) in enumerate(zip(ids, labels, preset, strict=True)):
        if p is None:
            by_class.setdefault(label, {}).setdefault(item_id, []).append(i)
    for label in sorted(by_class):
        groups = by_class[label]
        order = sorted(groups, key=lambda item_id: _order_key(seed, item_id))
        n = len(order)
        n_test = int(np.floor(n * test + 0.5))
        n_val = int(np.floor(n * val + 0.5))
        while n_test + n_val >= n and (n_test or n_val):  # always keep at least one training image
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        for rank, item_id in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            for i in groups[item_id]:
                out[i] = split
    return out.astype(str)


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
