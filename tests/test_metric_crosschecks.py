"""Metric values against independent implementations, on ordinary data and on the cases that break numerics.

Each metric is computed through the registry, as a run computes it, and compared with code that
shares nothing with ours: POT's exact solver on a cost matrix built by scipy, scipy's assignment
solver, scipy.stats in 1-D, closed forms, clean-fid's Fréchet distance and the prdc package. The
cases: Gaussian data, huge values (1e150), duplicates (a few points repeated many times), singular
sets (points on a plane, fewer points than dimensions) and heavy tails (Cauchy).

Exact algorithms are compared to rtol 1e-9 (many orders above float64 rounding, far below any real
difference); Monte Carlo estimates within Z = 4 standard errors estimated from their own draws
(a false failure about once in 16,000 runs), with fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import linalg, stats
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from test_metrics import make_evaluation, measure

from benchmark.run.seeding import stream

RTOL = 1e-9
Z = 4.0


def cases(d: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sample and test sets in ``d`` dimensions (d >= 3), one pair per kind of difficult data."""
    rng = stream(50, "cases", d)
    plane = rng.normal(size=(2, d))  # a 2-D subspace: every covariance singular
    grid = rng.integers(-2, 3, size=(12, d)).astype(float)  # 12 distinct points, repeated
    return {
        "gaussian": (rng.normal(size=(240, d)), rng.normal(0.5, 1.5, size=(200, d))),
        "huge": (1e150 * rng.normal(size=(120, d)), 1e150 * rng.normal(1.0, 1.0, size=(100, d))),
        "duplicates": (grid[rng.integers(0, 12, size=150)], grid[rng.integers(0, 6, size=130)] + 0.5),
        "plane": (rng.normal(size=(150, 2)) @ plane, rng.normal(1.0, 1.0, size=(110, 2)) @ plane),
        "fewer-than-d": (rng.normal(size=(d - 1, d)), rng.normal(2.0, 1.0, size=(d, d))),
        "cauchy": (rng.standard_cauchy(size=(200, d)), rng.standard_cauchy(size=(160, d)) + 1.0),
    }


CASES = list(cases(3))


# ---------------------------------------------------------------- exact Wasserstein: POT and scipy


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name, p", [("w1", 1), ("w2", 2)])
def test_exact_wasserstein_equals_pot_on_scipys_cost_matrix(registry, case, name, p):
    import ot

    x, y = cases(3)[case]
    result = measure(registry, name, make_evaluation(registry, x, y))
    cost = cdist(x, y, "euclidean" if p == 1 else "sqeuclidean")
    expected = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=10_000_000) ** (1 / p)
    assert result.detail == "exact"
    assert result.value == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy", "huge", "plane"])
@pytest.mark.parametrize("name, p", [("w1", 1), ("w2", 2)])
def test_exact_wasserstein_with_equal_sizes_equals_an_optimal_assignment(registry, case, name, p):
    """Equal sizes, uniform weights: an optimal plan is a permutation (Birkhoff), found by scipy's solver."""
    x, y = cases(3)[case]
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    cost = cdist(x, y) ** p
    rows, cols = linear_sum_assignment(cost)
    result = measure(registry, name, make_evaluation(registry, x, y))
    assert result.value == pytest.approx(cost[rows, cols].mean() ** (1 / p), rel=RTOL)


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy", "huge"])
def test_w1_in_one_dimension_equals_scipy_and_w2_equals_pot_on_the_full_cost(registry, case):
    import ot

    x, y = (z[:, :1] for z in cases(3)[case])
    evaluation = make_evaluation(registry, x, y)
    w1 = measure(registry, "w1", evaluation)
    assert w1.value == pytest.approx(stats.wasserstein_distance(x[:, 0], y[:, 0]), rel=RTOL)
    w2 = measure(registry, "w2", evaluation)
    squared = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cdist(x, y, "sqeuclidean"), numItermax=10_000_000)
    assert w2.value == pytest.approx(math.sqrt(squared), rel=RTOL)
    assert w1.detail == w2.detail == "exact (1-D)"


# ---------------------------------------------------------------- closed forms under a translation


@pytest.mark.parametrize("case", CASES)
def test_a_translated_copy_is_at_the_closed_form_distance(registry, case):
    """y = x + s: W1 = W2 = |s| (any coupling of a measure with itself has E[x - x'] = 0, so the cost
    of a coupling is |s|^2 + E|x - x'|^2, least for the identity; W1 >= |E x - E y| = |s|), the
    means are |s| apart and the Gaussian fits share their covariance, so Fréchet = |s|^2. This holds
    for singular and duplicated sets alike. Rounding: the Fréchet terms tr S + tr S - 2 tr S cancel
    to about 1e-12 (tr S), hence the absolute tolerance beside the relative one."""
    x = cases(3)[case][0]
    scale = np.max(np.abs(x))
    s = scale * np.array([0.3, -0.2, 0.1])
    evaluation = make_evaluation(registry, x + s, x)
    shift = float(np.linalg.norm(s))
    for name in ("w1", "w2", "mean-distance"):
        assert measure(registry, name, evaluation).value == pytest.approx(shift, rel=RTOL), name
    trace = float(np.trace(np.atleast_2d(np.cov(x, rowvar=False))))
    frechet = measure(registry, "frechet", evaluation).value
    assert frechet == pytest.approx(shift**2, rel=RTOL, abs=1e-12 * trace)


# ---------------------------------------------------------------- Fréchet distance: scipy closed form, clean-fid


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy"])
def test_frechet_equals_the_closed_form_of_the_gaussian_fits_by_scipy_sqrtm(registry, case):
    """|m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), with scipy's symmetric square roots."""
    x, y = cases(3)[case]
    m1, m2 = x.mean(axis=0), y.mean(axis=0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root1 = linalg.sqrtm(s1).real
    closed = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * linalg.sqrtm(root1 @ s2 @ root1).real)
    assert measure(registry, "frechet", make_evaluation(registry, x, y)).value == pytest.approx(closed, rel=RTOL)


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")  # clean-fid calling scipy
@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy"])
@pytest.mark.parametrize("d", [1, 3])
def test_fid_both_methods_equal_clean_fids_frechet_distance(registry, case, d):
    """On raw features: ours (factored) and method = "clean-fid" against cleanfid.fid.frechet_distance itself;
    in 1-D, where clean-fid cannot run (scipy returns a bare 1 x 1 root), against the closed form
    (m1 - m2)^2 + (s1 - s2)^2."""
    x, y = (z[:, :d] for z in cases(3)[case])
    evaluation = make_evaluation(registry, x, y)
    if d == 1:
        expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    else:
        from cleanfid.fid import frechet_distance

        expected = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    for method in ("factored", "clean-fid"):
        value = measure(registry, "fid", evaluation, {"extractor": "raw", "method": method}).value
        assert value == pytest.approx(expected, rel=RTOL), method


# ---------------------------------------------------------------- sliced Wasserstein: POT, statistically


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy", "plane"])
@pytest.mark.parametrize("name, p", [("sliced-w1", 1), ("sliced-w2", 2)])
def test_sliced_wasserstein_agrees_with_pots_within_monte_carlo_error(registry, case, name, p):
    """Two independent estimates of E_theta W_p^p(theta.x, theta.y), theta uniform on the sphere, with L
    directions each: their difference has standard error sqrt(2 / L) sd, sd that of W_p^p over
    directions, estimated from POT's per-direction values."""
    import ot

    x, y = cases(3)[case]
    directions = 2000
    result = measure(registry, name, make_evaluation(registry, x, y, seed=51), {"projections": directions})
    theirs, log = ot.sliced_wasserstein_distance(x, y, n_projections=directions, p=p, seed=52, log=True)
    se = math.sqrt(2 / directions) * float(np.std(log["projected_emds"], ddof=1))
    assert abs(result.value**p - float(theirs) ** p) < Z * se
    assert result.detail == f"{directions} random projections"


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy", "huge"])
@pytest.mark.parametrize("name, exact", [("sliced-w1", "w1"), ("sliced-w2", "w2")])
def test_sliced_wasserstein_in_one_dimension_is_the_exact_distance(registry, case, name, exact):
    """In 1-D every direction is +-1 and W_p is invariant under reflection: sliced = exact, whatever the draw."""
    x, y = (z[:, :1] for z in cases(3)[case])
    evaluation = make_evaluation(registry, x, y)
    expected = (
        stats.wasserstein_distance(x[:, 0], y[:, 0]) if exact == "w1" else measure(registry, exact, evaluation).value
    )
    assert measure(registry, name, evaluation, {"projections": 7}).value == pytest.approx(expected, rel=RTOL)


# ---------------------------------------------------------------- energy distance: scipy


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy", "huge"])
def test_energy_distance_in_one_dimension_equals_scipy(registry, case):
    x, y = (z[:, :1] for z in cases(3)[case])
    value = measure(registry, "energy", make_evaluation(registry, x, y)).value
    assert value == pytest.approx(stats.energy_distance(x[:, 0], y[:, 0]), rel=RTOL)


# ---------------------------------------------------------------- log-determinant: numpy on the covariance


@pytest.mark.parametrize("case", CASES)
def test_logdet_equals_numpys_slogdet_when_full_rank_and_is_minus_infinity_at_numpys_rank_otherwise(registry, case):
    """numpy's matrix_rank of the centred samples decides; a full rank gives slogdet of np.cov."""
    x = cases(3)[case][0]
    result = measure(registry, "logdet", make_evaluation(registry, x, x))
    rank = np.linalg.matrix_rank(x - x.mean(axis=0))
    if rank < 3:
        assert result.value == -math.inf and f"rank {rank} < 3" in result.detail
    else:
        sign, value = np.linalg.slogdet(np.cov(x, rowvar=False))
        assert sign > 0 and result.value == pytest.approx(value, rel=RTOL)


# ---------------------------------------------------------------- precision, recall, density, coverage: prdc


@pytest.mark.parametrize("case", ["gaussian", "duplicates", "cauchy"])
def test_prdc_metrics_equal_the_prdc_package(registry, case, capsys):
    """Duplicates sit on integer points, so prdc's distances (through dot products) are exact too and ties
    (radius 0) are decided alike: both count a point inside a ball only strictly within its radius."""
    from prdc import compute_prdc

    fake, real = cases(3)[case]
    expected = compute_prdc(real, fake, nearest_k=5)
    capsys.readouterr()  # prdc prints the sizes
    evaluation = make_evaluation(registry, fake, real)
    for name in ("precision", "recall", "density", "coverage"):
        assert measure(registry, name, evaluation, {"k": 5}).value == pytest.approx(expected[name], abs=1e-12), name
