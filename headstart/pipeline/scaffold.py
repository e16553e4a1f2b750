"""Write this repository's own dvc.yaml and headstart-sources/dvc.yaml (an instance of `headstart init`'s
templates, each stage depending on the headstart source it runs)."""

from __future__ import annotations

from pathlib import Path

from headstart._files import atomic_path
from headstart.workflow.scaffold import SOURCES_DVC_YAML, render_dvc_yaml, template


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[2]
    files = {"dvc.yaml": render_dvc_yaml(dev=True), SOURCES_DVC_YAML: template("sources.dvc.yaml")}
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
