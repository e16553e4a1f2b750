"""What saving and loading a head costs a fresh process before any work: the imports of the heads' own format
against skops.io's, side by side (each in a new interpreter, best of --repeat).

    python benchmarks/persist_import.py
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time

CASES = {
    "heads (sklearn, faiss, headstart's format)": "import sklearn.linear_model, sklearn.svm, faiss, headstart.heads.persist",
    "the same + skops.io": "import sklearn.linear_model, sklearn.svm, faiss, headstart.heads.persist, skops.io",
}


def seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, python {platform.python_version()}")
    probe = "import skops.io, sys; print('torch' in sys.modules)"
    torch_loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    print(f"importing skops.io imports torch: {torch_loaded.stdout.strip()}")
    best = {}
    for name, code in CASES.items():
        best[name] = min(seconds(code) for _ in range(args.repeat))
        print(f"{name:<45} {best[name]:6.2f} s")
    first, second = best.values()
    print(f"skops.io adds {second - first:.2f} s to every process that saves or loads a head")


if __name__ == "__main__":
    main()
