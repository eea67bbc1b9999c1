"""Print what every metric costs: the vector metrics on 2-D data, and the feature metrics on images.

    .venv/bin/python scripts/cost_metrics.py [--points 2000] [--repeat 5] [--images 300] [--inception 20]

Vector metrics run as the retraining loop runs them after a generation: on fresh samples of a
fitted model (a Gaussian mixture on eight Gaussians) against the real test set, each metric with
its default parameters. "cold" is the first generation (nothing memoised yet: the real test set's
neighbour radii and distance sums are computed then and reused later); "warm" is the median of the
later generations. The target is all 2-D metrics together under a second on 2 cores with 2,000 points.

Feature metrics run on 8x8 digits (scikit-learn's, or the registered ``digits`` dataset) with the
``raw`` and ``domain`` extractors, and with ``inception`` on ``--inception`` images when its weights
are installed; extraction and metric costs are reported apart. Timings are wall-clock seconds of
this process: the load of the machine is printed with them, since other work on it inflates them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark import Dataset, DataSplits, Evaluation, Metric, ModelFamily, RunContext
from benchmark.api.plugins import build_registry
from benchmark.api.registry import Registry
from benchmark.run.features import FeatureSpace
from benchmark.run.seeding import stream
from benchmark.testing import NoDataset, NoModel

VECTOR_NEEDS = {"samples", "log_prob", "density", "modes"}


def seconds(fn: Callable[..., object], *args: Any) -> float:
    """Wall-clock seconds of ``fn(*args)``."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"{os.cpu_count()} cores, load average {load}"


def metric_classes(registry: Registry) -> dict[str, type[Metric]]:
    """Every registered metric class by name."""
    return {name: registry.component(Metric, name) for name in registry.entries["metric"]}


def metric(registry: Registry, name: str, params: Mapping[str, Any] | None = None) -> Metric:
    return registry.component(Metric, name)(params)


def vector_costs(registry: Registry, points: int, repeat: int) -> None:
    classes = metric_classes(registry)
    names = sorted(name for name, c in classes.items() if c.needs <= VECTOR_NEEDS and not c.missing_requirements())
    dataset = registry.component(Dataset, "eight-gaussians")()
    family = registry.component(ModelFamily, "gmm")()
    data = dataset.load(points, points, 0, stream(0, "data"))
    context = RunContext(seed=0, device="cpu")
    model = family.create(data, context)
    model.fit(data.train, warm_start=False, rng=stream(0, "fit"))
    import ot  # noqa: F401  (imported once per process by the first transport metric; not a per-generation cost)

    times: dict[str, list[float]] = {name: [] for name in names}
    for generation in range(repeat + 1):
        samples = model.sample(points, stream(0, generation, "eval"))
        for name in names:
            rng = stream(0, generation, name)
            evaluation = Evaluation(samples, data.test, data.train, model, dataset, rng, context)
            times[name].append(seconds(metric(registry, name).compute, evaluation))
    rows = [(name, 1000 * t[0], 1000 * statistics.median(t[1:])) for name, t in times.items()]
    cold, warm = sum(r[1] for r in rows), sum(r[2] for r in rows)
    rows.append(("all together", cold, warm))
    print(f"\n2-D metrics, {points} samples vs {points} test points (eight-gaussians, gmm model); {machine()}\n")
    print(tabulate(rows, headers=["metric", "cold ms", "warm ms (median)"], floatfmt=".1f"))
    verdict = "meets" if warm < 1000 else "misses"
    print("(precision, recall, density and coverage share one neighbour pass: the first of them in the table pays it)")
    print(
        f"\nall 2-D metrics together: {warm / 1000:.2f} s a generation ({cold / 1000:.2f} s the first): "
        f"{verdict} the 1 s target"
    )


def digits(registry: Registry, n: int) -> np.ndarray:
    if "digits" in registry.entries["dataset"]:
        dataset = registry.component(Dataset, "digits")()
        return dataset.load(n, 0, 0, stream(0, "digits")).train
    from sklearn.datasets import load_digits

    return load_digits().images[:n, None] / 16.0


def feature_costs(registry: Registry, n: int, n_inception: int) -> None:
    from plugins.features.extractors import locate_inception_weights

    metrics = sorted(name for name, c in metric_classes(registry).items() if "features" in c.needs)
    extractors = [("raw", n), ("domain", n)]
    try:
        locate_inception_weights()
        if n_inception > 0:
            extractors.append(("inception", n_inception))
    except FileNotFoundError as exc:
        print(f"\n(inception skipped: {exc})")
    rows = []
    for extractor, size in extractors:
        real = digits(registry, 2 * size)
        test, train = real[:size], real[size:]
        rng = stream(1, extractor)
        samples = np.clip(train + 0.05 * rng.standard_normal(train.shape), 0, 1)
        context = RunContext(seed=0, device="cpu")
        data = DataSplits(train=train, test=test, pool=test[:0], kind="image")
        space = FeatureSpace(registry, data, {"cost": extractor, "n": size}, context, None)
        prepare = seconds(space.extractor, extractor)
        real_features = seconds(space.real, extractor, "test")
        sample_features = seconds(space.of_samples, extractor, samples, 0)
        rows.append([f"{extractor}: prepare (load or train)", size, 1000 * prepare])
        rows.append([f"{extractor}: features of the test set (once per dataset)", size, 1000 * real_features])
        rows.append([f"{extractor}: features of the samples (every generation)", size, 1000 * sample_features])
        evaluation = Evaluation(
            samples,
            test,
            train,
            NoModel(),
            NoDataset(),
            stream(2, extractor),
            context,
            features=space.lookup(samples, 0),
        )
        for name in metrics:
            compute = metric(registry, name, {"extractor": extractor}).compute
            rows.append([f"{extractor}: {name}", size, 1000 * seconds(compute, evaluation)])
    print(f"\nFeature metrics on 8x8 digits (n samples vs n real); {machine()}\n")
    print(tabulate(rows, headers=["step", "n", "ms"], floatfmt=".1f"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000, help="samples and test points of the 2-D metrics")
    parser.add_argument("--repeat", type=int, default=5, help="warm generations timed after the cold one")
    parser.add_argument("--images", type=int, default=300, help="images for the raw and domain extractors")
    parser.add_argument("--inception", type=int, default=20, help="images for the inception extractor (0: skip)")
    args = parser.parse_args()
    registry = build_registry()
    vector_costs(registry, args.points, args.repeat)
    feature_costs(registry, args.images, args.inception)


if __name__ == "__main__":
    main()
