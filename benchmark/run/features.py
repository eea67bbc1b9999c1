"""Features for feature-space metrics, with real-data features computed once and reused.

A metric that ``needs`` "features" calls ``evaluation.features(extractor, which)`` with ``which``
one of "samples", "test" or "train". Features of the real splits are cached in memory and on
disk (under the store's cache folder) by dataset, seed, split size and extractor, so every run
and generation on the same real data reuses them; only the samples' features are computed anew.

What an extractor returns is checked where it is received, as the loop checks every plugin: one finite
row per input, of one width for every split, from calls that leave the global random states alone.
Otherwise a metric would compare features that do not belong together and report a plausible number.
A cached file that fails the same check (another version's, or damaged) is computed again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.api.components import DataSplits, FeatureExtractor, RunContext
from benchmark.api.registry import Registry
from benchmark.errors import ContractViolation
from benchmark.files import write_atomic
from benchmark.hashing import SPACED, digest
from benchmark.run.global_random import untouched_global_random_state

#: Features of real splits already computed in this process, by cache key.
_MEMORY: dict[str, np.ndarray] = {}


class FeatureSpace:
    """The features one run's metrics may ask for."""

    def __init__(
        self,
        registry: Registry,
        data: DataSplits,
        data_key: dict[str, Any],
        context: RunContext,
        cache_dir: Path | None,
    ) -> None:
        self.registry, self.data, self.data_key, self.context = registry, data, data_key, context
        self.cache_dir = cache_dir
        self._extractors: dict[str, FeatureExtractor] = {}
        self._samples: dict[str, tuple[int, np.ndarray]] = {}
        #: Each extractor's feature width, from the first features handed to a metric: every later one's must match.
        self._widths: dict[str, int] = {}

    def extractor(self, name: str) -> FeatureExtractor:
        """The named extractor, prepared on this run's real training split (once per run)."""
        if name not in self._extractors:
            extractor = self.registry.component(FeatureExtractor, name)()
            with untouched_global_random_state(f"feature extractor {name!r} prepare()"):
                extractor.prepare(self.data, self.context, self.cache_dir)
            self._extractors[name] = extractor
        return self._extractors[name]

    def _extract(self, name: str, inputs: np.ndarray, what: str) -> np.ndarray:
        """The extractor's features of ``inputs`` (``what`` they are, for errors), checked."""
        extractor = self.extractor(name)
        who = f"feature extractor {name!r} extract() of {what}"
        with untouched_global_random_state(who):
            features = extractor.extract(inputs, self.context)
        problem = self._problem(features, len(inputs))
        if problem:
            raise ContractViolation(f"{who} returned {problem}")
        return features

    @staticmethod
    def _problem(features: Any, rows: int) -> str | None:
        """What is wrong with ``features`` as an extractor's answer for ``rows`` inputs; None if nothing."""
        if not isinstance(features, np.ndarray) or features.ndim != 2:
            got = f"shape {features.shape}" if isinstance(features, np.ndarray) else f"a {type(features).__name__}"
            return f"{got}, expected a float array ({rows}, k)"
        if not np.issubdtype(features.dtype, np.floating):
            return f"dtype {features.dtype}, expected floats"
        if len(features) != rows or features.shape[1] == 0:
            return f"shape {features.shape}, expected ({rows}, k >= 1): one row per input"
        if bad := int(np.sum(~np.isfinite(features))):
            return f"{bad} NaN or infinite values"
        return None

    def _key(self, name: str, which: str) -> str:
        entry = self.registry.get("feature-extractor", name)
        version = self.registry.version_of(entry)
        return digest({"data": self.data_key, "split": which, "extractor": name, "version": version}, 20, SPACED)

    def real(self, name: str, which: str) -> np.ndarray:
        """Features of the real "test" or "train" split, from memory, disk, or computed once."""
        key = self._key(name, which)
        if key in _MEMORY:
            return _MEMORY[key]
        path = self.cache_dir / "features" / f"{key}.npy" if self.cache_dir is not None else None
        split = getattr(self.data, which)
        features = self._cached(path, len(split)) if path is not None else None
        if features is None:
            features = self._extract(name, split, f"the real {which!r} split")
            if path is not None:
                write_atomic(path, lambda fh: np.save(fh, features))
        _MEMORY[key] = features
        return features

    def _cached(self, path: Path, rows: int) -> np.ndarray | None:
        """Features stored at ``path`` when they pass the extractor's checks; None to compute them again."""
        if not path.exists():
            return None
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        return None if self._problem(features, rows) else features

    def lookup(self, samples: np.ndarray, generation: int) -> Callable[[str, str], np.ndarray]:
        """``Evaluation.features`` of one generation: ``features(extractor, which)`` for its samples or a real split."""

        def features(name: str, which: str) -> np.ndarray:
            found = self.of_samples(name, samples, generation) if which == "samples" else self.real(name, which)
            width = self._widths.setdefault(name, found.shape[1])
            if found.shape[1] != width:
                raise ContractViolation(
                    f"feature extractor {name!r} gave features of width {found.shape[1]} for {which!r} "
                    f"at generation {generation}, and of width {width} before: a metric compares them column by column"
                )
            return found

        return features

    def of_samples(self, name: str, samples: np.ndarray, generation: int) -> np.ndarray:
        """Features of this generation's samples, computed once per generation and extractor."""
        cached = self._samples.get(name)
        if cached is not None and cached[0] == generation:
            return cached[1]
        features = self._extract(name, samples, f"generation {generation}'s samples")
        self._samples[name] = (generation, features)
        return features
