"""Image datasets: scikit-learn's 8x8 digits, a folder of PNG/JPEG files, local copies of CIFAR-10 and MNIST.

All are finite: ``load`` splits a seeded permutation of the images into train, test and pool,
and refuses to hand out more images than exist. Images come out as (n, c, h, w) float64 in
[0, 1]. CIFAR-10 and MNIST are read from a copy in torchvision's on-disk layout that the user
provides (``root``, else $RETRAINBENCH_DATA, else ~/.cache/retrainbench/data): nothing is
ever downloaded, and a missing copy is an error naming the path looked at.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmark import Dataset, DataSplits, Param, hookimpl

DATA_ENV = "RETRAINBENCH_DATA"
DEFAULT_ROOT = Path("~/.cache/retrainbench/data")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def data_root(root: str | None) -> Path:
    """Where local dataset copies live: the ``root`` parameter, else $RETRAINBENCH_DATA, else the default."""
    return Path(root or os.environ.get(DATA_ENV) or DEFAULT_ROOT).expanduser()


def resize(images: np.ndarray, size: int | None) -> np.ndarray:
    """(n, c, h, w) in [0, 1] resized to size x size (bilinear, antialiased by Pillow); unchanged when size is None."""
    if size is None or images.shape[2:] == (size, size):
        return images
    try:
        from PIL import Image
    except ImportError:
        raise ImportError('resizing images needs Pillow: pip install "retrainbench[images]"') from None
    out = np.empty((*images.shape[:2], size, size), dtype=np.float64)
    for i, image in enumerate(images):
        for c, plane in enumerate(image):
            resized = Image.fromarray(plane.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
            out[i, c] = np.asarray(resized, dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


def split(
    name: str,
    count: int,
    n_train: int,
    n_test: int,
    n_pool: int,
    rng: np.random.Generator,
    fetch: Callable[[np.ndarray], np.ndarray],
) -> DataSplits:
    """Train / test / pool from a seeded permutation of ``count`` images; ``fetch(indices)`` reads the chosen ones."""
    wanted = n_train + n_test + n_pool
    if wanted > count:
        raise ValueError(
            f"dataset {name!r} has {count} images, but the run needs {wanted} "
            f"(n_real {n_train} + n_test {n_test} + pool {n_pool}); lower n_real / n_test"
        )
    images = fetch(rng.permutation(count)[:wanted])
    return DataSplits(
        train=images[:n_train], test=images[n_train : n_train + n_test], pool=images[n_train + n_test :], kind="image"
    )


class Digits(Dataset):
    """scikit-learn's 1797 handwritten digits, 1x8x8 (optionally resized); ships offline."""

    name = "digits"
    kind = "image"
    requires = ("sklearn",)
    install_hint = "pip install scikit-learn"
    parameters = {"size": Param(None, int, "resize to size x size (bilinear; needs Pillow)", low=1, optional=True)}

    def load(self, n_train: int, n_test: int, n_pool: int, rng: np.random.Generator) -> DataSplits:
        from sklearn.datasets import load_digits

        images = load_digits().images[:, None] / 16.0
        size = self.params["size"]
        return split(self.name, len(images), n_train, n_test, n_pool, rng, lambda i: resize(images[i], size))


class ImageFolder(Dataset):
    """Every PNG/JPEG file under a directory (recursively), centre-cropped to a square and resized."""

    name = "image-folder"
    kind = "image"
    requires = ("PIL",)
    install_hint = 'pip install "retrainbench[images]"'
    parameters = {
        "path": Param(None, str, "the directory of PNG/JPEG images", required=True),
        "size": Param(32, int, "side of the square images", low=1),
        "channels": Param(3, int, "1 (grey) or 3 (RGB)", choices=(1, 3)),
    }

    def files(self) -> list[Path]:
        folder = Path(self.params["path"]).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"dataset 'image-folder': {folder} is not a directory; set params.path to one")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise FileNotFoundError(f"dataset 'image-folder': no .png/.jpg/.jpeg files under {folder}")
        return found

    def read(self, path: Path) -> np.ndarray:
        """One file as (c, size, size) in [0, 1]."""
        from PIL import Image

        size = self.params["size"]
        with Image.open(path) as opened:
            image = opened.convert("L" if self.params["channels"] == 1 else "RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float64) / 255.0
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def load(self, n_train: int, n_test: int, n_pool: int, rng: np.random.Generator) -> DataSplits:
        files = self.files()
        return split(
            self.name, len(files), n_train, n_test, n_pool, rng, lambda i: np.stack([self.read(files[j]) for j in i])
        )


class _LocalCopy(Dataset):
    """A dataset read from the user's local copy in torchvision's layout (never downloaded)."""

    kind = "image"
    #: The directory under the data root and the files that must be in it.
    folder: str
    files: tuple[str, ...]
    title: str
    parameters = {
        "root": Param(
            None, str, f"directory holding the copy (default: ${DATA_ENV}, else {DEFAULT_ROOT})", optional=True
        ),
        "size": Param(None, int, "resize to size x size (bilinear; needs Pillow)", low=1, optional=True),
    }

    def located(self) -> Path:
        """The copy's directory, checked to hold every file (gzipped files count)."""
        directory = data_root(self.params["root"]) / self.folder
        missing = [f for f in self.files if not (directory / f).exists() and not (directory / f"{f}.gz").exists()]
        if missing:
            raise FileNotFoundError(
                f"dataset {self.name!r}: no {self.title} copy at {directory} (missing {', '.join(missing)}); "
                f"download is never attempted: put torchvision's {self.title} files there, or point to another "
                f"root with params.root in the grid or ${DATA_ENV}"
            )
        return directory

    def read_all(self, directory: Path) -> np.ndarray:
        """Every image of the copy as (n, c, h, w) uint8."""
        raise NotImplementedError

    def load(self, n_train: int, n_test: int, n_pool: int, rng: np.random.Generator) -> DataSplits:
        raw = self.read_all(self.located())
        size = self.params["size"]
        return split(self.name, len(raw), n_train, n_test, n_pool, rng, lambda i: resize(raw[i] / 255.0, size))


def _open(path: Path):
    return open(path, "rb") if path.exists() else gzip.open(path.with_name(path.name + ".gz"), "rb")


def read_idx_images(path: Path) -> np.ndarray:
    """An IDX image file (MNIST's format: magic 0x00000803, big-endian sizes, uint8 pixels) as (n, h, w)."""
    with _open(path) as fh:
        header = fh.read(16)
        data = fh.read()
    if len(header) < 16 or int.from_bytes(header[:4], "big") != 0x803:
        raise ValueError(f"{path}: not an IDX image file (bad magic number)")
    n, h, w = (int.from_bytes(header[i : i + 4], "big") for i in (4, 8, 12))
    if len(data) != n * h * w:
        raise ValueError(f"{path}: truncated IDX file ({len(data)} bytes of pixels, expected {n * h * w})")
    return np.frombuffer(data, dtype=np.uint8).reshape(n, h, w)


class MNIST(_LocalCopy):
    """MNIST's 70000 handwritten digits, 1x28x28, from a local copy (ROOT/MNIST/raw, torchvision's layout)."""

    name = "mnist"
    folder = "MNIST/raw"
    title = "MNIST"
    files = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")

    def read_all(self, directory: Path) -> np.ndarray:
        return np.concatenate([read_idx_images(directory / f) for f in self.files])[:, None]


class CIFAR10(_LocalCopy):
    """CIFAR-10's 60000 colour images, 3x32x32, from a local copy (ROOT/cifar-10-batches-py, torchvision's layout)."""

    name = "cifar10"
    folder = "cifar-10-batches-py"
    title = "CIFAR-10"
    files = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")

    def read_all(self, directory: Path) -> np.ndarray:
        batches = []
        for name in self.files:
            # the official batches are Python pickles; they are read from the user's own copy only
            with _open(directory / name) as fh:
                entry = pickle.load(fh, encoding="latin1")
            batches.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        return np.concatenate(batches)


@hookimpl
def register_datasets(register):
    for dataset in (Digits, ImageFolder, MNIST, CIFAR10):
        register(dataset)
