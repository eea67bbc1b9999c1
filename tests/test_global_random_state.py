"""The loop refuses plugins that draw from numpy's or torch's global random state.

Such a plugin gives different numbers on two identical runs, each exiting 0: the loop compares the
global states around every plugin call and fails the run naming the component and the call.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import grid_doc

from benchmark import Evaluation, Param, RunContext, hookimpl
from benchmark.api.components import DataSplits, Metric
from benchmark.api.plugins import build_registry
from benchmark.errors import ContractViolation
from benchmark.run.loop import generations
from benchmark.run.spec import parse_grid
from benchmark.torch_support.devices import seed_torch
from plugins.families.analytic import GaussianFamily, GaussianModel


class GlobalDrawingModel(GaussianModel):
    draw_at = 0
    library = "numpy"
    fits = 0

    def fit(self, x, *, warm_start, rng):
        if self.fits == self.draw_at:
            if self.library in ("torch", "seeded-torch"):
                import torch

                if self.library == "seeded-torch":
                    seed_torch(rng)
                torch.randn(3)
            else:
                np.random.normal(size=3)
        self.fits += 1
        return super().fit(x, warm_start=warm_start, rng=rng)


class GlobalDrawingFamily(GaussianFamily):
    """A Gaussian whose fit draws from a global random state at generation ``at`` (tests only)."""

    name = "global-drawing"
    parameters = {
        "at": Param(2, int, "the generation", low=0),
        "library": Param("numpy", str, "whose global state", choices=("numpy", "torch", "seeded-torch")),
    }

    def create(self, data: DataSplits, context: RunContext) -> GlobalDrawingModel:
        model = GlobalDrawingModel(data.sample_shape[0], 0, None)
        model.draw_at, model.library = self.params["at"], self.params["library"]
        return model


class GlobalNoise(Metric):
    """Adds noise from numpy's global random state to its value (tests only)."""

    name = "global-noise"

    def compute(self, evaluation: Evaluation) -> float:
        return float(np.random.random())


class RestoresGlobalState(Metric):
    """Draws from numpy's global state but puts it back as it found it: harmless (tests only)."""

    name = "restores-global-state"

    def compute(self, evaluation: Evaluation) -> float:
        state = np.random.get_state()
        value = float(np.random.normal())
        np.random.set_state(state)
        return value * 0.0


class GlobalLikelihoodModel(GaussianModel):
    def log_prob(self, x):
        return super().log_prob(x) + 0.0 * np.random.random()


class GlobalLikelihoodFamily(GaussianFamily):
    """A Gaussian whose log_prob draws from numpy's global random state (tests only)."""

    name = "global-likelihood"

    def create(self, data: DataSplits, context: RunContext) -> GlobalLikelihoodModel:
        return GlobalLikelihoodModel(data.sample_shape[0], 0, None)


@hookimpl
def register_model_families(register):
    register(GlobalDrawingFamily)
    register(GlobalLikelihoodFamily)


@hookimpl
def register_metrics(register):
    register(GlobalNoise)
    register(RestoresGlobalState)


@pytest.fixture(scope="module")
def registry():
    return build_registry([sys.modules[__name__]], autoload=True)


def run_of(registry, **overrides):
    doc = grid_doc(generations=3, n_real=20, n_eval=7, datasets=[{"name": "gaussian", "params": {"dim": 2}}])
    (run,) = parse_grid({**doc, **overrides}, registry).runs
    return run


def failure(run, registry) -> tuple[list[int], str]:
    """The generations yielded before the run failed, and its reason."""
    yielded = []
    with pytest.raises(ContractViolation) as raised:
        for result in generations(run, registry):
            yielded.append(result.generation)
    return yielded, str(raised.value)


def test_a_model_drawing_from_numpys_global_state_fails_its_run_at_that_call(registry):
    run = run_of(registry, models=[{"name": "global-drawing", "params": {"at": 2}}])
    yielded, reason = failure(run, registry)
    assert yielded == [0, 1]
    assert "model 'global-drawing[at=2]' fit() at generation 2" in reason
    assert "numpy's global random state" in reason and "rng" in reason


def test_a_metric_drawing_from_numpys_global_state_fails_its_run(registry):
    run = run_of(registry, metrics=[{"name": "variance"}, {"name": "global-noise"}])
    yielded, reason = failure(run, registry)
    assert yielded == []
    assert "metric 'global-noise' compute() at generation 0" in reason and "numpy's global random state" in reason


def test_a_model_drawing_from_torchs_global_state_fails_its_run(registry):
    pytest.importorskip("torch")
    run = run_of(registry, models=[{"name": "global-drawing", "params": {"at": 1, "library": "torch"}}])
    yielded, reason = failure(run, registry)
    assert yielded == [0]
    assert (
        "model 'global-drawing[at=1,library=torch]' fit() at generation 1" in reason
        and "torch's global random state" in reason
    )


def test_a_plugin_leaving_the_global_state_as_it_found_it_passes(registry):
    run = run_of(registry, metrics=[{"name": "restores-global-state"}])
    assert [result.generation for result in generations(run, registry)] == [0, 1, 2, 3]


def test_a_torch_model_seeding_torch_from_its_rng_passes(registry):
    """seed_torch makes torch's global state a function of the run's seed: the sanctioned way."""
    pytest.importorskip("torch")
    run = run_of(registry, models=[{"name": "global-drawing", "params": {"at": 1, "library": "seeded-torch"}}])
    assert [result.generation for result in generations(run, registry)] == [0, 1, 2, 3]


def test_a_models_log_prob_drawing_from_numpys_global_state_fails_when_a_policy_calls_it(registry):
    """PolicyStep.log_prob is a call into the model like any other: checked, and blamed on the model."""
    run = run_of(registry, models=[{"name": "global-likelihood"}], policies=[{"name": "curate"}])
    yielded, reason = failure(run, registry)
    assert yielded == [0]
    assert "model 'global-likelihood' log_prob(), called by policy 'curate', at generation 1" in reason
    assert "numpy's global random state" in reason
