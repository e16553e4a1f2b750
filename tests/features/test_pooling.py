"""Pooling modes on feature maps, token sequences and vectors."""

from __future__ import annotations

import pytest
import torch

from headstart.features.pooling import pool


def test_feature_map_modes() -> None:
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(pool(x, "avg")[0], x.mean((2, 3)))
    assert torch.equal(pool(x, "max")[0], x.amax((2, 3)))
    assert pool(x, "avgmax")[0].shape == (2, 6)
    gem, applied = pool(x + 1, "gem")
    assert applied == "gem" and torch.allclose(gem, ((x + 1) ** 3).mean((2, 3)) ** (1 / 3))
    with pytest.raises(ValueError, match="'cls' needs a token sequence"):
        pool(x, "cls")


def test_tokens_and_vectors() -> None:
    tokens = torch.randn(2, 5, 4)  # (N, T, C): a vision transformer's encoder output
    cls, applied = pool(tokens, "cls")
    assert applied == "cls" and torch.equal(cls, tokens[:, 0])
    assert torch.allclose(pool(tokens, "avg")[0], tokens.mean(1))
    vector = torch.randn(2, 7)
    out, applied = pool(vector, "gem")
    assert applied == "none" and torch.equal(out, vector)
