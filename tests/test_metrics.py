"""Sample metrics against closed forms and independent implementations (prdc, scipy, POT, direct formulas).

Every random input has a fixed seed. Statistical comparisons use |estimate - truth| < 4 standard
errors (a false failure about once in 16,000 runs); deterministic ones use tolerances of floating
point arithmetic, stated where they appear.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from conftest import grid_doc
from scipy import linalg, stats

from benchmark import DataSplits, Evaluation, Measured, Metric, RunContext
from benchmark.api.registry import Registry
from benchmark.run.features import FeatureSpace
from benchmark.run.seeding import stream
from benchmark.run.spec import parse_grid
from plugins.datasets.toy import EightGaussians, GaussianData
from plugins.families.analytic import GaussianModel
from plugins.metrics import maths
from plugins.metrics.distances import (
    energy_distance,
    exact_wasserstein,
    median_bandwidth,
    rbf_mmd2,
    sliced_wasserstein,
)
from plugins.metrics.manifold import knn_radii, prdc
from plugins.metrics.maths import digest

Z = 4.0  # standard errors allowed in statistical comparisons: two-sided false-failure rate 6.3e-5


def make_evaluation(
    registry: Registry,
    samples: np.ndarray,
    test: np.ndarray,
    *,
    dataset: Any = None,
    model: Any = None,
    seed: int = 0,
) -> Evaluation:
    """An Evaluation as the loop builds it, with a feature space over ``test`` (used as train and test split)."""
    context = RunContext(seed=seed, device="cpu")
    kind = "image" if test.ndim == 4 else "vector"
    data = DataSplits(train=test, test=test, pool=test[:0], kind=kind)
    space = FeatureSpace(registry, data, {"test": list(map(str, digest(test))), "seed": seed}, context, None)

    return Evaluation(samples, test, test, model, dataset, stream(seed, "metric"), context, space.lookup(samples, 0))


def measure(registry: Registry, name: str, evaluation: Evaluation, params: Mapping[str, Any] | None = None) -> Measured:
    result = registry.component(Metric, name)(params).compute(evaluation)
    return result if isinstance(result, Measured) else Measured(float(result))


def true_model(dataset) -> Any:
    """A model whose density is exactly the dataset's."""

    class TrueDensity:
        def log_prob(self, x: np.ndarray) -> np.ndarray:
            return dataset.log_density(x)

    return TrueDensity()


def gaussian_model(mean, cov) -> GaussianModel:
    model = GaussianModel(len(mean), 0, None)
    model.load_state_dict({"mean": np.asarray(mean, float), "cov": np.asarray(cov, float)})
    return model


# ---------------------------------------------------------------- Wasserstein


def test_w2_between_gaussians_matches_the_closed_form(registry):
    """x ~ N(m1, S1) and y = T(x) with T the Gaussian optimal map, so y ~ N(m2, S2).

    T is the gradient of a convex function, so pairing x_i with T(x_i) is an optimal plan between
    the two empirical measures (cyclical monotonicity): the exact W2^2 equals mean |T(x_i) - x_i|^2
    up to the solver's precision. That mean is an unbiased estimate of the closed form
    |m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) with standard error std / sqrt(n).
    """
    m1, m2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    s1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    s2 = np.array([[2.0, -0.4], [-0.4, 0.8]])
    root1 = linalg.sqrtm(s1).real
    inv_root1 = np.linalg.inv(root1)
    # T(x) = m2 + A (x - m1), A symmetric positive definite
    a = inv_root1 @ linalg.sqrtm(root1 @ s2 @ root1).real @ inv_root1
    closed_form = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(root1 @ s2 @ root1).real)

    n = 800
    x = stream(1, "w2").multivariate_normal(m1, s1, size=n)
    y = m2 + (x - m1) @ a.T
    result = measure(registry, "w2", make_evaluation(registry, y, x))
    assert result.detail == "exact"
    moved = np.sum((y - x) ** 2, axis=1)
    assert result.value**2 == pytest.approx(moved.mean(), rel=1e-9)  # the known optimal plan's cost
    se = moved.std(ddof=1) / math.sqrt(n)
    assert abs(result.value**2 - closed_form) < Z * se


def test_w1_in_one_dimension_matches_scipy(registry):
    rng = stream(2, "w1")
    x, y = rng.normal(0, 1, size=(3000, 1)), rng.gamma(2.0, 1.0, size=(2500, 1))
    result = measure(registry, "w1", make_evaluation(registry, x, y))
    assert result.detail == "exact (1-D)"
    assert result.value == pytest.approx(stats.wasserstein_distance(x[:, 0], y[:, 0]), rel=1e-10)


def test_w1_exact_matches_an_assignment_solver(registry):
    """With equal sizes and uniform weights, optimal transport is an assignment problem (Birkhoff)."""
    from scipy.optimize import linear_sum_assignment

    rng = stream(3, "w1")
    x, y = rng.normal(size=(300, 3)), rng.normal(0.5, 1.2, size=(300, 3))
    cost = np.linalg.norm(x[:, None] - y[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    result = measure(registry, "w1", make_evaluation(registry, x, y))
    assert result.detail == "exact"
    assert result.value == pytest.approx(cost[rows, cols].mean(), rel=1e-9)


@pytest.mark.parametrize("sizes", [(400, 400), (400, 310)])
@pytest.mark.parametrize("p", [1, 2])
def test_sliced_wasserstein_matches_pot_with_the_same_directions(sizes, p):
    import ot

    rng = stream(4, "sliced")
    x, y = rng.normal(size=(sizes[0], 3)), rng.normal(1.0, 0.5, size=(sizes[1], 3))
    directions = rng.normal(size=(3, 50))
    directions /= np.linalg.norm(directions, axis=0)
    expected = ot.sliced_wasserstein_distance(x, y, projections=directions, p=p)
    assert sliced_wasserstein(x, y, p, directions) == pytest.approx(float(expected), rel=1e-10)


@pytest.mark.parametrize("name, p", [("w1", 1), ("w2", 2)])
def test_w_p_beyond_max_exact_is_exact_on_a_random_subsample_from_the_metric_stream_and_says_so(registry, name, p):
    """Samples first, then test points, each larger side drawn without replacement from evaluation.rng."""
    rng = stream(5, "w2")
    x, y = rng.normal(size=(130, 2)), rng.normal(0.5, 1.0, size=(90, 2))
    evaluation = make_evaluation(registry, x, y, seed=5)
    result = measure(registry, name, evaluation, {"max_exact": 100})
    assert result.detail == "exact on a random subsample: 100 of 130 samples and all 90 test points"
    draw = stream(5, "metric")  # the stream make_evaluation hands the metric
    subsample = x[draw.choice(130, 100, replace=False)]
    assert result.value == exact_wasserstein(subsample, y, p).value  # the same computation on the same points
    assert measure(registry, name, evaluation, {"max_exact": 130}).detail == "exact"


@pytest.mark.parametrize("name, p", [("sliced-w1", 1), ("sliced-w2", 2)])
def test_sliced_metrics_project_on_directions_from_the_metric_stream(registry, name, p):
    rng = stream(12, "sliced")
    x, y = rng.normal(size=(150, 3)), rng.normal(1.0, 0.5, size=(120, 3))
    result = measure(registry, name, make_evaluation(registry, x, y, seed=12), {"projections": 40})
    directions = stream(12, "metric").standard_normal((3, 40))
    directions /= np.linalg.norm(directions, axis=0)
    assert result.value == pytest.approx(sliced_wasserstein(x, y, p, directions), rel=1e-12)
    assert result.detail == "40 random projections"


# ---------------------------------------------------------------- precision, recall, density, coverage


@pytest.mark.parametrize("dim", [3, 40])  # distances summed per coordinate / through a matrix product
@pytest.mark.parametrize("k", [1, 5])
def test_prdc_equals_the_prdc_package(registry, k, dim, monkeypatch, capsys):
    from prdc import compute_prdc

    monkeypatch.setattr(maths, "WORKING_MEMORY_MB", 1)  # several row batches per matrix
    rng = stream(6, "prdc")
    real = rng.normal(size=(700, dim))
    fake = 0.8 * rng.normal(size=(650, dim)) + 0.3
    expected = compute_prdc(real, fake, nearest_k=k)
    capsys.readouterr()  # prdc prints the sizes
    evaluation = make_evaluation(registry, fake, real)
    for name in ("precision", "recall", "density", "coverage"):
        assert measure(registry, name, evaluation, {"k": k}).value == pytest.approx(expected[name], abs=1e-12), name


def test_knn_radii_refuses_too_few_points():
    with pytest.raises(ValueError, match="k = 5 nearest neighbours needs at least 6 points, got 4"):
        knn_radii(np.zeros((4, 2)), 5)


def test_prdc_memo_does_not_mix_up_generations():
    rng = stream(7, "memo")
    real = rng.normal(size=(200, 2))
    first, second = rng.normal(size=(200, 2)), rng.normal(1.0, 1.0, size=(200, 2))
    a, b = prdc(real, first, 5), prdc(real, second, 5)
    maths.forget()
    assert prdc(real, first, 5) == a and prdc(real, second, 5) == b
    assert a != b


# ---------------------------------------------------------------- MMD, energy, diversity


def direct_mmd2(x: np.ndarray, y: np.ndarray, h: float) -> float:
    def k(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * h * h))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_equals_the_direct_formula(registry):
    rng = stream(8, "mmd")
    x, y = rng.normal(size=(40, 3)), rng.normal(0.4, 1.0, size=(30, 3))
    evaluation = make_evaluation(registry, x, y)
    fixed = measure(registry, "mmd", evaluation, {"bandwidth": 0.7})
    assert fixed.value == pytest.approx(direct_mmd2(x, y, 0.7), rel=1e-10)
    pooled = np.concatenate([x, y])
    median = float(np.median([np.linalg.norm(a - b) for i, a in enumerate(pooled) for b in pooled[i + 1 :]]))
    assert median_bandwidth(x, y) == pytest.approx(median, rel=1e-12)
    result = measure(registry, "mmd", evaluation)
    assert result.value == pytest.approx(direct_mmd2(x, y, median), rel=1e-10)
    assert "median heuristic" in result.detail


def test_energy_distance_matches_scipy_in_one_dimension_and_the_direct_formula_in_three(registry):
    rng = stream(9, "energy")
    x, y = rng.normal(size=(500, 1)), rng.exponential(size=(400, 1))
    assert measure(registry, "energy", make_evaluation(registry, x, y)).value == pytest.approx(
        stats.energy_distance(x[:, 0], y[:, 0]), rel=1e-10
    )
    x, y = rng.normal(size=(50, 3)), rng.normal(0.5, 1.0, size=(40, 3))

    def mean_distance(a, b):
        return np.mean([np.linalg.norm(p - q) for p in a for q in b])

    direct = math.sqrt(2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y))
    assert energy_distance(x, y) == pytest.approx(direct, rel=1e-10)


def test_diversity_metrics(registry):
    rng = stream(10, "diversity")
    x = rng.normal(size=(60, 3)) * [1.0, 2.0, 0.5]
    evaluation = make_evaluation(registry, x, x)
    direct = np.mean([np.linalg.norm(a - b) for i, a in enumerate(x) for j, b in enumerate(x) if i != j])
    assert measure(registry, "pairwise-distance", evaluation).value == pytest.approx(direct, rel=1e-10)
    logdet = np.log(np.linalg.det(np.cov(x, rowvar=False)))
    assert measure(registry, "logdet", evaluation).value == pytest.approx(logdet, rel=1e-10)
    collapsed = np.repeat(x[:1], 60, axis=0)
    result = measure(registry, "logdet", make_evaluation(registry, collapsed, x))
    assert result.value == -math.inf and "singular" in result.detail


# ---------------------------------------------------------------- modes


def test_mode_coverage_and_high_quality_count_what_they_should(registry):
    dataset = EightGaussians()
    rng = stream(11, "modes")
    test = dataset.draw(800, rng)
    centres = dataset.modes()
    near = centres[rng.integers(0, 3, size=300)] + 0.05 * rng.normal(size=(300, 2))  # three modes only
    far = np.zeros((100, 2))  # the centre of the circle: 2 away from every mode
    evaluation = make_evaluation(registry, np.concatenate([near, far]), test, dataset=dataset)
    assert measure(registry, "high-quality", evaluation).value == 0.75
    coverage = measure(registry, "mode-coverage", evaluation)
    assert coverage.value == 3 / 8 and coverage.detail.startswith("3 of 8 modes")
    assert measure(registry, "high-quality", evaluation, {"radius": 2.5}).value == 1.0


def test_mode_metrics_refuse_datasets_without_modes_and_the_grid_skips_them(registry):
    moons = registry.get("dataset", "moons").component()
    x = moons.draw(50, stream(0, "moons"))
    with pytest.raises(ValueError, match="metric 'mode-coverage' needs a dataset with modes; 'moons' has none"):
        measure(registry, "mode-coverage", make_evaluation(registry, x, x, dataset=moons))
    grid = grid_doc(
        name="modes",
        generations=0,
        datasets=[{"name": "moons"}, {"name": "eight-gaussians"}],
        metrics=[{"name": "mode-coverage"}, {"name": "w2"}],
    )
    spec = parse_grid(grid, registry)
    metrics = {run.dataset.name: [m.name for m in run.metrics] for run in spec.runs}
    assert metrics == {"moons": ["w2"], "eight-gaussians": ["mode-coverage", "w2"]}
    assert any("mode-coverage needs mixture modes, which moons does not have" in s for s in spec.skipped)


# ---------------------------------------------------------------- distances to the true density


def test_tv_and_kl_on_a_one_dimensional_grid_match_closed_forms(registry):
    """N(0, 1) against the model N(0.6, 1): TV = 2 Phi(0.3) - 1 and KL = 0.6^2 / 2.

    The midpoint rule's error on 16384 cells of width ~6e-4 is of order width^2 ~ 4e-7 (for |p - q|,
    whose kink costs one cell's width^2 too), and the box (the data widened by 25% a side, beyond
    +-4.5) leaves out mass below 1e-5: 1e-5 bounds both.
    """
    dataset = GaussianData()
    test = dataset.draw(2000, stream(12, "tv"))
    model = gaussian_model([0.6], [[1.0]])
    evaluation = make_evaluation(registry, model.sample(2000, stream(13, "tv")), test, dataset=dataset, model=model)
    tv = measure(registry, "tv", evaluation)
    assert tv.detail.startswith("grid 16384 on")
    assert tv.value == pytest.approx(2 * stats.norm.cdf(0.3) - 1, abs=1e-5)
    assert measure(registry, "kl", evaluation).value == pytest.approx(0.18, abs=1e-5)


def test_kl_on_a_two_dimensional_grid_matches_the_closed_form(registry):
    """KL(N(0, I) || N(mu, S)) = (tr(S^-1) + mu' S^-1 mu - 2 + ln det S) / 2. With 512 x 512 cells of width
    h ~ 0.02, the midpoint rule errs by about h^2 / 24 times the integral of |Laplacian f| (~1e-5 here);
    the box leaves out mass below 1e-5: 1e-4 bounds both."""
    dataset = GaussianData({"dim": 2})
    mu, cov = np.array([0.5, -0.3]), np.array([[1.5, 0.2], [0.2, 0.7]])
    model = gaussian_model(mu, cov)
    test = dataset.draw(2000, stream(14, "kl"))
    evaluation = make_evaluation(registry, model.sample(2000, stream(15, "kl")), test, dataset=dataset, model=model)
    inv = np.linalg.inv(cov)
    closed = 0.5 * (np.trace(inv) + mu @ inv @ mu - 2 + np.log(np.linalg.det(cov)))
    result = measure(registry, "kl", evaluation, {"grid_points": 512**2})
    assert result.detail.startswith("grid 512x512 on")
    assert result.value == pytest.approx(closed, abs=1e-4)


def test_tv_and_kl_above_two_dimensions_are_monte_carlo_estimates_within_their_standard_error(registry):
    """N(0, I_3) against N(0.8 e1, I_3): TV = 2 Phi(0.4) - 1, KL = 0.32; each estimate reports its SE."""
    dataset = GaussianData({"dim": 3})
    model = gaussian_model([0.8, 0.0, 0.0], np.eye(3))
    test = dataset.draw(4000, stream(16, "mc"))
    evaluation = make_evaluation(registry, model.sample(100, stream(17, "mc")), test, dataset=dataset, model=model)
    for name, truth in (("tv", 2 * stats.norm.cdf(0.4) - 1), ("kl", 0.32)):
        result = measure(registry, name, evaluation)
        assert result.detail.startswith("Monte Carlo over 4000 real test points, standard error ")
        se = float(result.detail.rsplit(" ", 1)[1])
        assert abs(result.value - truth) < Z * se, name


# ---------------------------------------------------------------- every first-party metric: optimum and direction


def first_party_metrics(registry: Registry) -> list[str]:
    """Metrics registered by the repo's own plugins (entry points into the ``plugins`` package)."""
    ours = {ep.name for ep in importlib.metadata.entry_points(group="retrainbench") if ep.value.startswith("plugins.")}
    return sorted(name for name, entry in registry.entries["metric"].items() if entry.plugin in ours)


#: Feature metrics run on vectors with the "raw" extractor (features = the points themselves).
FEATURE_PARAMS = {"extractor": "raw"}


def test_every_first_party_metric_is_at_its_optimum_on_identical_sets_and_moves_the_declared_way(registry):
    # the metrics of points; those of token sequences have their own checks in tests/test_text.py
    names = [n for n in first_party_metrics(registry) if "tokens" not in registry.get("metric", n).component.needs]
    assert {"precision", "w1", "w2", "mmd", "tv", "kl", "mode-coverage", "fid", "kid", "recall"} <= set(names)
    dataset = EightGaussians()
    test = dataset.draw(400, stream(18, "optimum"))
    right = true_model(dataset)
    # Worse in every respect: two of the eight modes, shrunk, pushed off them; and a model of one broad Gaussian.
    centres = dataset.modes()
    rng = stream(19, "worse")
    worse = centres[rng.integers(0, 2, size=400)] * 1.5 + 0.05 * rng.normal(size=(400, 2))
    wrong = gaussian_model([0.0, 0.0], 4 * np.eye(2))
    checked = []
    for name in names:
        entry = registry.get("metric", name)
        metric = entry.component
        params = FEATURE_PARAMS if "features" in metric.needs else None
        at = measure(registry, name, make_evaluation(registry, test, test, dataset=dataset, model=right), params).value
        worse_evaluation = make_evaluation(registry, worse, test, dataset=dataset, model=wrong)
        off = measure(registry, name, worse_evaluation, params).value
        if metric.optimum is not None:
            if name in ("mmd", "kid"):
                # Unbiased MMD^2 leaves the diagonal k(a, a) out of the within-set means only, so on a set and
                # itself it is 2 (S - n T) / (n^2 (n - 1)) with S the sum of all n^2 kernel values and T their
                # diagonal's sum; for a positive semi-definite kernel 0 <= S <= n T, which puts it in
                # [-2 max k(a, a) / (n - 1), 0].
                assert -2 * max_kernel_diagonal(name, test) / (len(test) - 1) <= at <= 0, name
            else:
                assert at == pytest.approx(metric.optimum, abs=1e-9), name
        if metric.higher_is_better is True:
            assert off < at, name
        elif metric.higher_is_better is False:
            assert off > at, name
        else:
            assert metric.higher_is_better is None
            if metric.optimum is not None:
                assert abs(off - metric.optimum) > abs(at - metric.optimum), name
        checked.append(name)
    assert checked == names


def max_kernel_diagonal(name: str, x: np.ndarray) -> float:
    """Largest k(a, a): 1 for the RBF kernel of mmd, (|a|^2 / d + 1)^3 for KID's cubic kernel."""
    if name == "mmd":
        return 1.0
    return float(np.max((np.sum(x**2, axis=1) / x.shape[1] + 1) ** 3))


def test_mmd_on_identical_sets_is_the_known_small_negative_value():
    """With S the sum of k over all n^2 pairs (and k(a, a) = 1), MMD_u^2(x, x) = 2 (S - n^2) / (n^2 (n - 1))."""
    x = stream(20, "mmd").normal(size=(50, 2))
    h = 0.9
    s = np.sum(np.exp(-np.sum((x[:, None] - x[None]) ** 2, axis=2) / (2 * h * h)))
    assert rbf_mmd2(x, x, h) == pytest.approx(2 * (s - 50**2) / (50**2 * 49), rel=1e-10)
