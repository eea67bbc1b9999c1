"""Text as sequences of token ids: a synthetic language with a known distribution, and local text files.

- ``markov-text``: an order-k Markov source over a vocabulary with Zipf-like frequencies. Its transition
  table is drawn once from ``source_seed`` (a parameter, so part of every run id), the sequences from the
  run's data stream; ``log_density`` is the exact log-probability of a sequence, so metrics against the
  true source are exact (it provides "source"). It also gives its next-token probabilities for a context
  (``context_length`` and ``next_log_probs``, as ngram does), so ``source-kl`` can be computed exactly.
- ``text-file``: a local UTF-8 file, or every ``*.txt`` file of a folder, as characters (or bytes) cut into
  non-overlapping windows; train, test and pool are drawn from a permutation of the windows by the run's
  data stream. Nothing downloads. A relative path that does not exist is looked up among the texts shipped
  in ``plugins/datasets/texts`` (``SHIPPED``; see its README: ``us-founding`` is public-domain English).

Both are fixed-length: the ``sequence`` data kind is ``(n, length)`` integer ids (``benchmark.api.kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import Dataset, DataSplits, Param, ParamError, hookimpl

#: Texts shipped with the package (public domain; see the README there), found by a relative ``path``.
SHIPPED = Path(__file__).parent / "texts"
#: Largest transition table markov-text builds (contexts x vocabulary entries): 32 MB of floats.
MAX_TABLE = 4_000_000
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


def word(i: int) -> str:
    """A pronounceable, unique word for token id ``i``: its consonant-vowel syllables in base 70."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    out = syllables[i % len(syllables)]
    i //= len(syllables)
    while i:
        out = syllables[i % len(syllables)] + out
        i //= len(syllables)
    return out


class MarkovSource:
    """An order-``order`` Markov chain over ``vocab`` tokens: the first ``order`` tokens are drawn from Zipf
    frequencies f_j ~ (j + 1)^-zipf, each next one from the row of its context, f_j * exp(spread * g_cj)
    renormalised, with g_cj standard normals drawn from ``seed``."""

    def __init__(self, vocab: int, order: int, zipf: float, spread: float, seed: int) -> None:
        self.vocab, self.order = vocab, order
        log_f = -zipf * np.log(np.arange(1, vocab + 1))
        self.log_first = log_f - np.logaddexp.reduce(log_f)
        noise = np.random.default_rng(np.random.SeedSequence([seed, vocab, order])).standard_normal(
            (vocab**order, vocab)
        )
        logits = log_f[None, :] + spread * noise
        self.log_next = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)

    def context_length(self, position: int) -> int:
        """Tokens the distribution at ``position`` depends on: none before ``order`` (drawn independently)."""
        return self.order if position >= self.order else 0

    def next_log_probs(self, position: int, contexts: np.ndarray) -> np.ndarray:
        """Rows (n, vocab): log-probability of each token at ``position`` after each context, a row of
        ``contexts`` (n, context_length(position)) holding the tokens right before ``position``."""
        if not self.context_length(position):
            return np.broadcast_to(self.log_first, (len(contexts), self.vocab))
        return self.log_next[self.context(contexts, self.order)]

    def context(self, x: np.ndarray, i: int) -> np.ndarray:
        """The index of the context of position ``i`` (the ``order`` tokens before it, in base ``vocab``)."""
        index = np.zeros(len(x), dtype=np.int64)
        for j in range(i - self.order, i):
            index = index * self.vocab + x[:, j]
        return index

    def draw(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        x = np.zeros((n, length), dtype=np.int64)
        first = np.cumsum(np.exp(self.log_first))
        for i in range(length):
            u = rng.random(n) * (1 - 1e-12)  # below the last cumulative sum, whatever its rounding
            if i < self.order:
                x[:, i] = np.searchsorted(first, u, side="right")
            else:
                rows = np.cumsum(np.exp(self.log_next[self.context(x, i)]), axis=1)
                x[:, i] = np.sum(rows <= u[:, None], axis=1)
        return np.minimum(x, self.vocab - 1)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        head = np.sum(self.log_first[x[:, : self.order]], axis=1)
        tail = [self.log_next[self.context(x, i), x[:, i]] for i in range(self.order, x.shape[1])]
        return head + (np.sum(tail, axis=0) if tail else 0.0)


class MarkovText(Dataset):
    """An order-k Markov source over a Zipf-like vocabulary, its transition table fixed by source_seed; exact."""

    name = "markov-text"
    kind = "sequence"
    provides = frozenset({"source"})
    parameters = {
        "vocab": Param(50, int, "vocabulary size", low=2),
        "order": Param(1, int, "tokens of context each token depends on", low=1),
        "length": Param(32, int, "tokens per sequence", low=2),
        "zipf": Param(1.1, float, "exponent of the Zipf frequencies of the tokens", low=0),
        "spread": Param(1.0, float, "how far each context's row departs from the Zipf frequencies", low=0),
        "source_seed": Param(0, int, "seed of the transition table (the language itself)", low=0),
    }

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        entries = params["vocab"] ** (params["order"] + 1)
        if entries > MAX_TABLE:
            raise ParamError(
                "order", f"vocab^(order + 1) = {entries} transition probabilities exceed {MAX_TABLE}: lower order"
            )
        if params["order"] >= params["length"]:
            raise ParamError("order", f"must be below length = {params['length']} (got {params['order']})")

    @cached_property
    def source(self) -> MarkovSource:
        p = self.params
        return MarkovSource(p["vocab"], p["order"], p["zipf"], p["spread"], p["source_seed"])

    def vocabulary(self) -> tuple[str, ...]:
        return tuple(word(i) for i in range(self.params["vocab"]))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.source.draw(n, self.params["length"], rng)

    def log_density(self, x: np.ndarray) -> np.ndarray:
        return self.source.log_prob(np.asarray(x, dtype=np.int64))

    def context_length(self, position: int) -> int:
        return self.source.context_length(position)

    def next_log_probs(self, position: int, contexts: np.ndarray) -> np.ndarray:
        return self.source.next_log_probs(position, np.asarray(contexts, dtype=np.int64))


class TextFile(Dataset):
    """A local UTF-8 text file, or every *.txt file of a folder, as characters (or bytes) in fixed-length windows."""

    name = "text-file"
    kind = "sequence"
    parameters = {
        "path": Param(
            None,
            str,
            "a UTF-8 text file, or a folder of *.txt files (read recursively, sorted); a relative path that does "
            "not exist is looked up in the shipped texts (us-founding)",
            required=True,
        ),
        "tokens": Param("char", str, "what a token is", choices=("char", "byte")),
        "length": Param(64, int, "tokens per window", low=2),
    }

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        windows = cls(params).windows
        wanted = settings["n_real"] + settings["n_test"]
        if len(windows) < wanted:
            raise ParamError(
                "path",
                f"{params['path']} holds {len(windows)} windows of {params['length']} tokens, fewer than "
                f"n_real + n_test = {wanted}: use more text or a shorter length",
            )

    def files(self) -> list[Path]:
        path = Path(self.params["path"]).expanduser()
        if not path.exists() and not path.is_absolute() and (SHIPPED / path).exists():
            path = SHIPPED / path
        if path.is_file():
            return [path]
        if not path.is_dir():
            raise ParamError("path", f"{path} is neither a file nor a folder")
        found = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not found:
            raise ParamError("path", f"no *.txt files under {path}")
        return found

    @cached_property
    def stream(self) -> tuple[tuple[str, ...], np.ndarray]:
        """(vocabulary, every token id of the text in order): files joined by a newline, tokens sorted."""
        parts = []
        for path in self.files():
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParamError("path", f"{path} is not UTF-8 (byte {exc.start}: {exc.reason})") from None
            parts.append(text)
        text = "\n".join(parts)
        if self.params["tokens"] == "byte":
            units = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
            present = np.unique(units)
            vocabulary = tuple(bytes([int(b)]).decode("latin-1") for b in present)
            return vocabulary, np.searchsorted(present, units)
        chars = sorted(set(text))
        index = {c: i for i, c in enumerate(chars)}
        return tuple(chars), np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))

    @property
    def windows(self) -> np.ndarray:
        """The text cut into non-overlapping windows of ``length`` tokens (a shorter rest is dropped)."""
        ids, length = self.stream[1], self.params["length"]
        count = len(ids) // length
        return ids[: count * length].reshape(count, length)

    def vocabulary(self) -> tuple[str, ...]:
        return self.stream[0]

    def load(self, n_train: int, n_test: int, n_pool: int, rng: np.random.Generator) -> DataSplits:
        windows = self.windows
        wanted = n_train + n_test + n_pool
        if wanted > len(windows):
            raise ValueError(
                f"dataset {self.name!r}: {self.params['path']} holds {len(windows)} windows, but the run needs "
                f"{wanted} (n_real {n_train} + n_test {n_test} + pool {n_pool}); use more text or a shorter length"
            )
        chosen = windows[rng.permutation(len(windows))[:wanted]]  # the order of the first windows ignores wanted
        return DataSplits(
            train=chosen[:n_train],
            test=chosen[n_train : n_train + n_test],
            pool=chosen[n_train + n_test :],
            kind=self.kind,
            vocabulary=self.vocabulary(),
        )


@hookimpl
def register_datasets(register):
    register(MarkovText)
    register(TextFile)
