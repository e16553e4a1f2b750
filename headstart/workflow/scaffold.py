"""`headstart init`: put headstart's pipeline into an existing git + DVC repository.

The templates ship inside the package (``headstart/templates``): ``dvc.yaml`` (stages that run the installed
headstart, ``python -m headstart.pipeline.<stage>``, and depend on data, params and ``headstart-versions.json``),
``sources.dvc.yaml`` (``headstart-sources/dvc.yaml``: the `versions` stage that writes that file and one per
dataset, the only stage that runs on every `dvc repro`, with a lock file of its own),
``params.yaml`` (commented; the built-in digits demo, or your data with ``--data``) and the few-shot plot template.

This repository's own pipeline is one instance of the templates: ``python -m headstart.pipeline.scaffold`` writes
it with ``dev=True``. ``headstart-sources/code-modules.json`` lists, per stage module, the headstart source files
it imports; the `versions` stage (which runs anyway) writes their digests into
``headstart-sources/code/<module>.json``, and each stage depends on its module's file, so that editing headstart
here reruns the stages the edit can affect (in a user's project, the installed version stands for them). No
source file is listed in dvc.lock, which keeps a no-op `dvc repro` fast.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

from headstart._files import atomic_path
from headstart.errors import UserError

__all__ = [
    "InitError",
    "code_file",
    "init_project",
    "main",
    "render_dvc_yaml",
    "render_params",
    "code_modules",
    "render_sources_dvc_yaml",
    "template",
]

VERSIONS_FILE = "headstart-versions.json"
PLOTS_TEMPLATE = ".dvc/plots/fewshot.json"
SOURCES_DVC_YAML = "headstart-sources/dvc.yaml"  # the `versions` stage, with a lock file of its own
SOURCES_DIR = "headstart-sources/datasets"
CODE_MODULES = "headstart-sources/code-modules.json"  # this repository only: the source files of each stage module
CODE_DIR = "headstart-sources/code"
# modules a stage imports only while it runs: its settings checks, the registered heads and backbones (built on
# first use), the engine's writers and its other engines
_ALWAYS = ["headstart.workflow._checks", "headstart._files"]
_HEADS = ["headstart.heads.builtin", "headstart.heads._state", "headstart.workflow.records"]
_ENGINE = [
    "headstart.data.tables.write", *(f"headstart.features.{m}" for m in ("pixels", "preprocess", "truncate",
    "pooling", "torchvision_backbones", "reader", "balance", "ray_engine", "ray_tasks"))
]  # fmt: skip
_RUNTIME = {
    "embed": _ENGINE,
    "fit": _HEADS,
    "transfer": _HEADS,
    "finetune": [*_ENGINE, *_HEADS, "headstart.heads.probe", "headstart.pipeline.embed"],
    "robustness": [*_ENGINE, *_HEADS, "headstart.data.prepare", "headstart.features.engine",
                   "headstart.heads.persist", "headstart.heads.metrics", "headstart.workflow.predict"],
}  # fmt: skip


class InitError(UserError):
    """The folder cannot take headstart's pipeline as it is; the message says what to do."""


def template(name: str) -> str:
    """The text of a template shipped in ``headstart/templates`` (``dvc.yaml``, ``params.yaml``, ``fewshot.json``)."""
    return (resources.files("headstart") / "templates" / name).read_text()


def render_dvc_yaml(dev: bool = False, root: str | Path | None = None) -> str:
    """The pipeline's dvc.yaml; ``dev`` makes each stage also depend on ``headstart-sources/code/<module>.json``,
    the digests of the headstart source files its module imports (see :func:`code_modules`)."""
    text = template("dvc.yaml")
    if not dev:
        return text
    out, module = [], ""
    for line in text.splitlines():
        found = re.search(r"cmd: python -m headstart\.pipeline\.(\w+)", line)
        module = found.group(1) if found else module
        out.append(line)
        if line.strip() == f"- {VERSIONS_FILE}" and module:
            out.append(f"{line[: line.index('-')]}- {code_file(module)}")
    header = "# This repository's instance (`python -m headstart.pipeline.scaffold`): each stage also depends on the\n"
    header += "# digests of the headstart source files its module imports (headstart-sources/code/, written by the\n"
    header += "# `versions` stage), so editing headstart here reruns what the edit can affect; in a user's project the\n"
    header += "# installed version in headstart-versions.json stands for them.\n"
    return header + "\n".join(out) + "\n"


def render_sources_dvc_yaml(dev: bool = False) -> str:
    """headstart-sources/dvc.yaml; ``dev`` also has the `versions` stage write the source files' digests."""
    text = template("sources.dvc.yaml")
    if not dev:
        return text
    flag = " --sources headstart-sources/datasets"
    text = text.replace(flag, f"{flag}\n      --code {CODE_MODULES} --code-out {CODE_DIR}")
    return text + f"      - {CODE_DIR}:\n          cache: false\n          persist: true\n"


def code_modules(root: str | Path | None = None) -> dict[str, list[str]]:
    """For each stage module the pipeline runs, the headstart source files it imports (in the checkout at
    ``root``): what ``headstart-sources/code-modules.json`` holds in this repository."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    modules = dict.fromkeys(re.findall(r"cmd: python -m headstart\.pipeline\.(\w+)", template("dvc.yaml")))
    return {m: _code_deps(f"headstart.pipeline.{m}", root) for m in modules}


def code_file(module: str) -> str:
    """The digests of the source files of stage module ``module`` (this repository's pipeline only)."""
    return f"{CODE_DIR}/{module}.json"


def _code_deps(module: str, root: Path) -> list[str]:
    extras = [*_ALWAYS, *_RUNTIME.get(module.rsplit(".", 1)[1], [])]
    code = (  # an extra whose own imports are optional (ray) counts as its file alone
        "import importlib, importlib.util, sys\n"
        f"importlib.import_module({module!r})\n"
        "files = []\n"
        f"for name in {extras!r}:\n"
        "    files.append(importlib.util.find_spec(name).origin)\n"
        "    try: importlib.import_module(name)\n"
        "    except ImportError: pass\n"
        "print('\\n'.join(files + [m.__file__ for n, m in sys.modules.items() "
        "if n.startswith('headstart') and getattr(m, '__file__', None)]))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env)
    files = {Path(f).resolve().relative_to(root.resolve()).as_posix() for f in result.stdout.split()}
    return sorted(_deferred_imports(files, root))


def _deferred_imports(files: set[str], root: Path) -> set[str]:
    """``files`` and, to a fixpoint, every headstart module that their functions import when they run (``from
    headstart.heads.knn import ...`` inside a builder): importing a stage module does not load those, yet a change
    to one changes what the stage computes. Read from the source, so it errs towards more files, never fewer."""
    import ast

    root = root.resolve()
    todo, seen = sorted(files), set(files)
    while todo:
        source = root / todo.pop()
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name.split(".")[0] != "headstart":
                    continue
                for path in (f"{name.replace('.', '/')}.py", f"{name.replace('.', '/')}/__init__.py"):
                    if path not in seen and (root / path).is_file():
                        seen.add(path)
                        todo.append(path)
    return seen


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

    ``directory`` must be the root of a git repository with DVC initialised (``git init && dvc init``).
    """
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
