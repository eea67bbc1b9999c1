"""Entry point ``sample-metrics``: fidelity, diversity, optimal transport, modes and distances to the true density.

Each family of metrics lives in its own module; this one registers them:

- plugins/metrics/manifold.py: precision, recall, density, coverage (k-nearest-neighbour balls);
- plugins/metrics/distances.py: MMD, Wasserstein W1 and W2 (exact), sliced W1 and W2, energy distance;
- plugins/metrics/moments.py: mean pairwise distance and log-determinant (spread);
- plugins/metrics/modes.py: high-quality samples and mode coverage of mixture datasets;
- plugins/metrics/true_density.py: total variation and KL divergence to the dataset's true density.

The numerical helpers they share (batched distances, memoised work) are in plugins/metrics/maths.py.
"""

from __future__ import annotations

from benchmark import hookimpl
from plugins.metrics.distances import (
    MMD,
    W1,
    W2,
    Energy,
    SlicedW1,
    SlicedW2,
    energy_distance,
    median_bandwidth,
    rbf_mmd2,
    sliced_wasserstein,
    wasserstein,
)
from plugins.metrics.manifold import Coverage, Density, Precision, Recall, knn_radii, prdc
from plugins.metrics.maths import (
    distance_batches,
    distance_sum,
    flatten,
    frechet_distance,
    memo,
    squared_distance_batches,
    squared_distances,
)
from plugins.metrics.modes import HighQuality, ModeCoverage
from plugins.metrics.moments import (
    LogDet,
    PairwiseDistance,
    mean_pairwise_distance,
)
from plugins.metrics.true_density import KL, TV

#: Besides the hook: the helpers retrainbench 0.1 defined here (as plugins.sample_metrics), still importable.
__all__ = [
    "distance_batches",
    "distance_sum",
    "energy_distance",
    "flatten",
    "frechet_distance",
    "knn_radii",
    "mean_pairwise_distance",
    "median_bandwidth",
    "memo",
    "prdc",
    "rbf_mmd2",
    "register_metrics",
    "sliced_wasserstein",
    "squared_distance_batches",
    "squared_distances",
    "wasserstein",
]

METRICS = (
    Precision,
    Recall,
    Density,
    Coverage,
    MMD,
    W1,
    W2,
    SlicedW1,
    SlicedW2,
    Energy,
    PairwiseDistance,
    LogDet,
    HighQuality,
    ModeCoverage,
    TV,
    KL,
)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
