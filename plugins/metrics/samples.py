"""Entry point ``sample-metrics``: fidelity, diversity, optimal transport, modes and distances to the true density.

Each family of metrics lives in its own module; this one registers them:

- plugins/metrics/manifold.py: precision, recall, density, coverage (k-nearest-neighbour balls);
- plugins/metrics/distances.py: MMD, Wasserstein W1 and W2, energy distance;
- plugins/metrics/moments.py: mean pairwise distance and log-determinant (spread);
- plugins/metrics/modes.py: high-quality samples and mode coverage of mixture datasets;
- plugins/metrics/true_density.py: total variation and KL divergence to the dataset's true density.

The numerical helpers they share (batched distances, memoised work) are in plugins/metrics/maths.py.
"""

from __future__ import annotations

from benchmark import hookimpl
from plugins.metrics.distances import MMD, W1, W2, Energy
from plugins.metrics.manifold import Coverage, Density, Precision, Recall
from plugins.metrics.modes import HighQuality, ModeCoverage
from plugins.metrics.moments import LogDet, PairwiseDistance
from plugins.metrics.true_density import KL, TV

METRICS = (
    Precision,
    Recall,
    Density,
    Coverage,
    MMD,
    W1,
    W2,
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
