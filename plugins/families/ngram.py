"""``ngram``: a count-based n-gram model of token sequences with add-k smoothing.

Token i of a sequence is drawn given the ``n - 1`` tokens before it (fewer at the start: position
i < n - 1 has its own table of contexts of i tokens), with probability (count(context, token) + k) /
(count(context) + k V), V the vocabulary size. A context the counts never saw (possible only with
k = 0) draws from the overall token frequencies. With k = 0 the model is the maximum-likelihood
chain, whose sampling is the categorical analogue of Wright-Fisher resampling: under ``replace`` an
n-gram that is never drawn is lost for good, as an allele is (see tests/test_ngram.py for the closed
form). log_prob is exact; -inf for a sequence the counts cannot produce (k = 0). The model also gives its
next-token probabilities for a context (``context_length`` and ``next_log_probs``, as markov-text's source
does), so ``source-kl`` is exact for it.

Warm start: the counts are the parameters, so ``fit(warm_start=True)`` adds the new data's counts to
the previous ones (the model has then seen every training set so far); a cold fit counts the data
alone. The family's default is cold, as for the other closed-form families.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, ParamError, RunContext, hookimpl

#: Largest count table (contexts x vocabulary) a model builds: 32 MB of int64.
MAX_TABLE = 4_000_000


class NGramModel(Model):
    """Counts of every (context, token) pair by context length; see the module's docstring."""

    def __init__(self, vocab: int, length: int, n: int, k: float) -> None:
        self.vocab, self.length, self.n, self.k = vocab, length, n, k
        self.orders = [min(i, n - 1) for i in range(length)]  # context length at each position
        self.counts = {m: np.zeros((vocab**m, vocab), dtype=np.int64) for m in sorted(set(self.orders))}
        self.unigram = np.zeros(vocab, dtype=np.int64)

    def _context(self, x: np.ndarray, i: int) -> np.ndarray:
        """The index of the context of position ``i`` (its tokens in base V) for every row of ``x``."""
        return self._index(x[:, i - self.orders[i] : i])

    def _index(self, contexts: np.ndarray) -> np.ndarray:
        index = np.zeros(len(contexts), dtype=np.int64)
        for j in range(contexts.shape[1]):
            index = index * self.vocab + contexts[:, j]
        return index

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        if not warm_start:
            for table in self.counts.values():
                table[:] = 0
            self.unigram[:] = 0
        x = np.asarray(data, dtype=np.int64)
        for i, m in enumerate(self.orders):
            flat = self._context(x, i) * self.vocab + x[:, i]
            self.counts[m] += np.bincount(flat, minlength=self.counts[m].size).reshape(self.counts[m].shape)
        self.unigram += np.bincount(x.ravel(), minlength=self.vocab)
        return {"nll_per_token": float(-np.mean(self.log_prob(x)) / self.length)}

    def context_length(self, position: int) -> int:
        """Tokens the distribution at ``position`` depends on: n - 1, fewer at the start."""
        return self.orders[position]

    def next_log_probs(self, position: int, contexts: np.ndarray) -> np.ndarray:
        """Rows (n, V): log-probability of each token at ``position`` after each context, a row of ``contexts``
        (n, context_length(position)) holding the tokens right before ``position``; as log_prob scores them."""
        contexts = np.asarray(contexts, dtype=np.int64)
        with np.errstate(divide="ignore"):
            return np.log(self._probabilities(self.orders[position], self._index(contexts)))

    def _probabilities(self, m: int, contexts: np.ndarray) -> np.ndarray:
        """Rows (len(contexts), V) of next-token probabilities; unseen contexts (k = 0) fall back to the unigram."""
        rows = self.counts[m][contexts].astype(np.float64) + self.k
        totals = rows.sum(axis=1, keepdims=True)
        fallback = self.unigram / max(int(self.unigram.sum()), 1)
        return np.where(totals > 0, rows / np.where(totals > 0, totals, 1.0), fallback[None, :])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = np.zeros((n, self.length), dtype=np.int64)
        for i, m in enumerate(self.orders):
            cumulative = np.cumsum(self._probabilities(m, self._context(x, i)), axis=1)
            u = rng.random(n) * cumulative[:, -1]  # inverse CDF against each row's own total (rounding-safe)
            x[:, i] = np.minimum(np.sum(cumulative <= u[:, None], axis=1), self.vocab - 1)
        return x

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.int64)
        fallback = self.unigram / max(int(self.unigram.sum()), 1)
        totals = {m: table.sum(axis=1) + self.k * self.vocab for m, table in self.counts.items()}
        out = np.zeros(len(x))
        with np.errstate(divide="ignore", invalid="ignore"):
            for i, m in enumerate(self.orders):  # one entry per sequence, not the whole row: as _probabilities
                contexts, tokens = self._context(x, i), x[:, i]
                total = totals[m][contexts]
                hit = (self.counts[m][contexts, tokens] + self.k) / np.where(total > 0, total, 1.0)
                out += np.log(np.where(total > 0, hit, fallback[tokens]))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**{f"counts_{m}": table.copy() for m, table in self.counts.items()}, "unigram": self.unigram.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for m in self.counts:
            self.counts[m] = np.asarray(state[f"counts_{m}"], dtype=np.int64).copy()
        self.unigram = np.asarray(state["unigram"], dtype=np.int64).copy()


class NGram(ModelFamily):
    """Count-based n-gram model of token sequences with add-k smoothing; exact log_prob."""

    name = "ngram"
    data_kinds = ("sequence",)
    provides = frozenset({"log_prob"})
    parameters = {
        "n": Param(2, int, "tokens per n-gram: each token depends on the n - 1 before it", low=1),
        "k": Param(0.01, float, "add-k smoothing (0: maximum likelihood; unseen n-grams get probability 0)", low=0),
    }

    def create(self, data: DataSplits, context: RunContext) -> Model:
        vocab, n = data.vocabulary_size, self.params["n"]
        if vocab**n > MAX_TABLE:
            raise ParamError("n", f"vocabulary^n = {vocab}^{n} counts exceed {MAX_TABLE}: lower n")
        return NGramModel(vocab, data.sample_shape[0], n, self.params["k"])


@hookimpl
def register_model_families(register):
    register(NGram)
