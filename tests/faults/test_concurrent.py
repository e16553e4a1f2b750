"""Two embeds on one cache at once: one embeds, the other waits and takes its work from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO, digit_images, write_folder
from tests.faults._helpers import temporaries

_EMBED = textwrap.dedent("""
    import logging, sys, time
    from pathlib import Path
    from headstart.data import prepare_dataset
    from headstart.features.engine import EmbedOptions, embed
    from headstart.features.registry import BackboneSpec
    folder, out, cache, me, other = sys.argv[1:6]
    logging.basicConfig(level=logging.INFO)
    prepared = prepare_dataset(folder)
    Path(me).touch()
    while not Path(other).exists():  # start embedding together
        time.sleep(0.01)
    spec = BackboneSpec("mobilenet_v2", weights=None, layers=("features.6",), image_size=64)
    result = embed(prepared, spec, single_file=out, options=EmbedOptions(batch_size=4, num_workers=0, cache_dir=cache))
    print(result.stats.computed)
""")


def test_two_embeds_on_one_cache_embed_each_image_once(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    write_folder(folder, digit_images(n_per_class=40, classes=(0, 1, 2, 3)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _EMBED, folder, tmp_path / f"out{i}.parquet", tmp_path / "cache",
             tmp_path / f"ready{i}", tmp_path / f"ready{1 - i}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in (0, 1)
    ]
    outputs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [err for _, err in outputs]

    computed = sorted(int(out.split()[-1]) for out, _ in outputs)
    assert computed == [0, 160]  # not [160, 160]: the second run found the first one's work
    # usually the second run logs that it waits for the first; on a loaded machine it may only start once the first
    # has finished, and then it finds everything in the cache: [0, 160] either way, never [160, 160]
    assert sum("waiting for it to finish" in err for _, err in outputs) <= 1
    assert (tmp_path / "out0.parquet").read_bytes() == (tmp_path / "out1.parquet").read_bytes()
    assert temporaries(tmp_path) == []
