"""Metrics of token sequences: likelihood of the real text, distance from a known source, the tail, diversity.

Every one needs "tokens" (sequence data; a grid skips it on other data) and checks that the samples and
the test set are (n, length) integer ids before computing, so a value is never made of something else:

- ``perplexity``: exp of the test text's negative log-likelihood per token under the model (needs log_prob;
  infinite when the model gives a test sequence probability 0, with the count in the detail);
- ``source-kl``: KL(source || model) per token, for a dataset that knows its source exactly (markov-text).
  Exact when both the source and the model give their next-token probabilities for a context
  (``NextTokens``: markov-text and ngram): the sum over positions of the expected KL of the next token,
  by a forward recursion over the source's distribution of the last h tokens, h the longer of the two
  contexts (V^h histories, at most ``MAX_HISTORIES`` x V entries). Otherwise the mean over the test
  sequences (draws of the source) of log p(x) - log q(x), divided by the length, with its standard error.
  The detail says which. Version 2: exact where it can be (version 1 always took the sample mean);
- ``tail-coverage`` and ``tail-mass``: the real text's rare n-grams are the distinct n-grams of the test set
  whose count is at most the ``quantile`` quantile of those counts (ties included, so the set can be larger
  than that share). Coverage is the share of them the samples still produce; mass is how often the samples
  produce them relative to the test text (1: as often; Shumailov et al. find the tails vanish first);
- ``distinct-n``: the share of distinct n-grams among the samples' n-grams over the same share in the test
  text, both on the same number of sequences (1: as diverse as the real text);
- ``vocab-coverage``: the share of the tokens occurring in the test text that the samples produce.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

from benchmark import Evaluation, Measured, Metric, Param, hookimpl

#: What every metric here needs: token sequences (provided by every dataset of the sequence kind).
TOKENS = frozenset({"tokens"})
#: Largest (histories x vocabulary) table the exact source-kl walks per position: 32 MB of floats.
MAX_HISTORIES = 4_000_000


@runtime_checkable
class NextTokens(Protocol):
    """A distribution over sequences that gives its next-token probabilities for a context: the one way a
    source (markov-text) or a model (ngram) exposes them."""

    def context_length(self, position: int) -> int:
        """How many tokens right before ``position`` its next-token distribution depends on."""
        ...

    def next_log_probs(self, position: int, contexts: np.ndarray) -> np.ndarray:
        """Rows (n, V) of log-probabilities of the token at ``position`` after each row of ``contexts``
        (n, context_length(position))."""
        ...


def exact_kl_per_token(source: NextTokens, model: NextTokens, length: int, vocab: int) -> float | None:
    """KL(source || model) of whole sequences of ``length`` tokens, per token, exactly: the sum over positions
    of E_source[KL(source(. | history) || model(. | history))], the expectation over the source's marginal
    distribution of the last h tokens carried forward position by position. None when V^h x V exceeds
    MAX_HISTORIES."""
    widths = [max(source.context_length(i), model.context_length(i)) for i in range(length)]
    h = max(widths)
    if vocab ** (h + 1) > MAX_HISTORIES:
        return None
    weights: np.ndarray = np.ones(1)  # the distribution of the last ``width`` tokens
    width, total = 0, 0.0
    for i in range(length):
        index = np.arange(vocab**width)
        histories = index[:, None] // vocab ** np.arange(width - 1, -1, -1)[None, :] % vocab  # first token first
        p_log = source.next_log_probs(i, histories[:, width - source.context_length(i) :])
        q_log = model.next_log_probs(i, histories[:, width - model.context_length(i) :])
        p = np.exp(p_log)
        reached = (weights > 0)[:, None] & (p > 0)
        if np.any(reached & (q_log == -np.inf)):
            return math.inf
        gap = np.where(reached, p_log, 0.0) - np.where(reached, q_log, 0.0)
        total += float(np.sum(weights[:, None] * p * gap))
        new_width = min(width + 1, h)
        following = (index[:, None] * vocab + np.arange(vocab)[None, :]) % vocab**new_width
        weights = np.bincount(following.ravel(), weights=(weights[:, None] * p).ravel(), minlength=vocab**new_width)
        width = new_width
    return total / length


def token_arrays(metric: str, evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """(samples, test) as int64 arrays (n, length) after checking they are token ids of one length."""
    out = []
    for which in ("samples", "test"):
        x = getattr(evaluation, which)
        if not isinstance(x, np.ndarray) or x.ndim != 2 or not np.issubdtype(x.dtype, np.integer) or not len(x):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(
                f"metric {metric!r} needs token sequences (n, length) of integer ids as {which}, got {got}"
            )
        if int(x.min()) < 0:
            raise ValueError(f"metric {metric!r}: negative token id {int(x.min())} in {which}")
        out.append(np.asarray(x, dtype=np.int64))
    if out[0].shape[1] != out[1].shape[1]:
        raise ValueError(f"metric {metric!r}: samples of length {out[0].shape[1]}, test of {out[1].shape[1]}")
    return out[0], out[1]


def ngrams(x: np.ndarray, n: int, base: int) -> np.ndarray:
    """Every n-gram of every row of ``x`` as one integer key (its tokens in base ``base``), row by row."""
    keys = np.zeros((len(x), x.shape[1] - n + 1), dtype=np.int64)
    for j in range(n):
        keys = keys * base + x[:, j : x.shape[1] - n + 1 + j]
    return keys.ravel()


def _checked_n(metric: str, n: int, length: int, base: int) -> None:
    if n > length:
        raise ValueError(f"metric {metric!r}: params.n = {n} exceeds the sequence length {length}")
    if n * math.log2(max(base, 2)) > 62:
        raise ValueError(f"metric {metric!r}: {n}-grams of a {base}-token vocabulary do not fit 64-bit keys")


class Perplexity(Metric):
    """exp(NLL per token) of the real test text under the model: how surprised the model is by real text."""

    name = "perplexity"
    higher_is_better = False
    needs = TOKENS | {"log_prob"}

    def compute(self, evaluation: Evaluation) -> Measured:
        _, test = token_arrays(self.name, evaluation)
        log_prob = evaluation.model.log_prob(test)
        impossible = int(np.sum(log_prob == -np.inf))
        nll = float(-np.mean(log_prob) / test.shape[1])
        value = math.exp(nll) if nll < 700 else math.inf
        detail = f"NLL {nll:.4g} nats per token over {test.size} test tokens"
        return Measured(value, detail + (f"; {impossible} test sequences have probability 0" if impossible else ""))


class SourceKL(Metric):
    """KL(true source || model) per token (markov-text): exact when source and model give next-token
    probabilities, else the mean over the test sequences; version 2 (see the module's docstring)."""

    name = "source-kl"
    version = "2"
    higher_is_better = False
    optimum = 0.0
    needs = TOKENS | {"log_prob", "source"}

    def compute(self, evaluation: Evaluation) -> Measured:
        _, test = token_arrays(self.name, evaluation)
        source, model = evaluation.dataset, evaluation.model
        if isinstance(source, NextTokens) and isinstance(model, NextTokens):
            vocab = len(source.vocabulary())
            exact = exact_kl_per_token(source, model, test.shape[1], vocab)
            if exact == math.inf:
                return Measured(exact, "exact: the model gives probability 0 to a token the source can produce")
            if exact is not None:
                return Measured(exact, f"exact over the source's histories ({vocab} tokens, {test.shape[1]} positions)")
            fallback = f"sample mean: {vocab}^h histories exceed {MAX_HISTORIES} entries; "
        else:
            fallback = "sample mean (source or model gives no next-token probabilities); "
        truth = evaluation.dataset.log_density(test)
        if not np.all(np.isfinite(truth)):
            raise ValueError(f"metric {self.name!r}: the source gives a test sequence probability 0")
        gap = (truth - evaluation.model.log_prob(test)) / test.shape[1]
        if np.any(gap == np.inf):
            count = int(np.sum(gap == np.inf))
            return Measured(math.inf, fallback + f"the model gives {count} test sequences probability 0")
        se = float(np.std(gap, ddof=1) / math.sqrt(len(gap))) if len(gap) > 1 else math.nan
        return Measured(float(np.mean(gap)), fallback + f"standard error {se:.2g} over {len(gap)} test sequences")


class _NGramMetric(Metric):
    parameters = {"n": Param(1, int, "tokens per n-gram", low=1)}

    def keys(self, evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
        """The n-gram keys of (samples, test)."""
        samples, test = token_arrays(self.name, evaluation)
        base = int(max(samples.max(), test.max())) + 1
        _checked_n(self.name, self.params["n"], test.shape[1], base)
        return ngrams(samples, self.params["n"], base), ngrams(test, self.params["n"], base)


class _Tail(_NGramMetric):
    parameters = {
        **_NGramMetric.parameters,
        "quantile": Param(
            0.2, float, "rare: a test count at most this quantile of the distinct n-grams' counts", above=0, high=1
        ),
    }

    def rare(self, evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(sample keys, test keys, the rare test n-grams' keys, the largest count called rare)."""
        samples, test = self.keys(evaluation)
        distinct, counts = np.unique(test, return_counts=True)
        cut = int(np.quantile(counts, self.params["quantile"], method="lower"))
        return samples, test, distinct[counts <= cut], cut


class TailCoverage(_Tail):
    """Share of the real text's rare n-grams (bottom quantile of test counts) that the samples still produce."""

    name = "tail-coverage"
    higher_is_better = True
    optimum = 1.0
    needs = TOKENS

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, _, rare, cut = self.rare(evaluation)
        produced = int(np.sum(np.isin(rare, samples)))
        return Measured(
            produced / len(rare), f"{produced} of {len(rare)} rare {self.params['n']}-grams (count <= {cut})"
        )


class TailMass(_Tail):
    """How often the samples produce the real text's rare n-grams, over how often the test text does (1: as often)."""

    name = "tail-mass"
    higher_is_better = None
    optimum = 1.0
    needs = TOKENS

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test, rare, cut = self.rare(evaluation)
        in_samples, in_test = float(np.mean(np.isin(samples, rare))), float(np.mean(np.isin(test, rare)))
        detail = f"rare {self.params['n']}-grams (count <= {cut}): {in_samples:.3%} of samples, {in_test:.3%} of test"
        return Measured(in_samples / in_test, detail)


class DistinctN(_NGramMetric):
    """Share of distinct n-grams in the samples over that share in the test text, on as many sequences (1: alike)."""

    name = "distinct-n"
    higher_is_better = None
    optimum = 1.0
    needs = TOKENS
    parameters = {"n": Param(2, int, "tokens per n-gram", low=1)}

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = token_arrays(self.name, evaluation)
        rows = min(len(samples), len(test))
        base = int(max(samples.max(), test.max())) + 1
        _checked_n(self.name, self.params["n"], test.shape[1], base)
        shares = [
            len(np.unique(keys)) / len(keys)
            for keys in (ngrams(x[:rows], self.params["n"], base) for x in (samples, test))
        ]
        return Measured(
            shares[0] / shares[1],
            f"distinct share {shares[0]:.4g} (samples) vs {shares[1]:.4g} (test), {rows} sequences each",
        )


class VocabCoverage(Metric):
    """Share of the tokens occurring in the real test text that the samples produce."""

    name = "vocab-coverage"
    higher_is_better = True
    optimum = 1.0
    needs = TOKENS

    def compute(self, evaluation: Evaluation) -> Measured:
        samples, test = token_arrays(self.name, evaluation)
        real = np.unique(test)
        produced = int(np.sum(np.isin(real, samples)))
        return Measured(produced / len(real), f"{produced} of {len(real)} tokens of the test text")


METRICS = (Perplexity, SourceKL, TailCoverage, TailMass, DistinctN, VocabCoverage)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
