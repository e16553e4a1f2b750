"""`headstart init`: put headstart's pipeline into an existing git + DVC repository.

The templates ship inside the package (``headstart/templates``): ``dvc.yaml`` (stages that run the installed
headstart, ``python -m headstart.pipeline.<stage>``, and depend on data, settings and ``headstart-versions.json``),
``sources.dvc.yaml`` (``headstart-sources/dvc.yaml``: the `versions` stage that writes that file and one per
dataset, the only stage that runs on every `dvc repro`, with a lock file of its own),
``params.yaml`` (commented; the built-in digits demo, or your data with ``--data``) and the few-shot plot template.

This repository's own pipeline is one instance of the templates: ``python -m headstart.pipeline.scaffold`` writes
it with ``dev=True``, where each stage also depends on the source folders and files it runs (:data:`STAGE_CODE`;
DVC hashes a folder as one entry), so that an edit here reruns the stages docs/reruns.md lists.
"""

from __future__ import annotations

import re
from importlib import resources, util
from pathlib import Path

from headstart._files import atomic_path
from headstart.errors import UserError

__all__ = ["STAGE_CODE", "InitError", "init_project", "render_dvc_yaml", "render_params", "template"]

VERSIONS_FILE = "headstart-versions.json"
PLOTS_TEMPLATE = ".dvc/plots/fewshot.json"
SOURCES_DVC_YAML = "headstart-sources/dvc.yaml"  # the `versions` stage, with a lock file of its own
SOURCES_DIR = "headstart-sources/datasets"
# this repository's pipeline only: the headstart source each stage runs (not the shared plumbing: layout.py,
# sources.py, headstart/_files.py, _terminal.py, errors.py; after an edit there that changes outputs, `dvc repro -f`)
STAGE_CODE = {
    "settings": ["headstart/workflow/config.py", "headstart/workflow/_build.py", "headstart/workflow/_checks.py",
                 "headstart/workflow/settings.py", "headstart/features/spec.py", "headstart/heads/spec.py",
                 "headstart/pipeline/settings.py"],
    "prepare": ["headstart/data", "headstart/pipeline/prepare.py"],
    "embed": ["headstart/data", "headstart/features", "headstart/workflow/records.py", "headstart/pipeline/embed.py"],
    "fit": ["headstart/data", "headstart/heads", "headstart/workflow/fit.py", "headstart/workflow/records.py",
            "headstart/pipeline/fit.py"],
    "finetune": ["headstart/data", "headstart/features", "headstart/heads", "headstart/workflow/finetune.py",
                 "headstart/pipeline/finetune.py"],
    "transfer": ["headstart/data", "headstart/heads", "headstart/report", "headstart/workflow/transfer.py",
                 "headstart/pipeline/transfer.py"],
    "robustness": ["headstart/data", "headstart/features", "headstart/heads", "headstart/workflow/robustness.py",
                   "headstart/workflow/predict.py", "headstart/pipeline/robustness.py"],
    "report": ["headstart/report", "headstart/workflow/report.py", "headstart/pipeline/report.py"],
    "audit": ["headstart/data", "headstart/heads", "headstart/report", "headstart/workflow/audit.py",
              "headstart/pipeline/audit.py"],
}  # fmt: skip
STAGE_CODE["embed_finetuned"] = STAGE_CODE["embed"]
STAGE_CODE["fit_finetuned"] = STAGE_CODE["fit"]


class InitError(UserError):
    """The folder cannot take headstart's pipeline as it is; the message says what to do."""


def template(name: str) -> str:
    """The text of a template shipped in ``headstart/templates`` (``dvc.yaml``, ``params.yaml``, ``fewshot.json``)."""
    return (resources.files("headstart") / "templates" / name).read_text()


def render_dvc_yaml(dev: bool = False) -> str:
    """The pipeline's dvc.yaml; ``dev`` (this repository) makes each stage also depend on the headstart source it
    runs (:data:`STAGE_CODE`)."""
    text = template("dvc.yaml")
    if not dev:
        return text
    out, stage = [], ""
    for line in text.splitlines():
        found = re.fullmatch(r"  (\w+):", line)
        stage = found.group(1) if found else stage
        out.append(line)
        if line.strip() == f"- {VERSIONS_FILE}" and stage:
            indent = line[: line.index("-")]
            out += [f"{indent}- {path}" for path in STAGE_CODE[stage]]
    header = "# This repository's instance (`python -m headstart.pipeline.scaffold`): each stage also depends on the\n"
    header += "# headstart source it runs (docs/reruns.md); in a user's project the installed version in\n"
    header += "# headstart-versions.json stands for it.\n"
    return header + "\n".join(out) + "\n"


def render_params(data: str | None = None, name: str | None = None) -> str:
    """params.yaml: the template (the digits demo) or, with ``data``, the same file set up for that dataset.

    With ``data`` (an image folder or a manifest), it is the only dataset, the one fine-tuned, and the transfer
    section is left empty (add a shifted copy of a dataset to compare heads under domain shift).
    """
    text = template("params.yaml")
    if data is None:
        return text
    name = name or re.sub(r"\W+", "_", Path(data).stem).strip("_") or "data"
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise InitError(f"--name {name!r}: use letters, digits and _ (it names files and DVC stages)")
    dataset = (
        f"datasets:\n  {name}:\n    source: {data}{' ' * max(1, 23 - len(data))}# an image folder root/<class>/<image>,"
        " or a manifest .csv/.parquet\n"
        "    split: {val: 0.15, test: 0.30}   # per class; a manifest's own split column wins\n"
        "  # digits:                  # the built-in demo (also mnist, fashion-mnist)\n"
        "  #   source: digits\n\n"
    )
    text = _replace_section(text, "datasets", dataset)
    text = re.sub(r"(finetune:.*\n  datasets: )\[[^\]]*\]", rf"\1[{name}]", text)
    transfer = (
        "transfer: {}                   # domain shift (dvc stage `transfer`); with a dataset `shifted`:\n"
        "#  mine_to_shifted: {source: mine, target: shifted, backbone: mobilenet_v2, layer: default,\n"
        "#                    heads: [logreg, svm, knn], adapt_steps: 1}\n"
    )
    return _replace_section(text, "transfer", transfer)


def _replace_section(text: str, key: str, body: str) -> str:
    """Replace the top-level ``key:`` block (up to the next top-level key or the end) with ``body``."""
    match = re.search(rf"^{key}:.*?(?=^\w|\Z)", text, re.S | re.M)
    if match is None:
        raise ValueError(f"the params template has no top-level {key}")
    return text[: match.start()] + body + text[match.end() :]


def init_project(
    directory: str | Path = ".", *, data: str | None = None, name: str | None = None, force: bool = False
) -> list[Path]:
    """Write dvc.yaml, params.yaml (kept if present) and the plot template into ``directory``; returns what was written.

    ``directory`` must be the root of a git repository with DVC initialised (``git init && dvc init``), and DVC
    installed here (the ``pipeline`` extra).
    """
    if util.find_spec("dvc") is None:
        raise InitError("headstart init writes a DVC pipeline; install it with pip install 'headstart[pipeline]'")
    root = Path(directory)
    if not (root / ".git").exists() or not (root / ".dvc").is_dir():
        missing = "git init && dvc init" if not (root / ".git").exists() else "dvc init"
        raise InitError(f"{root} is not the root of a git + DVC repository; run `{missing}` there first")
    if data is not None and not (root / data).exists():
        raise InitError(f"--data {data}: no such folder or manifest under {root} (give a path relative to it)")
    if (root / "dvc.yaml").exists() and not force:
        raise InitError(f"{root / 'dvc.yaml'} exists; move it away, or pass --force to replace it")
    written = []
    files = {
        "dvc.yaml": render_dvc_yaml(),
        SOURCES_DVC_YAML: template("sources.dvc.yaml"),
        PLOTS_TEMPLATE: template("fewshot.json"),
    }
    if not (root / "params.yaml").exists():
        files["params.yaml"] = render_params(data, name)
    elif data is not None:
        raise InitError(f"{root / 'params.yaml'} exists and --data would rewrite it; add the dataset there instead")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    _ignore(root / ".gitignore", [f"/{VERSIONS_FILE}", f"/{SOURCES_DIR}/", "/.headstart/"])
    return written


def _ignore(path: Path, entries: list[str]) -> None:
    present = path.read_text().splitlines() if path.exists() else []
    extra = [e for e in entries if e not in present]
    if extra:
        with open(path, "a") as handle:
            handle.write(("\n" if present and present[-1] else "") + "# headstart\n" + "\n".join(extra) + "\n")
