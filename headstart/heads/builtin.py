"""The built-in heads (knn, logreg, logreg_stream, svm, ncm): their declared parameters, builders and hooks.

The hooks are what the rest of headstart used to special-case by name: the logreg and knn grid sweeps
(:mod:`headstart.heads.selection`), domain adaptation (:mod:`headstart.heads.transfer`) and the linear probe
fine-tuning starts from (the `finetune` stage), and fitting on a table chunk by chunk for tables beyond memory
(``logreg_stream`` always; ``knn`` with ``index: ivfpq``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from headstart.heads.registry import HeadType, Param, build_head, register_head

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from headstart.heads.knn import KNNClassifier
    from headstart.heads.ncm import NearestClassMean

# scikit-learn, faiss and numpy are imported by the builders and hooks, not here: checking params.yaml (every
# stage does, and `versions` on every `dvc repro`) declares the heads without importing them (about 2.5 s)

__all__: list[str] = []


def _integer(default: Any, low: int = 1, *, none: bool = False) -> Param:
    def check(v: Any) -> bool:
        if none and v in (None, "auto"):
            return True
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low

    return Param(default, check, f"an integer >= {low}" + (" or auto" if none else ""))


def _positive(default: Any, *words: str) -> Param:
    def check(v: Any) -> bool:
        if isinstance(v, str):
            return v in words
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0

    return Param(default, check, "a number > 0" + "".join(f" or {w}" for w in words))


def _choice(default: Any, *values: str) -> Param:
    return Param(default, lambda v: v in values, f"one of {', '.join(map(repr, values))}")


# balanced: each class weighs n / (n_classes x its count) in the loss (k-NN: in the votes), so a rare class
# counts as much as a common one; on balanced data the weights are all about 1
_CLASS_WEIGHT = _choice("balanced", "none", "balanced")


def _class_weight(p: Mapping[str, Any]) -> str | None:
    return "balanced" if p.get("class_weight", "none") == "balanced" else None


# ---- builders -------------------------------------------------------------------------------------------


def _knn(p: Mapping[str, Any], seed: int) -> KNNClassifier:
    from headstart.heads.knn import KNNClassifier

    return KNNClassifier(
        k=int(p["k"]),
        metric=p["metric"],
        weighting=p["weighting"],
        temperature=float(p["temperature"]),
        index=p["index"],
        nlist=None if p["nlist"] in (None, "auto") else int(p["nlist"]),
        nprobe=None if p["nprobe"] in (None, "auto") else int(p["nprobe"]),
        pq_m=None if p["pq_m"] in (None, "auto") else int(p["pq_m"]),
        refine=p["refine"],
        class_weight=_class_weight(p),
    )


def _logreg(p: Mapping[str, Any], seed: int) -> Pipeline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(
                    C=float(p["C"]), max_iter=int(p["max_iter"]), tol=float(p["tol"]), class_weight=_class_weight(p)
                ),),
        ]
    )


def _svm(p: Mapping[str, Any], seed: int) -> Pipeline:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if p["kernel"] == "linear":
        clf: Any = LinearSVC(
            C=float(p["C"]), max_iter=int(p["max_iter"]), random_state=seed, class_weight=_class_weight(p)
        )
    else:
        gamma = p["gamma"] if isinstance(p["gamma"], str) else float(p["gamma"])
        clf = SVC(
            kernel="rbf", C=float(p["C"]), gamma=gamma, max_iter=-1, random_state=seed, class_weight=_class_weight(p)
        )
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def _logreg_stream(p: Mapping[str, Any], seed: int) -> Any:
    from headstart.heads.stream import StreamingLinearProbe

    return StreamingLinearProbe(
        C=float(p["C"]),
        epochs=int(p["epochs"]),
        batch_size=int(p["batch_size"]),
        lr=float(p["lr"]),
        min_steps=int(p["min_steps"]),
        seed=seed,
        class_weight=_class_weight(p),
    )


def _ncm(p: Mapping[str, Any], seed: int) -> NearestClassMean:
    from headstart.heads.ncm import NearestClassMean

    return NearestClassMean(temperature=float(p["temperature"]))


# ---- hooks ----------------------------------------------------------------------------------------------


def _sweep_logreg(
    fixed: Mapping[str, Any],
    grid: Mapping[str, list[Any]],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str = "accuracy",
) -> Any:
    """C walked upwards with warm starts; the val log-loss breaks ties between equal scores."""
    from headstart.heads.selection import sweep_logreg_C

    if set(grid) != {"C"}:
        return None
    Cs = sorted(grid["C"])
    accuracies, losses = sweep_logreg_C(
        X_train,
        y_train,
        X_val,
        y_val,
        Cs,
        max_iter=int(fixed["max_iter"]),
        tol=float(fixed["tol"]),
        with_loss=True,
        class_weight=_class_weight(fixed),
        metric=metric,
    )
    return [{"C": c} for c in Cs], accuracies, losses


def _sweep_knn(
    fixed: Mapping[str, Any],
    grid: Mapping[str, list[Any]],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str = "accuracy",
) -> Any:
    """One search with the largest k; every k votes from the same neighbours."""
    import numpy as np

    from headstart.heads.scoring import val_score

    if set(grid) != {"k"}:
        return None
    ks = [int(k) for k in grid["k"]]
    estimator = build_head("knn", {**fixed, "k": max(ks)}).fit(X_train, y_train)
    scores, idx = estimator.kneighbors(X_val, max(ks))
    accuracies = []
    for k in ks:
        proba = estimator._vote(scores[:, :k], idx[:, :k])
        y_pred = estimator.classes_[np.argmax(proba, axis=1)]
        accuracies.append(val_score(metric, y_val, y_pred, proba, estimator.classes_))
    return [{"k": k} for k in ks], accuracies, None


def _adapt_knn(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
    return estimator.add(X, y)  # the target's images join the index


def _adapt_ncm(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
    return estimator.fit(X, y)  # prototypes move to the target's class means


def _adapt_linear(loss: str) -> Any:
    def adapt(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
        """``steps`` epochs of SGD on the target, starting from the source weights (source standardisation kept)."""
        clf, scaler = estimator.named_steps["clf"], estimator.named_steps["scale"]
        if not hasattr(clf, "coef_"):  # an RBF SVM has no weights to continue from
            return None
        from sklearn.linear_model import SGDClassifier
        from sklearn.pipeline import Pipeline

        sgd = SGDClassifier(
            loss=loss,
            alpha=1.0 / (float(best["C"]) * len(X)),
            max_iter=steps,
            tol=None,
            random_state=seed,
            class_weight=_class_weight(best),
        )
        sgd.fit(scaler.transform(X), y, coef_init=clf.coef_, intercept_init=clf.intercept_)
        return Pipeline([("scale", scaler), ("clf", sgd)])

    return adapt


def _stream_logreg(params: Mapping[str, Any], source: Any, seed: int, warm: Any = None) -> Any:
    """Adam over the chunks; a previous C's probe is the starting point (the warm start of the logreg sweep)."""
    return _logreg_stream(params, seed).fit_chunks(source, warm_from=warm)


def _adapt_logreg_stream(estimator: Any, best: Mapping[str, Any], X: Any, y: Any, steps: int, seed: int) -> Any:
    """``steps`` epochs of the same Adam on the target, from the source weights (source standardisation kept)."""
    from headstart.heads.stream import ArrayChunks

    moved = _logreg_stream({**best, "epochs": steps, "min_steps": 0}, seed)
    return moved.fit_chunks(ArrayChunks(X, y), warm_from=estimator)


def _stream_knn(params: Mapping[str, Any], source: Any, seed: int, warm: Any = None) -> Any:
    """The index trained on a sample of the chunks and filled chunk by chunk; a grid over k alone reuses the
    previous point's index (k is a search-time setting)."""
    import copy

    from headstart.heads.stream import fit_knn_stream

    if warm is not None and {**warm.get_params(), "k": int(params["k"])} == _knn(params, seed).get_params():
        again = copy.copy(warm)
        again.k = int(params["k"])
        return again
    return fit_knn_stream(source, seed=seed, **_knn(params, seed).get_params())


def _probe_logreg(
    fixed: Mapping[str, Any], grid: Mapping[str, list[Any]], X_train: Any, y_train: Any, X_val: Any, y_val: Any
) -> Any:
    from headstart.heads.probe import finetuning_probe
    from headstart.heads.scoring import resolve_select_by

    return finetuning_probe(
        X_train,
        y_train,
        X_val,
        y_val,
        list(grid.get("C") or [float(fixed["C"])]),
        class_weight=_class_weight(fixed),
        metric=resolve_select_by(str(fixed.get("select_by", "auto")), y_train),
    )


register_head(
    HeadType(
        "knn",
        "faiss k-NN, cosine by default, DINO temperature-weighted votes (k=20, T=0.07)",
        {
            "k": _integer(20),
            "metric": _choice("cosine", "cosine", "l2"),
            "weighting": _choice("temperature", "uniform", "distance", "temperature"),
            "temperature": _positive(0.07),
            "index": _choice("flat", "flat", "ivf", "ivfpq"),
            "nlist": _integer(None, none=True),
            "nprobe": _integer(None, none=True),
            "pq_m": _integer(None, none=True),
            "refine": _choice("sq8", "sq8", "flat", "none"),
            "class_weight": _CLASS_WEIGHT,
        },
        _knn,
        sweep=_sweep_knn,
        adapt=_adapt_knn,
        stream_fit=_stream_knn,
        quick=True,
        streams=lambda p: p["index"] == "ivfpq",  # the index for training sets beyond memory
    )
)
register_head(
    HeadType(
        "logreg",
        "L-BFGS multinomial logistic regression on standardised features, C swept on val",
        {
            "C": _positive({"logspace": [-6, 5, 45]}),
            "max_iter": _integer(1000),
            "tol": _positive(1e-4),
            "class_weight": _CLASS_WEIGHT,
        },
        _logreg,
        sweep=_sweep_logreg,
        adapt=_adapt_linear("log_loss"),
        probe=_probe_logreg,
    )
)
register_head(
    HeadType(
        "logreg_stream",
        "the logreg objective by mini-batch Adam over the table's row groups, for tables beyond memory",
        {
            "C": _positive({"logspace": [-3, 1, 3]}),  # each C is a pass (or more) over the whole train split
            "epochs": _integer(2),
            "batch_size": _integer(256),
            "lr": _positive(0.01),
            "min_steps": _integer(3000, low=0),  # small tables get more passes, so the fit still converges
            "class_weight": _CLASS_WEIGHT,
        },
        _logreg_stream,
        randomized=True,  # the seed orders the chunks and the mini-batches
        adapt=_adapt_logreg_stream,
        stream_fit=_stream_logreg,
    )
)
register_head(
    HeadType(
        "svm",
        "SVM on standardised features (linear by default, or rbf), C (and gamma) chosen on val",
        {
            "kernel": _choice("linear", "linear", "rbf"),
            "C": _positive({"logspace": [-4, 2, 7]}),
            "gamma": _positive("scale", "scale", "auto"),
            "max_iter": _integer(5000),
            "class_weight": _CLASS_WEIGHT,
        },
        _svm,
        # not seeded: liblinear's seed only orders its coordinate descent on a problem with one solution (and
        # libsvm's rbf fit uses none), so 5 seeds gave identical predictions on digits; one fit is enough
        randomized=False,
        adapt=_adapt_linear("hinge"),
    )
)
register_head(
    HeadType(
        "ncm",
        "nearest class mean on L2-normalised features (the few-shot baseline; blind to class counts already)",
        {"temperature": _positive(0.1)},
        _ncm,
        adapt=_adapt_ncm,
        quick=True,
    )
)
