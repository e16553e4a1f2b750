"""Checks on training data that every head shares, so that every head refuses the same bad input alike."""

from __future__ import annotations

from typing import Any

import numpy as np

from headstart.errors import UserError

__all__ = ["TrainingDataError", "check_classes"]


class TrainingDataError(UserError, ValueError):
    """Training data a classifier cannot learn from (e.g. a single class)."""


def check_classes(y: Any, where: str = "the training data") -> None:
    """Refuse labels with fewer than two classes: a classifier fitted on them would only repeat one answer.

    >>> check_classes(["a", "a"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    headstart.heads._checks.TrainingDataError: the training data has only one class ('a'); ...
    """
    classes = np.unique(np.asarray(y))
    if len(classes) >= 2:
        return
    found = f"only one class ({str(classes[0])!r})" if len(classes) else "no rows"
    raise TrainingDataError(
        f"{where} has {found}; a classifier needs at least two classes. Check the labels (an image folder "
        "needs one sub-folder per class) and the split fractions"
    )
