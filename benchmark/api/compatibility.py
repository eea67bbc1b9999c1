"""Which metrics a run can compute, and which policies it can use: what a metric or policy ``needs`` must be a subset
of what the run's components provide.

A dataset provides ``density`` (its ``log_density`` is the true density), ``modes`` (its
``modes()`` are the mixture's centres) and ``source`` (its ``log_density`` is the exact probability of
token sequences); its data kind provides ``points`` for vector and image data and ``tokens`` for sequence data
(``benchmark.api.kinds.DATA_KINDS``);
a model family provides ``log_prob``; every run provides ``samples``, and ``features`` through the metric's
own feature extractor. A policy may need ``log_prob`` only
(``PolicyStep.log_prob``, the previous generation's model's likelihood).
"""

from __future__ import annotations

from benchmark.api.components import Dataset, Metric, ModelFamily, Policy
from benchmark.api.kinds import DATA_KINDS

#: What every run provides.
ALWAYS = frozenset({"samples", "features"})
#: Capability -> (what it is, the kind that provides it), in the order unmet needs are reported.
PROVIDED_BY = {
    "log_prob": ("a likelihood", "model"),
    "density": ("the true density", "dataset"),
    "modes": ("mixture modes", "dataset"),
    "source": ("the exact source distribution", "dataset"),
    "tokens": ("token sequences", "dataset"),
    "points": ("points of a continuous space (vector or image data)", "dataset"),
}
#: Every word a metric may use in ``needs``.
CAPABILITIES = ALWAYS | set(PROVIDED_BY)
#: Every word a policy may use in ``needs``: what it can see of the previous generation's model.
POLICY_CAPABILITIES = frozenset({"log_prob"})


def unmet_need(
    component: type[Metric] | type[Policy], dataset: type[Dataset], family: type[ModelFamily]
) -> tuple[str, str] | None:
    """The first need of ``component`` (a metric or a policy) that a run of ``family`` on ``dataset`` lacks, as
    (what it is, the kind that would provide it); None when the component can be used."""
    kind = DATA_KINDS.get(dataset.kind)
    provided = ALWAYS | dataset.provides | family.provides | (kind.provides if kind else frozenset())
    return next((PROVIDED_BY[need] for need in PROVIDED_BY if need in component.needs and need not in provided), None)
