"""The engine's import overlaps listing and hashing only in a run that loads the model anyway."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO

_RUN = textwrap.dedent("""
    import sys
    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.registry import BackboneSpec
    from headstart.features.warmup import warm_up
    folder, out, cache = sys.argv[1:4]
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=32)
    options = EmbedOptions(cache_dir=cache)
    with warm_up(spec, options, folder):
        prepared = prepare_dataset(folder)
    warmed = "torch" in sys.modules
    result = embed(prepared, spec, out, options=options)
    print(result.stats.computed, warmed, "torch" in sys.modules)
""")


def test_a_first_run_warms_up_and_a_no_op_run_does_not(image_folder: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-c", _RUN, str(image_folder), str(tmp_path / "out"), str(tmp_path / "cache")]
    first = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["36", "True", "True"], first.stderr[-2000:]
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    assert second.stdout.split() == ["0", "False", "False"], second.stderr[-2000:]
