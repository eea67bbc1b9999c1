"""The ``edm`` family (ElucidatedDiffusion): shapes, data scaling, warm start, checkpoints, resume, quality."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from conftest import assert_resume_equals_uninterrupted, assert_training_reaches_the_modes, resume_grid

from benchmark import DataSplits, ParamError, RunContext
from benchmark.api.plugins import build_registry
from benchmark.errors import GridError
from benchmark.run import checkpoint
from benchmark.run.global_random import untouched_global_random_state
from benchmark.run.spec import parse_grid
from plugins.datasets.toy import EightGaussians
from plugins.families.edm import FILL, EDMFamily

needs_edm = pytest.mark.skipif(bool(EDMFamily.missing_requirements()), reason='needs "retrainbench[diffusion]"')

TINY = {"width": 32, "depth": 1, "sampling_steps": 4, "steps": 30, "batch_size": 32}
CONTEXT = RunContext(seed=0, device="auto", threads=1)
#: Adam's per-step bound (see tests/test_flows.py): 7.27 lr / (1 - 0.9^t), at most 7.7 lr after t >= 30 steps.
ADAM_STEP_BOUND = 7.7


@pytest.fixture(scope="module")
def registry():
    """The installed plugins and this family, loaded by name (its entry point needs a reinstall)."""
    return build_registry(["plugins.families.edm"], autoload=True)


def splits(train: np.ndarray, kind: str) -> DataSplits:
    return DataSplits(train=train, test=train, pool=train[:0], kind=kind)


def model_for(data: np.ndarray, kind: str = "vector", **params):
    return EDMFamily({**TINY, **params}).create(splits(data, kind), CONTEXT)


def vectors(n: int, seed: int) -> np.ndarray:
    """2-D points far from the origin and of unequal spread: scaling mistakes show."""
    return np.array([50.0, -3.0]) + np.array([4.0, 0.5]) * np.random.default_rng(seed).standard_normal((n, 2))


def images(n: int, seed: int, side: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, size=(n, 1, side, side)) / 16.0


def flat_parameters(model) -> np.ndarray:
    import torch

    return torch.cat([p.detach().flatten() for p in model.diffusion.parameters()]).double().numpy()


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
def test_images_fit_and_sample_inside_the_unit_interval():
    x = images(100, 0)
    model = model_for(x, kind="image")
    assert math.isfinite(model.fit(x, warm_start=False, rng=np.random.default_rng(1))["loss"])
    samples = model.sample(20, np.random.default_rng(2))
    assert samples.shape == (20, 1, 4, 4) and samples.dtype == np.float64
    assert samples.min() >= 0.0 and samples.max() <= 1.0


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


@needs_edm
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

    lr = EDMFamily.parameters["lr"].default
    for warm_start in (True, False):
        one_step = model_for(first, steps=1)
        one_step.load_state_dict(saved)
        one_step.fit(second, warm_start=warm_start, rng=np.random.default_rng(3))
        moved = np.max(np.abs(flat_parameters(one_step) - before))
        assert (moved <= ADAM_STEP_BOUND * lr) == warm_start, moved


@needs_edm
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


@needs_edm
def test_the_same_seeds_give_the_same_samples_and_leave_global_random_state_alone():
    x = vectors(200, 0)
    draws = []
    for _ in range(2):
        model = model_for(x, churn=40.0)  # stochastic sampling: fresh noise at every step
        with untouched_global_random_state("edm"):
            model.fit(x, warm_start=False, rng=np.random.default_rng(1))
            draws.append(model.sample(100, np.random.default_rng(2)))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(model.sample(100, np.random.default_rng(3)), draws[1])


@needs_edm
def test_without_ema_samples_come_from_the_trained_weights():
    x = vectors(200, 0)
    model = model_for(x, ema=0.0)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert model.ema is None and "ema" not in model.state_dict()
    assert model.sample(10, np.random.default_rng(2)).shape == (10, 2)


@needs_edm
def test_device_auto_resolves_to_cuda_when_present_else_the_cpu():
    import torch

    x = vectors(100, 0)
    model = model_for(x)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected
    assert {p.device.type for p in model.diffusion.parameters()} == {expected}
    assert {p.device.type for p in model.ema.ema_model.parameters()} == {expected}


@needs_edm
def test_training_brings_samples_to_the_modes_of_eight_gaussians():
    train = EightGaussians().draw(1000, np.random.default_rng(0))

    def fit_and_sample(steps: int) -> np.ndarray:
        model = model_for(train, width=64, depth=2, sampling_steps=16, steps=steps, batch_size=128)
        model.fit(train, warm_start=False, rng=np.random.default_rng(1))
        return model.sample(500, np.random.default_rng(2))

    assert_training_reaches_the_modes(fit_and_sample)


TINY_RUN = {"name": "edm", "params": {"width": 16, "depth": 1, "sampling_steps": 4}}


@needs_edm
def test_a_resumed_run_equals_an_uninterrupted_one(registry, tmp_path):
    assert_resume_equals_uninterrupted(registry, tmp_path, TINY_RUN, "diffusion", ["w1", "variance-ratio"])


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


def test_without_the_library_the_family_is_unavailable_and_a_grid_fails_before_running(registry, monkeypatch):
    real = importlib.util.find_spec
    hidden = "denoising_diffusion_pytorch"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == hidden else real(name, *a))
    entry = registry.get("model", "edm")
    assert entry.unavailable_reason() == 'needs denoising_diffusion_pytorch: pip install "retrainbench[diffusion]"'
    with pytest.raises(GridError) as caught:
        parse_grid(resume_grid("edm", TINY_RUN, 1, ["w1"]), registry, where="g.toml")
    assert str(caught.value) == (
        "g.toml: models[0].name: model 'edm' is unavailable: "
        'needs denoising_diffusion_pytorch: pip install "retrainbench[diffusion]"'
    )
