"""Text: the sequence data kind through the loop, the store, the policies and the report; markov-text, text-file,
ngram (with its closed form under replace) and the text metrics."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest

from benchmark import Evaluation, Model, ModelFamily, RunContext, hookimpl
from benchmark.api.components import DataSplits
from benchmark.api.kinds import decode
from benchmark.api.params import ParamError
from benchmark.api.plugins import build_registry
from benchmark.errors import ContractViolation
from benchmark.run.memory import run_in_memory
from benchmark.run.seeding import stream
from benchmark.run.store import Store
from plugins.datasets.text import MarkovSource, MarkovText, TextFile
from plugins.families.ngram import NGram, NGramModel
from plugins.metrics.text import NextTokens, Perplexity, SourceKL, TailCoverage, VocabCoverage, ngrams

TEXT_MODULES = ("plugins.datasets.text", "plugins.families.ngram", "plugins.metrics.text")
DATASET = {"name": "markov-text", "params": {"vocab": 12, "order": 1, "length": 8}}


def text_registry(*extra: types.ModuleType):
    return build_registry([*TEXT_MODULES, "plugins.policies", *extra], autoload=False)


def write_text(path: Path, characters: int, seed: int = 0) -> Path:
    """Sentences of random words over a small alphabet, with one non-ASCII letter: text a test owns."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("abcdeéfghij"), size=rng.integers(1, 7))) for _ in range(40)]
    text = ""
    while len(text) < characters:
        text += " ".join(rng.choice(words, size=8)) + ".\n"
    path.write_text(text[:characters], encoding="utf-8")
    return path


# ---------------------------------------------------------------- the sequence kind in the loop


class _Bad(Model):
    def __init__(self, what: str) -> None:
        self.what = what

    def fit(self, data, *, warm_start, rng):
        return {}

    def sample(self, n, rng):
        return np.full((n, 8), 0.5) if self.what == "floats" else np.full((n, 8), 12, dtype=np.int64)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _bad_family_module(what: str) -> types.ModuleType:
    class Bad(ModelFamily):
        """Returns the wrong samples for sequence data."""

        name = "bad-tokens"
        data_kinds = ("sequence",)

        def create(self, data: DataSplits, context: RunContext) -> Model:
            return _Bad(what)

    module = types.ModuleType(f"bad_tokens_{what}")
    module.register_model_families = hookimpl(lambda register: register(Bad))  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("floats", r"returned dtype float64, expected integer token ids in \[0, 12\)"),
        ("ids", r"returned token ids in \[12, 12\], outside the vocabulary \[0, 12\)"),
    ],
)
def test_the_loop_refuses_samples_that_are_not_token_ids_of_the_vocabulary(what, message):
    registry = text_registry(_bad_family_module(what))
    with pytest.raises(ContractViolation, match=rf"model 'bad-tokens' sample\(20\) at generation 0 {message}"):
        run_in_memory(
            registry,
            dataset=DATASET,
            model={"name": "bad-tokens"},
            policy={"name": "replace"},
            metric={"name": "vocab-coverage"},
            n_real=20,
            n_test=20,
            n_eval=20,
            generations=1,
            seeds=[0],
        )


FIRST_PARTY_POLICIES = ("mix", "replace", "accumulate", "fresh", "accumulate-subsample", "curate")


@pytest.mark.parametrize("policy", FIRST_PARTY_POLICIES)
def test_every_first_party_policy_builds_training_sets_of_token_ids(policy):
    registry = text_registry()
    assert set(registry.entries["policy"]) == set(FIRST_PARTY_POLICIES)  # a new policy must join this test
    (chain,) = run_in_memory(
        registry,
        dataset=DATASET,
        model={"name": "ngram"},
        policy={"name": policy},
        metric={"name": "vocab-coverage"},
        n_real=40,
        n_test=40,
        n_eval=40,
        generations=2,
        seeds=[0],
    )
    for result in chain[1:]:
        assert result.record["training_size"] == sum(result.record["composition"].values()) > 0
        for array in result.policy_state.values():  # accumulated samples stay token ids
            assert np.issubdtype(array.dtype, np.integer)
        assert result.gallery is not None and result.gallery.dtype.kind == "U"  # kept decoded for the report


def test_a_text_grid_stores_integer_state_and_decoded_samples_and_the_report_shows_them(run_cli, tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'name = "text"\ngenerations = 2\nseeds = [0]\nn_real = 30\nn_test = 30\nn_eval = 30\n'
        '[[datasets]]\nname = "markov-text"\nparams = { vocab = 12, length = 8 }\n'
        '[[models]]\nname = "ngram"\n[[policies]]\nname = "accumulate"\n[[metrics]]\nname = "perplexity"\n'
    )
    env = {"RETRAINBENCH_PLUGINS": ",".join(TEXT_MODULES)}
    done = run_cli(["run", grid, "--store", "store", "--executor", "inline", "--no-progress"], env=env)
    assert done.code == 0, done.err
    store = Store(tmp_path / "store")
    (run_id,) = [p.name for p in (tmp_path / "store" / "runs").iterdir()]
    resume = store.resume_point(run_id)
    assert resume is not None and resume.policy_state["synthetic"].dtype == np.int64
    assert resume.model_state["counts_1"].dtype == np.int64
    kept = store.gallery(run_id, 2)
    assert kept is not None and kept.dtype.kind == "U" and len(kept) == 24
    done = run_cli(["report", "--store", "store", "--out", "report"], env=env)
    assert done.code == 0, done.err
    assert f'<pre class="sample-text">{kept[0]}' in (tmp_path / "report" / "index.html").read_text()


def test_the_kit_refuses_sequence_splits_without_a_vocabulary_or_with_ids_beyond_it():
    from benchmark import Dataset
    from benchmark.testing import check_dataset_loads

    class Unnamed(Dataset):
        """Token ids with no text."""

        name = "unnamed-tokens"
        kind = "sequence"

        def draw(self, n, rng):
            return rng.integers(0, 5, size=(n, 4))

    class Short(Unnamed):
        """Ids up to 4, a vocabulary of 3."""

        name = "short-vocabulary"

        def vocabulary(self):
            return ("a", "b", "c")

    with pytest.raises(AssertionError, match="sequence splits need a vocabulary"):
        check_dataset_loads(Unnamed())
    with pytest.raises(AssertionError, match=r"the train split has token ids in \[0, 4\], outside the vocabulary"):
        check_dataset_loads(Short())


# ---------------------------------------------------------------- datasets


def test_markov_text_log_density_is_a_distribution_over_all_sequences():
    dataset = MarkovText({"vocab": 3, "order": 2, "length": 4, "source_seed": 5})
    every = np.array(np.meshgrid(*[range(3)] * 4, indexing="ij")).reshape(4, -1).T
    assert math.isclose(float(np.sum(np.exp(dataset.log_density(every)))), 1.0, rel_tol=1e-12)


def test_markov_text_draws_follow_its_exact_transition_probabilities():
    source = MarkovSource(vocab=5, order=1, zipf=1.1, spread=1.0, seed=3)
    x = source.draw(20000, 6, np.random.default_rng(0))
    after = x[:, 4][x[:, 3] == 0]  # the next token after token 0
    observed = np.bincount(after, minlength=5) / len(after)
    expected = np.exp(source.log_next[0])
    se = np.sqrt(expected * (1 - expected) / len(after))
    assert np.all(np.abs(observed - expected) < 4 * se)  # binomial standard errors, fixed seed


def test_the_source_seed_is_the_language_and_the_run_seed_only_the_draws():
    a, b = MarkovText({"source_seed": 0}), MarkovText({"source_seed": 1})
    assert not np.array_equal(a.source.log_next, b.source.log_next)
    assert np.array_equal(a.source.log_next, MarkovText({"source_seed": 0}).source.log_next)


@pytest.mark.parametrize("tokens", ["char", "byte"])
def test_text_file_windows_decode_back_to_the_text(tmp_path, tokens):
    path = write_text(tmp_path / "book.txt", 5000)
    dataset = TextFile({"path": str(path), "tokens": tokens, "length": 50})
    splits = dataset.load(40, 20, 10, stream(0, "data"))
    text = path.read_text(encoding="utf-8")
    raw = text if tokens == "char" else text.encode("utf-8").decode("latin-1")
    windows = {raw[i : i + 50] for i in range(0, len(raw) - 49, 50)}
    decoded = decode(np.concatenate([splits.train, splits.test, splits.pool]), splits.vocabulary)
    assert set(decoded) <= windows and len(set(decoded)) == 70  # distinct, non-overlapping windows


def test_text_file_finds_the_shipped_text_by_a_relative_path_and_the_wheel_ships_it(tmp_path, monkeypatch):
    import tomllib

    from plugins.datasets.text import SHIPPED

    monkeypatch.chdir(tmp_path)  # no us-founding here: the shipped folder is used
    shipped = TextFile({"path": "us-founding", "length": 32})
    assert shipped.files() == sorted((SHIPPED / "us-founding").glob("*.txt")) and len(shipped.files()) == 2
    assert (
        decode(shipped.windows[:1], shipped.vocabulary())[0]
        in (SHIPPED / "us-founding" / "constitution.txt").read_text()
    )
    (tmp_path / "us-founding").mkdir()
    write_text(tmp_path / "us-founding" / "mine.txt", 100)
    assert [p.name for p in TextFile({"path": "us-founding"}).files()] == ["mine.txt"]  # the working directory first
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["plugins.datasets"]
    packaged = {p for pattern in patterns for p in SHIPPED.parent.glob(pattern)}
    assert set(SHIPPED.rglob("*.txt")) | {SHIPPED / "README.md"} <= packaged


def test_text_file_reads_a_folder_and_refuses_too_little_or_non_utf8_text(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    write_text(folder / "a.txt", 3000, seed=1)
    write_text(folder / "b.txt", 3000, seed=2)
    assert len(TextFile({"path": str(folder), "length": 100}).windows) == 60  # 6001 characters joined by "\n"
    with pytest.raises(ParamError, match="holds 60 windows of 100 tokens, fewer than n_real \\+ n_test = 80"):
        TextFile.check_sizes({"path": str(folder), "tokens": "char", "length": 100}, {"n_real": 40, "n_test": 40})
    (folder / "c.txt").write_bytes(b"caf\xe9")
    with pytest.raises(ParamError, match=r"c.txt is not UTF-8"):
        _ = TextFile({"path": str(folder)}).windows


# ---------------------------------------------------------------- ngram: the closed form under replace


def test_ngram_under_replace_loses_the_expected_number_of_distinct_tokens():
    """A token with count c among N training tokens (k = 0, n = 1: a categorical of the counts) is drawn again
    among the N tokens of the next training set with probability 1 - (1 - c/N)^N: Wright-Fisher resampling.
    So the expected number lost is sum over the present tokens of (1 - c/N)^N; checked over many seeds."""
    dataset = MarkovText({"vocab": 60, "zipf": 1.5, "length": 10})
    family = NGram({"n": 1, "k": 0.0})
    gaps = []
    for seed in range(300):
        splits = dataset.load(30, 1, 0, stream(seed, "data"))
        model = family.create(splits, RunContext(seed=seed))
        model.fit(splits.train, warm_start=False, rng=stream(seed, 0, "fit"))
        counts = np.bincount(splits.train.ravel(), minlength=60)
        tokens = splits.train.size
        expected = float(np.sum((1 - counts[counts > 0] / tokens) ** tokens))
        resampled = model.sample(len(splits.train), stream(seed, 1, "synthetic"))
        lost = int(np.sum((counts > 0) & (np.bincount(resampled.ravel(), minlength=60) == 0)))
        gaps.append(lost - expected)
    gaps_array = np.array(gaps)
    se = gaps_array.std(ddof=1) / math.sqrt(len(gaps_array))
    assert abs(gaps_array.mean()) < 4 * se  # the mean gap is 0 within four standard errors (300 seeds, fixed)


def test_ngram_start_table_loses_first_tokens_as_wright_fisher_predicts():
    """The first token of a bigram model's sequence is a categorical of the first tokens of its training set: the
    same closed form, with N the number of sequences."""
    dataset = MarkovText({"vocab": 40, "zipf": 1.2, "length": 6})
    family = NGram({"n": 2, "k": 0.0})
    gaps = []
    for seed in range(300):
        splits = dataset.load(25, 1, 0, stream(seed, "data"))
        model = family.create(splits, RunContext(seed=seed))
        model.fit(splits.train, warm_start=False, rng=stream(seed, 0, "fit"))
        counts, n = np.bincount(splits.train[:, 0], minlength=40), len(splits.train)
        expected = float(np.sum((1 - counts[counts > 0] / n) ** n))
        first = model.sample(n, stream(seed, 1, "synthetic"))[:, 0]
        gaps.append(int(np.sum((counts > 0) & (np.bincount(first, minlength=40) == 0))) - expected)
    gaps_array = np.array(gaps)
    assert abs(gaps_array.mean()) < 4 * gaps_array.std(ddof=1) / math.sqrt(len(gaps_array))


def _splits(train: np.ndarray, vocab: int) -> DataSplits:
    return DataSplits(train, train, train[:0], "sequence", tuple("abcdefghij"[:vocab]))


def test_ngram_with_maximum_likelihood_gives_unseen_ngrams_probability_zero_and_warm_start_adds_counts():
    train = np.array([[0, 1, 0, 1, 0], [1, 0, 1, 0, 1], [0, 1, 2, 1, 0]])
    model = NGram({"n": 2, "k": 0.0}).create(_splits(train, 3), RunContext(seed=0))
    model.fit(train[:1], warm_start=False, rng=stream(0, 0, "fit"))
    model.fit(train[1:], warm_start=True, rng=stream(0, 1, "fit"))
    both = NGram({"n": 2, "k": 0.0}).create(_splits(train, 3), RunContext(seed=0))
    both.fit(train, warm_start=False, rng=stream(0, 0, "fit"))
    assert all(np.array_equal(v, both.state_dict()[k]) for k, v in model.state_dict().items())
    log_prob = both.log_prob(np.array([[0, 1, 0, 1, 0], [0, 0, 1, 0, 1]]))  # 0 -> 0 never follows in training
    assert np.isfinite(log_prob[0]) and log_prob[1] == -np.inf
    # the first sequence: 0 starts 2 of 3 sequences; 0 -> 1 in 5 of 5 transitions from 0; 1 -> 0 in 5 of 6 from 1
    assert log_prob[0] == pytest.approx(math.log(2 / 3) + 2 * math.log(5 / 5) + 2 * math.log(5 / 6))


# ---------------------------------------------------------------- metrics: what they refuse and what they say


def _evaluation(samples: np.ndarray, test: np.ndarray, model: Model | None = None) -> Evaluation:
    return Evaluation(
        samples=samples,
        test=test,
        train=test,
        model=model,  # type: ignore[arg-type]
        dataset=MarkovText(),
        rng=stream(0, "metric"),
        context=RunContext(seed=0),
    )


def test_text_metrics_refuse_data_that_is_not_token_ids():
    points = np.zeros((10, 2))
    with pytest.raises(
        ValueError, match=r"'vocab-coverage' needs token sequences .* integer ids as samples, got float64"
    ):
        VocabCoverage().compute(_evaluation(points, points))


def test_tail_coverage_counts_the_rare_test_ngrams_the_samples_still_produce():
    test = np.array([[0, 0, 0, 1], [0, 0, 2, 3]])  # counts 0: 5, 1: 1, 2: 1, 3: 1 -> rare (count <= 1): 1, 2, 3
    samples = np.array([[0, 1, 0, 0], [0, 0, 0, 2]])
    result = TailCoverage({"n": 1, "quantile": 0.5}).compute(_evaluation(samples, test))
    assert result.value == pytest.approx(2 / 3) and "2 of 3 rare 1-grams (count <= 1)" in result.detail


def test_perplexity_is_infinite_when_the_model_gives_test_text_probability_zero():
    splits = MarkovText({"vocab": 10, "length": 5}).load(5, 50, 0, stream(0, "data"))
    model = NGram({"n": 2, "k": 0.0}).create(splits, RunContext(seed=0))
    model.fit(splits.train, warm_start=False, rng=stream(0, 0, "fit"))
    result = Perplexity().compute(_evaluation(splits.test, splits.test, model))
    assert result.value == math.inf and "test sequences have probability 0" in result.detail


# ---------------------------------------------------------------- exact source-kl


def _fitted_ngram(dataset: MarkovText, n: int, k: float, n_train: int, seed: int = 0) -> NGramModel:
    splits = dataset.load(n_train, 10, 0, stream(seed, "data"))
    model = NGram({"n": n, "k": k}).create(splits, RunContext(seed=seed))
    assert isinstance(model, NGramModel)
    model.fit(splits.train, warm_start=False, rng=stream(seed, 0, "fit"))
    return model


def _source_kl(dataset: MarkovText, model: Model, test: np.ndarray) -> tuple[float, str]:
    evaluation = Evaluation(
        samples=test,
        test=test,
        train=test,
        model=model,
        dataset=dataset,
        rng=stream(0, "m"),
        context=RunContext(seed=0),
    )
    result = SourceKL().compute(evaluation)
    return result.value, result.detail


@pytest.mark.parametrize("n", [1, 2, 3])  # model context shorter than, equal to and longer than the source's
def test_source_kl_is_exact_against_enumerating_every_sequence(n):
    import itertools

    dataset = MarkovText({"vocab": 3, "order": 1, "length": 4, "source_seed": 2})
    model = _fitted_ngram(dataset, n, k=0.5, n_train=6)
    every = np.array(list(itertools.product(range(3), repeat=4)))
    p, q = dataset.log_density(every), model.log_prob(every)
    enumerated = float(np.sum(np.exp(p) * (p - q)) / 4)
    value, detail = _source_kl(dataset, model, every[:2])
    assert value == pytest.approx(enumerated, rel=1e-12, abs=1e-15) and detail.startswith("exact")


def test_source_kl_exact_agrees_with_the_sample_mean_within_its_standard_error():
    dataset = MarkovText({"vocab": 20, "order": 1, "length": 16})
    model = _fitted_ngram(dataset, n=2, k=0.1, n_train=200)
    test = dataset.draw(20000, stream(1, "test"))
    gap = (dataset.log_density(test) - model.log_prob(test)) / 16
    exact, _ = _source_kl(dataset, model, test[:2])
    assert abs(exact - gap.mean()) < 4 * gap.std(ddof=1) / math.sqrt(len(gap))


def test_next_token_probabilities_chain_to_the_same_log_prob_as_the_whole_sequence():
    dataset = MarkovText({"vocab": 6, "order": 2, "length": 7})
    x = dataset.draw(50, stream(0, "x"))
    ngram = _fitted_ngram(dataset, n=3, k=0.0, n_train=30)  # k = 0: the unigram fallback too
    pairs: list[tuple[NextTokens, np.ndarray]] = [(dataset, dataset.log_density(x)), (ngram, ngram.log_prob(x))]
    for distribution, whole in pairs:
        chained = np.zeros(len(x))
        for i in range(7):
            contexts = x[:, i - distribution.context_length(i) : i]
            chained += distribution.next_log_probs(i, contexts)[np.arange(len(x)), x[:, i]]
        assert np.allclose(chained, whole)


def test_source_kl_falls_back_to_the_sample_mean_and_says_so(monkeypatch):
    dataset = MarkovText({"vocab": 8, "order": 1, "length": 5})
    test = dataset.draw(100, stream(0, "test"))
    ngram = _fitted_ngram(dataset, n=2, k=0.1, n_train=50)

    class Opaque(Model):  # the same model without its next-token probabilities
        fit, sample, state_dict, load_state_dict = ngram.fit, ngram.sample, ngram.state_dict, ngram.load_state_dict
        log_prob = staticmethod(ngram.log_prob)

    value, detail = _source_kl(dataset, Opaque(), test)
    gap = (dataset.log_density(test) - ngram.log_prob(test)) / 5
    assert value == pytest.approx(gap.mean()) and detail.startswith("sample mean (source or model gives no")
    _, detail = _source_kl(dataset, ngram, test)
    assert detail.startswith("exact over")
    unsmoothed = _fitted_ngram(dataset, n=2, k=0.0, n_train=3)  # 3 sequences miss some of the 64 bigrams
    assert _source_kl(dataset, unsmoothed, test[:2]) == (
        math.inf,
        "exact: the model gives probability 0 to a token the source can produce",
    )
    monkeypatch.setattr("plugins.metrics.text.MAX_HISTORIES", 8**2 - 1)  # bigrams of 8 tokens: 8^2 entries
    value, detail = _source_kl(dataset, ngram, test)
    assert value == pytest.approx(gap.mean()) and detail.startswith("sample mean: 8^h histories exceed 63")


# ---------------------------------------------------------------- resume after a kill


@pytest.mark.slow
def test_a_text_grid_killed_mid_grid_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path):
    import os
    import signal
    import time

    import pandas as pd
    from conftest import run_benchmark
    from test_store_resume import cli, stored_generations, values

    grid = tmp_path / "grid.toml"
    grid.write_text(
        'name = "text-resume"\ngenerations = 8\nseeds = [0, 1]\nn_real = 400\nn_test = 200\nn_eval = 400\n'
        '[[datasets]]\nname = "markov-text"\nparams = { vocab = 200, length = 24 }\n'
        '[[models]]\nname = "ngram"\n[[policies]]\nname = "accumulate"\n[[policies]]\nname = "replace"\n'
        '[[metrics]]\nname = "perplexity"\n[[metrics]]\nname = "tail-coverage"\n'
    )
    env = {"RETRAINBENCH_PLUGINS": ",".join(TEXT_MODULES)}
    args = ["run", grid, "--store", tmp_path / "reference", "--executor", "inline", "--no-progress"]
    done = run_benchmark(args, cwd=tmp_path, env=env)
    assert done.code == 0, done.err
    expected = values(tmp_path / "reference")

    store = tmp_path / "store"
    command = ("run", str(grid), "--store", str(store), "--executor", "inline", "--no-progress")
    proc = cli(*command, env={**os.environ, **env})
    deadline = time.monotonic() + 120
    while stored_generations(store) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert 0 < stored_generations(store) < 36, "the kill must land mid-grid"
    resumed = cli(*command, env={**os.environ, **env})
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    pd.testing.assert_frame_equal(values(store), expected)


# ---------------------------------------------------------------- char-lm


def _fitted_char_lm(**params):
    from plugins.families.charlm import CharLM

    splits = MarkovText({"vocab": 10, "length": 12}).load(300, 300, 0, stream(0, "data"))
    tiny = {"embedding": 8, "hidden": 32, "steps": 150, "lr": 1e-2, **params}
    model = CharLM(tiny).create(splits, RunContext(seed=0, device="cpu", threads=1))
    model.fit(splits.train, warm_start=False, rng=stream(0, 0, "fit"))
    return model, splits


@pytest.mark.slow
def test_char_lm_learns_the_source_and_its_sampling_bias_narrows_the_samples():
    model, splits = _fitted_char_lm()
    nll = -model.log_prob(splits.test).mean() / 12
    assert nll < math.log(10) - 0.2  # clearly below the uniform model's log V (the source's rate is ~1.9 nats)
    greedy, _ = _fitted_char_lm(top_k=1)
    drawn = greedy.sample(50, stream(0, 1, "eval"))
    assert len(np.unique(drawn, axis=0)) == 1  # top_k = 1 always draws the most likely token: one sequence
    assert np.array_equal(greedy.log_prob(splits.test), model.log_prob(splits.test))  # the bias leaves log_prob
    free = model.sample(300, stream(0, 1, "eval"))
    cold = _fitted_char_lm(temperature=0.3)[0].sample(300, stream(0, 1, "eval"))
    assert len(np.unique(ngrams(cold, 2, 10))) < len(np.unique(ngrams(free, 2, 10)))


# ---------------------------------------------------------------- docs/reproductions.md, section 7, at toy scale


def test_under_replace_perplexity_rises_and_the_tail_goes_while_accumulate_stays_closer():
    registry = text_registry()
    last: dict[str, dict[str, np.ndarray]] = {}
    for policy in ("replace", "accumulate"):
        chains = run_in_memory(
            registry,
            dataset={"name": "markov-text", "params": {"vocab": 40, "length": 16}},
            model={"name": "ngram", "params": {"n": 2, "k": 0.001}},
            policy={"name": policy},
            metric=[{"name": "perplexity"}, {"name": "tail-coverage", "params": {"n": 2}}],
            n_real=150,
            n_test=300,
            n_eval=150,
            generations=6,
            seeds=range(6),
        )
        last[policy] = {
            metric: np.array([chain[-1].record["metrics"][metric]["value"] for chain in chains])
            for metric in ("perplexity", "tail-coverage[n=2]")
        }

    def gap(metric: str) -> tuple[float, float]:
        a, b = last["replace"][metric], last["accumulate"][metric]
        return float(a.mean() - b.mean()), math.hypot(a.std(ddof=1), b.std(ddof=1)) / math.sqrt(len(a))

    # independent seed blocks; Z = 3 standard errors of the difference, as tests/test_reproductions.py. Measured
    # when written: perplexity 115 vs 38 (12 SE), tail coverage 0.073 vs 0.194 (11 SE)
    difference, se = gap("perplexity")
    assert difference > 3 * se, f"perplexity: replace - accumulate = {difference:.3g}, SE {se:.3g}"
    difference, se = gap("tail-coverage[n=2]")
    assert -difference > 3 * se, f"tail coverage: replace - accumulate = {difference:.3g}, SE {se:.3g}"


def test_metrics_of_points_are_skipped_on_token_ids_and_text_metrics_on_points():
    """w2, mmd, variance and the feature metrics compute on values of a continuous space; token ids are labels,
    so a distance between them would be a plausible, meaningless number: the grid skips them on sequence data
    (they need "points"), as it skips the text metrics on vectors (they need "tokens")."""
    from benchmark.api.compatibility import unmet_need
    from benchmark.api.components import Dataset, Metric

    registry = build_registry(
        [*TEXT_MODULES, "plugins.metrics.basic", "plugins.metrics.samples", "plugins.datasets.toy"],
        autoload=False,
    )
    text, vectors = registry.component(Dataset, "markov-text"), registry.component(Dataset, "eight-gaussians")
    family = registry.component(ModelFamily, "ngram")
    for name in ("w2", "mmd", "variance", "precision"):
        metric = registry.component(Metric, name)
        assert unmet_need(metric, text, family) == ("points of a continuous space (vector or image data)", "dataset")
        assert unmet_need(metric, vectors, family) is None
    assert unmet_need(registry.component(Metric, "distinct-n"), vectors, family) == ("token sequences", "dataset")


# ---------------------------------------------------------------- the report's text gallery


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no /usr/bin/chromium (scripts/install_browser.sh)")
def test_the_text_gallery_of_thirty_generations_fits_a_1280_px_page(run_cli, tmp_path):
    from playwright.sync_api import sync_playwright

    from benchmark.report.leaderboard import write_report

    grid = tmp_path / "grid.toml"
    grid.write_text(
        'name = "text"\ngenerations = 30\nseeds = [0]\nn_real = 30\nn_test = 30\nn_eval = 30\n'
        '[[datasets]]\nname = "markov-text"\nparams = { vocab = 100, length = 32 }\n'  # lines of about 100 characters
        '[[models]]\nname = "ngram"\n[[policies]]\nname = "accumulate"\n[[policies]]\nname = "replace"\n'
        '[[metrics]]\nname = "perplexity"\n'
    )
    env = {"RETRAINBENCH_PLUGINS": ",".join(TEXT_MODULES)}
    done = run_cli(["run", grid, "--store", "store", "--executor", "inline", "--no-progress"], env=env)
    assert done.code == 0, done.err
    write_report(tmp_path / "store", tmp_path / "report", grid="text", registry=text_registry())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((tmp_path / "report" / "index.html").as_uri(), wait_until="load")
            right = page.evaluate("document.querySelector('table.gallery').getBoundingClientRect().right")
            headers = page.locator("table.gallery thead th").all_inner_texts()
            page_width = page.evaluate("document.documentElement.scrollWidth")
        finally:
            browser.close()
    assert headers[1] == "generation 0" and headers[-1] == "generation 30"
    assert right <= 1280 and page_width <= 1280
