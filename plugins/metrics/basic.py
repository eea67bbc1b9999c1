"""Entry point ``basic-metrics``: likelihood and the first moments of every generation, with numpy alone.

NLL, Fréchet distance of Gaussian fits, mean distance, variance and variance ratio (defined in
plugins/metrics/moments.py). The other sample-based metrics register through ``sample-metrics``
(plugins/metrics/samples.py), the feature-space ones through ``image-metrics``.
"""

from __future__ import annotations

from benchmark import hookimpl
from plugins.metrics.moments import NLL, Frechet, MeanDistance, Variance, VarianceRatio

METRICS = (NLL, Frechet, Variance, VarianceRatio, MeanDistance)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
