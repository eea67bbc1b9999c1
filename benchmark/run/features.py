"""Features for feature-space metrics, with real-data features computed once and reused.

A metric that ``needs`` "features" calls ``evaluation.features(extractor, which)`` with ``which``
one of "samples", "test" or "train". Features of the real splits are cached in memory and on
disk (under the store's cache folder) by dataset, seed, split size and extractor, so every run
and generation on the same real data reuses them; only the samples' features are computed anew.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.api.components import DataSplits, FeatureExtractor, RunContext
from benchmark.api.registry import Registry
from benchmark.files import write_atomic
from benchmark.hashing import SPACED, digest

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

    def extractor(self, name: str) -> FeatureExtractor:
        """The named extractor, prepared on this run's real training split (once per run)."""
        if name not in self._extractors:
            extractor = self.registry.component(FeatureExtractor, name)()
            extractor.prepare(self.data, self.context, self.cache_dir)
            self._extractors[name] = extractor
        return self._extractors[name]

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
        if path is not None and path.exists():
            features = np.load(path, allow_pickle=False)
        else:
            features = self.extractor(name).extract(getattr(self.data, which), self.context)
            if path is not None:
                write_atomic(path, lambda fh: np.save(fh, features))
        _MEMORY[key] = features
        return features

    def lookup(self, samples: np.ndarray, generation: int) -> Callable[[str, str], np.ndarray]:
        """``Evaluation.features`` of one generation: ``features(extractor, which)`` for its samples or a real split."""

        def features(name: str, which: str) -> np.ndarray:
            return self.of_samples(name, samples, generation) if which == "samples" else self.real(name, which)

        return features

    def of_samples(self, name: str, samples: np.ndarray, generation: int) -> np.ndarray:
        """Features of this generation's samples, computed once per generation and extractor."""
        cached = self._samples.get(name)
        if cached is not None and cached[0] == generation:
            return cached[1]
        features = self.extractor(name).extract(samples, self.context)
        self._samples[name] = (generation, features)
        return features
