"""What the retraining loop accepts from plugins: metric values, sample and training-set shapes, read-only data.

Each broken plugin below must fail its run with a reason that names it, before anything of the
offending generation is stored, and never as "diverged" (that is the model's numbers, not a bug).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from conftest import grid_doc

from benchmark import (
    DataSplits,
    Evaluation,
    Measured,
    Metric,
    Param,
    Policy,
    PolicyStep,
    RunContext,
    TrainingSet,
    hookimpl,
)
from benchmark.api.plugins import build_registry
from benchmark.errors import ContractViolation, Diverged
from benchmark.run.harness import run_grid
from benchmark.run.loop import generations
from benchmark.run.spec import parse_grid
from benchmark.run.store import RunStatus, Store
from plugins.families.analytic import GaussianFamily, GaussianModel

N_REAL, N_EVAL = 20, 7


class ValueAt(Metric):
    """Returns ``value`` at generation ``at`` and 1.0 before (tests only)."""

    name = "value-at"
    parameters = {
        "value": Param("nan", str, "what to return", choices=("nan", "inf", "-inf", "true")),
        "at": Param(1, int, "the generation", low=0),
    }

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.calls = 0

    def compute(self, evaluation: Evaluation) -> float | Measured:
        generation, self.calls = self.calls, self.calls + 1
        if generation < self.params["at"]:
            return 1.0
        return True if self.params["value"] == "true" else Measured(float(self.params["value"]), "broken")


class Misshapen(GaussianModel):
    fault = ""

    def sample(self, n, rng):
        x = super().sample(n, rng)
        if self.fault == "transposed":
            return x.T
        if self.fault == "one-short":
            return x[:-1]
        if self.fault == "flat":
            return x[:, 0]
        if self.fault == "integers":
            return np.rint(x).astype(np.int64)
        if self.fault == "short-synthetic" and n != N_EVAL:
            return x[:-1]
        return x

    def log_prob(self, x):
        values = super().log_prob(x)
        if self.fault == "nan-density":
            values[0] = np.nan  # as a numerically broken flow's density
        return values


class MisshapenFamily(GaussianFamily):
    """Gaussian whose samples break the Model contract as ``fault`` says (tests only)."""

    name = "misshapen"
    parameters = {
        "fault": Param(
            "transposed",
            str,
            "how",
            choices=("transposed", "one-short", "flat", "integers", "short-synthetic", "nan-density"),
        )
    }

    def create(self, data: DataSplits, context: RunContext) -> Misshapen:
        model = Misshapen(data.sample_shape[0], 0, None)
        model.fault = self.params["fault"]
        return model


class BadTrainingSet(Policy):
    """Returns a training set of the wrong shape as ``fault`` says (tests only)."""

    name = "bad-training-set"
    parameters = {"fault": Param("wide", str, "how", choices=("wide", "empty"))}

    def build(self, step: PolicyStep) -> TrainingSet:
        if self.params["fault"] == "empty":
            return TrainingSet(step.real[:0], {})
        return TrainingSet(np.column_stack([step.real, step.real]), {"real": len(step.real)})


class Scribbler(Policy):
    """Normalises the real data in place: every later generation would see other data (tests only)."""

    name = "scribbler"

    def build(self, step: PolicyStep) -> TrainingSet:
        step.real[:] -= step.real.mean(axis=0)
        return TrainingSet(step.real, {"real": len(step.real)})


class SortsTestSet(Metric):
    """Sorts the test set in place (tests only)."""

    name = "test-scribbler"

    def compute(self, evaluation: Evaluation) -> float:
        evaluation.test.sort(axis=0)
        return 0.0


class CreateScribbler(GaussianFamily):
    """Centres the training set in place when it creates a model (tests only)."""

    name = "create-scribbler"

    def create(self, data: DataSplits, context: RunContext) -> GaussianModel:
        data.train[:] -= data.train.mean(axis=0)
        return super().create(data, context)


@hookimpl
def register_model_families(register):
    register(MisshapenFamily)
    register(CreateScribbler)


@hookimpl
def register_policies(register):
    register(BadTrainingSet)
    register(Scribbler)


@hookimpl
def register_metrics(register):
    register(ValueAt)
    register(SortsTestSet)


@pytest.fixture(scope="module")
def registry():
    """The first-party plugins plus this module's broken ones."""
    return build_registry([sys.modules[__name__]], autoload=True)


def one_run(registry, **overrides):
    doc = grid_doc(generations=2, n_real=N_REAL, n_eval=N_EVAL, datasets=[{"name": "gaussian", "params": {"dim": 2}}])
    (run,) = parse_grid({**doc, **overrides}, registry).runs
    return run


def stored_until_failure(run, registry) -> tuple[list[int], BaseException]:
    """Generations the loop yielded before it raised, and what it raised."""
    yielded = []
    with pytest.raises(Exception) as raised:
        for result in generations(run, registry):
            yielded.append(result.generation)
    assert not isinstance(raised.value, Diverged), "a plugin's contract violation is a failure, not a divergence"
    return yielded, raised.value


# ---------------------------------------------------------------- metric values (item 8)


def test_a_nan_metric_fails_its_run_naming_the_metric_and_the_generation(registry, tmp_path):
    grid = parse_grid(
        grid_doc(
            generations=2,
            models=[{"name": "gaussian"}, {"name": "kde"}],
            metrics=[{"name": "variance"}, {"name": "value-at", "params": {"value": "nan", "at": 1}}],
        ),
        registry,
    )
    store = Store(tmp_path / "store")
    summary = run_grid(grid, store, registry.get("executor", "inline").component(), registry, progress=False)
    assert summary.counts == {RunStatus.FAILED: 2}  # the grid went on after the first run's failure
    for outcome in summary.failed:
        assert "value-at" in outcome.reason and "generation 1" in outcome.reason and "NaN" in outcome.reason
        assert store.finished_generations(outcome.run_id) == [0]


def test_a_boolean_metric_value_is_refused(registry):
    run = one_run(registry, metrics=[{"name": "value-at", "params": {"value": "true", "at": 0}}])
    yielded, error = stored_until_failure(run, registry)
    assert yielded == [] and "value-at" in str(error) and "bool" in str(error)


@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_an_infinite_metric_value_is_kept(registry, value):
    """A log-determinant of a singular covariance is -inf: infinity is a value, NaN is not."""
    run = one_run(registry, metrics=[{"name": "value-at", "params": {"value": value, "at": 1}}])
    records = [result.record for result in generations(run, registry)]
    assert records[1]["metrics"]["value-at[at=1,value=" + value + "]"]["value"] == float(value)
    assert math.isinf(records[2]["metrics"]["value-at[at=1,value=" + value + "]"]["value"])


# ---------------------------------------------------------------- shapes and dtypes (item 9)


@pytest.mark.parametrize(
    ("fault", "dim", "got"),
    [
        ("transposed", 2, "shape (2, 7)"),
        ("one-short", 2, "shape (6, 2)"),
        ("flat", 1, "shape (7,)"),
        ("integers", 2, "dtype int64"),
    ],
)
def test_misshapen_evaluation_samples_fail_generation_0_naming_the_model(registry, fault, dim, got):
    run = one_run(
        registry,
        datasets=[{"name": "gaussian", "params": {"dim": dim}}],
        models=[{"name": "misshapen", "params": {"fault": fault}}],
    )
    yielded, error = stored_until_failure(run, registry)
    message = str(error)
    assert yielded == [], "nothing of a generation with broken samples is stored"
    assert "misshapen" in message and "generation 0" in message and got in message
    assert f"(7, {dim})" in message  # what was expected: (n, *sample shape)


def test_a_nan_log_density_is_blamed_on_the_model_not_on_the_metric_that_asked(registry):
    run = one_run(
        registry, models=[{"name": "misshapen", "params": {"fault": "nan-density"}}], metrics=[{"name": "nll"}]
    )
    yielded, error = stored_until_failure(run, registry)
    message = str(error)
    assert yielded == [] and isinstance(error, ContractViolation)
    assert "model 'misshapen" in message and "called by metric 'nll'" in message and "1 NaN" in message


def test_misshapen_samples_drawn_by_a_policy_are_blamed_on_the_model_not_the_policy(registry):
    run = one_run(
        registry,
        models=[{"name": "misshapen", "params": {"fault": "short-synthetic"}}],
        policies=[{"name": "mix", "params": {"lambda": 1.0}}],
    )
    yielded, error = stored_until_failure(run, registry)
    message = str(error)
    assert yielded == [0]
    assert "misshapen" in message and "generation 1" in message and "(19, 2)" in message and "(20, 2)" in message


@pytest.mark.parametrize(("fault", "got"), [("wide", "(20, 4)"), ("empty", "(0, 2)")])
def test_a_misshapen_training_set_fails_naming_the_policy(registry, fault, got):
    run = one_run(registry, policies=[{"name": "bad-training-set", "params": {"fault": fault}}])
    yielded, error = stored_until_failure(run, registry)
    message = str(error)
    assert yielded == [0]
    assert "bad-training-set" in message and "generation 1" in message and got in message


# ---------------------------------------------------------------- read-only real data (item 10)


@pytest.mark.parametrize(
    ("overrides", "offender"),
    [
        ({"policies": [{"name": "scribbler"}]}, "build"),
        ({"metrics": [{"name": "test-scribbler"}]}, "compute"),
        ({"models": [{"name": "create-scribbler"}]}, "create"),
    ],
)
def test_a_write_into_the_real_data_fails_at_the_offending_line(registry, overrides, offender):
    run = one_run(registry, **overrides)
    with pytest.raises(ValueError, match="read-only") as raised:
        list(generations(run, registry))
    where = raised.traceback[-1]
    assert where.name == offender and str(where.path) == __file__
