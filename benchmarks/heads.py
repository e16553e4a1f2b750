"""How fast are the heads: faiss k-NN against scikit-learn, warm-started C sweeps, head-only ``dvc repro``?

A benchmark, not a test: it prints markdown tables with the goals and PASS/MISS next to the measured figures,
and never fails on a slow machine. Run it from the repository root on a quiet machine::

    .venv/bin/python benchmarks/heads.py                  # k-NN and logreg sections (a few minutes)
    .venv/bin/python benchmarks/heads.py --dvc            # and the dvc section (a full pipeline run, minutes)
    .venv/bin/python benchmarks/heads.py --train 5000 --queries 1000 --classes 20 \\
        --logreg-train 500 --logreg-val 200               # a quick smoke run

Sections:

``knn``     Synthetic clustered embeddings (``--train`` x ``--dim`` float32, ``--queries`` queries, ``--classes``
            classes of 4 Gaussian clusters each, the clusters grouped around shared topics; seeded).
            ``fit`` + ``predict`` of ``KNNClassifier(k=20, metric="cosine", weighting="uniform")`` (the same
            rule as scikit-learn's), exact (``index="flat"``) and ``index="ivf"``, against
            ``KNeighborsClassifier(n_neighbors=20, algorithm="brute", metric="cosine")``; the share of
            predictions identical to scikit-learn's; the IVF speed/agreement trade-off over ``nprobe``; and the
            default DINO-style head (``weighting="temperature"``) for information.
``logreg``  ``sweep_logreg_C`` over the logreg head's default 45-point C grid on a smaller synthetic problem
            (``--logreg-train`` x ``--dim``, ``--logreg-val`` val rows), with warm starts and without.
``dvc``     (``--dvc``) The tracked files of this repository (``git ls-files``, working-tree versions; untracked
            files are not copied, so commit new modules first) copied into a temporary git repository; there
            ``dvc repro`` of the default pipeline from scratch (no dvc.lock, empty DVC cache and embedding
            cache), a no-change ``dvc repro``, and ``dvc repro`` after ``heads.knn.k`` changes in params.yaml
            (the head-only rerun), whose output must show no embed stage (``embed@...``, ``embed_*@...``).

Goals (from the issue, 50,000 x 512 train, 10,000 queries, k=20, on the 2-core reference machine): exact faiss
k-NN >= 2x faster than scikit-learn with identical predictions; IVF >= 10x faster with >= 99% of predictions
the same; a head-only ``dvc repro`` <= 10% of the full run's seconds, with no embed stage rerun. Threads are
left as they are: faiss (OpenMP) and scikit-learn/numpy (OpenBLAS) use every core they see.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _report import cpu_model, git_commit, note, percent, section, table, usable_cores, verdict

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"

GOAL_EXACT_SPEEDUP = 2.0
GOAL_IVF_SPEEDUP = 10.0
GOAL_IVF_AGREEMENT = 0.99
GOAL_HEAD_ONLY_SHARE = 0.10


# ---- output ---------------------------------------------------------------------------------------------

# ---- the machine ---------------------------------------------------------------------------------------


def thread_pools() -> str:
    """The native thread pools in this process and their sizes (threadpoolctl comes with scikit-learn)."""
    from threadpoolctl import threadpool_info

    return ", ".join(sorted({f"{p['prefix']} {p['num_threads']}" for p in threadpool_info()}))


def print_header(args: argparse.Namespace) -> None:
    import faiss
    import scipy
    import sklearn

    import headstart

    print("# headstart heads benchmark\n")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = [
        ("date", dt.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("CPU", cpu_model()),
        ("cores (usable / logical)", f"{usable_cores()} / {os.cpu_count()}"),
        ("threads (left as they are)", f"faiss OpenMP {faiss.omp_get_max_threads()}; {thread_pools()}"),
        ("load average (1/5/15 min) at start", load),
        ("python", platform.python_version()),
        ("faiss / scikit-learn", f"{faiss.__version__} / {sklearn.__version__}"),
        ("numpy / scipy", f"{np.__version__} / {scipy.__version__}"),
        ("headstart", f"{headstart.__version__} ({git_commit()})"),
        ("repeats (best of)", args.repeats),
    ]
    print(table(["", ""], rows))
    print("\nThe load average should be near 0 for the figures to mean anything.", flush=True)


# ---- timing ----------------------------------------------------------------------------------------------


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The shortest wall time of ``repeats`` calls of ``fn``, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


# ---- synthetic embeddings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def describe(self) -> str:
        n, d = self.X_train.shape
        return f"{n:,} x {d} float32 train, {len(self.X_test):,} queries, {len(np.unique(self.y_train))} classes"


def clustered_embeddings(
    n_train: int,
    n_test: int,
    dim: int,
    classes: int,
    *,
    clusters_per_class: int = 4,
    topics: int | None = None,
    spread: float = 0.25,
    noise: float = 1.0,
    seed: int = 0,
) -> Embeddings:
    """Gaussian clusters around shared topics, like embeddings of a fine-grained dataset.

    ``topics`` (default ``classes // 4``) random directions of norm ``sqrt(dim)``; each class has
    ``clusters_per_class`` cluster centres, each at a random topic plus ``spread`` x N(0, I), so every topic
    holds clusters of several classes; a sample is a centre plus ``noise`` x N(0, I). A sample's cosine to its
    own centre is about 0.7 and to another topic about 0; within a topic, clusters of different classes overlap,
    which is what makes k-NN (and a linear probe) err. Train and test come from the same mixture.
    """
    rng = np.random.default_rng(seed)
    topics = topics or max(1, classes // 4)
    directions = rng.standard_normal((topics, dim), dtype=np.float32)
    directions *= np.sqrt(dim) / np.linalg.norm(directions, axis=1, keepdims=True)
    n_clusters = classes * clusters_per_class
    centres = directions[rng.integers(0, topics, n_clusters)] + spread * rng.standard_normal(
        (n_clusters, dim), dtype=np.float32
    )

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, n_clusters, n)
        X = centres[cluster] + noise * rng.standard_normal((n, dim), dtype=np.float32)
        return np.ascontiguousarray(X, dtype=np.float32), cluster // clusters_per_class

    X_train, y_train = draw(n_train)
    X_test, y_test = draw(n_test)
    return Embeddings(X_train, y_train, X_test, y_test)


# ---- k-NN ------------------------------------------------------------------------------------------------


@dataclass
class KNNRun:
    name: str
    fit_s: float
    predict_s: float
    predictions: np.ndarray
    model: Any

    @property
    def total_s(self) -> float:
        return self.fit_s + self.predict_s


def time_fit_predict(name: str, make: Callable[[], Any], data: Embeddings, repeats: int) -> KNNRun:
    """Best-of-``repeats`` fit and predict seconds (each measured on its own) of a fresh estimator."""
    best_fit = best_predict = float("inf")
    model, predictions = None, np.empty(0)
    for _ in range(repeats):
        model = make()
        start = time.perf_counter()
        model.fit(data.X_train, data.y_train)
        middle = time.perf_counter()
        predictions = model.predict(data.X_test)
        end = time.perf_counter()
        best_fit, best_predict = min(best_fit, middle - start), min(best_predict, end - middle)
    return KNNRun(name, best_fit, best_predict, predictions, model)


def warm_up(makers: Sequence[Callable[[], Any]], data: Embeddings) -> None:
    """One small fit + predict of each estimator, so thread pools and BLAS start outside the timings."""
    n = min(len(data.X_train), 2_000)
    for make in makers:
        make().fit(data.X_train[:n], data.y_train[:n]).predict(data.X_test[:200])


def float64_knn(data: Embeddings, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 cosine k-NN with uniform votes (ties to the first class) for the queries ``rows``, and the
    gap between the k-th and (k+1)-th neighbour's similarity: the arbiter when the two float32 heads differ."""
    train = data.X_train.astype(np.float64)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    classes, y = np.unique(data.y_train, return_inverse=True)
    predictions, gaps = [], []
    for chunk in np.array_split(rows, max(1, len(rows) // 256)):
        queries = data.X_test[chunk].astype(np.float64)
        similarity = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ train.T
        m = min(k + 1, similarity.shape[1])
        order = np.argpartition(-similarity, m - 1, axis=1)[:, :m]
        order = np.take_along_axis(order, np.argsort(-np.take_along_axis(similarity, order, axis=1), axis=1), axis=1)
        top = np.take_along_axis(similarity, order, axis=1)
        gaps.append(top[:, k - 1] - top[:, k] if m > k else np.full(len(chunk), np.inf))
        votes = np.stack([np.bincount(y[o[:k]], minlength=len(classes)) for o in order])
        predictions.append(classes[np.argmax(votes, axis=1)])
    return np.concatenate(predictions), np.concatenate(gaps)


def explain_differences(data: Embeddings, ours: np.ndarray, theirs: np.ndarray, k: int) -> None:
    """Why the exact faiss head and scikit-learn disagree, judged by float64 arithmetic."""
    differing = np.flatnonzero(ours != theirs)
    if len(differing) == 0:
        return
    truth, gaps = float64_knn(data, differing, k)
    near_ties = int(np.sum(gaps < 1e-6))
    note(
        f"{len(differing)} exact prediction(s) differ from scikit-learn's. In float64, {near_ties} of them have "
        f"the {k}th and {k + 1}th neighbour within 1e-6 in cosine (float32 rounding picks which one votes); the "
        f"float64 vote agrees with faiss in {int(np.sum(truth == ours[differing]))} and with scikit-learn in "
        f"{int(np.sum(truth == theirs[differing]))}."
    )


def run_knn(args: argparse.Namespace) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from headstart.heads.knn import KNNClassifier

    section("k-NN head: faiss against scikit-learn")
    start = time.perf_counter()
    data = clustered_embeddings(
        args.train, args.queries, args.dim, args.classes, spread=args.spread, noise=args.noise, seed=args.seed
    )
    note(
        f"Data: {data.describe()}, spread {args.spread}, noise {args.noise}, seed {args.seed} "
        f"(made in {time.perf_counter() - start:.1f} s). k = {args.k}, cosine."
    )

    def sklearn_knn() -> Any:
        return KNeighborsClassifier(n_neighbors=args.k, algorithm="brute", metric="cosine", weights="uniform")

    def flat() -> Any:
        return KNNClassifier(k=args.k, metric="cosine", weighting="uniform", index="flat")

    def ivf() -> Any:
        return KNNClassifier(k=args.k, metric="cosine", weighting="uniform", index="ivf", nprobe=args.nprobe or None)

    def dino() -> Any:
        return KNNClassifier(k=args.k, metric="cosine", weighting="temperature", temperature=0.07, index="flat")

    warm_up([sklearn_knn, flat, ivf, dino], data)
    reference = time_fit_predict("scikit-learn brute cosine, uniform", sklearn_knn, data, args.repeats)
    runs = [
        reference,
        time_fit_predict("headstart flat (exact), uniform", flat, data, args.repeats),
        time_fit_predict(f"headstart ivf nprobe={args.nprobe or 'auto'}, uniform", ivf, data, args.repeats),
        time_fit_predict("headstart flat, temperature 0.07 (default)", dino, data, args.repeats),
    ]
    exact, approx = runs[1], runs[2]
    nlist = approx.model.index_.nlist

    rows = []
    for run in runs:
        rows.append(
            (
                run.name,
                run.fit_s,
                run.predict_s,
                run.total_s,
                f"{reference.total_s / run.total_s:.1f}x",
                percent(float(np.mean(run.predictions == reference.predictions))),
                percent(float(np.mean(run.predictions == data.y_test))),
            )
        )
    print()
    print(
        table(
            ["head", "fit s", "predict s", "fit+predict s", "speed-up vs sklearn", "same as sklearn", "accuracy"], rows
        )
    )

    same_exact = int(np.sum(exact.predictions == reference.predictions))
    exact_speedup = reference.total_s / exact.total_s
    ivf_speedup = reference.total_s / approx.total_s
    ivf_agreement = float(np.mean(approx.predictions == reference.predictions))
    print()
    print(
        table(
            ["goal", "measured", "verdict"],
            [
                (
                    f"exact: >= {GOAL_EXACT_SPEEDUP:g}x faster than sklearn (fit+predict)",
                    f"{exact_speedup:.1f}x",
                    verdict(exact_speedup >= GOAL_EXACT_SPEEDUP),
                ),
                (
                    "exact: identical predictions",
                    f"{same_exact:,} of {len(data.y_test):,}",
                    verdict(same_exact == len(data.y_test)),
                ),
                (
                    f"ivf: >= {GOAL_IVF_SPEEDUP:g}x faster than sklearn (fit+predict)",
                    f"{ivf_speedup:.1f}x (predict only {reference.predict_s / approx.predict_s:.1f}x)",
                    verdict(ivf_speedup >= GOAL_IVF_SPEEDUP),
                ),
                (
                    f"ivf: >= {percent(GOAL_IVF_AGREEMENT)} of predictions the same",
                    percent(ivf_agreement),
                    verdict(ivf_agreement >= GOAL_IVF_AGREEMENT),
                ),
            ],
        )
    )
    explain_differences(data, exact.predictions, reference.predictions, args.k)

    # the nprobe trade-off: one trained IVF index, nprobe is a search-time setting of the faiss index
    nprobe_rows = []
    for nprobe in args.nprobes:
        approx.model.set_params(nprobe=nprobe)  # a search-time setting: the trained index stays
        seconds, predictions = best_of(lambda: approx.model.predict(data.X_test), args.repeats)
        nprobe_rows.append(
            (
                min(nprobe, nlist),
                f"{100 * min(nprobe, nlist) / nlist:.1f}%",
                seconds,
                approx.fit_s + seconds,
                f"{reference.total_s / (approx.fit_s + seconds):.1f}x",
                f"{reference.predict_s / seconds:.1f}x",
                percent(float(np.mean(predictions == reference.predictions))),
            )
        )
    approx.model.set_params(nprobe=args.nprobe or None)
    note(
        f"IVF trade-off: nlist = {nlist} cells (the default, about sqrt(n)), nprobe by default nlist // 25 "
        f"(at least 4) = {max(4, nlist // 25)}; training the coarse quantizer "
        f"(k-means, in fit) took {approx.fit_s:.2f} s of the {approx.total_s:.2f} s. Same trained index, "
        "nprobe varied:"
    )
    print()
    print(
        table(
            [
                "nprobe",
                "cells searched",
                "predict s",
                "fit+predict s",
                "speed-up (fit+predict)",
                "speed-up (predict only)",
                "same as sklearn",
            ],
            nprobe_rows,
        )
    )


# ---- logreg C sweep --------------------------------------------------------------------------------------


@contextlib.contextmanager
def captured_logs(name: str) -> Iterator[list[logging.LogRecord]]:
    """The INFO-and-above records of logger ``name`` while the block runs (not printed)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def max_iter_hits(records: Sequence[logging.LogRecord], fits: int) -> str:
    """ "n of N" from the sweep's log line about fits stopped at max_iter (none logged: 0), else the line."""
    for record in records:
        message = record.getMessage()
        if "max_iter" in message:
            match = re.search(r"(\d+) of (\d+) fits", message)
            return f"{match.group(1)} of {match.group(2)}" if match else message
    return f"0 of {fits}"


def run_logreg(args: argparse.Namespace) -> None:
    from headstart.heads.registry import expand_grid, get_head
    from headstart.heads.selection import sweep_logreg_C

    section("logreg head: C sweep with warm starts against the same sweep without")
    defaults = get_head("logreg").defaults
    Cs = sorted(expand_grid(defaults["C"], "heads.logreg.C") or [float(defaults["C"])])
    max_iter, tol = int(defaults["max_iter"]), float(defaults["tol"])
    data = clustered_embeddings(
        args.logreg_train,
        args.logreg_val,
        args.dim,
        args.classes,
        spread=args.spread,
        noise=args.noise,
        seed=args.seed + 1,
    )
    note(
        f"Data: {data.describe().replace('queries', 'val')}, spread {args.spread}, noise {args.noise}, "
        f"seed {args.seed + 1}. "
        f"The head's default grid: {len(Cs)} values of C from {Cs[0]:.0e} to {Cs[-1]:.0e}; "
        f"max_iter={max_iter}, tol={tol:g}."
    )

    def sweep(warm_start: bool) -> tuple[list[float], str]:
        with captured_logs("headstart.heads.selection") as records:
            accuracies = sweep_logreg_C(
                data.X_train,
                data.y_train,
                data.X_test,
                data.y_test,
                Cs,
                max_iter=max_iter,
                tol=tol,
                warm_start=warm_start,
            )
        return accuracies, max_iter_hits(records, len(Cs))

    warm_s, (warm, warm_hits) = best_of(lambda: sweep(True), args.repeats)
    cold_s, (cold, cold_hits) = best_of(lambda: sweep(False), args.repeats)
    warm_best, cold_best = int(np.argmax(warm)), int(np.argmax(cold))
    print()
    print(
        table(
            ["sweep", "seconds", "speed-up", "fits stopped at max_iter", "best C", "best val accuracy"],
            [
                (
                    "warm starts (the pipeline's)",
                    warm_s,
                    f"{cold_s / warm_s:.1f}x",
                    warm_hits,
                    f"{Cs[warm_best]:.3g}",
                    percent(warm[warm_best]),
                ),
                ("every fit from scratch", cold_s, "1.0x", cold_hits, f"{Cs[cold_best]:.3g}", percent(cold[cold_best])),
            ],
        )
    )
    gaps = np.abs(np.asarray(warm) - np.asarray(cold))
    worst = int(np.argmax(gaps))
    print()
    print(
        table(
            ["check (the issue sets no figure here)", "measured", "verdict"],
            [
                ("warm starts faster", f"{cold_s / warm_s:.1f}x", verdict(warm_s < cold_s)),
                ("same best C", f"{Cs[warm_best]:.3g} / {Cs[cold_best]:.3g}", verdict(warm_best == cold_best)),
                (
                    "best val accuracy within 0.5 points",
                    f"{100 * (warm[warm_best] - cold[cold_best]):+.2f} points",
                    verdict(abs(warm[warm_best] - cold[cold_best]) <= 0.005 + 1e-9),
                ),
            ],
        )
    )
    caveat = (
        f" Each fit stops at tol={tol:g}: a warm-started one near the previous C's solution, a cold one "
        "wherever L-BFGS from zero first meets the tolerance, so at a loose tolerance the two need not agree."
        if gaps.max() > 0.005
        else ""
    )
    note(
        f"Largest gap between the two sweeps at one C: {100 * gaps[worst]:.2f} points at C = {Cs[worst]:.3g}; "
        f"{int(np.sum(gaps > 0.005))} of {len(Cs)} grid points differ by more than 0.5 points.{caveat}"
    )


# ---- dvc: head-only rerun against a full run ---------------------------------------------------------------


@dataclass
class Repro:
    label: str
    seconds: float
    stages: list[str]


def copy_repository(dest: Path) -> int:
    """The working-tree version of every tracked file (and dvc.yaml, params.yaml) into ``dest``, a new git repo."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    names = sorted({n for n in listed.decode().split("\0") if n} | {"dvc.yaml", "params.yaml"})
    copied = 0
    for name in names:
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as in the working tree
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            copied += 1
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return copied


def dvc_repro(workdir: Path, label: str) -> Repro:
    """Time ``dvc repro`` in ``workdir`` with the venv first on PATH; the stages it ran, from its output."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(VENV_BIN / "dvc"), "repro"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`dvc repro` ({label}) failed with exit status {done.returncode}:\n{done.stdout[-4000:]}")
    stages = re.findall(r"Running stage '([^']+)'", done.stdout)
    print(f"  {label}: {seconds:.1f} s, {len(stages)} stage(s) ran", flush=True)
    return Repro(label, seconds, stages)


def is_embed_stage(stage: str) -> bool:
    """``embed@<dataset>-<backbone>`` and any other embed stage (``embed_<something>@...``)."""
    return re.match(r"embed(_\w+)?@", stage) is not None


def change_knn_k(params: Path, new_k: int) -> str:
    """Set ``heads.knn.k`` in params.yaml in place (a one-line edit, comments kept); the old value."""
    lines = params.read_text().splitlines(keepends=True)
    block: list[str] = []  # the keys leading to this line, by indentation (two spaces a level)
    for number, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z_][\w-]*):(.*)$", line.rstrip("\n"))
        if key is None:
            continue
        depth = len(key.group(1)) // 2
        block = block[:depth] + [key.group(2)]
        if block == ["heads", "knn", "k"]:
            value = re.match(r"^\s*([^\s#\[{]+)", key.group(3))
            if value is None or value.end(1) < len(key.group(3)) and key.group(3)[value.end(1)] not in " \t#":
                raise RuntimeError(f"heads.knn.k in {params} is not a single value ({line.strip()!r})")
            if value.group(1) == str(new_k):
                raise RuntimeError(f"heads.knn.k is already {new_k} in {params}; pass another --dvc-k")
            start = len(key.group(1)) + len("k:") + value.start(1)
            lines[number] = line[:start] + str(new_k) + line[start + len(value.group(1)) :]
            params.write_text("".join(lines))
            return value.group(1)
    raise RuntimeError(f"no heads.knn.k line in {params}")


def run_dvc(args: argparse.Namespace) -> None:
    section("dvc repro: head-only rerun against a full run of the default pipeline")
    with tempfile.TemporaryDirectory(prefix="headstart-bench-dvc-") as tmp:
        workdir = Path(tmp)
        copied = copy_repository(workdir)
        note(
            f"{copied} tracked files copied to {workdir} (a fresh git repository: no dvc.lock, empty DVC cache, "
            "empty embedding cache).\n"
        )
        full = dvc_repro(workdir, "full run")
        noop = dvc_repro(workdir, "no change")
        old_k = change_knn_k(workdir / "params.yaml", args.dvc_k)
        head_only = dvc_repro(workdir, f"heads.knn.k {old_k} -> {args.dvc_k}")
    if not any("knn" in stage for stage in head_only.stages):
        raise RuntimeError(f"changing heads.knn.k reran no knn stage ({head_only.stages}); nothing was measured")
    embed_reruns = [s for s in head_only.stages if is_embed_stage(s)]
    print()
    print(
        table(
            ["dvc repro", "seconds", "share of full", "stages run", "embed stages run"],
            [
                (
                    r.label,
                    r.seconds,
                    percent(r.seconds / full.seconds),
                    len(r.stages),
                    ", ".join(s for s in r.stages if is_embed_stage(s)) or "none",
                )
                for r in (full, noop, head_only)
            ],
        )
    )
    note("\n".join(f"Stages of the {r.label} run: {', '.join(r.stages) or 'none'}." for r in (noop, head_only)))
    share = head_only.seconds / full.seconds
    print()
    print(
        table(
            ["goal", "measured", "verdict"],
            [
                (
                    f"head-only rerun <= {percent(GOAL_HEAD_ONLY_SHARE)} of the full run",
                    percent(share),
                    verdict(share <= GOAL_HEAD_ONLY_SHARE),
                ),
                ("no embed stage reran", ", ".join(embed_reruns) or "none reran", verdict(not embed_reruns)),
            ],
        )
    )


# ---- main ------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=50_000, help="k-NN training vectors (default 50000)")
    parser.add_argument("--queries", type=int, default=10_000, help="k-NN queries (default 10000)")
    parser.add_argument("--dim", type=int, default=512, help="embedding width (default 512)")
    parser.add_argument("--classes", type=int, default=100, help="classes (default 100)")
    parser.add_argument(
        "--spread",
        type=float,
        default=0.25,
        help="scale of the cluster centres around their topic, of norm sqrt(dim) (default 0.25)",
    )
    parser.add_argument(
        "--noise", type=float, default=1.0, help="scale of the samples around their cluster centre (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    parser.add_argument("--k", type=int, default=20, help="neighbours (default 20)")
    parser.add_argument(
        "--nprobe",
        type=int,
        default=0,
        help="IVF cells searched in the timed IVF run (default 0: the head's own choice, nlist // 25)",
    )
    parser.add_argument(
        "--nprobes",
        default="2,4,8,16,32",
        help="comma-separated nprobe values of the IVF trade-off table (default 2,4,8,16,32)",
    )
    parser.add_argument("--logreg-train", type=int, default=5_000, help="logreg training rows (default 5000)")
    parser.add_argument("--logreg-val", type=int, default=1_000, help="logreg val rows (default 1000)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each k-NN / sweep, best kept (default 1)")
    parser.add_argument("--no-knn", dest="knn", action="store_false", help="skip the k-NN section")
    parser.add_argument("--no-logreg", dest="logreg", action="store_false", help="skip the logreg section")
    parser.add_argument("--dvc", action="store_true", help="also time dvc repro, full and head-only (minutes)")
    parser.add_argument("--dvc-k", type=int, default=10, help="the new heads.knn.k of the head-only run (default 10)")
    args = parser.parse_args(argv)
    args.nprobes = [int(p) for p in args.nprobes.split(",") if p.strip()]
    if args.nprobe < 0:
        parser.error("--nprobe must be 0 (auto) or positive")
    for name in ("train", "queries", "dim", "classes", "k", "logreg_train", "logreg_val", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.k > args.train:
        parser.error("--k must not exceed --train")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print_header(args)
    started = time.perf_counter()
    if args.knn:
        run_knn(args)
    if args.logreg:
        run_logreg(args)
    if args.dvc:
        run_dvc(args)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    note(f"Done in {time.perf_counter() - started:.0f} s; load average (1/5/15 min) at the end: {load}.")


if __name__ == "__main__":
    main()
