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


def unmet_need(
    metric: type[Metric], dataset: type[Dataset], family: type[ModelFamily], labels: dict[str, str]
) -> str | None:
    """Why ``metric`` cannot be computed on a run of ``family`` on ``dataset`` (None when it can).

    ``labels`` names the run's ``"dataset"`` and ``"model"`` in the message.
    """
    provided = ALWAYS | dataset.provides | family.provides
    for need, (what, kind) in PROVIDED_BY.items():
        if need in metric.needs and need not in provided:
            return f"needs {what}, which {labels[kind]} does not have"
    return None
