"""Entry point ``basic-metrics``: likelihood and the first moments of every generation, with numpy alone.

NLL, Fréchet distance of Gaussian fits, mean distance, variance and variance ratio (defined in
plugins/metrics/moments.py). The other sample-based metrics register through ``sample-metrics``
(plugins/metrics/samples.py), the feature-space ones through ``image-metrics``.
"""

from __future__ import annotations

from benchmark import hookimpl
from plugins.metrics.maths import flatten
from plugins.metrics.moments import NLL, Frechet, MeanDistance, Variance, VarianceRatio

#: Besides the hook: ``flatten``, which retrainbench 0.1 defined here (as plugins.basic_metrics).
__all__ = ["flatten", "register_metrics"]

METRICS = (NLL, Frechet, Variance, VarianceRatio, MeanDistance)


@hookimpl
def register_metrics(register):
    for metric in METRICS:
        register(metric)
