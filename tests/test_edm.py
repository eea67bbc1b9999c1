"""The ``edm`` family (ElucidatedDiffusion): its sampler's range, data scaling and parameter checks (what every torch
family does, warm start, checkpoints, seeds, devices, resume, quality, is in tests/test_torch_families.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_torch_families import CONTEXT, images, splits, torch_family, vectors

from benchmark import ParamError
from plugins.families.edm import FILL, EDMFamily

EDM = torch_family("edm")
needs_edm = pytest.mark.skipif(bool(EDMFamily.missing_requirements()), reason=EDM.unavailable)
model_for = EDM.model


def sample_bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sampler clips to the library's [-1, 1]: the training range widened by 1 / FILL around its centre."""
    centre, half = (x.max(0) + x.min(0)) / 2, (x.max(0) - x.min(0)) / 2 / FILL
    return centre - half - 1e-4, centre + half + 1e-4


@needs_edm
def test_vectors_fit_and_sample_in_data_units():
    x = vectors(300, 0)
    model = model_for(x)
    stats = model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert set(stats) == {"loss"} and math.isfinite(stats["loss"])
    samples = model.sample(123, np.random.default_rng(2))
    assert samples.shape == (123, 2) and samples.dtype == np.float64 and np.all(np.isfinite(samples))
    low, high = sample_bounds(x)
    assert np.all(samples >= low) and np.all(samples <= high)


@needs_edm
def test_the_scaling_comes_from_the_real_training_data_once():
    """Encoding maps the real training range into [-FILL, FILL] of the library; a cold fit on wider data keeps it."""
    import torch

    real = vectors(200, 0)
    model = model_for(real)
    encoded = model.encode(torch.as_tensor(real, dtype=torch.float32))
    assert encoded.shape == (200, 2, 1, 1)  # points as 1x1 images of 2 channels
    # the library takes [0, 1] and maps it onto [-1, 1] itself
    np.testing.assert_allclose(encoded.amin(dim=(0, 2, 3)).numpy(), [(1 - FILL) / 2] * 2, atol=1e-5)
    np.testing.assert_allclose(encoded.amax(dim=(0, 2, 3)).numpy(), [(1 + FILL) / 2] * 2, atol=1e-5)
    np.testing.assert_allclose(model.decode(encoded).numpy(), real, rtol=1e-5, atol=1e-4)

    # a later generation's data spreads further (samples past the range): a cold fit must not rescale to it
    wider = real.mean(0) + 3 * (vectors(200, 1) - real.mean(0))
    model.fit(wider, warm_start=False, rng=np.random.default_rng(1))
    np.testing.assert_allclose(model.decode(encoded).numpy(), real, rtol=1e-5, atol=1e-4)
    low, high = sample_bounds(real)
    samples = model.sample(200, np.random.default_rng(2))
    assert np.all(samples >= low) and np.all(samples <= high)

    pictures = images(50, 1)
    picture_model = model_for(pictures, kind="image")
    encoded = picture_model.encode(torch.as_tensor(pictures, dtype=torch.float32))
    np.testing.assert_allclose(encoded.numpy(), pictures, atol=1e-6)  # images are already the library's input


@pytest.mark.parametrize(
    ("params", "shape", "message"),
    [
        ({}, (1, 8, 6), "edm: images of 8x6 are not square (ElucidatedDiffusion takes S x S)"),
        (
            {"depth": 3},
            (1, 6, 6),
            "edm: images of 6x6 do not halve 2 times (Unet depth 3); use a smaller depth or a size divisible by 4",
        ),
    ],
)
def test_impossible_settings_are_refused_when_the_model_is_created(params, shape, message):
    with pytest.raises(ValueError) as caught:
        EDMFamily(params).create(splits(np.zeros((4, *shape)), "image"), CONTEXT)
    assert str(caught.value) == message


@pytest.mark.parametrize(("params", "message"), [({"sampling_steps": 1}, "must be >= 2"), ({"churn": -1.0}, ">= 0")])
def test_out_of_bounds_parameters_are_refused(params, message):
    with pytest.raises(ParamError, match=message) as caught:
        EDMFamily(params)
    assert caught.value.key == next(iter(params))
