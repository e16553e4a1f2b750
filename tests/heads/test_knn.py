"""The faiss k-NN head: agrees with scikit-learn, behaves as an estimator, survives pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from headstart.heads.knn import KNNClassifier
from headstart.heads.ncm import NearestClassMean
from tests.conftest import clusters


@pytest.mark.parametrize("k", [1, 5, 20])
def test_cosine_uniform_agrees_with_scikit_learn(k: int) -> None:
    X, y = clusters()
    ours = KNNClassifier(k=k, metric="cosine", weighting="uniform").fit(X[:1000], y[:1000]).predict(X[1000:])
    theirs = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="cosine").fit(X[:1000], y[:1000])
    np.testing.assert_array_equal(ours, theirs.predict(X[1000:]))


def test_l2_distance_weighting_agrees_with_scikit_learn() -> None:
    X, y = clusters(seed=1)
    ours = KNNClassifier(k=10, metric="l2", weighting="distance").fit(X[:1000], y[:1000])
    theirs = KNeighborsClassifier(n_neighbors=10, algorithm="brute", weights="distance").fit(X[:1000], y[:1000])
    np.testing.assert_array_equal(ours.predict(X[1000:]), theirs.predict(X[1000:]))
    np.testing.assert_allclose(ours.predict_proba(X[1000:]), theirs.predict_proba(X[1000:]), atol=1e-4)


def test_temperature_votes_follow_dino() -> None:
    X = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    knn = KNNClassifier(k=3, temperature=0.5).fit(X, ["a", "b", "b"])
    query = np.array([[0.8, 0.6]], dtype=np.float32)
    sims = X @ query[0] / np.linalg.norm(X, axis=1)
    w = np.exp(sims / 0.5)
    np.testing.assert_allclose(knn.predict_proba(query)[0], [w[0] / w.sum(), (w[1] + w[2]) / w.sum()], rtol=1e-5)


def test_ivf_index_mostly_agrees_with_the_exact_one() -> None:
    X, y = clusters(n=6000, seed=2)
    exact = KNNClassifier(k=10).fit(X[:5000], y[:5000]).predict(X[5000:])
    approx = KNNClassifier(k=10, index="ivf", nprobe=8).fit(X[:5000], y[:5000])
    assert np.mean(approx.predict(X[5000:]) == exact) >= 0.97
    again = pickle.loads(pickle.dumps(approx))
    np.testing.assert_array_equal(again.predict(X[5000:]), approx.predict(X[5000:]))


def test_k_larger_than_the_training_set_is_capped() -> None:
    X, y = clusters(n=12)
    assert KNNClassifier(k=50).fit(X, y).predict_proba(X).shape == (12, len(set(y)))


@parametrize_with_checks([KNNClassifier(), KNNClassifier(metric="l2", weighting="distance"), NearestClassMean()])
def test_scikit_learn_estimator_checks(estimator, check) -> None:  # noqa: ANN001
    check(estimator)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_batched_ivf_scanning_every_cell_is_the_exact_search(metric: str) -> None:
    import faiss

    from headstart.heads.ivf import BatchedIVF

    rng = np.random.default_rng(4)
    X = rng.standard_normal((3000, 16)).astype(np.float32)
    Q = rng.standard_normal((200, 16)).astype(np.float32)
    ivf = BatchedIVF(16, 20, metric)
    ivf.train(X)
    ivf.add(X[:2000])
    ivf.add(X[2000:])  # ids continue where they left off
    exact = faiss.IndexFlatIP(16) if metric == "ip" else faiss.IndexFlatL2(16)
    exact.add(X)
    scores, ids = ivf.search(Q, 10, nprobe=20)
    want_scores, want_ids = exact.search(Q, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)
    few = ivf.search(Q, 10, nprobe=2)[1]
    assert 0.3 < np.mean([len(set(a) & set(b)) / 10 for a, b in zip(few, want_ids, strict=True)]) < 1.0
