"""Write this repository's own dvc.yaml (an instance of `headstart init`'s templates)."""

from __future__ import annotations

import json
from pathlib import Path

from headstart._files import atomic_path
from headstart.workflow.scaffold import CODE_MODULES, SOURCES_DVC_YAML, code_modules, render_dvc_yaml, render_sources_dvc_yaml


def main(argv: list[str] | None = None) -> int:
    """Write this repository's dvc.yaml, headstart-sources/dvc.yaml and headstart-sources/code-modules.json."""
    root = Path(__file__).resolve().parents[2]
    files = {
        "dvc.yaml": render_dvc_yaml(dev=True, root=root),
        SOURCES_DVC_YAML: render_sources_dvc_yaml(dev=True),
        CODE_MODULES: json.dumps(code_modules(root), indent=2) + "\n",
    }
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
