"""The fit stage keeps a head whose inputs did not change and refits a changed one; a fault while refitting
(a full disk, here) loses nothing: the other heads' outputs are untouched, and the next run gives what a clean
run gives."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import yaml

import headstart.workflow.fit as fit_module
from headstart.workflow import layout
from headstart.workflow.config import load_config
from headstart.workflow.fit import fit_heads
from tests.conftest import REPO
from tests.heads.test_evaluate import _table


def _project(root: Path, heads: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["heads"] = heads
    params["evaluate"] = {"seeds": 2, "few_shot": [1, "all"]}
    params["transfer"], params["finetune"] = {}, {"datasets": []}  # they name logreg
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    _table(root / layout.embeddings_dir("digits", "pixels") / "flatten.parquet", "flatten")
    return root


def _outputs(root: Path, head: str) -> dict[str, bytes]:
    paths = [layout.results("digits", "pixels", head), layout.head_metrics("digits", "pixels", head),
             layout.confusion_plot("digits", "pixels", head, "flatten")]
    paths += sorted(layout.model_dir("digits", "pixels", head, "flatten").rglob("*"))
    return {str(p): (root / p).read_bytes() for p in paths if (root / p).is_file()}


def test_a_changed_head_is_refitted_the_others_kept_and_a_fault_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path / "p", {"knn": {"k": 5}, "ncm": {}})
    monkeypatch.chdir(project)
    lines = fit_heads(load_config("params.yaml"), "digits", "pixels")
    assert sum("test accuracy" in line for line in lines) == 2
    knn, ncm = _outputs(project, "knn"), _outputs(project, "ncm")
    assert fit_heads(load_config("params.yaml"), "digits", "pixels") == [
        "digits x pixels x knn: unchanged, kept", "digits x pixels x ncm: unchanged, kept"
    ]
    assert _outputs(project, "knn") == knn and _outputs(project, "ncm") == ncm

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["heads"]["ncm"] = {"temperature": 0.05}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    write_json = fit_module.write_json

    def full_disk(path: Path, payload: object) -> None:
        if Path(path) == layout.results("digits", "pixels", "ncm"):
            raise OSError(errno.ENOSPC, "No space left on device")
        write_json(path, payload)

    monkeypatch.setattr(fit_module, "write_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fit_heads(load_config("params.yaml"), "digits", "pixels")
    assert _outputs(project, "knn") == knn  # the kept head: untouched
    assert _outputs(project, "ncm")[str(layout.results("digits", "pixels", "ncm"))] == ncm[
        str(layout.results("digits", "pixels", "ncm"))
    ]  # its old results file, whose digest no longer matches: the next run refits it
    monkeypatch.setattr(fit_module, "write_json", write_json)
    lines = fit_heads(load_config("params.yaml"), "digits", "pixels")
    assert lines[0] == "digits x pixels x knn: unchanged, kept" and "x ncm: test accuracy" in lines[1]

    clean = _project(tmp_path / "clean", {"knn": {"k": 5}, "ncm": {"temperature": 0.05}})
    monkeypatch.chdir(clean)
    fit_heads(load_config("params.yaml"), "digits", "pixels")
    assert _outputs(clean, "ncm") == _outputs(project, "ncm") != ncm
    assert _outputs(clean, "knn") == _outputs(project, "knn") == knn

    monkeypatch.chdir(project)  # a head removed from params.yaml: its outputs go
    params["heads"] = {"knn": {"k": 5}}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    fit_heads(load_config("params.yaml"), "digits", "pixels")
    assert not _outputs(project, "ncm") and _outputs(project, "knn") == knn
    assert not layout.model_dir("digits", "pixels", "ncm", "x").parent.exists()
    shutil.rmtree(clean)
