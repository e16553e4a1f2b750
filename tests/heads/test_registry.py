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
    with pytest.raises(HeadError, match="unknown head 'forest'; known heads: knn, logreg, ncm, svm"):
        get_head("forest")
    with pytest.raises(HeadError, match="head 'knn' has no parameter\\(s\\) kk; its parameters: k \\(default 20\\)"):
        resolve_params("knn", {"kk": 3})
    with pytest.raises(HeadError, match="heads.svm.C is an empty list"):
        resolve_params("svm", {"C": []})
    with pytest.raises(HeadError, match="svm kernel must be 'linear' or 'rbf'"):
        build_head("svm", {"kernel": "poly", "C": 1.0})
