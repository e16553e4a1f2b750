"""Built-in datasets: scikit-learn's digits (in the wheel), and MNIST / Fashion-MNIST from their IDX files
(found on disk, or downloaded by torchvision when online).

Each built-in returns a frame with the columns ``id, label, split, path, image``: ``image`` holds PNG bytes,
``path`` is null, ``split`` is the dataset's official split where it has one (else null), and ``id`` is the
hash of the raw pixels, so it does not depend on the PNG encoder.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from headstart.data.hashing import content_id
from headstart.data.images import encode_png
from headstart.errors import UserError

__all__ = [
    "BUILTIN_DATASETS", "FORTUNE_TOPICS", "BuiltinDataset", "DatasetNotFound", "IDX_SEARCH_PATH", "load_builtin",
]  # fmt: skip

log = logging.getLogger(__name__)


class DatasetNotFound(UserError, FileNotFoundError):
    """A built-in dataset's files are not on this machine; the message says where to put them."""


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    description: str
    loader: Callable[[str | None], pd.DataFrame]
    locate: Callable[[str | None], str | None]
    modality: str = "image"


def _digits(root: str | None = None) -> pd.DataFrame:
    from sklearn.datasets import load_digits  # heavy to import, and only this loader needs it

    digits = load_digits()
    # 0..16 ink levels -> 0..255 grey, so the images look like any other 8-bit image.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = [str(t) for t in digits.target]
    return _frame(images, labels, [None] * len(labels))


def _digits_locate(root: str | None = None) -> str | None:
    """The data file in scikit-learn's wheel, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    return str(path) if path.exists() else None


# Where the IDX files of MNIST-like datasets are looked for, in this order (after `root:` in params.yaml).
IDX_SEARCH_PATH = {
    "mnist": ["{data_home}/mnist", "{data_home}/MNIST/raw", "data/MNIST/raw", "/usr/share/datasets/mnist"],
    "fashion-mnist": [
        "{data_home}/fashion-mnist",
        "{data_home}/FashionMNIST/raw",
        "data/FashionMNIST/raw",
        "/usr/share/datasets/fashion-mnist",
    ],
}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def _data_home() -> str:
    return os.environ.get("HEADSTART_DATA", os.path.expanduser("~/.cache/headstart/datasets"))


def _find_idx(name: str, root: str | None) -> str | None:
    candidates = [root] if root else [p.format(data_home=_data_home()) for p in IDX_SEARCH_PATH[name]]
    for directory in candidates:
        if all(_idx_file(Path(directory), stem) for pair in _IDX_FILES.values() for stem in pair):
            return directory
    return None


def _idx_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz", directory / stem.replace("-idx", ".idx")):
        if candidate.exists():
            return candidate
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetNotFound(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise DatasetNotFound(f"{path} is truncated: header says {shape}, found {array.size} values; download it again")
    return array.reshape(shape)


def _idx_loader(name: str) -> Callable[[str | None], pd.DataFrame]:
    def load(root: str | None = None) -> pd.DataFrame:
        directory = _find_idx(name, root)
        download_error = None
        if directory is None and root is None:
            download_error = _torchvision_download(name)
            directory = _find_idx(name, root)
        if directory is None:
            where = [root] if root else [p.format(data_home=_data_home()) for p in IDX_SEARCH_PATH[name]]
            files = ", ".join(f"{stem}[.gz]" for pair in _IDX_FILES.values() for stem in pair)
            hint = (
                " On Debian/Ubuntu: `apt-get install dataset-fashion-mnist`."
                if name == "fashion-mnist"
                else " Copy them from a machine where torchvision.datasets.MNIST(root, download=True) fetched them."
            )
            tried = f" (torchvision's download failed: {download_error})" if download_error else ""
            raise DatasetNotFound(
                f"built-in dataset '{name}' needs the IDX files {files} in one of: "
                f"{', '.join(where)} (or set `root:` for the dataset in params.yaml){tried}.{hint}"
            )
        frames = []
        for split, (images_stem, labels_stem) in _IDX_FILES.items():
            images = _read_idx(_idx_file(Path(directory), images_stem))  # type: ignore[arg-type]
            targets = _read_idx(_idx_file(Path(directory), labels_stem))  # type: ignore[arg-type]
            if len(images) != len(targets):
                raise DatasetNotFound(
                    f"{directory}: {images_stem} has {len(images)} images but {labels_stem} has {len(targets)} labels"
                )
            labels = [_CLASS_NAMES[name][t] for t in targets]
            frames.append(_frame(images, labels, ["test" if split == "test" else None] * len(labels)))
        log.info("loaded %s from %s", name, directory)
        return pd.concat(frames, ignore_index=True)

    return load


def _torchvision_download(name: str) -> str | None:
    """Let torchvision download the IDX files into the data home (online machines); the error if it cannot.

    The only use of torch in this package, so it is imported here, when a download is needed."""
    try:
        import torchvision.datasets as tvd

        cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
        for train in (True, False):
            cls(_data_home(), train=train, download=True)
        return None
    except Exception as err:  # noqa: BLE001 - offline: report it in the not-found message
        return f"{type(err).__name__}: {str(err)[:120]}"


def _frame(images: np.ndarray, labels: list[str], splits: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [content_id(img.tobytes(), prefix=f"array:{img.dtype}:{img.shape}") for img in images],
            "label": labels,
            "split": splits,
            "path": [None] * len(labels),
            "image": [encode_png(img) for img in images],
        }
    )


# The built-in text dataset `fortunes`: Debian's `fortunes` package (apt-get install fortunes) files its fortune
# cookies by topic, one file per topic, entries separated by a line "%". These topics are the labels.
FORTUNE_TOPICS = ("computers", "education", "food", "law", "love", "politics", "science", "sports", "startrek")
FORTUNE_DIRS = ("/usr/share/games/fortunes", "/usr/share/fortunes", "/usr/local/share/games/fortunes")


def _find_fortunes(root: str | None = None) -> str | None:
    """The folder holding the fortune topic files, or ``None``."""
    for directory in [root] if root else FORTUNE_DIRS:
        if all((Path(directory) / topic).is_file() for topic in FORTUNE_TOPICS):
            return str(directory)
    return None


def _load_fortunes(root: str | None = None) -> pd.DataFrame:
    """Every fortune of :data:`FORTUNE_TOPICS` as a labelled text (``id, label, split, path, image``)."""
    directory = _find_fortunes(root)
    if directory is None:
        where = root or ", ".join(FORTUNE_DIRS)
        raise DatasetNotFound(
            f"built-in dataset 'fortunes' needs the topic files {', '.join(FORTUNE_TOPICS)} of Debian's fortunes "
            f"package in {where}: `apt-get install fortunes` (or set `root:` to a folder holding them)"
        )
    texts, labels = [], []
    for topic in FORTUNE_TOPICS:
        content = (Path(directory) / topic).read_text(encoding="utf-8", errors="replace")
        for entry in content.split("\n%\n"):
            entry = entry.strip("%\n ").strip()
            if entry:
                texts.append(entry)
                labels.append(topic)
    data = [t.encode("utf-8") for t in texts]
    return pd.DataFrame(
        {
            "id": [content_id(b, prefix="text") for b in data],
            "label": labels,
            "split": [None] * len(data),
            "path": [None] * len(data),
            "image": data,
        }
    )


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "fortunes": BuiltinDataset(
        "fortunes",
        "Debian's fortune cookies by topic (computers, food, law, ...): about 3,400 short texts, 9 classes",
        _load_fortunes,
        _find_fortunes,
        modality="text",
    ),
    "digits": BuiltinDataset(
        "digits", "scikit-learn's handwritten digits: 1,797 grey 8x8 images, 10 classes", _digits, _digits_locate
    ),
    "mnist": BuiltinDataset(
        "mnist",
        "MNIST handwritten digits, 70,000 grey 28x28 images (IDX files)",
        _idx_loader("mnist"),
        lambda root=None: _find_idx("mnist", root),
    ),
    "fashion-mnist": BuiltinDataset(
        "fashion-mnist",
        "Zalando's Fashion-MNIST, 70,000 grey 28x28 images (IDX files)",
        _idx_loader("fashion-mnist"),
        lambda root=None: _find_idx("fashion-mnist", root),
    ),
}


def load_builtin(name: str, root: str | None = None) -> pd.DataFrame:
    """Load a built-in dataset as a frame of PNG images."""
    try:
        dataset = BUILTIN_DATASETS[name]
    except KeyError:
        raise DatasetNotFound(f"unknown built-in dataset '{name}'; built-ins: {', '.join(BUILTIN_DATASETS)}") from None
    return dataset.loader(root)
