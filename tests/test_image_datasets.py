"""Image datasets: digits, a folder of PNG/JPEG files, local CIFAR-10 and MNIST copies built here in their formats."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from plugins.datasets.images import CIFAR10, DATA_ENV, MNIST, Digits, ImageFolder


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_images(splits, counts: tuple[int, int, int], shape: tuple[int, int, int]) -> None:
    assert splits.kind == "image"
    for part, count in zip((splits.train, splits.test, splits.pool), counts, strict=True):
        assert part.shape == (count, *shape) and part.dtype == np.float64
        assert np.all((part >= 0.0) & (part <= 1.0))


def as_set(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


# ---------------------------------------------------------------- digits


def test_digits_are_8x8_in_the_unit_interval_and_split_by_a_seeded_permutation():
    from sklearn.datasets import load_digits

    splits = Digits().load(100, 50, 10, rng(0))
    check_images(splits, (100, 50, 10), (1, 8, 8))
    originals = load_digits().images[:, None] / 16.0
    # train, test and pool are consecutive slices of one permutation drawn from the run's data stream
    chosen = rng(0).permutation(len(originals))[:160]
    np.testing.assert_array_equal(np.concatenate([splits.train, splits.test, splits.pool]), originals[chosen])
    again = Digits().load(100, 50, 10, rng(0))
    np.testing.assert_array_equal(again.train, splits.train)
    assert not np.array_equal(Digits().load(100, 50, 10, rng(1)).train, splits.train)


def test_digits_can_be_upscaled():
    splits = Digits({"size": 16}).load(20, 10, 0, rng(0))
    check_images(splits, (20, 10, 0), (1, 16, 16))
    plain = Digits().load(20, 10, 0, rng(0))
    # the same digits, resized: bilinear resampling keeps the mean intensity to within the edge effects
    np.testing.assert_allclose(splits.train.mean(axis=(1, 2, 3)), plain.train.mean(axis=(1, 2, 3)), atol=0.05)


def test_asking_for_more_digits_than_exist_is_refused():
    with pytest.raises(ValueError) as caught:
        Digits().load(1000, 800, 0, rng(0))
    assert str(caught.value) == (
        "dataset 'digits' has 1797 images, but the run needs 1800 (n_real 1000 + n_test 800 + pool 0); "
        "lower n_real / n_test"
    )


# ---------------------------------------------------------------- image folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Eight images: four solid red PNGs (one not square), two solid blue PNGs in a subfolder, two grey JPEGs."""
    from PIL import Image

    root = tmp_path / "images"
    (root / "blue").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (12, 12) if i else (20, 12), (255, 0, 0)).save(root / f"red{i}.png")
    for i in range(2):
        Image.new("RGB", (16, 16), (0, 0, 255)).save(root / "blue" / f"blue{i}.PNG")
    for i in range(2):
        Image.new("L", (10, 10), 128).save(root / f"grey{i}.jpg")
    (root / "notes.txt").write_text("not an image")
    return root


def test_an_image_folder_is_read_recursively_resized_and_converted(folder):
    splits = ImageFolder({"path": str(folder), "size": 8}).load(5, 2, 1, rng(0))
    check_images(splits, (5, 2, 1), (3, 8, 8))
    images = np.concatenate([splits.train, splits.test, splits.pool])
    colours = sorted(tuple(np.round(image.mean(axis=(1, 2)), 2)) for image in images)
    grey = round(128 / 255, 2)
    assert colours == sorted([(0.0, 0.0, 1.0)] * 2 + [(1.0, 0.0, 0.0)] * 4 + [(grey, grey, grey)] * 2)

    grey_splits = ImageFolder({"path": str(folder), "size": 4, "channels": 1}).load(8, 0, 0, rng(0))
    check_images(grey_splits, (8, 0, 0), (1, 4, 4))


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (None, ValueError, "is required (the directory of PNG/JPEG images)"),
        (
            "missing",
            FileNotFoundError,
            "dataset 'image-folder': {tmp}/missing is not a directory; set params.path to one",
        ),
        ("empty", FileNotFoundError, "dataset 'image-folder': no .png/.jpg/.jpeg files under {tmp}/empty"),
    ],
)
def test_a_bad_image_folder_is_named(tmp_path, path, error, message):
    (tmp_path / "empty").mkdir()
    params = {} if path is None else {"path": str(tmp_path / path)}
    with pytest.raises(error) as caught:
        ImageFolder(params).load(1, 1, 0, rng(0))
    assert str(caught.value) == message.format(tmp=tmp_path)


def test_an_image_folder_refuses_more_images_than_it_holds(folder):
    with pytest.raises(ValueError, match=r"^dataset 'image-folder' has 8 images, but the run needs 9 "):
        ImageFolder({"path": str(folder)}).load(5, 4, 0, rng(0))


# ---------------------------------------------------------------- MNIST (torchvision's raw IDX files)


def write_idx(path: Path, images: np.ndarray, compress: bool) -> None:
    n, h, w = images.shape
    blob = (0x803).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (n, h, w)) + images.tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)


def mnist_copy(root: Path) -> np.ndarray:
    """A 7-image MNIST in torchvision's layout (train file plain, test file gzipped); image k is filled with 30 k."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = (np.arange(7, dtype=np.uint8)[:, None, None] * 30) * np.ones((7, 28, 28), dtype=np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", images[:5], compress=False)
    write_idx(raw / "t10k-images-idx3-ubyte", images[5:], compress=True)
    return images


def test_mnist_reads_a_local_copy_in_torchvisions_layout(tmp_path):
    images = mnist_copy(tmp_path)
    splits = MNIST({"root": str(tmp_path)}).load(4, 2, 1, rng(0))
    check_images(splits, (4, 2, 1), (1, 28, 28))
    got = np.concatenate([splits.train, splits.test, splits.pool])
    assert as_set(got) == as_set(images[:, None] / 255.0)
    small = MNIST({"root": str(tmp_path), "size": 8}).load(7, 0, 0, rng(0))
    check_images(small, (7, 0, 0), (1, 8, 8))


def test_the_data_root_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    mnist_copy(tmp_path)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    check_images(MNIST().load(3, 3, 0, rng(0)), (3, 3, 0), (1, 28, 28))


def test_a_corrupt_mnist_file_is_named(tmp_path):
    mnist_copy(tmp_path)
    bad = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x01" + bytes(12))
    with pytest.raises(ValueError) as caught:
        MNIST({"root": str(tmp_path)}).load(1, 1, 0, rng(0))
    assert str(caught.value) == f"{bad}: not an IDX image file (bad magic number)"


# ---------------------------------------------------------------- CIFAR-10 (torchvision's pickled batches)


def cifar_copy(root: Path) -> np.ndarray:
    """Six batches of two images each; image k has red = k, green = 100 + k, blue = 200 + k everywhere."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    k = np.arange(12, dtype=np.uint8)
    planes = np.stack([k, 100 + k, 200 + k], axis=1).astype(np.uint8)  # (12, 3): one value per image and channel
    images = np.ascontiguousarray(np.broadcast_to(planes[:, :, None, None], (12, 3, 32, 32)))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {"data": images[2 * i : 2 * i + 2].reshape(2, -1), "labels": [0, 1], "batch_label": name}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return images


def test_cifar10_reads_a_local_copy_in_torchvisions_layout(tmp_path):
    images = cifar_copy(tmp_path)
    splits = CIFAR10({"root": str(tmp_path)}).load(8, 3, 1, rng(0))
    check_images(splits, (8, 3, 1), (3, 32, 32))
    got = np.concatenate([splits.train, splits.test, splits.pool])
    assert as_set(got) == as_set(images / 255.0)  # channel order and values survive: red plane first
    check_images(CIFAR10({"root": str(tmp_path), "size": 16}).load(2, 2, 0, rng(0)), (2, 2, 0), (3, 16, 16))


@pytest.mark.parametrize(
    ("dataset", "folder", "title", "files"),
    [
        (MNIST, "MNIST/raw", "MNIST", "train-images-idx3-ubyte, t10k-images-idx3-ubyte"),
        (
            CIFAR10,
            "cifar-10-batches-py",
            "CIFAR-10",
            "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch",
        ),
    ],
)
def test_a_missing_copy_names_the_path_looked_at_and_how_to_point_elsewhere(tmp_path, dataset, folder, title, files):
    with pytest.raises(FileNotFoundError) as caught:
        dataset({"root": str(tmp_path)}).load(1, 1, 0, rng(0))
    assert str(caught.value) == (
        f"dataset {dataset.name!r}: no {title} copy at {tmp_path / folder} (missing {files}); download is never "
        f"attempted: put torchvision's {title} files there, or point to another root with params.root in the grid "
        f"or ${DATA_ENV}"
    )


def test_the_image_datasets_are_registered_as_image_data(registry):
    for name in ("digits", "image-folder", "mnist", "cifar10"):
        assert registry.get("dataset", name).component.kind == "image"
