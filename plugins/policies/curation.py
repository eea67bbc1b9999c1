"""Self-curation by likelihood: the previous model keeps the synthetic points it finds most likely.

A curated retraining loop (Ferbach et al. 2024, "Self-consuming generative models with curated
data") filters the model's own samples before retraining on them. Here the filter is the previous
model's likelihood, read through ``PolicyStep.log_prob``, so the policy declares ``needs =
{"log_prob"}`` and a grid pairs it only with families that provide it (others are skipped at grid
validation, with a note, like a metric that needs what a run lacks):

=======================  ============================================================================
policy                   training set of generation t
=======================  ============================================================================
curate [lambda,          D + the m = round(lambda * n) most likely of round(oversample * m) samples
oversample]              under the previous model (oversample = 1: exactly ``mix``'s training set)
=======================  ============================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark import Param, Policy, PolicyStep, TrainingSet
from plugins.policies.mixing import check_points


class Curate(Policy):
    """The real set plus the round(lambda * n) most likely of round(oversample * m) samples of the previous model."""

    name = "curate"
    needs = frozenset({"log_prob"})
    parameters = {
        "lambda": Param(1.0, float, "synthetic points kept per real point", low=0),
        "oversample": Param(2.0, float, "samples drawn per synthetic point kept (1: no curation)", low=1),
    }

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        kept = params["lambda"] * settings["n_real"]
        check_points("lambda", kept, "synthetic points kept a generation")
        check_points("oversample", params["oversample"] * kept, "samples drawn a generation")

    def build(self, step: PolicyStep) -> TrainingSet:
        n = len(step.real)
        m = math.floor(self.params["lambda"] * n + 0.5)
        if m == 0:
            return TrainingSet(step.real, {"real": n})
        if step.log_prob is None:
            raise ValueError("curate needs the previous model's log_prob, and this run's family does not provide it")
        drawn = step.sample(max(m, math.floor(self.params["oversample"] * m + 0.5)))
        kept = np.sort(np.argsort(-step.log_prob(drawn), kind="stable")[:m])
        return TrainingSet(np.concatenate([step.real, drawn[kept]]), {"real": n, "synthetic": m})
