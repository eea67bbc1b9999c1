"""The ``ddpm`` family (denoising-diffusion-pytorch): its sampler's range and data scaling (what every torch family
does, warm start, checkpoints, seeds, devices, resume, is in tests/test_torch_families.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_torch_families import CONTEXT, images, splits, torch_family, vectors

from plugins.families.diffusion import FILL, DDPMFamily

DDPM = torch_family("ddpm")
needs_diffusion = pytest.mark.skipif(bool(DDPMFamily.missing_requirements()), reason=DDPM.unavailable)
model_for = DDPM.model


@needs_diffusion
def test_vectors_fit_and_sample_in_data_units():
    x = vectors(300, 0)
    model = model_for(x)
    stats = model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert set(stats) == {"loss"} and math.isfinite(stats["loss"])
    samples = model.sample(123, np.random.default_rng(2))
    assert samples.shape == (123, 2) and samples.dtype == np.float64 and np.all(np.isfinite(samples))
    # the sampler clips to [-1, 1], which decodes to the training range widened by 1 / FILL around its centre
    centre, half = (x.max(0) + x.min(0)) / 2, (x.max(0) - x.min(0)) / 2 / FILL
    assert np.all(samples >= centre - half - 1e-4) and np.all(samples <= centre + half + 1e-4)


@needs_diffusion
def test_scaling_maps_the_training_range_into_the_model_range_and_back():
    import torch

    x = vectors(200, 0)
    model = model_for(x)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    tensor = torch.as_tensor(x, dtype=torch.float32)
    encoded = model.encode(tensor)
    assert encoded.shape == (200, 2, 1)  # GaussianDiffusion1D's layout: channels = dimensions, length 1
    np.testing.assert_allclose(encoded.amin(dim=(0, 2)).numpy(), [-FILL, -FILL], atol=1e-5)
    np.testing.assert_allclose(encoded.amax(dim=(0, 2)).numpy(), [FILL, FILL], atol=1e-5)
    np.testing.assert_allclose(model.decode(encoded).numpy(), x, rtol=1e-5, atol=1e-4)

    pictures = images(50, 1)
    picture_model = model_for(pictures, kind="image")
    picture_model.fit(pictures, warm_start=False, rng=np.random.default_rng(1))
    encoded = picture_model.encode(torch.as_tensor(pictures, dtype=torch.float32))
    np.testing.assert_allclose(encoded.numpy(), 2 * pictures - 1, atol=1e-6)
    np.testing.assert_allclose(picture_model.decode(encoded).numpy(), pictures, atol=1e-6)
    beyond = torch.stack([torch.full((1, 4, 4), -3.0), torch.full((1, 4, 4), 3.0)])  # outside [-1, 1]: clipped
    expected = np.stack([np.zeros((1, 4, 4)), np.ones((1, 4, 4))])
    np.testing.assert_array_equal(picture_model.decode(beyond).numpy(), expected)


@pytest.mark.parametrize(
    ("params", "shape", "message"),
    [
        (
            {"timesteps": 10, "sampling_timesteps": 20},
            (2,),
            "ddpm: sampling_timesteps (20) must not exceed timesteps (10)",
        ),
        (
            {"depth": 3},
            (1, 6, 6),
            "ddpm: images of 6x6 do not halve 2 times (Unet depth 3); use a smaller depth or a size divisible by 4",
        ),
    ],
)
def test_impossible_settings_are_refused_when_the_model_is_created(params, shape, message):
    data = np.zeros((4, *shape))
    with pytest.raises(ValueError) as caught:
        DDPMFamily(params).create(splits(data, "image" if len(shape) == 3 else "vector"), CONTEXT)
    assert str(caught.value) == message


@needs_diffusion
@pytest.mark.parametrize("warm_start", [False, True])
def test_samples_stay_in_the_real_range_when_refitted_on_wider_data(warm_start):
    """The scaling is the real training set's, fixed at creation: a (cold or warm) refit on data three times wider
    than the real set keeps every sample within the real range widened by 1 / FILL (version 1 refitted the scaling
    on each cold fit, so the range grew with the model's own samples, generation after generation)."""
    real = vectors(300, 0)
    centre, half = (real.max(0) + real.min(0)) / 2, (real.max(0) - real.min(0)) / 2
    model = model_for(real)
    model.fit(real, warm_start=False, rng=np.random.default_rng(1))
    wider = centre + 3 * (vectors(300, 1) - centre)
    assert np.any(np.abs(wider - centre) > 2 * half)  # the refit's data reach far beyond the real range
    for generation in range(2):
        model.fit(wider, warm_start=warm_start, rng=np.random.default_rng(10 + generation))
        samples = model.sample(400, np.random.default_rng(20 + generation))
        assert np.all(np.abs(samples - centre) <= half / FILL + 1e-4)
