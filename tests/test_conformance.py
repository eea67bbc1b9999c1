"""The conformance kit: every first-party component passes it, and broken components fail it saying what is wrong."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import pytest
from conftest import environment_registry
from test_text import write_text

from benchmark import Dataset, DataSplits, Metric, Model, ModelFamily, Param, Policy, TrainingSet
from benchmark.api.plugins import build_registry
from benchmark.testing import (
    Budget,
    Case,
    check_dataset_deterministic,
    check_dataset_loads,
    check_declaration,
    check_family_checkpoint,
    check_family_deterministic,
    check_family_fits,
    check_family_log_prob,
    check_family_warm_start,
    check_metric_deterministic,
    check_metric_direction,
    check_metric_identical,
    check_policy_builds,
    check_policy_deterministic,
    component_cases,
    conformance_cases,
)

#: Built at import, for the parameter lists (the `registry` fixture is the same, built later).
REGISTRY = environment_registry()

#: Settings that keep deep families tiny in CI (applied only where the family declares the parameter).
TINY = {
    "model:flow": {"depth": 2, "hidden": 16, "blocks": 1, "batch_size": 64},
    "model:ddpm": {"width": 8, "depth": 1, "timesteps": 20, "sampling_timesteps": 5, "batch_size": 32},
    "model:char-lm": {"embedding": 8, "hidden": 16, "batch_size": 32},
    "model:edm": {"width": 8, "depth": 1, "sampling_steps": 3, "batch_size": 32},
    "model:cfm": {"width": 32, "depth": 1, "sampling_steps": 3, "batch_size": 32},
    # feature metrics: flattened pixels, not Inception at 299x299 (0.2 s an image on a CPU)
    **{f"metric:{name}": {"extractor": "raw"} for name in ("fid", "kid")},
}
BUDGET = Budget(train_steps=5)


def _tiny_params() -> dict[str, dict]:
    out = {}
    for key, wanted in TINY.items():
        kind, name = key.split(":")
        entry = REGISTRY.entries[kind].get(name)
        if entry is not None:
            out[key] = {k: v for k, v in wanted.items() if k in entry.component.parameters}
    return out


#: Datasets read from the user's local copy (never downloaded): only their declarations can be checked here
#: (text-file reads a text the test writes, in test_text_component_conforms).
LOCAL_COPIES = {"image-folder", "mnist", "cifar10", "text-file"}


def _first_party_cases():
    cases = conformance_cases(REGISTRY, distribution="retrainbench", params=_tiny_params(), budget=BUDGET)
    out = []
    for p in cases:
        case = cast(Case, p.values[0])
        if case.kind == "dataset" and case.name in LOCAL_COPIES and case.check != "declaration":
            p = pytest.param(case, id=p.id, marks=[*p.marks, pytest.mark.skip(reason="reads a local copy")])
        elif "torch" in case.component.requires and case.check != "declaration":
            # torch families train real networks: a few seconds per check even with a tiny budget
            p = pytest.param(case, id=p.id, marks=[*p.marks, pytest.mark.slow])
        out.append(p)
    return out


FIRST_PARTY_CASES = _first_party_cases()


@pytest.mark.parametrize("case", FIRST_PARTY_CASES)
def test_first_party_component_conforms(case):
    case.run()


#: The text components, loaded by module name (the shared install may not know their entry points yet).
TEXT_MODULES = ("plugins.datasets.text", "plugins.families.ngram", "plugins.families.charlm", "plugins.metrics.text")
TEXT_CASES = [
    pytest.param(case, id=case.id, marks=[pytest.mark.slow] if "torch" in case.component.requires else [])
    for entry in build_registry(TEXT_MODULES, autoload=False)
    if entry.plugin in TEXT_MODULES
    for case in component_cases(entry.kind, entry.component, params=TINY.get(f"model:{entry.name}"), budget=BUDGET)
]


@pytest.mark.parametrize("case", TEXT_CASES)
def test_text_component_conforms(case, tmp_path):
    if case.name == "text-file":  # a text of its own: 40,000 characters make 625 windows of 64
        case = replace(case, params={"path": str(write_text(tmp_path / "text.txt", 40_000))})
    case.run()


def test_every_text_component_is_checked():
    assert {(cast(Case, p.values[0]).kind, cast(Case, p.values[0]).name) for p in TEXT_CASES} >= {
        ("dataset", "markov-text"),
        ("dataset", "text-file"),
        ("model", "ngram"),
        ("model", "char-lm"),
        ("metric", "perplexity"),
        ("metric", "source-kl"),
        ("metric", "tail-coverage"),
        ("metric", "tail-mass"),
        ("metric", "distinct-n"),
        ("metric", "vocab-coverage"),
    }


def test_every_first_party_component_is_checked():
    checked = {(p.values[0].kind, p.values[0].name) for p in FIRST_PARTY_CASES}
    first_party = {
        (e.kind, e.name)
        for e in REGISTRY
        if e.kind in ("dataset", "model", "policy", "metric") and REGISTRY.plugins[e.plugin][0] == "retrainbench"
    }
    assert checked == first_party
    # the analytic ones at least: a silently empty parametrisation would pass everything
    assert {("dataset", "gaussian"), ("model", "gaussian"), ("policy", "mix"), ("policy", "curate")} <= checked
    assert any(kind == "metric" for kind, _ in checked)


def test_cases_cover_each_check_once_per_data_kind():
    class TwoKinds(ModelFamily):
        """Vectors and images."""

        name = "two-kinds"
        provides = frozenset({"log_prob"})
        data_kinds = ("vector", "image")

        def create(self, data, context):
            raise NotImplementedError

    ids = [c.id for c in component_cases("model", TwoKinds)]
    assert ids == ["model-two-kinds-declaration"] + [
        f"model-two-kinds-{kind}-{check}"
        for kind in ("vector", "image")
        for check in ("fits", "deterministic", "warm-start", "checkpoint", "log-prob")
    ]


# ---------------------------------------------------------------- a correct family, then broken ones


class NormalModel(Model):
    """A diagonal Gaussian fit by gradient steps on its mean (so warm start matters), with a step counter."""

    def __init__(self, dim: int, steps: int) -> None:
        self.dim, self.steps = dim, steps
        self.mean, self.scale = np.zeros(dim), np.ones(dim)

    def fit(self, data, *, warm_start, rng):
        if not warm_start:
            self.mean = rng.standard_normal(self.dim)
        for _ in range(self.steps):
            self.mean = self.mean + 0.2 * (data.mean(axis=0) - self.mean)
        self.scale = data.std(axis=0)
        return {"distance": float(np.linalg.norm(self.mean - data.mean(axis=0)))}

    def sample(self, n, rng):
        return self.mean + self.scale * rng.standard_normal((n, self.dim))

    def log_prob(self, x):
        z = (x - self.mean) / self.scale
        return -0.5 * np.sum(z**2 + np.log(2 * np.pi * self.scale**2), axis=1)

    def state_dict(self):
        return {"mean": self.mean.copy(), "scale": self.scale.copy()}

    def load_state_dict(self, state):
        self.mean, self.scale = np.array(state["mean"]), np.array(state["scale"])


class NormalFamily(ModelFamily):
    """A correct family: diagonal Gaussian, iterative mean."""

    name = "normal"
    provides = frozenset({"log_prob"})
    warm_start_default = True

    def create(self, data, context):
        return self.model_class(data.sample_shape[0], context.steps(None, 20))

    model_class = NormalModel


def family(name: str, model: type[Model] | None = None, **attributes) -> type[ModelFamily]:
    """NormalFamily with another model class or other class attributes."""
    doc = attributes.pop("__doc__", "A deliberately broken family.")
    return type(
        name, (NormalFamily,), {"__doc__": doc, "name": name, "model_class": model or NormalModel, **attributes}
    )


class WideSamples(NormalModel):
    def sample(self, n, rng):
        return np.hstack([super().sample(n, rng), np.zeros((n, 1))])


class IntegerSamples(NormalModel):
    def sample(self, n, rng):
        return np.round(super().sample(n, rng)).astype(int)


class UnseededSamples(NormalModel):
    def sample(self, n, rng):
        return super().sample(n, np.random.default_rng())


class FixedSeedSamples(NormalModel):
    def sample(self, n, rng):
        return super().sample(n, np.random.default_rng(0))


class IgnoresWarmStart(NormalModel):
    def fit(self, data, *, warm_start, rng):
        return super().fit(data, warm_start=False, rng=rng)


class ForgetsCheckpoint(NormalModel):
    def load_state_dict(self, state):
        pass


class HiddenCounter(NormalModel):
    """Keeps a generation counter out of its state: a resumed run would fit differently."""

    fits = 0

    def fit(self, data, *, warm_start, rng):
        self.fits += 1
        stats = super().fit(data, warm_start=warm_start, rng=rng)
        self.mean = self.mean * (1 + 0.01 * self.fits)
        return stats


class ColumnLogProb(NormalModel):
    def log_prob(self, x):
        return super().log_prob(x)[:, None]


class InfiniteLogProb(NormalModel):
    def log_prob(self, x):
        lp = super().log_prob(x)
        lp[0] = -np.inf
        return lp


class NonFiniteLoss(NormalModel):
    def fit(self, data, *, warm_start, rng):
        super().fit(data, warm_start=warm_start, rng=rng)
        return {"loss": float("nan")}


class BrightImages(Model):
    """An image model whose samples leave [0, 1]."""

    def __init__(self, shape):
        self.shape = shape

    def fit(self, data, *, warm_start, rng):
        return {}

    def sample(self, n, rng):
        return 2.0 * rng.random((n, *self.shape))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class BrightImageFamily(ModelFamily):
    """Images out of range."""

    name = "bright"
    data_kinds = ("image",)

    def create(self, data, context):
        return BrightImages(data.sample_shape)


def test_a_correct_family_passes_every_check():
    for case in component_cases("model", NormalFamily, budget=Budget(train_steps=5)):
        case.run()


BROKEN_FAMILIES = [
    (family("wide", WideSamples), check_family_fits, r"sample\(32\) after fit has shape \(32, 3\), expected \(32, 2\)"),
    (family("ints", IntegerSamples), check_family_fits, r"has dtype int64, expected a float array"),
    (family("nan-loss", NonFiniteLoss), check_family_fits, r"fit\(\) statistic 'loss' is not finite"),
    (BrightImageFamily, check_family_fits, r"image samples after fit range over \[.*\], expected \[0, 1\]"),
    (family("unseeded", UnseededSamples), check_family_deterministic, r"same rng seeds gave different samples"),
    (family("fixed-seed", FixedSeedSamples), check_family_deterministic, r"sample\(\) ignores its rng"),
    (family("no-warm", IgnoresWarmStart), check_family_warm_start, r"the warm start is ignored"),
    (
        family("forgets", ForgetsCheckpoint),
        check_family_checkpoint,
        r"restored from its checkpoint samples differently",
    ),
    (family("counter", HiddenCounter), check_family_checkpoint, r"state_dict\(\) misses something the next fit uses"),
    (
        family("column", ColumnLogProb),
        check_family_log_prob,
        r"log_prob of 32 test points has shape \(32, 1\), expected",
    ),
    (family("inf", InfiniteLogProb), check_family_log_prob, r"log_prob of test points has 1 non-finite values"),
]


@pytest.mark.parametrize(
    ("component", "check", "message"), BROKEN_FAMILIES, ids=[c.name for c, _, _ in BROKEN_FAMILIES]
)
def test_a_broken_family_fails_saying_what_is_wrong(component, check, message):
    kind = component.data_kinds[0]
    with pytest.raises(AssertionError, match=message):
        check(component(), kind, Budget(train_steps=5))
    with pytest.raises(AssertionError, match=f"'{component.name}'"):  # and it names the culprit
        check(component(), kind, Budget(train_steps=5))


def test_a_family_is_checked_only_on_the_data_it_declares():
    with pytest.raises(AssertionError, match=r"checked on 'image' data, but it declares data_kinds=\('vector',\)"):
        check_family_fits(NormalFamily(), "image")


# ---------------------------------------------------------------- declarations


class NoDoc(NormalFamily):
    name = "no-doc"


NoDoc.__doc__ = None


class BadDefault(NormalFamily):
    """Its default is out of its own range."""

    name = "bad-default"
    parameters = {"steps": Param(0, int, "steps", low=1)}


class NoHint(NormalFamily):
    """Needs a module and says nothing about installing it."""

    name = "no-hint"
    requires = ("some_module",)


class VectorString(NormalFamily):
    """data_kinds is a string, not a tuple."""

    name = "vector-string"
    data_kinds = "vector"


class AcrossDatasets(NormalFamily):
    """Declares training runs of different datasets together, which no family may."""

    name = "across-datasets"
    trains_together_across = ("policy", "dataset")

    def fit_together(self, models, datasets, *, warm_start, rngs):
        return [m.fit(d, warm_start=warm_start, rng=r) for m, d, r in zip(models, datasets, rngs, strict=True)]


class AcrossWithoutFitTogether(NormalFamily):
    """Declares what its runs train together across, but trains none together."""

    name = "across-alone"
    trains_together_across = ("policy",)


class WordyDirection(Metric):
    """Direction as a word."""

    name = "wordy"
    higher_is_better = "lower"

    def compute(self, evaluation):
        return 0.0


class UnknownNeed(Metric):
    """Needs something no evaluation provides."""

    name = "unknown-need"
    needs = frozenset({"samples", "labels"})

    def compute(self, evaluation):
        return 0.0


class NeedsTheDensity(Policy):
    """Needs what a policy cannot see."""

    name = "needs-density"
    needs = frozenset({"density"})

    def build(self, step):
        return TrainingSet(step.real, {"real": len(step.real)})


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (NeedsTheDensity, r"needs must be a frozenset drawn from \['log_prob'\], got frozenset\(\{'density'\}\)"),
        (NoDoc, r"has no docstring; its first line is what `retrainbench list` shows"),
        (BadDefault, r"the default of parameter 'steps' violates its own declaration: must be >= 1 \(got 0\)"),
        (NoHint, r"declares requires=\('some_module',\) but no install_hint"),
        (VectorString, r"data_kinds must be a non-empty tuple of vector/image/sequence, got 'vector'"),
        (
            AcrossDatasets,
            r"trains_together_across must be a tuple drawn from \('policy',\), got \('policy', 'dataset'\)",
        ),
        (AcrossWithoutFitTogether, r"declares trains_together_across=\('policy',\) but has no fit_together"),
        (WordyDirection, r"higher_is_better must be True, False or None, got 'lower'"),
        (UnknownNeed, r"needs must be a set drawn from .*, got frozenset\("),
    ],
    ids=lambda v: v.name if isinstance(v, type) else "",
)
def test_a_bad_declaration_fails_saying_what_is_wrong(component, message):
    with pytest.raises(AssertionError, match=message):
        check_declaration(component)


# ---------------------------------------------------------------- policies


class HalfAndHalf(Policy):
    """A correct policy: half the real set plus as many samples, with the draws accumulated in its state."""

    name = "half"

    def build(self, step):
        n = len(step.real)
        keep = step.rng.choice(n, size=n // 2, replace=False)
        new = step.sample(n // 2)
        old = step.state.get("kept")
        kept = new if old is None else np.concatenate([old, new])
        return TrainingSet(
            np.concatenate([step.real[np.sort(keep)], kept]), {"real": n // 2, "synthetic": len(kept)}, {"kept": kept}
        )


def test_a_correct_policy_passes_every_check():
    for case in component_cases("policy", HalfAndHalf):
        case.run()
    check_policy_builds(HalfAndHalf(), expected=lambda t, n: {"real": n // 2, "synthetic": t * (n // 2)})


class Overcounts(HalfAndHalf):
    def build(self, step):
        built = super().build(step)
        return TrainingSet(built.data, {**built.composition, "real": built.composition["real"] + 1}, built.state)


class CallsSamplesReal(Policy):
    """Labels the model's samples as real data."""

    name = "liar"

    def build(self, step):
        return TrainingSet(step.sample(len(step.real)), {"real": len(step.real)})


class Jitters(Policy):
    """Adds noise to the real points and still calls them real."""

    name = "jitter"

    def build(self, step):
        return TrainingSet(step.real + 1e-9, {"real": len(step.real)})


class ShufflesInPlace(Policy):
    """Shuffles the caller's real array."""

    name = "in-place"

    def build(self, step):
        step.rng.shuffle(step.real)
        return TrainingSet(step.real, {"real": len(step.real)})


class UnseededPolicy(HalfAndHalf):
    def build(self, step):
        step = type(step)(step.generation, step.real, step.pool, step.sample, step.state, np.random.default_rng())
        return super().build(step)


class RemembersInAttribute(Policy):
    """Accumulates samples on the instance instead of in TrainingSet.state: lost on resume."""

    name = "forgetful"

    def __init__(self, params=None):
        super().__init__(params)
        self.kept = np.zeros((0, 2))

    def build(self, step):
        self.kept = np.concatenate([self.kept, step.sample(10)])
        return TrainingSet(
            np.concatenate([step.real, self.kept]), {"real": len(step.real), "synthetic": len(self.kept)}
        )


class StateNotArrays(HalfAndHalf):
    def build(self, step):
        built = super().build(step)
        return TrainingSet(built.data, built.composition, {"kept": built.state["kept"], "note": {"a": object()}})


BROKEN_POLICIES = [
    (
        Overcounts,
        check_policy_builds,
        r"composition \{'real': 26, 'synthetic': 25\} at generation 1 adds up to 51, "
        r"but the training set has 50 points",
    ),
    (
        CallsSamplesReal,
        check_policy_builds,
        r"says 50 real points, but 0 rows of the training set are real training points",
    ),
    (Jitters, check_policy_builds, r"says 50 real points, but 0 rows .* are real training points"),
    (ShufflesInPlace, check_policy_builds, r"'in-place' \(in check_policy_builds\) wrote into an input array"),
    (
        UnseededPolicy,
        check_policy_deterministic,
        r"generation 1 differs when the policy state goes through a checkpoint",
    ),
    (
        RemembersInAttribute,
        check_policy_deterministic,
        r"generation 2 differs .*keep everything carried over in TrainingSet.state",
    ),
    (
        StateNotArrays,
        check_policy_deterministic,
        r"policy state at generation 2 cannot be saved by benchmark.run.checkpoint: "
        r"TypeError: state entry 'note/a' is not numeric",
    ),
]


@pytest.mark.parametrize(
    ("component", "check", "message"), BROKEN_POLICIES, ids=[c.__name__ for c, _, _ in BROKEN_POLICIES]
)
def test_a_broken_policy_fails_saying_what_is_wrong(component, check, message):
    with pytest.raises(AssertionError, match=message):
        check(component())


def test_a_policy_is_held_to_its_documented_composition():
    with pytest.raises(
        AssertionError,
        match=r"composition at generation 2 is \{'real': 25, 'synthetic': 50\}, "
        r"documented as \{'real': 25, 'synthetic': 25\}",
    ):
        check_policy_builds(HalfAndHalf(), expected=lambda t, n: {"real": n // 2, "synthetic": n // 2})


# ---------------------------------------------------------------- metrics


class MeanGap(Metric):
    """A correct distance: how far the sample mean is from the test mean."""

    name = "mean-gap"
    higher_is_better = False
    optimum = 0.0

    def compute(self, evaluation):
        return float(np.linalg.norm(evaluation.samples.mean(axis=0) - evaluation.test.mean(axis=0)))


class BackwardsGap(MeanGap):
    """Says higher is better for a distance."""

    name = "backwards"
    higher_is_better = True
    optimum = None


class OffsetGap(MeanGap):
    """Is not at its optimum on identical data."""

    name = "offset"

    def compute(self, evaluation):
        return super().compute(evaluation) + 0.5


class NanMetric(MeanGap):
    """Returns NaN."""

    name = "nan"

    def compute(self, evaluation):
        return float("nan")


class ArrayMetric(MeanGap):
    """Returns an array."""

    name = "array"

    def compute(self, evaluation):
        return evaluation.samples.mean(axis=0)


class NoisyMetric(MeanGap):
    """Uses an unseeded generator."""

    name = "noisy"
    optimum = None

    def compute(self, evaluation):
        return super().compute(evaluation) + np.random.default_rng().random()


class RatioOfSpreads(Metric):
    """Closer to 1 is better, no direction: sample spread over test spread."""

    name = "spread-ratio"
    higher_is_better = None
    optimum = 1.0

    def compute(self, evaluation):
        return float(evaluation.samples.std() / evaluation.test.std())


class InvertedRatio(RatioOfSpreads):
    """Claims optimum 1 but is 0 on identical data."""

    name = "inverted-ratio"

    def compute(self, evaluation):
        return super().compute(evaluation) - 1.0


class LikelihoodGap(Metric):
    """Mean test log-likelihood, declared lower-is-better by mistake."""

    name = "log-likelihood"
    higher_is_better = False
    needs = frozenset({"log_prob"})

    def compute(self, evaluation):
        return float(np.mean(evaluation.model.log_prob(evaluation.test)))


def test_correct_metrics_pass_every_check():
    for metric in (MeanGap, RatioOfSpreads):
        for case in component_cases("metric", metric):
            case.run()


BROKEN_METRICS = [
    (
        BackwardsGap,
        check_metric_direction,
        r"higher_is_better=True says good models score higher, but samples identical "
        r"to the test set score 0\.0 and degraded samples .* score \d",
    ),
    (LikelihoodGap, check_metric_direction, r"higher_is_better=False says good models score lower"),
    (OffsetGap, check_metric_identical, r"on identical inputs it gives 0\.5, not its declared optimum 0\.0"),
    (
        InvertedRatio,
        check_metric_identical,
        r"on identical inputs it gives 0\.0, not its declared optimum 1\.0 \(higher_is_better=None",
    ),
    (NanMetric, check_metric_identical, r"compute\(\) on identical inputs returned nan, expected a finite number"),
    (
        ArrayMetric,
        check_metric_identical,
        r"compute\(\) on identical inputs returned array\(.*expected a float or a Measured",
    ),
    (NoisyMetric, check_metric_deterministic, r"two evaluations on identical inputs with the same rng seed gave"),
]


@pytest.mark.parametrize(
    ("component", "check", "message"), BROKEN_METRICS, ids=[c.__name__ for c, _, _ in BROKEN_METRICS]
)
def test_a_broken_metric_fails_saying_what_is_wrong(component, check, message):
    with pytest.raises(AssertionError, match=message):
        check(component())


# ---------------------------------------------------------------- datasets


class Ring(Dataset):
    """A correct dataset: points on a noisy unit circle, drawn from the rng it is given."""

    name = "ring"

    def draw(self, n, rng):
        angle = rng.uniform(0, 2 * np.pi, n)
        return np.column_stack([np.cos(angle), np.sin(angle)]) + 0.1 * rng.standard_normal((n, 2))


class GlobalNoiseRing(Ring):
    """Draws its noise from numpy's global random state."""

    name = "global-noise"

    def draw(self, n, rng):
        return super().draw(n, rng) + np.random.normal(size=(n, 2))


class ShortTest(Ring):
    """Hands back one test point too few."""

    name = "short-test"

    def load(self, n_train, n_test, n_pool, rng):
        splits = super().load(n_train, n_test, n_pool, rng)
        return DataSplits(splits.train, splits.test[1:], splits.pool, splits.kind)


class PoolFirst(Ring):
    """Draws the pool before the training set, so a longer run changes its real data."""

    name = "pool-first"

    def load(self, n_train, n_test, n_pool, rng):
        pool = self.draw(n_pool, rng)
        data = self.draw(n_train + n_test, rng)
        return DataSplits(data[:n_train], data[n_train:], pool, self.kind)


def test_a_correct_dataset_passes_every_check():
    cases = component_cases("dataset", Ring)
    assert [c.check for c in cases] == ["declaration", "loads", "deterministic"]
    for case in cases:
        case.run()


BROKEN_DATASETS = [
    (
        GlobalNoiseRing,
        check_dataset_loads,
        r"GlobalNoiseRing 'global-noise' \(in check_dataset_loads\) used numpy's global random state",
    ),
    (GlobalNoiseRing, check_dataset_deterministic, r"used numpy's global random state; draw from the rng"),
    (ShortTest, check_dataset_loads, r"the test split has shape \(199, 2\), expected 200 vector points"),
    (PoolFirst, check_dataset_deterministic, r"a larger pool changed the train or test split"),
]


@pytest.mark.parametrize(
    ("component", "check", "message"), BROKEN_DATASETS, ids=[f"{c.name}-{f.__name__}" for c, f, _ in BROKEN_DATASETS]
)
def test_a_broken_dataset_fails_saying_what_is_wrong(component, check, message):
    with pytest.raises(AssertionError, match=message):
        check(component())


# ---------------------------------------------------------------- the loop's run-time rules, in every check


class GlobalSamples(NormalModel):
    def sample(self, n, rng):
        return self.mean + self.scale * np.random.standard_normal((n, self.dim))


class GlobalPolicy(HalfAndHalf):
    """Picks its real points with numpy's global random state."""

    name = "global-policy"

    def build(self, step):
        built = super().build(step)
        np.random.shuffle(built.data.copy())
        return built


class SlicedGap(MeanGap):
    """A sliced distance whose projections come from numpy's global random state: 0 on identical inputs anyway."""

    name = "global-sliced"

    def compute(self, evaluation):
        directions = np.random.standard_normal((8, evaluation.samples.shape[1]))
        gaps = np.sort(evaluation.samples @ directions.T, axis=0) - np.sort(evaluation.test @ directions.T, axis=0)
        return float(np.mean(np.abs(gaps)))


class UnseededSlicedGap(SlicedGap):
    """The same, with projections from an unseeded generator: only non-identical inputs show it."""

    name = "unseeded-sliced"

    def compute(self, evaluation):
        rng = np.random.default_rng()
        directions = rng.standard_normal((8, evaluation.samples.shape[1]))
        gaps = np.sort(evaluation.samples @ directions.T, axis=0) - np.sort(evaluation.test @ directions.T, axis=0)
        return float(np.mean(np.abs(gaps)))


class CentresInPlace(MeanGap):
    """Centres the samples it is handed in place."""

    name = "centres-in-place"

    def compute(self, evaluation):
        evaluation.samples -= evaluation.test.mean(axis=0)
        return 0.0


RUN_TIME_RULES = [
    (family("global-samples", GlobalSamples), "model", "fits", r"\(in check_family_fits\) used numpy's global random"),
    (GlobalPolicy, "policy", "builds", r"'global-policy' \(in check_policy_builds\) used numpy's global random state"),
    (SlicedGap, "metric", "identical", r"'global-sliced' \(in check_metric_identical\) used numpy's global random"),
    (SlicedGap, "metric", "deterministic", r"used numpy's global random state"),
    (
        UnseededSlicedGap,
        "metric",
        "deterministic",
        r"two evaluations on degraded samples with the same rng seed gave",
    ),
    (CentresInPlace, "metric", "identical", r"'centres-in-place' \(in check_metric_identical\) wrote into an input"),
]


@pytest.mark.parametrize(
    ("component", "kind", "check", "message"), RUN_TIME_RULES, ids=[f"{c.name}-{ch}" for c, _, ch, _ in RUN_TIME_RULES]
)
def test_the_kit_enforces_the_loops_run_time_rules(component, kind, check, message):
    """Global random state and writes into inputs fail the check, as they fail a run (benchmark.run.global_random)."""
    [case] = [c for c in component_cases(kind, component, budget=Budget(train_steps=5)) if c.check == check]
    with pytest.raises(AssertionError, match=message):
        case.run()


def test_unseeded_sliced_gap_passes_on_identical_inputs_alone():
    """Why determinism is also checked on degraded samples: on identical ones it is 0 whatever the projections."""
    check_metric_identical(UnseededSlicedGap())


# ---------------------------------------------------------------- the pytest plugin, as a plugin author uses it

AUTHOR_PLUGIN = '''
"""A plugin module as an author writes it: one good metric and one with its direction backwards."""
import numpy as np
from benchmark import Metric, hookimpl


class Good(Metric):
    """Mean gap."""
    name = "author-good"
    optimum = 0.0

    def compute(self, evaluation):
        return float(np.linalg.norm(evaluation.samples.mean(0) - evaluation.test.mean(0)))


class Backwards(Good):
    """Mean gap, higher declared better."""
    name = "author-backwards"
    higher_is_better = True
    optimum = None


@hookimpl
def register_metrics(register):
    register(Good)
    register(Backwards)
'''

#: pytest in a child process, as a plugin author runs it in their package.
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")

AUTHOR_TEST = """
import pytest

pytestmark = pytest.mark.retrainbench_conformance(modules=["author_plugin"])


def test_conformance(conformance_case):
    conformance_case.run()


def test_fixtures(reference_vectors, reference_images, conformance_budget, retrainbench_registry):
    assert reference_vectors.train.shape == (conformance_budget.n_train, 2)
    assert reference_images.train.shape[1:] == (1, 8, 8)
    assert retrainbench_registry.get("dataset", "gaussian").plugin == "toy-datasets"
"""


def test_the_pytest_plugin_runs_the_suite_for_a_plugin_author(tmp_path: Path, run_cli):
    """The pytest11 entry point gives an author's tests the fixtures and the marker without any import."""
    (tmp_path / "author_plugin.py").write_text(AUTHOR_PLUGIN)
    (tmp_path / "test_author.py").write_text(AUTHOR_TEST)
    # the author's folder first, then this checkout if it comes from PYTHONPATH (its kit, not the installed one)
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    code, out, err = run_cli(["-rA", "test_author.py"], env={"PYTHONPATH": path}, command=PYTEST)
    assert code == 1, out + err
    assert "PASSED test_author.py::test_fixtures" in out
    for check in ("declaration", "identical", "direction", "deterministic"):
        assert f"PASSED test_author.py::test_conformance[metric-author-good-{check}]" in out
    for check in ("declaration", "identical", "deterministic"):
        assert f"PASSED test_author.py::test_conformance[metric-author-backwards-{check}]" in out
    assert "FAILED test_author.py::test_conformance[metric-author-backwards-direction]" in out
    assert "higher_is_better=True says good models score higher" in out
    assert "1 failed, 8 passed" in out


def test_the_marker_is_required_and_must_match_something(tmp_path: Path, run_cli):
    (tmp_path / "test_unmarked.py").write_text("def test_x(conformance_case):\n    conformance_case.run()\n")
    (tmp_path / "test_nothing.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.retrainbench_conformance(distribution="not-installed-anywhere")
        def test_x(conformance_case):
            conformance_case.run()
    """)
    )
    code, out, _ = run_cli([], command=PYTEST)
    assert code != 0
    assert "conformance_case fixture needs @pytest.mark.retrainbench_conformance" in out
    assert "no components match {'distribution': 'not-installed-anywhere'}" in out


def test_an_unavailable_component_is_skipped_with_its_install_hint():
    class NeedsMissing(NormalFamily):
        """Needs a module that is not installed."""

        name = "needs-missing"
        requires = ("surely_not_installed_module",)
        install_hint = "pip install surely-not-installed"

    import types

    from benchmark import hookimpl

    module = types.ModuleType("needs_missing_plugin")
    module.register_model_families = hookimpl(lambda register: register(NeedsMissing))
    registry = build_registry([module], autoload=False)
    cases = conformance_cases(registry, plugins=["needs_missing_plugin"])
    assert cases and all(p.marks and p.marks[0].name == "skip" for p in cases)
    assert "pip install surely-not-installed" in cases[0].marks[0].kwargs["reason"]


def test_options_reach_the_checks():
    """``iterative=False`` relaxes the warm-start check; ``tolerance`` the optimum check."""
    broken = family("no-warm-relaxed", IgnoresWarmStart)
    [case] = [c for c in component_cases("model", broken, options={"iterative": False}) if c.check == "warm-start"]
    case.run()
    [case] = [c for c in component_cases("metric", OffsetGap, options={"tolerance": 0.6}) if c.check == "identical"]
    case.run()


def test_budget_context_reaches_the_family():
    seen: list[Mapping] = []

    class Spy(NormalFamily):
        """Records the context."""

        name = "spy"

        def create(self, data, context):
            seen.append({"steps": context.steps(None, 1000), "device": context.device})
            return super().create(data, context)

    check_family_fits(Spy(), "vector", Budget(train_steps=3))
    assert seen == [{"steps": 3, "device": "cpu"}]
