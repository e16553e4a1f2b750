"""How much do warm starts save in the logreg head's C sweep, and do they choose the same C?

A benchmark, not a test: it prints markdown tables and never fails on a slow machine. Run it from the
repository root on a quiet machine::

    .venv/bin/python benchmarks/logreg_sweep.py           # 5,000 x 512 train, 1,000 val, 100 classes (a minute)
    .venv/bin/python benchmarks/logreg_sweep.py --quick   # 500 x 512 train, 200 val, 20 classes (seconds)

``sweep_logreg_C`` over the logreg head's default 45-point C grid (from the head registry) on synthetic
clustered embeddings (``_report.clustered_embeddings``), with warm starts (each fit starts from the previous
C's solution, as the pipeline does) and without. The issue sets no figure here; the table checks that warm
starts are faster, choose the same C and reach the same best val accuracy within 0.5 points.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import time
from collections.abc import Iterator, Sequence

import numpy as np
from _report import best_of, clustered_embeddings, footer, header, note, percent, section, table, verdict


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
    from headstart.heads.linear import sweep_logreg_C

    section("logreg head: C sweep with warm starts against the same sweep without")
    defaults = get_head("logreg").defaults
    Cs = sorted(expand_grid(defaults["C"], "heads.logreg.C") or [float(defaults["C"])])
    max_iter, tol = int(defaults["max_iter"]), float(defaults["tol"])
    data = clustered_embeddings(
        args.train,
        args.val,
        args.dim,
        args.classes,
        spread=args.spread,
        noise=args.noise,
        seed=args.seed,
    )
    note(
        f"Data: {data.describe('val')}, spread {args.spread}, noise {args.noise}, "
        f"seed {args.seed}. "
        f"The head's default grid: {len(Cs)} values of C from {Cs[0]:.0e} to {Cs[-1]:.0e}; "
        f"max_iter={max_iter}, tol={tol:g}."
    )

    def sweep(warm_start: bool) -> tuple[list[float], str]:
        with captured_logs("headstart.heads.linear") as records:
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small run: 500 train, 200 val, 20 classes")
    parser.add_argument("--train", type=int, default=5_000, help="training rows (default 5000)")
    parser.add_argument("--val", type=int, default=1_000, help="val rows (default 1000)")
    parser.add_argument("--dim", type=int, default=512, help="embedding width (default 512)")
    parser.add_argument("--classes", type=int, default=100, help="classes (default 100)")
    parser.add_argument("--spread", type=float, default=0.25, help="cluster centres around their topic (default 0.25)")
    parser.add_argument("--noise", type=float, default=1.0, help="samples around their centre (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic data (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="timed sweeps of each kind, best kept (default 1)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.val, args.classes = 500, 200, 20
    for name in ("train", "val", "dim", "classes", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    import sklearn

    args = parse_args(argv)
    header(
        "headstart benchmark: logreg C sweep",
        [("scikit-learn / numpy", f"{sklearn.__version__} / {np.__version__}"), ("repeats (best of)", args.repeats)],
    )
    started = time.perf_counter()
    run_logreg(args)
    footer(started)


if __name__ == "__main__":
    main()
