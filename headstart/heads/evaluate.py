"""The evaluation protocol every head goes through, on the fixed train/val/test split.

1. Selection: grid parameters are chosen on val after fitting on train (:mod:`headstart.heads.selection`).
2. Full data: the head is refitted on train+val with the chosen parameters and scored on test, once per
   seed for heads whose fit depends on a seed (one run otherwise: more would repeat the same numbers);
   means and Student-t 95% confidence intervals over the seeds (``intervals``: seed spread, seeded heads only),
   and a 95% interval of each test score over the sampling of the test images (``test_intervals``: Wilson for
   accuracy, a seeded bootstrap for the others; :mod:`headstart.heads.intervals`) from the first seed's run.
3. Few-shot: for each n, n training images per class (the same subset for every head under one seed,
   nested across n), fitted with the chosen parameters, scored on the same test split; mean and standard
   deviation over the seeds of accuracy and balanced accuracy. ``all`` is the whole train split.

Grid points without a sweep and the few-shot runs are independent fits: on more than one core they run in worker
processes (:mod:`headstart.heads.parallel`).

Which classes are evaluated: those with a train, a test and (when the table has a val split) a val image
(:func:`headstart.data.splits.unscored_classes`). The others are left out of the protocol whole: their rows are
in none of train, val, test or the few-shot subsets, so the metrics, the per-class table, the confusion matrix,
the few-shot curves and the saved head all speak of the same classes, and every head of a table is compared on
the same ones. Kept in train only, such a class would be a prediction no test image can reward, whose errors
show up nowhere in the per-class table. The evaluation names them (``left_out``); with fewer than two evaluable
classes the protocol stops with one line that names them and the fix.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import balanced_accuracy_score

from headstart._progress import ProgressFactory, null_progress
from headstart.data.splits import few_shot_indices, unscored_classes
from headstart.data.tables import EmbeddingTable
from headstart.heads import parallel
from headstart.heads._checks import TrainingDataError, check_classes
from headstart.heads.intervals import test_intervals
from headstart.heads.metrics import class_scores, classification_metrics, confusion, mean_ci95, per_class
from headstart.heads.registry import HeadError, build_head, get_head, resolve_params
from headstart.heads.selection import Selection, select

__all__ = ["HeadEvaluation", "SplitData", "assemble", "evaluable_classes", "evaluate_head", "few_shot_run"]
__all__ += ["left_out_text", "unlabelled"]

log = logging.getLogger(__name__)


def unlabelled(where: str) -> HeadError:
    """The error for a table without labels (``where`` names it)."""
    return HeadError(
        f"{where} has no labels (an unlabelled collection), and a head needs them; label it (class "
        "folders or a label column), or search it with `headstart neighbours`"
    )


def left_out_text(left_out: Mapping[str, str], shown: int = 10) -> str:
    """``class '4' (no val image), class '129' (no test image)``: the first ``shown`` left-out classes."""
    text = ", ".join(f"class {label!r} (no {split} image)" for label, split in list(left_out.items())[:shown])
    return text + (f" and {len(left_out) - shown} more" if len(left_out) > shown else "")


def evaluable_classes(labels: Sequence[str], splits: Sequence[str], where: str) -> dict[str, str]:
    """The classes the protocol leaves out (each with the split it has no image in); refuses, in one line, a
    table where fewer than two classes can be evaluated."""
    left_out = unscored_classes(labels, splits)
    classes = set(np.asarray(labels).tolist())
    if len(classes) - len(left_out) >= 2 or not left_out:  # one class in all: check_classes says so
        if left_out:
            log.warning("%s: left out of the evaluation: %s", where, left_out_text(left_out))
        return left_out
    if not any(s == "test" for s in splits):
        raise TrainingDataError(
            f"{where} has no test images, so no head can be evaluated on it; embed it again with a test fraction "
            "(`--test 0.3`, datasets.<name>.split.test) and at least two images in each class"
        )
    raise TrainingDataError(
        f"{where}: {len(classes) - len(left_out)} of {len(classes)} classes can be evaluated, and the protocol "
        f"needs two with an image in every split: {left_out_text(left_out, 5)}; add images to these classes "
        "or embed again with other split fractions (--val/--test, or datasets.<name>.split)"
    )


@dataclass
class SplitData:
    """Embeddings and labels of the three splits."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str = ""  # where the data came from, for messages

    @classmethod
    def from_table(cls, table: EmbeddingTable, source: str = "") -> SplitData:
        if not table.labelled:
            raise unlabelled(
                source or "the embedding table of dataset '{}'".format(
                    table.provenance.get("dataset", {}).get("name") or "?"
                )
            )
        split = table.frame["split"].to_numpy()
        parts = {}
        for name in ("train", "val", "test"):
            mask = split == name
            parts[f"X_{name}"] = np.ascontiguousarray(table.X[mask])
            parts[f"y_{name}"] = table.labels[mask]
        return cls(**parts, source=source)

    @property
    def classes(self) -> np.ndarray:
        return np.unique(np.concatenate([self.y_train, self.y_val, self.y_test]))

    def evaluable(self) -> tuple[SplitData, dict[str, str]]:
        """These splits without the rows of the classes the protocol leaves out, and those classes."""
        parts = [(name, getattr(self, f"y_{name}")) for name in ("train", "val", "test")]
        labels = np.concatenate([y for _, y in parts])
        splits = np.concatenate([np.full(len(y), name, dtype=object) for name, y in parts])
        left_out = evaluable_classes(labels, splits, self.source or "the embedding table")
        if not left_out:
            return self, left_out
        kept = {}
        for name, y in parts:
            mask = ~np.isin(y, list(left_out))
            kept[f"X_{name}"], kept[f"y_{name}"] = getattr(self, f"X_{name}")[mask], y[mask]
        return SplitData(**kept, source=self.source), left_out


@dataclass
class HeadEvaluation:
    """Everything the protocol measured for one head on one embedding table."""

    head: str
    params: dict[str, Any]
    selection: Selection
    model: Any
    metrics: dict[str, float]
    intervals: dict[str, dict[str, Any]]
    per_seed: list[dict[str, float]]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    classes: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    few_shot: list[dict[str, Any]] = field(default_factory=list)
    test_intervals: dict[str, dict[str, Any]] = field(default_factory=dict)
    randomized: bool = False  # whether the fit depends on the seed (then ``intervals`` is a seed spread)
    left_out: dict[str, str] = field(default_factory=dict)  # classes not evaluated: the split each has no image in
    test_scores: np.ndarray | None = None  # the model's per-class scores of the test rows (``classes`` order)

    def few_shot_summary(self) -> list[dict[str, Any]]:
        """Mean, standard deviation and 95% interval of the mean of test (balanced) accuracy per n."""
        out = []
        for n in dict.fromkeys(r["n"] for r in self.few_shot):
            runs = [r for r in self.few_shot if r["n"] == n]
            row = {"n": n, "per_class": runs[0]["per_class"], "train_images": runs[0]["train_images"]}
            for key in ("accuracy", "balanced_accuracy"):
                stats = mean_ci95([r[key] for r in runs if key in r])
                row.update({f"{key}_mean": stats["mean"], f"{key}_std": stats["std"]})
                row.update({f"{key}_low": stats["ci95_low"], f"{key}_high": stats["ci95_high"]})
            out.append({**row, "seeds": len(runs)})
        return out


@parallel.single_threaded
def evaluate_head(
    head: str,
    params: Mapping[str, Any],
    data: SplitData,
    *,
    seeds: int = 5,
    few_shot: Sequence[int | str] = (1, 2, 5, 10, 20, "all"),
    seed: int = 0,
    progress: ProgressFactory = null_progress,
) -> HeadEvaluation:
    """Run the whole protocol for ``head`` (a registered head kind) with ``params``."""
    kind = get_head(head)
    fixed, grid = resolve_params(head, params)
    data, left_out = data.evaluable()
    check_classes(data.y_train, f"the train split of {data.source}" if data.source else "the train split")
    selection = select(head, fixed, grid, data.X_train, data.y_train, data.X_val, data.y_val, seed)
    best = selection.best
    classes = data.classes
    X_fit = np.concatenate([data.X_train, data.X_val]) if len(data.X_val) else data.X_train
    y_fit = np.concatenate([data.y_train, data.y_val]) if len(data.y_val) else data.y_train
    seed_list = [seed + s for s in range(seeds if kind.randomized else 1)]
    shots = [n for n in few_shot]
    few_runs = sum(len(seed_list) if n == "all" else seeds for n in shots)
    bar = progress(total=len(seed_list) + few_runs, desc=f"fit {head}", unit="fit")
    try:
        per_seed, first = [], None
        for s in seed_list:
            estimator = build_head(head, best, s)
            start = time.perf_counter()
            _fit(estimator, X_fit, y_fit)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            y_pred = estimator.predict(data.X_test)
            predict_seconds = time.perf_counter() - start
            scores = class_scores(estimator, data.X_test)
            result = classification_metrics(data.y_test, y_pred, scores, estimator.classes_)
            result.update(fit_seconds=fit_seconds, predict_ms_per_image=1000 * predict_seconds / len(data.X_test))
            per_seed.append(result)
            if first is None:
                first = (estimator, y_pred, scores)
                tested = test_intervals(data.y_test, y_pred, scores, estimator.classes_, result)
            bar.update(1)
        runs = [(n, s) for n in shots for s in (seed_list if n == "all" else [seed + i for i in range(seeds)])]
        subsets = [
            np.arange(len(data.y_train)) if n == "all" else few_shot_indices(data.y_train, int(n), s) for n, s in runs
        ]
        full = {**kind.defaults, **best}
        calls = [(kind.build, full, s, data.X_train[idx], data.y_train[idx], data.X_test) for (n, s), idx in
                 zip(runs, subsets, strict=True)]
        predictions = parallel.run(parallel.fit_predict, calls, parallel.workers(len(calls), data.X_train, kind.quick))
        few = []
        for (n, s), idx, few_pred in zip(runs, subsets, predictions, strict=True):
            few.append(few_shot_run(n, s, data.y_test, few_pred, len(idx)))
            bar.update(1)
    finally:
        bar.close()
    assert first is not None
    return assemble(head, selection, per_seed, first, tested, few, classes, data.y_test, left_out)


def few_shot_run(n: int | str, seed: int, y_test: np.ndarray, y_pred: np.ndarray, train_images: int) -> dict[str, Any]:
    """One few-shot run's record: n per class, its seed, test (balanced) accuracy and the training images."""
    return {
        "n": n,
        "seed": seed,
        "accuracy": float(np.mean(y_pred == y_test)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, y_pred)),
        "train_images": int(train_images),
        "per_class": "all" if n == "all" else int(n),
    }


def assemble(
    head: str,
    selection: Selection,
    per_seed: list[dict[str, float]],
    first: tuple[Any, np.ndarray, np.ndarray],
    tested: dict[str, dict[str, Any]],
    few: list[dict[str, Any]],
    classes: np.ndarray,
    y_test: np.ndarray,
    left_out: Mapping[str, str] | None = None,
) -> HeadEvaluation:
    """The evaluation from the protocol's parts: the seeds' test metrics (means, seed spread), the first seed's
    model, predictions and scores ``first``, its test intervals, the few-shot runs (in memory or streamed)."""
    model, y_pred, scores = first
    keys = per_seed[0].keys()
    labels = [str(c) for c in classes]
    return HeadEvaluation(
        head=head,
        params=_plain(selection.best),
        selection=selection,
        model=model,
        metrics={k: float(np.mean([r[k] for r in per_seed])) for k in keys},
        intervals={k: mean_ci95([r[k] for r in per_seed]) for k in keys if not k.endswith(("seconds", "per_image"))},
        per_seed=per_seed,
        per_class=per_class(y_test, y_pred, labels),
        confusion=confusion(y_test, y_pred, labels),
        classes=labels,
        y_true=y_test,
        y_pred=y_pred,
        few_shot=few,
        test_intervals=tested,
        randomized=get_head(head).randomized,
        test_scores=scores,
        left_out=dict(left_out or {}),
    )


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
