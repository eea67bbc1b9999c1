"""The ``ddpm`` family (denoising-diffusion-pytorch): shapes and ranges, data scaling, warm start, checkpoints."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from conftest import grid_doc

from benchmark import DataSplits, RunContext, checkpoint
from benchmark.errors import GridError
from benchmark.run.spec import parse_grid
from plugins.families.diffusion import FILL, DDPMFamily

needs_diffusion = pytest.mark.skipif(bool(DDPMFamily.missing_requirements()), reason='needs "retrainbench[diffusion]"')

TINY = {"width": 16, "depth": 1, "timesteps": 50, "sampling_timesteps": 5, "steps": 30, "batch_size": 32}
CONTEXT = RunContext(seed=0, device="auto", threads=1)
#: Adam's per-step bound (see tests/test_flows.py): 7.27 lr / (1 - 0.9^t), at most 7.7 lr after t >= 30 steps.
ADAM_STEP_BOUND = 7.7


def splits(train: np.ndarray, kind: str) -> DataSplits:
    return DataSplits(train=train, test=train, pool=train[:0], kind=kind)


def model_for(data: np.ndarray, kind: str = "vector", **params):
    return DDPMFamily({**TINY, **params}).create(splits(data, kind), CONTEXT)


def vectors(n: int, seed: int) -> np.ndarray:
    """2-D points far from the origin and of unequal spread: scaling mistakes show."""
    return np.array([50.0, -3.0]) + np.array([4.0, 0.5]) * np.random.default_rng(seed).standard_normal((n, 2))


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, size=(n, 1, 4, 4)) / 16.0


def flat_parameters(model) -> np.ndarray:
    import torch

    return torch.cat([p.detach().flatten() for p in model.diffusion.parameters()]).double().numpy()


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
def test_images_fit_and_sample_inside_the_unit_interval():
    x = images(100, 0)
    model = model_for(x, kind="image")
    assert math.isfinite(model.fit(x, warm_start=False, rng=np.random.default_rng(1))["loss"])
    samples = model.sample(20, np.random.default_rng(2))
    assert samples.shape == (20, 1, 4, 4) and samples.dtype == np.float64
    assert samples.min() >= 0.0 and samples.max() <= 1.0


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


@needs_diffusion
def test_warm_start_continues_network_adam_and_ema(tmp_path):
    first, second = vectors(300, 0), vectors(300, 1)
    model = model_for(first)
    model.fit(first, warm_start=False, rng=np.random.default_rng(1))
    before = flat_parameters(model)
    saved = checkpoint.load(checkpoint.save(model.state_dict(), tmp_path, "model").parent, "model")
    assert int(saved["ema"]["step"]) == TINY["steps"]
    model.fit(second, warm_start=True, rng=np.random.default_rng(2))
    warm = flat_parameters(model)
    assert int(model.ema.step) == 2 * TINY["steps"]

    fresh = model_for(second)
    fresh.fit(second, warm_start=False, rng=np.random.default_rng(2))
    assert not np.allclose(warm, flat_parameters(fresh))

    restored = model_for(first)
    restored.load_state_dict(saved)
    restored.fit(second, warm_start=True, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(flat_parameters(restored), warm)
    np.testing.assert_array_equal(
        restored.sample(50, np.random.default_rng(4)), model.sample(50, np.random.default_rng(4))
    )

    lr = DDPMFamily.parameters["lr"].default
    for warm_start in (True, False):
        one_step = model_for(first, steps=1)
        one_step.load_state_dict(saved)
        one_step.fit(second, warm_start=warm_start, rng=np.random.default_rng(3))
        moved = np.max(np.abs(flat_parameters(one_step) - before))
        assert (moved <= ADAM_STEP_BOUND * lr) == warm_start, moved


@needs_diffusion
@pytest.mark.parametrize("kind", ["vector", "image"])
def test_a_checkpoint_round_trip_gives_identical_samples(kind, tmp_path):
    x = vectors(200, 0) if kind == "vector" else images(60, 0)
    model = model_for(x, kind=kind)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    path = checkpoint.save(model.state_dict(), tmp_path, "model")
    assert path.name == "model.pt"
    restored = model_for(x, kind=kind)
    restored.load_state_dict(checkpoint.load(tmp_path, "model"))
    np.testing.assert_array_equal(
        restored.sample(40, np.random.default_rng(5)), model.sample(40, np.random.default_rng(5))
    )


@needs_diffusion
def test_without_ema_samples_come_from_the_trained_weights():
    x = vectors(200, 0)
    model = model_for(x, ema=0.0)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert model.ema is None and "ema" not in model.state_dict()
    assert model.sample(10, np.random.default_rng(2)).shape == (10, 2)


@needs_diffusion
def test_device_auto_resolves_to_the_cpu_here():
    import torch

    x = vectors(100, 0)
    model = model_for(x)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected
    assert {p.device.type for p in model.diffusion.parameters()} == {expected}
    assert {p.device.type for p in model.ema.ema_model.parameters()} == {expected}


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


def test_without_the_library_the_family_is_unavailable_and_a_grid_fails_before_running(registry, monkeypatch):
    real = importlib.util.find_spec
    hidden = "denoising_diffusion_pytorch"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == hidden else real(name, *a))
    entry = registry.get("model", "ddpm")
    assert entry.unavailable_reason() == 'needs denoising_diffusion_pytorch: pip install "retrainbench[diffusion]"'
    grid = grid_doc(
        name="g",
        n_real=10,
        n_test=10,
        n_eval=10,
        datasets=[{"name": "digits"}],
        models=[{"name": "ddpm"}],
        metrics=[{"name": "frechet"}],
    )
    with pytest.raises(GridError) as caught:
        parse_grid(grid, registry, where="g.toml")
    assert str(caught.value) == (
        "g.toml: models[0].name: model 'ddpm' is unavailable: "
        'needs denoising_diffusion_pytorch: pip install "retrainbench[diffusion]"'
    )


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
