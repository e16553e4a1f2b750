"""`headstart finetune SOURCE --backbone NAME -o DIR`: fit the linear probe on the frozen features, unfreeze the
last blocks, train a little, and print the test scores of both as `headstart fit` does."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from headstart._terminal import tqdm_progress
from headstart.cli.flags import CliError, _as_flags, _number, backbone_spec, embed_options, positive, split
from headstart.features.defaults import DEFAULT_BACKBONE, DEFAULT_CACHE_DIR, DEFAULT_PRECISION, PRETRAINED

__all__ = ["add_finetune_parser", "cmd_finetune"]


def add_finetune_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune a backbone's last blocks from its linear probe and print the test scores",
        description="Embed SOURCE (as `headstart embed`: a built-in name, an image folder, a manifest or a text "
        "table, split the same way), fit the logreg probe on the frozen features (C chosen on val), unfreeze the "
        "last --unfreeze blocks and train them at a small learning rate with early stopping on val. Writes "
        "DIR/model.pt (the checkpoint; embed with `--backbone NAME --weights DIR/model.pt`), DIR/frozen.parquet "
        "and DIR/finetune.json, and prints the test scores of the probe and the fine-tuned network as JSON. An "
        "interrupted run, rerun with the same arguments, resumes after its last finished epoch.",
    )
    p.add_argument("source")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"a network from `headstart backbones` "
                   f"(default {DEFAULT_BACKBONE})")  # fmt: skip
    p.add_argument("--weights", default=PRETRAINED, help="the weights to start from, as for `headstart embed`")
    p.add_argument("--pooling", action="append", dest="poolings", metavar="MODE",
                   help="pooling of the default layer where the model leaves it open (token models)")  # fmt: skip
    p.add_argument("--image-size", help="crop size (default: the weights' own)")
    p.add_argument("--resize-size", help="resize before the crop (default: the weights' ratio)")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=["fp32", "bf16", "fp16"])
    p.add_argument("--unfreeze", default="2", help="how many of the last blocks train, or all (default 2)")
    p.add_argument("--epochs", default="10", help="at most this many epochs (default 10)")
    p.add_argument("--patience", default="3", help="stop after this many epochs without a better val score")
    p.add_argument("--head-lr", default="1e-3", help="the head's learning rate (default 1e-3)")
    p.add_argument("--backbone-lr-factor", default="0.1", help="the blocks learn at head-lr x this (default 0.1)")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--train-batch-size", default="64", help="items per training batch (default 64)")
    p.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    p.add_argument("--select-by", default="auto", choices=["auto", "accuracy", "balanced_accuracy", "macro_f1",
                   "log_loss"], help="the val metric of early stopping (auto: balanced accuracy when imbalanced)")  # fmt: skip
    p.add_argument("--val", default="0.15", help="val fraction per class (default 0.15)")
    p.add_argument("--test", default="0.30", help="test fraction per class (default 0.30)")
    p.add_argument("--seed", type=int, default=0, help="split and training seed")
    p.add_argument("--limit", help="keep a stratified subset of this many items")
    p.add_argument("--root", help="directory of a built-in dataset's files (mnist, fashion-mnist)")
    p.add_argument("--text-column", help="SOURCE is a text table whose texts are in this column")
    p.add_argument("--batch-size", default="auto", help="items per batch when embedding (default auto)")
    p.add_argument("--workers", default="auto", help="decoding processes (default auto)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help=f"per-item embedding cache (default "
                   f"{DEFAULT_CACHE_DIR})")  # fmt: skip
    p.add_argument("--no-cache", action="store_true", help="use a throw-away cache")
    p.set_defaults(run=cmd_finetune, layers=None, on_error="skip", decode="jpeg-scaled")


def finetune_settings(args: argparse.Namespace) -> object:
    from headstart.features.spec import FinetuneSettings

    unfreeze = "all" if args.unfreeze == "all" else _number(args.unfreeze, "--unfreeze", int)
    with _as_flags("fine-tuning"):
        return FinetuneSettings(
            unfreeze=unfreeze,
            optimizer=args.optimizer,
            head_lr=_number(args.head_lr, "--head-lr", float),
            backbone_lr_factor=_number(args.backbone_lr_factor, "--backbone-lr-factor", float),
            epochs=positive(args.epochs, "--epochs"),
            patience=positive(args.patience, "--patience"),
            batch_size=positive(args.train_batch_size, "--train-batch-size"),
            augment=not args.no_augment,
            device=args.device,
            seed=args.seed,
            num_workers=_number(args.workers, "--workers", int, auto=True),
            select_by=args.select_by,
        )


def cmd_finetune(args: argparse.Namespace) -> int:
    from headstart.data.prepare import prepare_dataset
    from headstart.workflow.finetune import finetune_prepared

    spec, options, parts, settings = backbone_spec(args), embed_options(args), split(args), finetune_settings(args)
    if not parts.val:
        raise CliError("--val must be above 0: fine-tuning stops early on the val split")
    name = Path(args.source).name if Path(args.source).exists() else args.source
    prepared = prepare_dataset(args.source, name=name, val=parts.val, test=parts.test, seed=args.seed,
                               limit=positive(args.limit, "--limit", none=True), root=args.root,
                               text_column=args.text_column, progress=tqdm_progress)  # fmt: skip
    meta = prepared.attrs["headstart"]
    dataset = {"name": name, "source": meta["source"], "shift": meta["shift"]}
    report = finetune_prepared(prepared, spec, args.output, settings, options, dataset, progress=tqdm_progress)
    print(json.dumps(report.payload(), indent=2, default=str))
    print(f"embed with it: headstart embed {args.source} --backbone {spec.arch} --weights "
          f"{report.backbone.checkpoint} -o ...", file=sys.stderr)  # fmt: skip
    return 0
