"""Which metrics a run can compute: what a metric ``needs`` must be a subset of what the run's components provide.

A dataset provides ``density`` (its ``log_density`` is the true density) and ``modes`` (its
``modes()`` are the mixture's centres); a model family provides ``log_prob``; every run provides
``samples``, and ``features`` through the metric's own feature extractor.
"""

from __future__ import annotations

from benchmark.api.components import Dataset, Metric, ModelFamily

#: What every run provides.
ALWAYS = frozenset({"samples", "features"})
#: Capability -> (what it is, the kind that provides it), in the order unmet needs are reported.
PROVIDED_BY = {
    "log_prob": ("a likelihood", "model"),
    "density": ("the true density", "dataset"),
    "modes": ("mixture modes", "dataset"),
}
#: Every word a metric may use in ``needs``.
CAPABILITIES = ALWAYS | set(PROVIDED_BY)


def unmet_need(metric: type[Metric], dataset: type[Dataset], family: type[ModelFamily]) -> tuple[str, str] | None:
    """The first need of ``metric`` that a run of ``family`` on ``dataset`` lacks, as (what it is, the kind
    that would provide it); None when the metric can be computed."""
    provided = ALWAYS | dataset.provides | family.provides
    return next((PROVIDED_BY[need] for need in PROVIDED_BY if need in metric.needs and need not in provided), None)
