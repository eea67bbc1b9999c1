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


# ---------------------------------------------------------------- one quantity per name


@pytest.mark.parametrize("name, p", [("w1", 1), ("w2", 2)])
def test_wasserstein_keeps_its_meaning_one_point_past_max_exact(registry, name, p):
    """In 5-D, 201 points per side with max_exact = 200 must still estimate exact W_p, not a sliced distance.

    Bound: dropping one of n + 1 uniform points and spreading its mass 1/(n+1) over the others costs
    W_p <= diam (n+1)^(-1/p); by the triangle inequality the subsampled value is within
    (diam x + diam y) (n+1)^(-1/p) of W_p on all points. A projection shortens the shift of 10 to
    about 10 / sqrt(5) (sliced W2) or 10 E|theta_1| = 3.4 (sliced W1): far outside that bound.
    """
    from scipy.spatial.distance import pdist

    rng = stream(34, "meaning")
    x, y = rng.normal(size=(201, 5)), rng.normal(size=(201, 5)) + np.array([10.0, 0, 0, 0, 0])
    evaluation = make_evaluation(registry, x, y)
    whole = measure(registry, name, evaluation, {"max_exact": 201})
    subsampled = measure(registry, name, evaluation, {"max_exact": 200})
    bound = (pdist(x).max() + pdist(y).max()) * 201 ** (-1 / p)
    assert abs(subsampled.value - whole.value) <= bound, (subsampled.value, whole.value, bound)
    assert whole.detail == "exact"
    assert subsampled.detail == "exact on a random subsample: 200 of 201 samples and 200 of 201 test points"


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_wasserstein_on_a_subsample_is_infinite_when_squared_costs_overflow(registry, name):
    """Every sample 1e155 away along one axis: whichever subsample is drawn, W_p >= 1e155, never 0."""
    rng = stream(35, "overflow")
    x, y = rng.normal(size=(150, 3)), rng.normal(size=(120, 3))
    x[:, 1] += 1e155
    result = measure(registry, name, make_evaluation(registry, x, y), {"max_exact": 100})
    assert result.value == math.inf and "overflow" in result.detail


@pytest.mark.parametrize("name", ["w1", "w2"])
def test_wasserstein_on_a_subsample_refuses_a_plan_the_solver_did_not_prove_optimal(registry, name, monkeypatch):
    ot = _pot()

    def stopped_early(a, b, cost, **options):
        log = {"warning": "numItermax reached before optimality.", "result_code": 3}
        return (0.0, log) if options.get("log") else 0.0

    monkeypatch.setattr(ot, "emd2", stopped_early)
    rng = stream(36, "stopped")
    x, y = rng.normal(size=(150, 2)), rng.normal(1.0, 1.0, size=(120, 2))
    with pytest.raises(ArithmeticError, match="numItermax reached"):
        measure(registry, name, make_evaluation(registry, x, y), {"max_exact": 100})


@pytest.mark.parametrize("name", ["sliced-w1", "sliced-w2"])
@pytest.mark.parametrize("sizes", [(150, 150), (150, 120)])  # sorted pairs / POT's quantile sums
def test_sliced_wasserstein_is_infinite_or_huge_never_nan_far_out(registry, name, sizes):
    """Points 1e300 away: |differences|^p overflows for p = 2 (inf) but not for p = 1 (a finite, huge value)."""
    rng = stream(37, "far")
    x, y = rng.normal(size=(sizes[0], 3)), rng.normal(size=(sizes[1], 3))
    x[:, 0] += 1e300
    result = measure(registry, name, make_evaluation(registry, x, y))
    if name == "sliced-w2":
        assert result.value == math.inf and "overflow" in result.detail
    else:
        assert 1e299 < result.value < math.inf  # E|theta_1| 1e300 with theta uniform on the sphere: about 0.5e300


# ---------------------------------------------------------------- log-determinant of a singular covariance


@pytest.mark.parametrize("seed", range(20))
def test_logdet_of_a_singular_covariance_is_always_minus_infinity_with_its_rank(registry, seed):
    """n <= d points, or points on a plane, have a rank-deficient covariance: -inf every time, not a
    finite number that rounding happened to leave (slogdet's sign said so only at random)."""
    rng = stream(38, "singular", seed)
    few = rng.normal(size=(3, 3)) * [1.0, 10.0, 0.1]
    plane = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 3)) + rng.normal(size=3)  # rank 2 in 3-D
    for x, rank in ((few, 2), (plane, 2)):
        result = measure(registry, "logdet", make_evaluation(registry, x, x))
        assert result.value == -math.inf
        assert f"rank {rank} < 3 dimensions" in result.detail


@pytest.mark.parametrize("scale", [1e-150, 1e160])
def test_logdet_tolerance_is_relative_so_scale_never_decides_singularity(registry, scale):
    """log det(c^2 S) = log det S + 2 d log c: full-rank sets stay finite at any scale, even one whose
    covariance would overflow (1e160^2), and a thin but full-rank direction (1e-6 of the others) counts."""
    rng = stream(39, "scale")
    x = rng.normal(size=(200, 3)) * [1.0, 2.0, 1e-6]
    reference = measure(registry, "logdet", make_evaluation(registry, x, x))
    sign, slogdet = np.linalg.slogdet(np.cov(x, rowvar=False))
    assert sign > 0 and reference.value == pytest.approx(slogdet, abs=1e-6)  # cov's rounding: cond 4e12 * eps
    scaled = measure(registry, "logdet", make_evaluation(registry, x * scale, x))
    assert scaled.value == pytest.approx(reference.value + 6 * math.log(scale), rel=1e-12)


# ---------------------------------------------------------------- too few points: a clear error, never NaN


@pytest.mark.parametrize(
    "name, params",
    [
        ("variance", None),
        ("variance-ratio", None),
        ("logdet", None),
        ("frechet", None),
        ("pairwise-distance", None),
        ("mmd", {"bandwidth": 1.0}),
        ("fid", {"extractor": "raw"}),
        ("fid", {"extractor": "raw", "method": "clean-fid"}),
    ],
)
def test_metrics_that_need_two_points_refuse_one_clearly(registry, name, params):
    rng = stream(40, "one")
    one, test = rng.normal(size=(1, 3)), rng.normal(size=(30, 3))
    with pytest.raises(ValueError, match="needs at least 2 points"):
        measure(registry, name, make_evaluation(registry, one, test), params)


def test_variance_ratio_refuses_a_test_set_without_spread(registry):
    rng = stream(41, "flat")
    samples, test = rng.normal(size=(30, 2)), np.ones((20, 2))
    with pytest.raises(ValueError, match="variance-ratio: the 20 test points all coincide"):
        measure(registry, "variance-ratio", make_evaluation(registry, samples, test))
    with pytest.raises(ValueError, match="variance of the test set needs at least 2 points"):
        measure(registry, "variance-ratio", make_evaluation(registry, samples, test[:1]))


def test_fid_with_clean_fid_works_on_one_dimensional_features(registry):
    """scipy's sqrtm returns a bare 1 x 1 root, which clean-fid cannot unpack: the 1-D value must still be
    clean-fid's, and equal the closed form (m1 - m2)^2 + (s1 - s2)^2."""
    rng = stream(42, "fid")
    fake, real = rng.normal(0.5, 2.0, size=(80, 1)), rng.normal(size=(100, 1))
    evaluation = make_evaluation(registry, fake, real)
    result = measure(registry, "fid", evaluation, {"extractor": "raw", "method": "clean-fid"})
    closed = (fake.mean() - real.mean()) ** 2 + (fake.std(ddof=1) - real.std(ddof=1)) ** 2
    assert result.value == pytest.approx(closed, rel=1e-12)


# ---------------------------------------------------------------- huge points: the number, not an overflow


@pytest.mark.parametrize(
    "name, degree",  # f(c x, c y) = c^degree f(x, y)
    [
        ("energy", 0.5),
        ("mmd", 0.0),  # the median bandwidth scales with the points
        ("pairwise-distance", 1.0),
        ("mean-distance", 1.0),
        ("variance-ratio", 0.0),
    ],
)
def test_distances_of_huge_points_are_the_rescaled_numbers_not_inf_or_nan(registry, name, degree):
    """Points near 1e306 (their squares, and sums of them, overflow float64): each metric is homogeneous
    in the points, and a power of two c scales floating-point arithmetic exactly, so f(c x, c y) =
    c^degree f(x, y) to rounding. Before: NaN (energy, mmd, variance-ratio) or inf."""
    rng = stream(43, "huge")
    x, y = rng.normal(size=(60, 3)), rng.normal(0.5, 1.5, size=(50, 3))
    c = 2.0**1015
    ordinary = measure(registry, name, make_evaluation(registry, x, y)).value
    huge = measure(registry, name, make_evaluation(registry, c * x, c * y)).value
    assert huge == pytest.approx(ordinary * c**degree, rel=1e-12)


def test_frechet_of_huge_points_is_the_rescaled_number_or_inf_when_that_exceeds_float64(registry):
    """Fréchet is homogeneous of degree 2: 2^509 x gives 2^1018 times the value (finite); 2^515 x would give
    2^1030 times it, beyond float64: inf, where an SVD of overflowed covariances used to fail."""
    rng = stream(45, "huge")
    x, y = rng.normal(size=(60, 3)), rng.normal(0.5, 1.5, size=(50, 3))
    ordinary = measure(registry, "frechet", make_evaluation(registry, x, y)).value
    c = 2.0**509
    assert measure(registry, "frechet", make_evaluation(registry, c * x, c * y)).value == pytest.approx(
        ordinary * c * c, rel=1e-12
    )
    c = 2.0**515
    assert measure(registry, "frechet", make_evaluation(registry, c * x, c * y)).value == math.inf


def test_variance_ratio_of_huge_samples_against_ordinary_data_is_their_ratio(registry):
    """Samples 2^520 times the test set: the ratio 2^1040 exceeds float64, so inf; the other way round it is
    2^-1040, a subnormal number with 34 bits left, not an error about a test set without spread."""
    x = stream(44, "huge").normal(size=(40, 2))
    c = 2.0**520
    assert measure(registry, "variance-ratio", make_evaluation(registry, c * x, x)).value == math.inf
    small = measure(registry, "variance-ratio", make_evaluation(registry, x, c * x)).value
    assert small == pytest.approx(2.0**-1040, rel=1e-9)


# ---------------------------------------------------------------- distances far from the origin


@pytest.mark.parametrize("outlier", [False, True])
@pytest.mark.parametrize("name", ["w1", "w2", "energy", "mmd", "pairwise-distance", "precision", "recall", "coverage"])
def test_distance_metrics_of_points_far_from_the_origin_are_those_of_the_points_at_it(registry, name, outlier):
    """10-D points 1e8 from the origin with a spread of 1: the expansion -2 x.y + |x|^2 + |y|^2 lost the distances
    (W2 = 0, precision = 0), though every one of these metrics is invariant to moving both sets; also with one
    diverged sample 3e7 further out, which inflated a mean spread enough to hide the rest. Moved back, the values
    agree to float64's resolution at 1e8 (an ulp of 1.5e-8 per coordinate, so about 1e-8 of distances of order 4:
    rtol 1e-6 is a hundred times that); the k-NN metrics, counts of points inside balls, agree exactly."""
    rng = stream(31, "far")
    x, y = rng.normal(size=(200, 10)), rng.normal(size=(200, 10))
    if outlier:
        x[0, 0] += 3e7
    near = measure(registry, name, make_evaluation(registry, x, y)).value
    maths.forget()  # the far values from an empty memo
    far = measure(registry, name, make_evaluation(registry, x + 1e8, y + 1e8)).value
    assert near > 0
    assert far == pytest.approx(near, rel=1e-6, abs=0)


@pytest.mark.parametrize("name", ["precision", "recall", "density", "coverage"])
def test_knn_metrics_say_when_repeated_points_leave_their_balls_empty(registry, name):
    """50 test points each repeated 6 times (k = 5): every ball has radius 0 and, with the prdc package's strict
    inequalities, holds nothing, so samples equal to the test set score 0. The value stays the published
    definition's; its detail says why it is 0, and says nothing on points that are not repeated."""
    rng = stream(32, "repeated")
    test = np.repeat(rng.normal(size=(50, 2)), 6, axis=0)
    result = measure(registry, name, make_evaluation(registry, test.copy(), test))
    assert result.value == 0.0
    assert "300 of 300 test balls and 300 of 300 sample balls have radius 0" in result.detail
    plain = measure(registry, name, make_evaluation(registry, rng.normal(size=(300, 2)), rng.normal(size=(300, 2))))
    assert "radius 0" not in plain.detail
