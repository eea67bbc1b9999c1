"""FID, KID and feature-space precision/recall against clean-fid and prdc, and FID end to end in a grid.

Images are written to PNG folders and read back by clean-fid's own folder pipeline, so "the same
images" means the same 8-bit files. Values are compared at relative 1e-6 (FID) or to the last bits
of float64 arithmetic where both sides run the same formula.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import grid_doc
from PIL import Image
from test_metrics import make_evaluation, measure

from benchmark import DataSplits, RunContext
from benchmark.run.seeding import stream

pytest.importorskip("torch")
pytest.importorskip("cleanfid")

from plugins.features.extractors import Domain, Raw, locate_inception_weights, to_uint8
from plugins.metrics.images import kernel_distance
from plugins.metrics.maths import frechet_distance


def images(seed: int, n: int, shape=(3, 6, 6), gamma: float = 1.0) -> np.ndarray:
    """Images whose values are exactly k / 255, so an 8-bit file holds them without loss."""
    rng = stream(seed, "images")
    return np.round(255 * rng.random((n, *shape)) ** gamma) / 255


def write_folder(folder: Path, batch: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, pixels in enumerate(to_uint8(batch)):
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(folder / f"{i:04d}.png")
    return folder


def clean_fid_compute_fid(fake_dir: Path, real_dir: Path, extract) -> float:
    """clean-fid's compute_fid on two folders, features by ``extract`` on its float batches (0..255),
    images read at their own size (no 299 resize: these extractors take native images)."""
    import torch
    from cleanfid import fid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(
            fid.compute_fid(
                str(fake_dir),
                str(real_dir),
                mode="clean",
                num_workers=0,
                batch_size=256,
                device=torch.device("cpu"),
                custom_feat_extractor=lambda batch: torch.from_numpy(extract(batch.numpy().astype(np.float64) / 255)),
                custom_fn_resize=lambda pixels: pixels.astype(np.float32),
                verbose=False,
            )
        )


def test_frechet_distance_equals_clean_fids():
    from cleanfid.fid import frechet_distance as clean_fid_frechet

    rng = stream(1, "frechet")
    for n, d in ((300, 50), (40, 64)):  # full-rank covariances, then fewer points than dimensions
        a, b = rng.random((n, d)), rng.random((n, d)) ** 1.3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            expected = clean_fid_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6), (n, d)


def test_fid_equals_clean_fid_compute_fid_on_the_same_folders_raw_features(registry, tmp_path):
    fake, real = images(2, 150, gamma=1.4), images(3, 160)
    ours = measure(registry, "fid", make_evaluation(registry, fake, real), {"extractor": "raw"})
    assert ours.detail == "raw features, 150 samples vs 160 real (test)"
    context = RunContext(seed=0, device="cpu")
    fake_dir, real_dir = write_folder(tmp_path / "fake", fake), write_folder(tmp_path / "real", real)
    expected = clean_fid_compute_fid(fake_dir, real_dir, lambda x: Raw().extract(x, context))
    assert ours.value == pytest.approx(expected, rel=1e-6)
    clean = measure(registry, "fid", make_evaluation(registry, fake, real), {"extractor": "raw", "method": "clean-fid"})
    assert clean.value == pytest.approx(expected, rel=1e-9)


def test_fid_equals_clean_fid_compute_fid_on_the_same_folders_domain_features(registry, tmp_path):
    fake, real = images(4, 120, gamma=1.6), images(5, 130)
    # The run's extractor is trained on the real training split (here the same images as the test split),
    # with the run's seed: an extractor prepared the same way has the same weights.
    ours = measure(registry, "fid", make_evaluation(registry, fake, real, seed=7), {"extractor": "domain"})
    context = RunContext(seed=7, device="cpu")
    domain = Domain()
    domain.prepare(DataSplits(train=real, test=real, pool=real[:0], kind="image"), context, None)
    fake_dir, real_dir = write_folder(tmp_path / "fake", fake), write_folder(tmp_path / "real", real)
    expected = clean_fid_compute_fid(fake_dir, real_dir, lambda x: domain.extract(x, context))
    assert ours.value == pytest.approx(expected, rel=1e-6)


def test_kid_equals_clean_fids_kernel_distance():
    from cleanfid.fid import kernel_distance as clean_fid_kid

    rng = stream(6, "kid")
    real, fake = rng.random((90, 20)), rng.random((70, 20)) ** 1.2
    saved = np.random.get_state()
    try:
        np.random.seed(11)  # clean-fid draws its subsets from numpy's global generator
        expected = clean_fid_kid(real, fake, num_subsets=20, max_subset_size=50)
        np.random.seed(11)
        expected_whole = clean_fid_kid(real[:70], fake, num_subsets=3, max_subset_size=1000)
    finally:
        np.random.set_state(saved)
    value, se = kernel_distance(real, fake, 20, 50, np.random.RandomState(11))
    assert value == pytest.approx(expected, rel=1e-12) and se > 0
    # Whole sets of equal size: every subset is a reordering, computed once, whatever the generator.
    value, se = kernel_distance(real[:70], fake, 3, 1000, np.random.RandomState(0))
    assert value == pytest.approx(expected_whole, rel=1e-12) and se == 0


def test_kid_metric_uses_its_features_and_reports_the_subsets_spread(registry):
    fake, real = images(7, 60, gamma=1.5), images(8, 80)
    params = {"extractor": "raw", "subset_size": 40, "subsets": 10}
    result = measure(registry, "kid", make_evaluation(registry, fake, real), params)
    assert result.detail.startswith("raw features, 60 samples vs 80 real (test); standard error over subsets ")
    assert result.value > 0


def test_feature_precision_recall_density_coverage_equal_prdc(registry, capsys):
    from prdc import compute_prdc

    fake, real = images(9, 90, gamma=1.3), images(10, 100)
    expected = compute_prdc(real.reshape(100, -1), fake.reshape(90, -1), nearest_k=4)
    capsys.readouterr()
    evaluation = make_evaluation(registry, fake, real)
    for key in ("precision", "recall", "density", "coverage"):
        result = measure(registry, key, evaluation, {"extractor": "raw", "k": 4})
        assert result.value == pytest.approx(expected[key], abs=1e-12), key


def test_reference_train_compares_with_the_training_split(registry):
    fake, real = images(11, 50, gamma=1.3), images(12, 60)
    evaluation = make_evaluation(registry, fake, real)
    train = measure(registry, "fid", evaluation, {"extractor": "raw", "reference": "train"})
    assert train.detail.endswith("(train)")


def test_feature_metrics_without_a_feature_space_fail_clearly(registry):
    evaluation = make_evaluation(registry, images(13, 5), images(14, 5))
    bare = dataclasses.replace(evaluation, features=None)
    with pytest.raises(ValueError, match="metric 'fid' needs feature extraction"):
        measure(registry, "fid", bare, {"extractor": "raw"})


# ---------------------------------------------------------------- end to end, offline


IMAGE_FAMILY = """
import numpy as np
from benchmark import Model, ModelFamily, hookimpl

class Jitter(Model):
    def fit(self, data, *, warm_start, rng):
        self.images = np.array(data)
        return {}
    def sample(self, n, rng):
        picks = self.images[rng.integers(0, len(self.images), size=n)]
        return np.clip(picks + 0.05 * rng.standard_normal(picks.shape), 0, 1)
    def state_dict(self):
        return {"images": self.images}
    def load_state_dict(self, state):
        self.images = np.array(state["images"])

class JitterFamily(ModelFamily):
    \"\"\"Training images plus a little noise: a stand-in image model for metric tests.\"\"\"
    name = "jitter"
    data_kinds = ("image",)
    def create(self, data, context):
        return Jitter()

@hookimpl
def register_model_families(register):
    register(JitterFamily)
"""


@pytest.mark.slow
def test_fid_on_upscaled_digits_runs_offline_end_to_end_in_a_grid(tmp_path, plugin_dir, monkeypatch):
    from benchmark.api.plugins import build_registry
    from benchmark.run.harness import run_grid
    from benchmark.run.spec import parse_grid
    from benchmark.run.store import Store

    try:
        locate_inception_weights()
    except FileNotFoundError as exc:
        pytest.skip(f"the inception extractor is not available here: {exc}")
    plugin_dir("image_family_for_fid", IMAGE_FAMILY)
    registry = build_registry(["image_family_for_fid"])
    if "digits" not in registry.entries["dataset"]:
        pytest.skip("dataset 'digits' (plugins/datasets/images.py) is not registered yet")

    def offline(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    digits = {"name": "digits"}
    if "size" in registry.get("dataset", "digits").component.parameters:
        digits["params"] = {"size": 16}
    grid = parse_grid(
        grid_doc(
            name="fid-digits",
            n_real=12,
            n_test=12,
            n_eval=12,
            device="cpu",
            datasets=[digits],
            models=[{"name": "jitter"}],
            metrics=[
                {"name": "fid"},
                {"name": "kid", "params": {"subsets": 5}},
                {"name": "recall", "params": {"extractor": "inception"}},
            ],
        ),
        registry,
    )
    store = Store(tmp_path / "store")
    summary = run_grid(grid, store, registry.get("executor", "inline").component(), registry, progress=False)
    (run_id,) = store.run_ids()
    assert [o.status for o in summary.outcomes] == ["done"], store.status(run_id)
    records = store.records(run_id)
    assert [r["generation"] for r in records] == [0, 1]
    for record in records:
        fid = record["metrics"]["fid"]
        assert np.isfinite(fid["value"]) and fid["value"] > 0
        assert fid["detail"] == "inception features, 12 samples vs 12 real (test)"
    # The real split's features were computed once and kept in the store's cache.
    assert len(list((store.cache_dir / "features").glob("*.npy"))) == 1
