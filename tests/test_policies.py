"""Each policy builds the training set of README.md's "The retraining loop" table, alone and chained in the loop.

Points are tagged: column 0 says where a point comes from (REAL, POOL, or SYNTHETIC), column 1 is a
unique id, so a test can say exactly which points a training set holds.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import numpy as np
import pytest
from conftest import grid_doc
from scipy.stats import multivariate_normal

from benchmark import (
    Dataset,
    DataSplits,
    Model,
    ModelFamily,
    Param,
    Policy,
    PolicyStep,
    RunContext,
    TrainingSet,
    hookimpl,
)
from benchmark.api.plugins import build_registry
from benchmark.errors import ContractViolation, GridError
from benchmark.run.loop import generations
from benchmark.run.seeding import stream
from benchmark.run.spec import parse_grid
from benchmark.testing import check_policy_builds, component_cases, model_states, run_in_memory
from plugins.families.analytic import GaussianFamily, GaussianModel
from plugins.policies.curation import Curate
from plugins.policies.mixing import Accumulate, AccumulateSubsample, Fresh, Mix, Replace

REAL, POOL, SYNTHETIC = 0.0, 1.0, 2.0
N = 10


def tagged(tag: float, ids: np.ndarray) -> np.ndarray:
    return np.column_stack([np.full(len(ids), tag), ids.astype(float)])


class Sampler:
    """Stands in for the previous generation's model: hands out never-seen synthetic points and counts calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.next_id = 10_000

    def __call__(self, n: int) -> np.ndarray:
        self.calls.append(n)
        ids = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        return tagged(SYNTHETIC, ids)


REAL_SET = tagged(REAL, np.arange(N))
POOL_SET = tagged(POOL, np.arange(1000, 1000 + 10 * N))


def step(generation: int, sampler: Sampler, state=None, seed: int = 0, pool: np.ndarray = POOL_SET) -> PolicyStep:
    return PolicyStep(
        generation=generation,
        real=REAL_SET,
        pool=pool,
        sample=sampler,
        state=state or {},
        rng=np.random.default_rng(seed),
    )


def rows(data: np.ndarray, tag: float) -> np.ndarray:
    return data[data[:, 0] == tag]


def check_composition(built: TrainingSet) -> None:
    """The composition adds up, and its counts match the tags of the points."""
    assert sum(built.composition.values()) == len(built.data)
    names = {REAL: "real", POOL: "fresh", SYNTHETIC: "synthetic"}
    counts = {names[tag]: int(np.sum(built.data[:, 0] == tag)) for tag in names}
    assert {k: v for k, v in counts.items() if v} == dict(built.composition)


def ids(data: np.ndarray) -> list[int]:
    return [int(i) for i in data[:, 1]]


# ---------------------------------------------------------------- one step at a time


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 1.0, 1.67, 3.0])
def test_mix_is_the_real_set_plus_round_lambda_n_samples(lam):
    sampler = Sampler()
    built = Mix({"lambda": lam}).build(step(1, sampler))
    m = math.floor(lam * N + 0.5)  # lam * N is never a tie here, so any rounding rule gives the same m
    assert len(built.data) == N + m
    check_composition(built)
    np.testing.assert_array_equal(rows(built.data, REAL), REAL_SET)
    if m == 0:
        assert sampler.calls == []
        assert dict(built.composition) == {"real": N}
    else:
        assert sampler.calls == [m]
        assert dict(built.composition) == {"real": N, "synthetic": m}
        assert ids(rows(built.data, SYNTHETIC)) == list(range(10_000, 10_000 + m))
    assert dict(built.state) == {}


def test_mix_with_lambda_zero_never_samples_over_generations():
    sampler, policy = Sampler(), Mix({"lambda": 0})
    for t in (1, 2, 3):
        built = policy.build(step(t, sampler))
        np.testing.assert_array_equal(built.data, REAL_SET)
    assert sampler.calls == []


def test_replace_is_n_samples_and_no_real_point():
    sampler = Sampler()
    for t in (1, 2, 3):
        built = Replace().build(step(t, sampler))
        assert dict(built.composition) == {"synthetic": N}
        check_composition(built)
        assert ids(built.data) == list(range(10_000 + (t - 1) * N, 10_000 + t * N))  # new samples every time
    assert sampler.calls == [N, N, N]


def test_accumulate_keeps_every_synthetic_set():
    sampler, policy = Sampler(), Accumulate()
    state = policy.initial_state()
    earlier: list[np.ndarray] = []
    for t in (1, 2, 3, 4):
        built = policy.build(step(t, sampler, state))
        check_composition(built)
        assert dict(built.composition) == {"real": N, "synthetic": t * N}
        np.testing.assert_array_equal(rows(built.data, REAL), REAL_SET)
        state = built.state
        assert len(state["synthetic"]) == t * N
        for old in earlier:  # every earlier set is still there, unchanged
            np.testing.assert_array_equal(state["synthetic"][: len(old)], old)
        np.testing.assert_array_equal(rows(built.data, SYNTHETIC), state["synthetic"])
        assert len(set(ids(state["synthetic"]))) == t * N
        earlier.append(state["synthetic"].copy())
    assert sampler.calls == [N] * 4


@pytest.mark.parametrize(
    ("params", "fresh", "synthetic"),
    [
        ({}, N // 2, N - N // 2),
        ({"n_fresh": 3}, 3, N - 3),
        ({"n_fresh": 3, "n_synthetic": 12}, 3, 12),
        ({"n_synthetic": 4}, N // 2, 4),
        ({"n_fresh": 0}, 0, N),
        ({"n_fresh": 4, "n_synthetic": 0}, 4, 0),
        ({"n_fresh": 15}, 15, 0),
    ],
)
def test_fresh_takes_new_pool_points_every_generation(params, fresh, synthetic):
    policy, sampler, G = Fresh(params), Sampler(), 4
    assert policy.pool_size(N, G) == fresh * G
    pool = POOL_SET[: policy.pool_size(N, G)]
    seen: list[int] = []
    for t in range(1, G + 1):
        built = policy.build(step(t, sampler, pool=pool))
        check_composition(built)
        assert len(built.data) == fresh + synthetic
        assert dict(built.composition) == {k: v for k, v in (("fresh", fresh), ("synthetic", synthetic)) if v}
        assert len(rows(built.data, REAL)) == 0  # D itself is not part of the training set
        fresh_rows = rows(built.data, POOL)
        np.testing.assert_array_equal(fresh_rows, pool[(t - 1) * fresh : t * fresh])
        seen += ids(fresh_rows)
    assert len(seen) == len(set(seen)) == fresh * G  # never reused: the pool is used up exactly
    assert sampler.calls == ([synthetic] * G if synthetic else [])


def test_fresh_refuses_an_empty_training_set_and_an_exhausted_pool():
    with pytest.raises(ValueError, match="empty training set"):
        Fresh({"n_fresh": 0, "n_synthetic": 0}).build(step(1, Sampler()))
    policy = Fresh({"n_fresh": 4})
    pool = POOL_SET[: policy.pool_size(N, 2)]
    policy.build(step(2, Sampler(), pool=pool))
    with pytest.raises(ValueError, match="pool exhausted at generation 3"):
        policy.build(step(3, Sampler(), pool=pool))


def test_accumulate_subsample_draws_n_distinct_points_of_the_accumulated_pool():
    sampler, policy = Sampler(), AccumulateSubsample()
    state = policy.initial_state()
    for t in (1, 2, 3, 4):
        built = policy.build(step(t, sampler, state, seed=t))
        check_composition(built)
        state = built.state
        assert len(state["synthetic"]) == t * N
        assert len(built.data) == N
        assert set(built.composition) <= {"real", "synthetic"}
        drawn = ids(built.data)
        assert len(set(drawn)) == N  # without replacement
        assert set(drawn) <= set(ids(REAL_SET)) | set(ids(state["synthetic"]))
    assert sampler.calls == [N] * 4


def test_accumulate_subsample_is_uniform_over_the_pool():
    """At generation t the pool holds n real and t*n synthetic points, so the real count is hypergeometric:
    mean n * n / N_pool. Over R independent draws the mean count has standard error sqrt(var / R); we allow
    4 standard errors (a false alarm has probability about 6e-5). Each point of the pool is drawn with
    probability n / N_pool = 1/4 per repetition, so one never drawn in R = 400 would have probability 0.75^400."""
    t, R = 3, 400
    pool_size = N + t * N
    counts, drawn = [], set()
    for r in range(R):
        sampler = Sampler()
        state = {"synthetic": tagged(SYNTHETIC, np.arange(5000, 5000 + (t - 1) * N))}
        built = AccumulateSubsample().build(step(t, sampler, state, seed=r))
        counts.append(built.composition.get("real", 0))
        drawn |= set(ids(built.data))
        everything = set(ids(REAL_SET)) | set(ids(built.state["synthetic"]))
    mean = N * N / pool_size
    var = N * (N / pool_size) * (1 - N / pool_size) * (pool_size - N) / (pool_size - 1)
    assert abs(np.mean(counts) - mean) < 4 * math.sqrt(var / R)
    assert len(everything) == pool_size
    assert drawn == everything  # every point of the pool can be drawn, this generation's samples included


# ---------------------------------------------------------------- chained through the loop


class IdData(Dataset):
    """Every point drawn gets a new id, (REAL, id): train, test and pool are told apart by their ids."""

    name = "ids"

    def __init__(self, params=None):
        super().__init__(params)
        self.drawn = 0

    def draw(self, n, rng):
        self.drawn += n
        return tagged(REAL, np.arange(self.drawn - n, self.drawn))


class RecordingModel(Model):
    """Remembers what it was fit on; its samples are tagged with the generation of the fit that made them."""

    def __init__(self, log: list) -> None:
        self.log, self.generation = log, -1

    def fit(self, data, *, warm_start, rng):
        self.generation += 1
        self.log.append(data.copy())
        return {}

    def sample(self, n, rng):
        return np.column_stack([np.full(n, 100.0 + self.generation), rng.random(n)])

    def state_dict(self):
        return {"generation": np.array(self.generation)}

    def load_state_dict(self, state):
        self.generation = int(state["generation"])


class Recording(ModelFamily):
    """A family whose models record their training sets."""

    name = "recording"
    log: list = []

    def create(self, data: DataSplits, context: RunContext) -> Model:
        return RecordingModel(Recording.log)


@hookimpl
def register_datasets(register):
    register(IdData)


@hookimpl
def register_model_families(register):
    register(Recording)
    register(FaultyLikelihood)  # defined with the tests of PolicyStep.log_prob below


N_REAL, N_TEST, G = 20, 8, 3
EXPECTED = {
    "mix[lambda=0.0]": lambda t: {"real": N_REAL},
    "mix[lambda=0.5]": lambda t: {"real": N_REAL, "synthetic": N_REAL // 2},
    "replace": lambda t: {"synthetic": N_REAL},
    "accumulate": lambda t: {"real": N_REAL, "synthetic": t * N_REAL},
    "fresh[n_fresh=5]": lambda t: {"fresh": 5, "synthetic": N_REAL - 5},
    "fresh[n_fresh=5,n_synthetic=0]": lambda t: {"fresh": 5},
}


@pytest.fixture(scope="module")
def loop_registry():
    """The first-party plugins plus this module's dataset and family."""
    return build_registry([sys.modules[__name__]], autoload=True)


def chain(registry, policies):
    doc = grid_doc(
        generations=G,
        n_real=N_REAL,
        n_test=N_TEST,
        n_eval=5,
        datasets=[{"name": "ids"}],
        models=[{"name": "recording"}],
        policies=policies,
        metrics=[{"name": "mean-distance"}],
    )
    for run in parse_grid(doc, registry).runs:
        Recording.log.clear()
        results = list(generations(run, registry))
        yield run, [r.record for r in results], list(Recording.log)


def test_policies_chained_through_the_loop(loop_registry):
    policies = [
        {"name": "mix", "params": {"lambda": [0, 0.5]}},
        {"name": "replace"},
        {"name": "accumulate"},
        {"name": "fresh", "params": {"n_fresh": 5}},
        {"name": "fresh", "params": {"n_fresh": 5, "n_synthetic": 0}},
    ]
    train_ids = set(range(N_REAL))
    labels = set()
    for run, records, fitted in chain(loop_registry, policies):
        label = run.policy.label
        labels.add(label)
        assert [r["generation"] for r in records] == list(range(G + 1))
        assert records[0]["composition"] == {"real": N_REAL} and records[0]["training_size"] == N_REAL
        assert set(ids(fitted[0])) == train_ids
        fresh_seen: list[int] = []
        for t in range(1, G + 1):
            record, data = records[t], fitted[t]
            assert record["composition"] == EXPECTED[label](t), (label, t)
            assert record["training_size"] == len(data) == sum(record["composition"].values())
            real = data[data[:, 0] == REAL]
            synthetic_tags = set(data[data[:, 0] >= 100, 0])
            if label == "accumulate":  # S_i came from the model of generation i-1
                assert synthetic_tags == {100.0 + i for i in range(t)}
            elif "synthetic" in record["composition"]:  # fresh samples of the model of generation t-1
                assert synthetic_tags == {100.0 + t - 1}
            if label.startswith("fresh"):
                assert not set(ids(real)) & train_ids  # never D, never the test set: the pool
                assert min(ids(real)) >= N_REAL + N_TEST
                fresh_seen += ids(real)
            elif "real" in record["composition"]:
                assert set(ids(real)) == train_ids and len(real) == N_REAL
        assert len(fresh_seen) == len(set(fresh_seen))
    assert labels == set(EXPECTED)


def test_accumulate_subsample_chained_through_the_loop(loop_registry):
    [(_, records, fitted)] = chain(loop_registry, [{"name": "accumulate-subsample"}])
    for t in range(1, G + 1):
        composition = records[t]["composition"]
        assert records[t]["training_size"] == N_REAL == sum(composition.values())
        data = fitted[t]
        assert composition.get("real", 0) == int(np.sum(data[:, 0] == REAL))
        assert set(data[data[:, 0] >= 100, 0]) <= {100.0 + i for i in range(t)}
        assert set(ids(data[data[:, 0] == REAL])) <= set(range(N_REAL))


# ---------------------------------------------------------------- curation by the previous model's likelihood


def pseudo_log_prob(x: np.ndarray) -> np.ndarray:
    """A log-likelihood of tagged points that is not monotone in their ids (and -inf for every 13th id)."""
    values = -(((x[:, 1] * 7919) % 101) / 10.0)
    return np.where(x[:, 1] % 13 == 0, -np.inf, values)


class LogProbSpy:
    """``PolicyStep.log_prob`` as the loop hands it: remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.asked.append(x.copy())
        return pseudo_log_prob(x)


@pytest.mark.parametrize(("lam", "oversample"), [(0.5, 3.0), (1.0, 2.0), (1.67, 1.5), (0.3, 4.0)])
def test_curate_keeps_exactly_the_m_most_likely_of_the_drawn_samples(lam, oversample):
    sampler, spy = Sampler(), LogProbSpy()
    built = Curate({"lambda": lam, "oversample": oversample}).build(dataclasses.replace(step(1, sampler), log_prob=spy))
    check_composition(built)
    m = math.floor(lam * N + 0.5)
    drawn = math.floor(oversample * m + 0.5)
    assert sampler.calls == [drawn]
    [asked] = spy.asked
    assert ids(asked) == list(range(10_000, 10_000 + drawn))  # every drawn point is scored, once
    # the direct computation: rank the drawn points by their log-likelihood, keep the m first
    scores = {i: float(pseudo_log_prob(tagged(SYNTHETIC, np.array([i])))[0]) for i in ids(asked)}
    expected = sorted(scores, key=lambda i: -scores[i])[:m]
    kept = ids(rows(built.data, SYNTHETIC))
    assert sorted(kept) == sorted(expected) and len(kept) == m
    assert min(scores[i] for i in kept) >= max((scores[i] for i in scores if i not in kept), default=-np.inf)
    assert ids(rows(built.data, REAL)) == list(range(N))


def test_curate_without_curation_is_mix():
    """oversample = 1 draws exactly the m points mix draws, and keeps them all."""
    curated = Curate({"lambda": 0.7, "oversample": 1.0}).build(
        dataclasses.replace(step(1, Sampler()), log_prob=pseudo_log_prob)
    )
    mixed = Mix({"lambda": 0.7}).build(step(1, Sampler()))
    assert np.array_equal(curated.data, mixed.data) and curated.composition == mixed.composition


def test_curate_with_lambda_zero_neither_samples_nor_scores():
    sampler, spy = Sampler(), LogProbSpy()
    built = Curate({"lambda": 0.0}).build(dataclasses.replace(step(1, sampler), log_prob=spy))
    assert built.composition == {"real": N} and sampler.calls == [] and spy.asked == []


def test_curate_passes_the_conformance_kit_with_its_documented_composition():
    for case in component_cases("policy", Curate):
        case.run()
    check_policy_builds(
        Curate({"lambda": 0.5, "oversample": 3.0}), expected=lambda t, n: {"real": n, "synthetic": round(0.5 * n)}
    )


def test_a_grid_pairing_curate_with_a_family_without_log_prob_is_skipped_saying_why(loop_registry):
    """As for a metric that needs what a run lacks: the combination is skipped with a note; none left is an error."""
    only = grid_doc(datasets=[{"name": "ids"}], models=[{"name": "recording"}], policies=[{"name": "curate"}])
    with pytest.raises(
        GridError,
        match=r"models: no dataset/model/policy combination is compatible: "
        r"curate needs a likelihood, which recording does not have",
    ):
        parse_grid(only, loop_registry)
    both = grid_doc(
        datasets=[{"name": "ids"}],
        models=[{"name": "recording"}, {"name": "gaussian"}],
        policies=[{"name": "curate"}, {"name": "mix"}],
    )
    grid = parse_grid(both, loop_registry)
    assert sorted((r.model.name, r.policy.name) for r in grid.runs) == [
        ("gaussian", "curate"),
        ("gaussian", "mix"),
        ("recording", "mix"),
    ]
    assert grid.skipped == ("curate needs a likelihood, which recording does not have",)


class ScoresReal(Policy):
    """Keeps the real set, and remembers what the previous model's log_prob says of it (tests only)."""

    name = "scores-real"
    needs = frozenset({"log_prob"})
    seen: list = []

    def build(self, step):
        ScoresReal.seen.append(step.log_prob(np.array(step.real)))  # a writable copy, as curate's drawn samples
        return TrainingSet(step.real, {"real": len(step.real)})


class MixSeesNoLikelihood(Policy):
    """Records whether it was handed a log_prob without declaring it needs one (tests only)."""

    name = "undeclared"
    seen: list = []

    def build(self, step):
        MixSeesNoLikelihood.seen.append(step.log_prob)
        return TrainingSet(step.real, {"real": len(step.real)})


@hookimpl
def register_policies(register):
    register(ScoresReal)
    register(MixSeesNoLikelihood)
    register(ScoresOneCoordinate)


def test_the_loop_hands_a_policy_the_previous_models_log_prob(loop_registry):
    doc = grid_doc(generations=2, n_real=30, datasets=[{"name": "gaussian", "params": {"dim": 2}}])
    ScoresReal.seen.clear()
    (run,) = parse_grid({**doc, "policies": [{"name": "scores-real"}]}, loop_registry).runs
    results = list(generations(run, loop_registry))
    real = real_training_set(run, loop_registry)
    for t, seen in enumerate(ScoresReal.seen, start=1):
        previous = results[t - 1].model_state  # the model of generation t-1, by its own formula
        direct = multivariate_normal(previous["mean"], previous["cov"]).logpdf(real)
        np.testing.assert_allclose(seen, direct, rtol=1e-12)
    assert len(ScoresReal.seen) == 2
    MixSeesNoLikelihood.seen.clear()
    (run,) = parse_grid({**doc, "policies": [{"name": "undeclared"}]}, loop_registry).runs
    list(generations(run, loop_registry))
    assert MixSeesNoLikelihood.seen == [None, None]  # not declared, not handed: the kit would catch its use


def real_training_set(run, registry) -> np.ndarray:
    """The real training set of ``run``, as its dataset draws it from the run's seed."""
    dataset = registry.get("dataset", run.dataset.name).component(run.dataset.kwargs)
    return dataset.load(run.n_real, run.n_test, 0, stream(run.seed, "data")).train


def test_curation_shrinks_a_gaussians_variance_faster_than_mix(loop_registry):
    """Keeping the most likely quarter of the samples cuts the model's tails, so the fitted variance falls below
    mix's (which stays near the data's). In 2-D, |z|^2 of a sample is exponential with mean 2; the most likely
    quarter has |z|^2 < 2 ln(4/3), of mean 0.27: per coordinate 0.14 of the model's variance, so with as many
    real points v_t ~ (1 + 0.14 v_(t-1)) / 2, about 0.54 after 3 generations, against about 1 for mix."""
    seeds = range(20)
    common: dict[str, Any] = {
        "dataset": {"name": "gaussian", "params": {"dim": 2}},
        "model": {"name": "gaussian"},
        "metric": {"name": "variance"},
        "n_real": 200,
        "n_test": 10,
        "n_eval": 10,
        "generations": 3,
        "seeds": seeds,
    }
    traces = {}
    for name, params in (("mix", {"lambda": 1.0}), ("curate", {"lambda": 1.0, "oversample": 4.0})):
        runs = run_in_memory(loop_registry, policy={"name": name, "params": params}, **common)
        covariances = model_states(runs, "cov")[:, -1]  # (seeds, 2, 2) at generation 3
        traces[name] = np.trace(covariances, axis1=1, axis2=2)
    # paired by seed (same real data): the mean gap against its standard error, one-sided at z = 4 (p ~ 3e-5
    # were curation no different); the predicted gap of the traces, 2 * (1 - 0.54) = 0.9, is many standard errors
    # (each trace's sampling sd is about 2 * sqrt(2 / 400) = 0.14, so the gap's over 20 seeds about 0.05)
    gap = traces["mix"] - traces["curate"]
    assert gap.mean() > 4 * gap.std(ddof=1) / math.sqrt(len(gap))


class FaultyLikelihoodModel(GaussianModel):
    fault = "column"

    def log_prob(self, x):
        if self.fault == "writes":
            x[0] = 0.0
        values = super().log_prob(x)
        return values[:, None] if self.fault == "column" else np.where(np.arange(len(values)) == 1, np.nan, values)


class FaultyLikelihood(GaussianFamily):
    """A Gaussian whose log_prob breaks its contract (tests only)."""

    name = "faulty-likelihood"
    parameters = {"fault": Param("column", str, "how", choices=("column", "nan", "writes"))}

    def create(self, data, context):
        model = FaultyLikelihoodModel(data.sample_shape[0], 0, None)
        model.fault = self.params["fault"]
        return model


class ScoresOneCoordinate(ScoresReal):
    """Hands log_prob a column of the real set instead of its points (tests only)."""

    name = "scores-one-coordinate"

    def build(self, step):
        step.log_prob(step.real[:, 0])
        return TrainingSet(step.real, {"real": len(step.real)})


@pytest.mark.parametrize(
    ("model", "policy", "message"),
    [
        (
            {"name": "gaussian"},
            "scores-one-coordinate",
            r"policy 'scores-one-coordinate' at generation 1 passed log_prob shape \(30,\), expected an array \(n, 2\)",
        ),
        (
            {"name": "faulty-likelihood"},
            "scores-real",
            r"model 'faulty-likelihood' log_prob\(\), called by policy 'scores-real', at generation 1 returned "
            r"shape \(30, 1\), expected a float array \(30,\)",
        ),
        (
            {"name": "faulty-likelihood", "params": {"fault": "nan"}},
            "scores-real",
            r"model 'faulty-likelihood\[fault=nan\]' log_prob\(\), .* returned 1 NaN or \+inf values",
        ),
    ],
    ids=["policy-passes-a-column", "model-returns-a-column", "model-returns-nan"],
)
def test_the_loop_checks_what_goes_into_and_out_of_log_prob_naming_the_culprit(loop_registry, model, policy, message):
    doc = grid_doc(generations=1, n_real=30, datasets=[{"name": "gaussian", "params": {"dim": 2}}])
    (run,) = parse_grid({**doc, "models": [model], "policies": [{"name": policy}]}, loop_registry).runs
    with pytest.raises(ContractViolation, match=message):
        list(generations(run, loop_registry))


def test_the_model_sees_the_policys_points_read_only(loop_registry):
    doc = grid_doc(generations=1, n_real=30, datasets=[{"name": "gaussian", "params": {"dim": 2}}])
    models = [{"name": "faulty-likelihood", "params": {"fault": "writes"}}]
    (run,) = parse_grid({**doc, "models": models, "policies": [{"name": "scores-real"}]}, loop_registry).runs
    with pytest.raises(ValueError, match="read-only"):
        list(generations(run, loop_registry))
