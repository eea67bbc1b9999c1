"""Bertrand et al.'s threshold for the analytic families: what exact refits predict under `mix` and `replace`.

docs/reproductions.md section 4b derives it; this file checks the closed forms against the real loop
(``benchmark.run.loop.generations`` through ``run_in_memory``) over many fixed seeds.

The real training set D (n points, mean xbar, ML scatter S with trace s) is kept fixed; generation t >= 1 fits D
plus m = round(lambda n) samples of generation t-1's model, N = n + m points, weight w = m / N = lambda / (1 + lambda)
on the samples. Write e_t = (model mean) - xbar, c_t = trace of the fitted points' ML scatter (the Gaussian's
covariance; the KDE's centres) and V_t = trace of the model's covariance (the Gaussian: c_t; a KDE: c_t plus the
kernel's d h^2). Pooling D with m samples of mean ybar and scatter S_y (the decomposition of a pooled scatter):

    e_t = w (e_{t-1} + xi),  xi the samples' mean error, E[xi xi^T] = Sigma_{t-1} / m
    N c_t = n s + m tr S_y + (n m / N) |ybar - xbar|^2,  E[m tr S_y] = (m - 1) V_{t-1}

so, with q_t = E|e_t|^2 and the expectations conditional on D,

    q_t = w^2 q_{t-1} + (w^2 / m) V_{t-1}
    E c_t = (1 - w) s + w (N - 1) / N V_{t-1} + w (1 - w) q_{t-1}

a linear recursion whenever V is linear in c. Under `replace` (m = N = n, w = 1): q_t = q_{t-1} + V_{t-1} / n and
E c_t = (n - 1) / n V_{t-1}. Tests compare seed means with ``moments`` (this recursion iterated from c_0 = s, q_0 = 0).

Tolerances: each check is |mean - expected| < Z * SE over i.i.d. seeds (SE = std / sqrt(seeds)), Z = 4.5 as in
tests/test_analytic.py (a normal mean misses by chance with probability 7e-6; the checks here cover a few
generations or window means at once, and the values are right-skewed, so the chance per test is nearer 1e-4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from benchmark.api.plugins import build_registry
from benchmark.testing import model_states as state
from benchmark.testing import run_in_memory

Z = 4.5
FIRST_PARTY = ("plugins.datasets.toy", "plugins.families.analytic", "plugins.policies", "plugins.metrics.basic")


@pytest.fixture(scope="module")
def registry():
    # Only the first-party plugins, whatever else is installed or set in the environment.
    return build_registry(modules=FIRST_PARTY, autoload=False, strict=True)


# ---------------------------------------------------------------- the theory


@dataclass(frozen=True)
class Loop:
    """One retraining loop's sizes: n real points and m own samples per generation (replace: no real ones)."""

    n: int
    lam: float | None  # None: replace

    @property
    def m(self) -> int:
        return self.n if self.lam is None else math.floor(self.lam * self.n + 0.5)  # as plugins/policies/mixing.py

    @property
    def size(self) -> int:
        return self.m if self.lam is None else self.n + self.m

    @property
    def w(self) -> float:
        """The weight of the own samples in each refit: lambda / (1 + lambda) under mix, 1 under replace."""
        return self.m / self.size


def silverman_inflation(size: int) -> float:
    """kappa with h^2 = kappa * (ML variance of the size fitted points), for Silverman's rule in 1-D (ddof=1 std)."""
    return size / (size - 1) * (3 * size / 4) ** (-2 / 5)


def transition(loop: Loop, kappa: float = 0.0) -> np.ndarray:
    """The linear map of (q_{t-1}, E c_{t-1}) to (q_t, E c_t) when V = (1 + kappa) c (plus a constant)."""
    w, m, size = loop.w, loop.m, loop.size
    return np.array(
        [
            [w**2, (w**2 / m) * (1 + kappa) if m else 0.0],
            [w * (1 - w), w * (size - 1) / size * (1 + kappa)],
        ]
    )


def moments(loop: Loop, s: float, generations: int, *, kernel: float = 0.0, rule: bool = False) -> np.ndarray:
    """(q_t, E c_t) for t = 0..generations given the real data's scatter trace s: rows t, columns (q, c).

    kernel: the fixed kernel variance d h^2 a KDE adds (0: the Gaussian); rule: Silverman's bandwidth, h^2 =
    kappa c, with kappa of the n real points at generation 0 and of the training set's size after.
    """
    out = np.zeros((generations + 1, 2))
    out[0] = (0.0, s)
    kappa = silverman_inflation(loop.size) if rule else 0.0
    for t in range(1, generations + 1):
        first = silverman_inflation(loop.n) if rule and t == 1 else kappa
        step = transition(loop, first)
        # The constant part: (1 - w) s from the real points, and the fixed kernel's variance passed on with V.
        constant = np.array([(loop.w**2 / loop.m) * kernel if loop.m else 0.0, (1 - loop.w) * s])
        constant[1] += loop.w * (loop.size - 1) / loop.size * kernel
        out[t] = step @ out[t - 1] + constant
    return out


def stationary(n: int, lam: float) -> tuple[float, float]:
    """The Gaussian's limits under mix as fractions of s: (E|mu_inf - xbar|^2, E tr Sigma_inf), m = lambda n exactly.

    Setting q and c constant in the recursion: E c = s n (1 + 2 lambda) / (n (1 + 2 lambda) + lambda) and
    q = lambda / (n (1 + 2 lambda)) E c.
    """
    c = n * (1 + 2 * lam) / (n * (1 + 2 * lam) + lam)
    return lam / (n * (1 + 2 * lam)) * c, c


def threshold(n: int, low: float = 0.01, high: float = 1e4) -> float:
    """The lambda beyond which Silverman's KDE (1-D) has no stationary spread: spectral radius of the map = 1."""

    def radius(lam: float) -> float:
        loop = Loop(n, lam)
        return float(max(abs(np.linalg.eigvals(transition(loop, silverman_inflation(loop.size))))))

    assert radius(low) < 1 < radius(high)
    for _ in range(60):  # bisection on log lambda
        mid = math.sqrt(low * high)
        low, high = (mid, high) if radius(mid) < 1 else (low, mid)
    return math.sqrt(low * high)


# ---------------------------------------------------------------- the loop


def chains(registry, model: Mapping[str, Any], loop: Loop, generations: int, seeds: range) -> list[list[Any]]:
    policy = {"name": "replace"} if loop.lam is None else {"name": "mix", "params": {"lambda": loop.lam}}
    return run_in_memory(
        registry,
        dataset={"name": "gaussian", "params": {"dim": 1}},
        model=model,
        policy=policy,
        metric={"name": "mean-distance"},
        n_real=loop.n,
        n_test=1,
        n_eval=1,
        generations=generations,
        seeds=seeds,
    )


def gaussian_chains(registry, loop: Loop, generations: int, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """Per seed and generation, e_t = mu_t - xbar and sigma_t^2; generation 0 is the fit of D: mu_0 = xbar, s."""
    runs = chains(registry, {"name": "gaussian", "params": {"ddof": 0}}, loop, generations, seeds)
    mean, var = state(runs, "mean")[..., 0], state(runs, "cov")[..., 0, 0]
    return mean - mean[:, :1], var


def gaussian_moments(registry, loop: Loop, generations: int, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """Per seed and generation, |mu_t - xbar|^2 / s and sigma_t^2 / s."""
    e, var = gaussian_chains(registry, loop, generations, seeds)
    return e**2 / var[:, :1], var / var[:, :1]


def kde_scatter(registry, loop: Loop, bandwidth: float | str, generations: int, seeds: range) -> np.ndarray:
    """Per seed and generation, the ML variance c_t of the KDE's centres (generation 0: the n real points)."""
    runs = chains(registry, {"name": "kde", "params": {"bandwidth": bandwidth}}, loop, generations, seeds)
    return np.array([[np.asarray(r.model_state["centres"])[:, 0].var() for r in chain] for chain in runs])


def assert_mean(values: np.ndarray, expected: Any, what: str) -> None:
    """|mean - expected| < Z * SE elementwise, over i.i.d. rows ``values[seed, ...]``."""
    mean = values.mean(axis=0)
    se = values.std(axis=0, ddof=1) / math.sqrt(len(values))
    assert np.all(se > 0), f"{what}: no spread over {len(values)} seeds"
    z = (mean - np.asarray(expected)) / se
    assert np.all(np.abs(z) < Z), (
        f"{what}: mean {np.round(mean, 5)} vs closed form {np.round(expected, 5)}, z {np.round(z, 2)}"
    )


# ---------------------------------------------------------------- the closed forms agree with each other


def test_the_recursion_settles_at_the_stationary_closed_form_for_every_lambda():
    # The recursion's fixed point is the closed form, and its contraction rate is lambda / (1 + lambda) < 1 for every
    # finite lambda (the map's eigenvalues are w and w^2 - w/N): the exact Gaussian MLE has no threshold. Pure
    # arithmetic: it guards the formulas that the statistical tests and docs/reproductions.md quote.
    for n in (20, 500):
        for lam in (0.25, 1.0, 16.0, 64.0):
            loop = Loop(n, lam)
            q, c = moments(loop, 1.0, 3000)[-1]
            assert (q, c) == pytest.approx(stationary(n, lam), rel=1e-9)
            assert sorted(np.linalg.eigvals(transition(loop)).real) == pytest.approx(
                sorted([loop.w, loop.w**2 - loop.w / loop.size]), rel=1e-9
            )
    # As lambda grows the spread rises to its bound, never beyond: E|mu - xbar|^2 -> s/(2n), E tr Sigma -> s 2n/(2n+1).
    q64, c64 = stationary(20, 64.0)
    assert q64 < 1 / 40 and c64 > 40 / 41


# ---------------------------------------------------------------- Gaussian: mix settles, replace does not


@pytest.mark.parametrize(
    "lam, generations, window, seeds",
    [
        # lambda = 1: w = 1/2, the transient is w^(2t) (gone by t = 4); generations 4..8 are nearly independent.
        pytest.param(1.0, 8, 4, range(300), id="lambda=1"),
        # lambda = 16: w = 0.94, the mean forgets with w^2 per generation (about 9 generations), so 60 generations
        # and a window of the last 30 (about 3.5 independent values per seed).
        pytest.param(16.0, 60, 30, range(1000, 1150), id="lambda=16", marks=pytest.mark.slow),
    ],
)
def test_gaussian_mix_mean_and_variance_settle_at_their_closed_forms(registry, lam, generations, window, seeds):
    # n = 20 (a weak first model). Both quantities are divided by s, so their expectations are the recursion at s = 1
    # whatever D is. The window mean per seed is an i.i.d. value across seeds; its expectation is the window mean of
    # the recursion (exact, transient included).
    loop = Loop(20, lam)
    spread, variance = gaussian_moments(registry, loop, generations, seeds)
    expected = moments(loop, 1.0, generations)[-window:]
    assert_mean(spread[:, -window:].mean(axis=1), expected[:, 0].mean(), f"E|mu_t - xbar|^2 / s, mix lambda={lam}")
    assert_mean(variance[:, -window:].mean(axis=1), expected[:, 1].mean(), f"E sigma_t^2 / s, mix lambda={lam}")
    # The window lies at the stationary limit (within a tenth of the SE of the mean spread): what was checked is the
    # stationary spread lambda / (n (1 + 2 lambda)) E sigma^2_inf, with E sigma^2_inf = s n(1+2l) / (n(1+2l) + l).
    q_inf, c_inf = stationary(loop.n, lam)
    se = spread[:, -window:].mean(axis=1).std(ddof=1) / math.sqrt(len(seeds))
    assert abs(expected[:, 0].mean() - q_inf) < 0.1 * se and abs(expected[:, 1].mean() - c_inf) < 1e-3


def test_mix_at_large_lambda_keeps_its_variance_where_replace_loses_it(registry):
    # mix at lambda = 64 fits 64 n own samples plus the n real points; replace fits n own samples only. Under replace
    # E sigma_t^2 = a^t s with a = (n-1)/n and E|mu_t - xbar|^2 = s (1 - a^t) (a random walk whose steps shrink with
    # the variance); under mix both stay within 1/(2n) of generation 0. n = 20, 15 generations: a^15 = 0.46.
    n, generations = 20, 15
    mixed, replaced = Loop(n, 64.0), Loop(n, None)
    mix_e, mix_raw = gaussian_chains(registry, mixed, generations, range(2000, 2040))
    rep_e, rep_raw = gaussian_chains(registry, replaced, generations, range(3000, 3100))
    # How many own samples each refit sees: the innovation e_t / w - e_{t-1} is the samples' mean error, of variance
    # sigma_{t-1}^2 / m. Pooled per seed over the 15 generations, m iota^2 / sigma_{t-1}^2 has mean 1 with m = 64 n
    # under mix (a mix drawing n samples instead fails this by about 15 SE) and m = n under replace. Over
    # 15 << 1 + lambda generations the real anchor (weight 1/65) is invisible; the lambda = 16 test above checks it.
    for (e, raw), loop in (((mix_e, mix_raw), mixed), ((rep_e, rep_raw), replaced)):
        iota = e[:, 1:] / loop.w - e[:, :-1]
        assert_mean((iota**2 * loop.m / raw[:, :-1]).mean(axis=1), 1.0, f"E[m iota_t^2 / sigma_(t-1)^2], {loop}")
    mix_spread, mix_var = mix_e**2 / mix_raw[:, :1], mix_raw / mix_raw[:, :1]
    rep_spread, rep_var = rep_e**2 / rep_raw[:, :1], rep_raw / rep_raw[:, :1]
    a, t = (n - 1) / n, np.arange(generations + 1)
    assert moments(replaced, 1.0, generations)[:, 1] == pytest.approx(a**t)  # the recursion under replace
    assert moments(replaced, 1.0, generations)[:, 0] == pytest.approx(1 - a**t)
    checked = [5, 10, 15]
    assert_mean(rep_var[:, checked], a ** t[checked], "E sigma_t^2 / s = a^t under replace")
    assert_mean(rep_spread[:, checked], 1 - a ** t[checked], "E|mu_t - xbar|^2 / s = 1 - a^t under replace")
    expected = moments(mixed, 1.0, generations)[checked]
    assert_mean(mix_var[:, checked], expected[:, 1], "E sigma_t^2 / s under mix lambda=64")
    assert_mean(mix_spread[:, checked], expected[:, 0], "E|mu_t - xbar|^2 / s under mix lambda=64")
    # The two loops differ by far more than either's standard error: at t = 15, 0.98 against 0.46 of the variance.
    gap = mix_var[:, -1].mean() - rep_var[:, -1].mean()
    se = math.hypot(mix_var[:, -1].std(ddof=1) / math.sqrt(40), rep_var[:, -1].std(ddof=1) / math.sqrt(100))
    assert gap > Z * se, f"mix lambda=64 kept {mix_var[:, -1].mean():.3f} of s, replace {rep_var[:, -1].mean():.3f}"


# ---------------------------------------------------------------- KDE: blur that grows with lambda


def test_fixed_bandwidth_kde_settles_with_a_blur_that_grows_with_lambda(registry):
    # A KDE's samples have variance V = c + h^2 (a centre plus h Z): the recursion with kernel = h^2. Its stationary
    # V is (s + (1 + lambda) h^2) n (1+2 lambda) / (n (1+2 lambda) + lambda): every own sample carries one extra
    # kernel per ancestor, and the chain of ancestors is geometric with mean lambda. n = 20, h = 0.5, lambda = 4:
    # w^25 = 0.004, so generation 25 is at the limit; s differs per seed, so the recursion is evaluated per seed.
    n, lam, h, generations = 20, 4.0, 0.5, 25
    loop = Loop(n, lam)
    c = kde_scatter(registry, loop, h, generations, range(4000, 4100))
    expected = np.array([moments(loop, s, generations, kernel=h**2)[:, 1] for s in c[:, 0]])
    assert_mean((c - expected)[:, [1, 5, 25]], 0.0, "E c_t - recursion, KDE h=0.5, mix lambda=4")
    limit = (c[:, 0] + (1 + lam) * h**2) * n * (1 + 2 * lam) / (n * (1 + 2 * lam) + lam) - h**2
    assert expected[:, -1] == pytest.approx(limit, rel=5e-3)  # the gap to the limit is of order w^25 = 0.004
    # The blur beyond generation 0 is about lambda h^2 = 1 at the limit: far beyond its standard error.
    rise = c[:, -1] - c[:, 0]
    assert rise.mean() > 0.8 and rise.mean() > Z * rise.std(ddof=1) / math.sqrt(len(rise))


def test_silverman_kde_drifts_beyond_its_threshold_and_settles_below_it(registry):
    # Silverman's rule refits h^2 = kappa(N) c on each training set, so V = (1 + kappa) c: the blur is proportional
    # to the spread and compounds with the own samples' weight. The map's spectral radius is about
    # w (1 + kappa(N)), above 1 once lambda kappa(n (1 + lambda)) > 1: lambda* = 6.7 for n = 20 (a weak first model)
    # and 53 for n = 500. So with n = 20, lambda = 1 settles and lambda = 32 grows geometrically (about 5% a
    # generation); with n = 500 the same lambda = 32 still settles (slowly: radius 0.992, towards 4.7 s).
    assert 6 < threshold(20) < 8 and 45 < threshold(500) < 60
    generations = 20
    for loop, seeds, grows in (
        (Loop(20, 1.0), range(5000, 5040), False),
        (Loop(20, 32.0), range(6000, 6040), True),
        (Loop(500, 32.0), range(7000, 7020), False),
    ):
        radius = max(abs(np.linalg.eigvals(transition(loop, silverman_inflation(loop.size)))))
        assert (radius > 1) == grows
        c = kde_scatter(registry, loop, "silverman", generations, seeds)
        ratio = c / c[:, :1]
        expected = moments(loop, 1.0, generations, rule=True)[:, 1]
        assert_mean(ratio[:, [1, 10, 20]], expected[[1, 10, 20]], f"E c_t / s, Silverman KDE, n={loop.n}, {loop}")
        # Still moving or not: the last 10 generations' rise, one-sided, against its standard error. Below the
        # threshold with n = 20 (radius 0.63) the chain has settled by t = 10; with n = 500 it is still on its way.
        late = ratio[:, -1] - ratio[:, -11]
        se = late.std(ddof=1) / math.sqrt(len(late))
        if grows:
            assert late.mean() > Z * se and ratio[:, -1].mean() > 2, f"{loop}: no drift beyond the threshold"
        elif loop.n == 20:
            assert abs(late.mean()) < Z * se, f"{loop}: still drifting below the threshold"
