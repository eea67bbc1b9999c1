"""What every torch model family promises, tested once for each: warm start continues network, Adam and EMA; a
checkpoint round trip, seeds and a resumed run reproduce samples exactly; ``device="auto"`` finds CUDA; without its
library a family is unavailable. A new torch family joins by adding one ``TorchFamily`` to ``FAMILIES``; what only
one family does (a scaling, a sampler's bounds) stays in its own test file."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from conftest import assert_resume_equals_uninterrupted, assert_training_reaches_the_modes, resume_grid

from benchmark import DataSplits, Model, ModelFamily, RunContext, checkpoint
from benchmark.errors import GridError
from benchmark.run.global_random import untouched_global_random_state
from benchmark.run.spec import parse_grid
from plugins.datasets.toy import EightGaussians
from plugins.families.cfm import CFMFamily
from plugins.families.diffusion import DDPMFamily
from plugins.families.edm import EDMFamily
from plugins.families.flows import FlowFamily

CONTEXT = RunContext(seed=0, device="auto", threads=1)
#: Adam moves a coordinate by at most lr * (1 - b1) / sqrt(1 - b2) * sqrt(1 / (1 - b1^2 / b2)) = 7.27 lr per step
#: (Cauchy-Schwarz on its moment sums, b1 = 0.9, b2 = 0.999), divided by the bias correction 1 - b1^t >= 0.95 for
#: t >= 30 steps: one continued step moves no parameter by more than 7.7 lr.
ADAM_STEP_BOUND = 7.7


@dataclass(frozen=True)
class TorchFamily:
    """One torch family as these tests use it."""

    family: type[ModelFamily]
    #: Small, fast parameters (``steps`` at least 30: ``ADAM_STEP_BOUND`` needs it).
    tiny: Mapping[str, Any]
    #: The model attribute holding the trained network, also its key in the checkpoint.
    network: str
    #: A library it needs, and the reason it gives for being unavailable without it.
    library: str
    unavailable: str
    #: Extra parameters for the images of ``images`` (a flow's dequantisation levels).
    image_params: Mapping[str, Any] = field(default_factory=dict)
    #: Extra parameters that make sampling draw fresh noise at each step (for the seed test).
    stochastic: Mapping[str, Any] = field(default_factory=dict)
    #: The parameters of a one-run grid (for the resume test).
    run_params: Mapping[str, Any] = field(default_factory=dict)
    #: Parameters for the eight-gaussians quality test (None: the family's own file tests its quality).
    quality: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def has_ema(self) -> bool:
        return "ema" in self.family.parameters

    @property
    def has_log_prob(self) -> bool:
        return "log_prob" in self.family.provides

    def model(self, data: np.ndarray, kind: str = "vector", **params: Any) -> Model:
        """A model of ``data`` with the tiny parameters and ``params``."""
        return self.family({**self.tiny, **params}).create(splits(data, kind), CONTEXT)

    def parameters(self, model: Model) -> np.ndarray:
        import torch

        network = getattr(model, self.network)
        return torch.cat([p.detach().flatten() for p in network.parameters()]).double().numpy()


DIFFUSION = 'needs denoising_diffusion_pytorch: pip install "retrainbench[diffusion]"'
FAMILIES = [
    TorchFamily(
        DDPMFamily,
        {"width": 16, "depth": 1, "timesteps": 50, "sampling_timesteps": 5, "steps": 30, "batch_size": 32},
        network="diffusion",
        library="denoising_diffusion_pytorch",
        unavailable=DIFFUSION,
        run_params={"width": 16, "depth": 1, "timesteps": 50, "sampling_timesteps": 5},
    ),
    TorchFamily(
        EDMFamily,
        {"width": 32, "depth": 1, "sampling_steps": 4, "steps": 30, "batch_size": 32},
        network="diffusion",
        library="denoising_diffusion_pytorch",
        unavailable=DIFFUSION,
        stochastic={"churn": 40.0},
        run_params={"width": 16, "depth": 1, "sampling_steps": 4},
        quality={"width": 64, "depth": 2, "sampling_steps": 16, "batch_size": 128},
    ),
    TorchFamily(
        CFMFamily,
        {"width": 32, "depth": 1, "sampling_steps": 4, "steps": 30, "batch_size": 32},
        network="net",
        library="torchcfm",
        unavailable='needs torchcfm: pip install "retrainbench[cfm]" && pip install --no-deps torchcfm==1.0.7',
        run_params={"width": 16, "depth": 1, "sampling_steps": 4},
        quality={"width": 64, "depth": 2, "sampling_steps": 10, "batch_size": 128},
    ),
    TorchFamily(
        FlowFamily,
        {"depth": 2, "hidden": 16, "steps": 30},
        network="flow",
        library="normflows",
        unavailable='needs normflows: pip install "retrainbench[flows]"',
        image_params={"levels": 17},
        run_params={"depth": 2, "hidden": 16},
    ),
]


def torch_family(name: str) -> TorchFamily:
    """The entry of ``FAMILIES`` for the family called ``name`` (for the tests of what only it does)."""
    (found,) = [f for f in FAMILIES if f.name == name]
    return found


def each(families: list[TorchFamily] = FAMILIES) -> pytest.MarkDecorator:
    """Parametrize a test's ``family`` over ``families`` (ids: family names), skipping those not installed."""
    return pytest.mark.parametrize(
        "family",
        [
            pytest.param(
                f,
                id=f.name,
                marks=pytest.mark.skipif(bool(f.family.missing_requirements()), reason=f.unavailable),
            )
            for f in families
        ],
    )


def splits(train: np.ndarray, kind: str) -> DataSplits:
    """``train`` as both training and test set."""
    return DataSplits(train=train, test=train, pool=train[:0], kind=kind)


def vectors(n: int, seed: int) -> np.ndarray:
    """2-D points far from the origin and of unequal spread: scaling mistakes show."""
    return np.array([50.0, -3.0]) + np.array([4.0, 0.5]) * np.random.default_rng(seed).standard_normal((n, 2))


def images(n: int, seed: int, side: int = 4) -> np.ndarray:
    """Grey-level images on 17 levels in [0, 1]."""
    return np.random.default_rng(seed).integers(0, 17, size=(n, 1, side, side)) / 16.0


@each()
def test_images_fit_and_sample_inside_the_unit_interval(family):
    x = images(200, 0)
    model = family.model(x, kind="image", **family.image_params)
    assert math.isfinite(model.fit(x, warm_start=False, rng=np.random.default_rng(1))["loss"])
    samples = model.sample(50, np.random.default_rng(2))
    assert samples.shape == (50, 1, 4, 4) and samples.dtype == np.float64
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    if family.has_log_prob:
        assert np.all(np.isfinite(model.log_prob(x[:20])))


@each()
def test_warm_start_continues_network_adam_and_ema(family, tmp_path):
    first, second = vectors(300, 0), vectors(300, 1)
    steps = family.tiny["steps"]
    model = family.model(first)
    model.fit(first, warm_start=False, rng=np.random.default_rng(1))
    before = family.parameters(model)
    saved = checkpoint.load(checkpoint.save(model.state_dict(), tmp_path, "model").parent, "model")
    model.fit(second, warm_start=True, rng=np.random.default_rng(2))
    warm = family.parameters(model)
    if family.has_ema:
        assert int(saved["ema"]["step"]) == steps
        assert int(model.ema.step) == 2 * steps

    fresh = family.model(second)
    fresh.fit(second, warm_start=False, rng=np.random.default_rng(2))
    assert not np.allclose(warm, family.parameters(fresh))

    # a restored copy continues exactly as the original did: network, Adam state, EMA and scaling are in the state
    restored = family.model(first)
    restored.load_state_dict(saved)
    restored.fit(second, warm_start=True, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(family.parameters(restored), warm)
    np.testing.assert_array_equal(
        restored.sample(50, np.random.default_rng(4)), model.sample(50, np.random.default_rng(4))
    )

    # one continued Adam step stays within the Adam bound of the previous parameters; a cold one re-initialises
    lr = family.family.parameters["lr"].default
    for warm_start in (True, False):
        one_step = family.model(first, steps=1)
        one_step.load_state_dict(saved)
        one_step.fit(second, warm_start=warm_start, rng=np.random.default_rng(3))
        moved = np.max(np.abs(family.parameters(one_step) - before))
        assert (moved <= ADAM_STEP_BOUND * lr) == warm_start, moved


@each()
@pytest.mark.parametrize("kind", ["vector", "image"])
def test_a_checkpoint_round_trip_gives_identical_samples(family, kind, tmp_path):
    x, params = (vectors(300, 0), {}) if kind == "vector" else (images(60, 0), family.image_params)
    model = family.model(x, kind=kind, **params)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    path = checkpoint.save(model.state_dict(), tmp_path, "model")
    assert path.name == "model.pt"
    restored = family.model(x, kind=kind, **params)
    restored.load_state_dict(checkpoint.load(tmp_path, "model"))
    np.testing.assert_array_equal(
        restored.sample(200, np.random.default_rng(5)), model.sample(200, np.random.default_rng(5))
    )
    if family.has_log_prob:
        np.testing.assert_array_equal(restored.log_prob(x), model.log_prob(x))


@each()
def test_the_same_seeds_give_the_same_samples_and_leave_global_random_state_alone(family):
    """Some libraries draw with numpy's or torch's global generator (torchcfm's OT sampler): a family must not."""
    x = vectors(200, 0)
    draws = []
    for _ in range(2):
        model = family.model(x, **family.stochastic)
        with untouched_global_random_state(family.name):
            model.fit(x, warm_start=False, rng=np.random.default_rng(1))
            draws.append(model.sample(100, np.random.default_rng(2)))
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(model.sample(100, np.random.default_rng(3)), draws[1])


@each([f for f in FAMILIES if f.has_ema])
def test_without_ema_samples_come_from_the_trained_weights(family):
    x = vectors(200, 0)
    model = family.model(x, ema=0.0)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert model.ema is None and "ema" not in model.state_dict()
    assert model.sample(10, np.random.default_rng(2)).shape == (10, 2)


@each()
def test_device_auto_resolves_to_cuda_when_present_else_the_cpu(family):
    import torch

    x = vectors(100, 0)
    model = family.model(x)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected
    assert {p.device.type for p in getattr(model, family.network).parameters()} == {expected}
    if family.has_ema:
        assert {p.device.type for p in model.ema.ema_model.parameters()} == {expected}


@each([f for f in FAMILIES if f.quality is not None])
def test_training_brings_samples_to_the_modes_of_eight_gaussians(family):
    train = EightGaussians().draw(1000, np.random.default_rng(0))

    def fit_and_sample(steps: int) -> np.ndarray:
        model = family.model(train, **{**family.quality, "steps": steps})
        model.fit(train, warm_start=False, rng=np.random.default_rng(1))
        return model.sample(500, np.random.default_rng(2))

    assert_training_reaches_the_modes(fit_and_sample)


def one_run(family: TorchFamily) -> dict[str, Any]:
    return {"name": family.name, "params": dict(family.run_params)}


@each()
def test_a_resumed_run_equals_an_uninterrupted_one(family, registry, tmp_path):
    metrics = ["w1", "variance-ratio", *(["nll"] if family.has_log_prob else [])]
    assert_resume_equals_uninterrupted(registry, tmp_path, one_run(family), family.network, metrics)


def hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``module`` look uninstalled to the requirement check (which uses importlib.util.find_spec)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


@pytest.mark.parametrize("family", [pytest.param(f, id=f.name) for f in FAMILIES])
def test_without_its_library_a_family_is_unavailable_and_a_grid_fails_before_running(family, registry, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == family.library else real(name, *a)
    )
    entry = registry.get("model", family.name)
    assert not entry.available
    assert entry.unavailable_reason() == family.unavailable
    with pytest.raises(GridError) as caught:
        parse_grid(resume_grid(family.name, one_run(family), 1, ["w1"]), registry, where="g.toml")
    assert str(caught.value) == f"g.toml: models[0].name: model '{family.name}' is unavailable: {family.unavailable}"
