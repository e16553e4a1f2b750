"""Same inputs, same bytes, whatever the cores: every built-in head fitted on one core and on two writes the same
model directory and results record.

On two cores the protocol's independent fits run in worker processes and the numerical libraries (BLAS, faiss's
OpenMP) may use two threads; on one core everything runs in this process on one thread. The table is digits at
16 x 16 pixels (256 values a row), wide enough for worker processes (``headstart.heads.parallel.MIN_VALUES``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from headstart.data.tables import EmbeddingWriter
from tests.conftest import REPO
from tests.faults._helpers import snapshot

HEADS = {  # the defaults, with shorter grids
    "knn": {},
    "knn_ivfpq": {"index": "ivfpq", "pq_m": 8, "nlist": 8},
    "logreg": {"C": {"logspace": [-3, 1, 5]}},
    "logreg_stream": {"C": [0.1, 1.0], "min_steps": 300},
    "svm": {"C": [0.01, 0.1]},
    "ncm": {},
}

_FIT = """
import json, sys
from pathlib import Path
from headstart.workflow.fit import fit_table
table, out, heads = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
for name, params in heads.items():
    kind = name.split("_ivf")[0]
    _, record = fit_table(table, kind, params, out / name, name=name, seeds=2, few_shot=(1, "all"))
    (out / f"{name}.json").write_text(json.dumps(record, sort_keys=True))
"""


def _digits_table(path: Path) -> Path:
    digits = load_digits()
    pixels = np.stack(
        [np.asarray(Image.fromarray(np.uint8(image * 15)).resize((16, 16), Image.BILINEAR)) for image in digits.images]
    ).reshape(len(digits.images), -1)
    ids = [f"d{i:04d}" for i in range(len(pixels))]
    splits = [("train", "train", "train", "val", "test")[i % 5] for i in range(len(pixels))]
    provenance = {"backbone": "pixels", "node": "x", "pooling": "none", "precision": "fp32", "weights": "none"}
    with EmbeddingWriter(path, pixels.shape[1], provenance) as writer:
        writer.write(ids, [str(t) for t in digits.target], splits, [None] * len(ids), pixels.astype(np.float32) / 255)
    return path


def _fit(table: Path, out: Path, cores: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}  # the libraries count the cores
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    command = ["taskset", "-c", cores, sys.executable, "-c", _FIT, str(table), str(out), json.dumps(HEADS)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_every_head_fits_to_the_same_bytes_on_one_core_and_on_two(tmp_path: Path) -> None:
    table = _digits_table(tmp_path / "digits.parquet")
    two = sorted(os.sched_getaffinity(0))[:2]
    _fit(table, tmp_path / "one", str(two[0]))
    _fit(table, tmp_path / "two", f"{two[0]},{two[1]}")

    one, both = snapshot(tmp_path / "one"), snapshot(tmp_path / "two")
    assert sorted(one) == sorted(both) and len(one) == 5 * len(HEADS)
    assert [name for name in sorted(one) if one[name] != both[name]] == []
    assert json.loads(one["logreg.json"])["metrics"]["accuracy"] > 0.9  # a real fit, not an empty one
