"""What a feature extractor hands the metrics is checked where it is received (benchmark/run/features.py).

A metric compares the samples' features with the real ones column by column: features with a row missing,
a NaN, another width for one split, or drawn from a global random state would give a plausible, wrong number.
Each fails the run with a ContractViolation that names the extractor and what it was extracting.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark import RunContext, hookimpl
from benchmark.api.components import DataSplits, FeatureExtractor
from benchmark.api.plugins import build_registry
from benchmark.errors import ContractViolation
from benchmark.run import features as feature_module
from benchmark.run.features import FeatureSpace
from benchmark.run.seeding import stream

CONTEXT = RunContext(seed=0, device="cpu")


class Misbehaving(FeatureExtractor):
    """Flattened pixels, wrong in the way ``mode`` names (tests only); ``calls`` counts its extractions."""

    name = "misbehaving"
    mode = "none"
    calls = 0

    def extract(self, images: np.ndarray, context: RunContext) -> np.ndarray:
        type(self).calls += 1
        features = images.reshape(len(images), -1).astype(np.float64)
        samples = len(images) == SAMPLES
        if self.mode == "missing-row":
            return features[:-1]
        if self.mode == "nan" and samples:
            features[0, 0] = np.nan
        if self.mode == "list":
            return features.tolist()  # type: ignore[return-value]
        if self.mode == "integers":
            return (features * 255).astype(np.int64)
        if self.mode == "narrower-for-samples" and samples:
            return features[:, :-1]
        if self.mode == "global-random":
            np.random.random()
        return features


@hookimpl
def register_feature_extractors(register):
    register(Misbehaving)


#: Rows of the samples (the real splits have other sizes, so the extractor knows which it is given).
SAMPLES = 5


@pytest.fixture(scope="module")
def registry():
    return build_registry([sys.modules[__name__]], autoload=True)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(feature_module, "_MEMORY", {})
    monkeypatch.setattr(Misbehaving, "calls", 0)


def space(registry, mode: str, monkeypatch, cache: Path | None = None) -> tuple[FeatureSpace, np.ndarray]:
    monkeypatch.setattr(Misbehaving, "mode", mode)
    rng = stream(0, "feature-checks")
    data = DataSplits(
        train=rng.random((6, 1, 4, 4)), test=rng.random((7, 1, 4, 4)), pool=np.empty((0, 1, 4, 4)), kind="image"
    )
    return FeatureSpace(registry, data, {"mode": mode}, CONTEXT, cache), rng.random((SAMPLES, 1, 4, 4))


@pytest.mark.parametrize(
    ("mode", "which", "message"),
    [
        (
            "missing-row",
            "test",
            r"extract\(\) of the real 'test' split returned shape \(6, 16\), expected \(7, k >= 1\)",
        ),
        ("missing-row", "samples", r"extract\(\) of generation 3's samples returned shape \(4, 16\), expected \(5, k"),
        ("nan", "samples", r"extract\(\) of generation 3's samples returned 1 NaN or infinite values"),
        ("list", "train", r"extract\(\) of the real 'train' split returned a list, expected a float array \(6, k\)"),
        ("integers", "train", r"extract\(\) of the real 'train' split returned dtype int64, expected floats"),
        ("global-random", "samples", r"extract\(\) of generation 3's samples used numpy's global random state"),
    ],
)
def test_features_an_extractor_gets_wrong_fail_the_call_naming_the_extractor(
    registry, monkeypatch, mode, which, message
):
    features, samples = space(registry, mode, monkeypatch)
    with pytest.raises(ContractViolation, match=rf"feature extractor 'misbehaving' {message}"):
        features.lookup(samples, 3)("misbehaving", which)


def test_features_of_another_width_for_one_split_fail_whichever_comes_second(registry, monkeypatch):
    features, samples = space(registry, "narrower-for-samples", monkeypatch)
    lookup = features.lookup(samples, 3)
    assert lookup("misbehaving", "test").shape == (7, 16)
    with pytest.raises(ContractViolation, match=r"width 15 for 'samples' at generation 3, and of width 16 before"):
        lookup("misbehaving", "samples")


def test_right_features_pass_unchanged(registry, monkeypatch):
    features, samples = space(registry, "none", monkeypatch)
    lookup = features.lookup(samples, 3)
    np.testing.assert_array_equal(lookup("misbehaving", "samples"), samples.reshape(SAMPLES, -1))
    np.testing.assert_array_equal(lookup("misbehaving", "test"), features.data.test.reshape(7, -1))


@pytest.mark.parametrize("damage", ["truncated", "other-rows", "nan"])
def test_a_damaged_cached_feature_file_is_computed_again_not_used(registry, monkeypatch, tmp_path, damage):
    features, samples = space(registry, "none", monkeypatch, tmp_path)
    expected = features.lookup(samples, 3)("misbehaving", "test")
    (path,) = (tmp_path / "features").iterdir()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        bad = expected[:-1] if damage == "other-rows" else np.where(expected == expected[0, 0], np.nan, expected)
        np.save(path, bad)
    monkeypatch.setattr(feature_module, "_MEMORY", {})
    again, _ = space(registry, "none", monkeypatch, tmp_path)
    calls = Misbehaving.calls
    np.testing.assert_array_equal(again.lookup(samples, 3)("misbehaving", "test"), expected)
    assert Misbehaving.calls == calls + 1  # computed again
    np.testing.assert_array_equal(np.load(path), expected)  # and stored again
