"""Tiny, randomly initialised provider models written to disk the way their libraries save them, and a small
SYNTHETIC labelled text set (made up here from three word lists; it is not real data)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

TOPICS = {
    "sport": "match goal team player score league coach ball win season".split(),
    "food": "bread cheese soup recipe bake salt sugar dinner taste kitchen".split(),
    "weather": "rain snow wind storm cloud sunny cold forecast fog thunder".split(),
}
FILLER = "the a of and with today this was very some".split()


def synthetic_texts(path: Path, per_class: int = 16, seed: int = 0) -> Path:
    """A CSV ``text,label`` of SYNTHETIC sentences: random words of one topic mixed with filler words."""
    rng = random.Random(seed)
    rows = []
    for label, words in TOPICS.items():
        for i in range(per_class):
            n = rng.randint(3, 14)
            rows.append({"text": " ".join(rng.choice(words + FILLER) for _ in range(n)) + f" {i}", "label": label})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def tiny_sentence_transformer(directory: Path, hidden: int = 32) -> Path:
    """A sentence-transformers model directory (BERT, 2 layers, mean pooling + normalize) with a tiny vocabulary."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "1_Pooling").mkdir(exist_ok=True)
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    modules = [("0", "", "Transformer"), ("1", "1_Pooling", "Pooling"), ("2", "2_Normalize", "Normalize")]
    (directory / "modules.json").write_text(
        json.dumps(
            [
                {"idx": i, "name": n, "path": p, "type": f"sentence_transformers.models.{t}"}
                for i, (n, p, t) in enumerate(modules)
            ]
        )
    )
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True})
    )
    return directory


def tiny_hf_vision(directory: Path, kind: str) -> Path:
    """A tiny DINOv2, CLIP vision (with projection) or SigLIP vision model + its image processor, saved."""
    import torch
    import transformers as tf

    common = {
        "hidden_size": 32,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 32,
        "patch_size": 8,
    }
    torch.manual_seed(0)
    if kind == "dinov2":
        model = tf.Dinov2Model(tf.Dinov2Config(**common))
        processor = tf.BitImageProcessor(
            size={"shortest_edge": 36},
            crop_size={"height": 32, "width": 32},
            do_center_crop=True,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
    elif kind == "clip":
        model = tf.CLIPVisionModelWithProjection(tf.CLIPVisionConfig(**common, projection_dim=16))
        processor = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        model = tf.SiglipVisionModel(tf.SiglipVisionConfig(**common))
        processor = tf.SiglipImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 16, "heads": 2, "layers": 1},
}


def register_tiny_open_clip(directory: Path) -> str:
    """Register a tiny ViT CLIP config with open_clip under the name ``headstart-tiny-clip``."""
    import open_clip

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "headstart-tiny-clip.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(path)
    return "headstart-tiny-clip"
