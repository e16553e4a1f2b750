"""Fine-tuning resumes after an interrupt at epoch granularity: a run killed after epoch 1 and rerun writes the
same checkpoint bytes as a run never interrupted; another run's resume state is removed, never used."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from headstart.data import load_embeddings, prepare_dataset
from headstart.features.engine import EmbedOptions, embed
from headstart.features.finetune import FinetuneSettings, LinearInit, finetune
from headstart.features.finetune.resume import Resume
from headstart.features.registry import BackboneSpec
from headstart.heads.evaluate import SplitData
from headstart.heads.probe import finetuning_probe
from tests.features.provider_models import synthetic_texts, tiny_sentence_transformer

IMAGE = BackboneSpec("mobilenet_v2", None, ("default",), image_size=32)  # random init: no weights needed
# augmentation and shuffling on (images), dropout in the unfrozen blocks: every random state has to come back
SETTINGS = FinetuneSettings(unfreeze=1, epochs=3, patience=5, batch_size=8, num_workers=0, optimizer="adamw",
                            head_lr=1e-3, device="cpu")  # fmt: skip


class Interrupted(Exception):
    pass


def _inputs(kind: str, tmp_path: Path, image_folder: Path) -> tuple[BackboneSpec, object, LinearInit]:
    if kind == "text":
        pytest.importorskip("sentence_transformers", reason="not installed (pip install 'headstart[text]')")
        spec = BackboneSpec(f"sentence-transformers:{tiny_sentence_transformer(tmp_path / 'st')}", "pretrained")
        csv = synthetic_texts(tmp_path / "texts.csv", per_class=20)
        prepared = prepare_dataset(str(csv), val=0.25, test=0.25, text_column="text")
    else:
        spec, prepared = IMAGE, prepare_dataset(str(image_folder), val=0.25, test=0.25)
    frozen = embed(prepared, spec, tmp_path / "frozen", options=EmbedOptions(num_workers=0, cache_dir=tmp_path / "c"))
    data = SplitData.from_table(load_embeddings(next(iter(frozen.tables.values()))))
    mean, scale, weight, bias, classes, _, _ = finetuning_probe(
        data.X_train, data.y_train, data.X_val, data.y_val, [0.01]
    )
    return spec, prepared, LinearInit(weight, bias, classes, mean, scale)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_a_run_interrupted_after_epoch_1_resumes_to_the_same_bytes(
    kind: str, tmp_path: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec, prepared, init = _inputs(kind, tmp_path, image_folder)
    whole = finetune(spec, prepared, init, tmp_path / "whole" / "model.pt", SETTINGS)
    assert not (tmp_path / "whole" / "model.pt.resume").exists()  # removed once the checkpoint is written

    save = Resume.save

    def save_then_fail(self: Resume, state: dict) -> None:
        save(self, state)
        if state["epoch"] == 1:
            raise Interrupted

    out = tmp_path / "resumed" / "model.pt"
    with monkeypatch.context() as patch:
        patch.setattr(Resume, "save", save_then_fail)
        with pytest.raises(Interrupted):
            finetune(spec, prepared, init, out, SETTINGS)
    assert (tmp_path / "resumed" / "model.pt.resume").exists() and not out.exists()
    with caplog.at_level(logging.INFO, logger="headstart.features.finetune.resume"):
        resumed = finetune(spec, prepared, init, out, SETTINGS)
    assert "resuming fine-tuning after epoch 1" in caplog.text
    assert out.read_bytes() == (tmp_path / "whole" / "model.pt").read_bytes()
    assert repr(resumed.history) == repr(whole.history) and resumed.best_epoch == whole.best_epoch
    assert not (tmp_path / "resumed" / "model.pt.resume").exists()


def test_another_runs_resume_state_is_removed_not_used(
    tmp_path: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec, prepared, init = _inputs("image", tmp_path, image_folder)
    out = tmp_path / "ft" / "model.pt"
    save = Resume.save

    def save_then_fail(self: Resume, state: dict) -> None:
        save(self, state)
        raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(Resume, "save", save_then_fail)
        with pytest.raises(Interrupted):
            finetune(spec, prepared, init, out, SETTINGS)
    other = FinetuneSettings(**{**SETTINGS.__dict__, "head_lr": 2e-3})  # other settings: another run
    with caplog.at_level(logging.INFO, logger="headstart.features.finetune.resume"):
        result = finetune(spec, prepared, init, out, other)
    assert "it is another run's" in caplog.text and "resuming" not in caplog.text
    fresh = finetune(spec, prepared, init, tmp_path / "fresh" / "model.pt", other)
    assert out.read_bytes() == (tmp_path / "fresh" / "model.pt").read_bytes() and result.epochs == fresh.epochs
    # an unreadable state is removed the same way
    (tmp_path / "ft" / "model.pt.resume").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.INFO, logger="headstart.features.finetune.resume"):
        finetune(spec, prepared, init, out, other)
    assert "cannot be read" in caplog.text and out.read_bytes() == (tmp_path / "fresh" / "model.pt").read_bytes()
