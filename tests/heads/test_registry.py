"""Head registry: parameters, grids and clear errors."""

from __future__ import annotations

import pytest

from headstart.heads.registry import HeadError, build_head, expand_grid, get_head, resolve_params


def test_grids_from_lists_and_logspace() -> None:
    assert expand_grid([1, 5]) == [1, 5]
    assert expand_grid({"logspace": [-1, 1, 3]}) == pytest.approx([0.1, 1.0, 10.0])
    assert expand_grid(3) is None
    fixed, grid = resolve_params("logreg", {})
    assert len(grid["C"]) == 45 and grid["C"][0] == pytest.approx(1e-6) and grid["C"][-1] == pytest.approx(1e5)


def test_unknown_head_and_parameter_name_the_valid_ones() -> None:
    with pytest.raises(HeadError, match="unknown head 'forest'; known heads: knn, logreg, logreg_stream, ncm, svm"):
        get_head("forest")
    with pytest.raises(
        HeadError, match="heads.knn.kk: 3 is not a parameter of head 'knn'; its parameters: k \\(default 20\\)"
    ):
        resolve_params("knn", {"kk": 3})
    with pytest.raises(HeadError, match="heads.svm.C is an empty list"):
        resolve_params("svm", {"C": []})
    with pytest.raises(HeadError, match="heads.svm.kernel must be one of 'linear', 'rbf', got 'poly'"):
        resolve_params("svm", {"kernel": "poly", "C": 1.0})
    with pytest.raises(HeadError, match="--set C must be a number > 0, got -1"):
        resolve_params("logreg", {"C": [1.0, -1]}, where="--set")


def test_every_declared_default_passes_its_own_check() -> None:
    from headstart.heads.registry import list_heads

    for name, head in list_heads().items():
        resolve_params(name, head.defaults)  # would raise if a default broke its declaration
        assert build_head(name, resolve_params(name, {})[0] | {k: v[0] for k, v in resolve_params(name, {})[1].items()})


def test_hooks_replace_name_checks() -> None:
    from headstart.heads.registry import list_heads

    heads = list_heads()
    assert [n for n, h in heads.items() if h.linear_probe] == ["logreg"]
    assert heads["logreg"].sweep and heads["knn"].sweep and heads["svm"].sweep is None
    assert all(h.adapt for h in heads.values())


def test_logspace_grids_are_correctly_rounded_so_every_cpu_has_the_same_values() -> None:
    """linspace is numpy's; logspace is 10 ** v rounded once to the nearest float, which numpy's vectorised power
    is not on every CPU (with AVX-512 it gives 10 ** 2.5 one ulp low), nor the C library's pow: a C grid that
    moved by one ulp could change which C wins a tie. The last two grids hold a point where numpy's power, or the C
    library's pow, is one ulp off on some CPU."""
    import math
    from decimal import Decimal, localcontext

    import numpy as np

    for start, stop, num in [(-4, 4, 17), (-6, 5, 45), (-5, -1, 5), (-3, 1, 3), (-4, 2, 7), (0.1, 0.9, 9), (2, 2, 1),
                             (-10, 10, 101), (0, 1, 2), (1e-3, 7.5, 33), (-2.5, 3.7, 64), (-8, -7, 20), (-8, 0, 16)]:
        points = np.linspace(start, stop, num).tolist()
        assert expand_grid({"linspace": [start, stop, num]}) == points, (start, stop, num)
        for v, value in zip(points, expand_grid({"logspace": [start, stop, num]}), strict=True):
            with localcontext() as ctx:
                ctx.prec = 80
                exact = Decimal(10) ** Decimal(v)
                error = abs(Decimal(value) - exact)
                for neighbour in (math.nextafter(value, math.inf), math.nextafter(value, 0.0)):
                    assert error <= abs(Decimal(neighbour) - exact), (v, value)
    grid = expand_grid({"logspace": [-4, 4, 17]})
    assert grid[13] == 316.22776601683796 and grid[0] == 0.0001 and grid[-1] == 10000.0
