"""Metrics where a numerical routine can fail or a shortcut can mislead: no value may look better than the truth.

Every metric here is checked on the case that broke it: costs that overflow, a solver that stops
short, a memoised grid asked for another box, a diversity metric that must be ranked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_metrics import gaussian_model, make_evaluation, measure

from benchmark.report.stats.directions import directions
from benchmark.run.seeding import stream
from plugins.datasets.toy import GaussianData
from plugins.metrics import maths
from plugins.metrics.distances import _pot

# ---------------------------------------------------------------- Wasserstein


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_wasserstein_is_infinite_not_zero_when_squared_costs_overflow(registry, name):
    """One coordinate at 1e155 in 3-D: squared distances overflow, yet W2 >= W1 >= 1e155 / 200 (one point in 200)."""
    rng = stream(30, "overflow")
    x, y = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    x[0, 1] = 1e155
    result = measure(registry, name, make_evaluation(registry, x, y))
    assert result.value == math.inf
    assert "overflow" in result.detail


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_wasserstein_refuses_a_transport_plan_the_solver_did_not_prove_optimal(registry, name, monkeypatch):
    """A solver that stops early (here: reports 'numItermax reached' with a cost of 0) must not give a value."""
    ot = _pot()

    def stopped_early(a, b, cost, **options):
        log = {"warning": "numItermax reached before optimality.", "result_code": 3}
        return (0.0, log) if options.get("log") else 0.0

    monkeypatch.setattr(ot, "emd2", stopped_early)
    rng = stream(31, "stopped")
    x, y = rng.normal(size=(50, 2)), rng.normal(1.0, 1.0, size=(50, 2))
    with pytest.raises(ArithmeticError, match="numItermax reached"):
        measure(registry, name, make_evaluation(registry, x, y))


# ---------------------------------------------------------------- grid of the density metrics


@pytest.mark.parametrize("name", ["tv", "kl"])
def test_density_grid_memo_keeps_boxes_apart(registry, name):
    """pad=0.5 then pad=1 in one generation: the second must see its own, wider box (not the memoised first).
    (pad widens the test set's extent, the box of a dataset that cannot give its own.)"""

    class Boxless(GaussianData):
        def density_box(self, outside: float) -> None:
            return None

    dataset = Boxless()
    model = gaussian_model([0.6], [[1.0]])
    test = dataset.draw(500, stream(32, "pad"))
    evaluation = make_evaluation(registry, model.sample(500, stream(33, "pad")), test, dataset=dataset, model=model)
    maths.forget()
    narrow = measure(registry, name, evaluation, {"pad": 0.5})
    wide = measure(registry, name, evaluation, {"pad": 1.0})
    maths.forget()
    alone = measure(registry, name, evaluation, {"pad": 1.0})
    assert (wide.value, wide.detail) == (alone.value, alone.detail)
    assert wide.value != narrow.value


# ---------------------------------------------------------------- directions


def test_pairwise_distance_is_ranked_as_diversity_higher_is_better(registry):
    """Collapse drives it to zero (its docstring): more spread is better, and the report ranks it so."""
    metric = registry.get("metric", "pairwise-distance").component
    assert metric.higher_is_better is True
    direction = directions(["pairwise-distance"], registry)["pairwise-distance"]
    badness = direction.badness(np.array([0.0, 1.0]))
    assert badness is not None and badness[0] > badness[1]
