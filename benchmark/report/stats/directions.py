"""Which way each metric is better, as its plugin declares, and the badness that follows from it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from benchmark.api.registry import Registry
from benchmark.errors import RegistryError
from benchmark.run.spec import name_in_label


@dataclass(frozen=True)
class Direction:
    """Which way a metric is better, as its plugin declares; both None when unknown."""

    higher_is_better: bool | None = None
    optimum: float | None = None

    @property
    def known(self) -> bool:
        return self.higher_is_better is not None or self.optimum is not None

    def describe(self) -> str:
        if self.higher_is_better is True:
            return "higher is better"
        if self.higher_is_better is False:
            return "lower is better"
        if self.optimum is not None:
            return f"closer to {self.optimum:g} is better"
        return "direction unknown"

    def badness(self, values: np.ndarray) -> np.ndarray | None:
        """Values mapped so that larger is worse; None when the direction is unknown."""
        if self.higher_is_better is True:
            return -values
        if self.higher_is_better is False:
            return values
        if self.optimum is not None:
            return np.abs(values - self.optimum)
        return None


def directions(labels: Iterable[str], registry: Registry | None) -> dict[str, Direction]:
    """Direction of every metric label, from the registry; unknown when the metric's plugin is absent."""
    out = {}
    for label in labels:
        direction = Direction()
        if registry is not None:
            try:
                metric = registry.get("metric", name_in_label(label)).component
            except RegistryError:
                pass
            else:
                hib = getattr(metric, "higher_is_better", None)
                opt = getattr(metric, "optimum", None)
                direction = Direction(hib if isinstance(hib, bool) else None, None if opt is None else float(opt))
        out[label] = direction
    return out
