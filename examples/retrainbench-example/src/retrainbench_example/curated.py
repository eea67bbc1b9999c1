"""The ``curated`` policy: the model's samples are filtered by a reward before retraining.

After Ferbach, Bertrand, Bose, Gidel, "Self-Consuming Generative Models with Curated Data Provably
Optimize Human Preferences" (NeurIPS 2024). In their loop users pick among K samples the one they
prefer (a K-wise Bradley-Terry choice with probabilities proportional to exp(r(x))); retraining on
curated samples alone maximises the expected reward (and collapses onto the reward's maximisers),
while mixing in real data keeps the model close to the data distribution.

Here, at generation t, ceil(m / keep) candidates are drawn from the previous model and m = round(lambda * n)
of them are kept: the highest-reward ones when ``temperature`` is 0, else a draw without replacement
with probabilities proportional to exp(r(x) / temperature) (Plackett-Luce, the multi-pick version of
Bradley-Terry, done with the Gumbel-top-k trick). The kept samples join the whole real set (or replace
it when ``real`` is false).
"""

from __future__ import annotations

import math

import numpy as np

from benchmark import Param, Policy, PolicyStep, TrainingSet
from retrainbench_example.rewards import REWARD_PARAMETERS, reward


class Curated(Policy):
    """Real set plus the model's samples that a reward scores highest (Ferbach et al. 2024)."""

    name = "curated"
    parameters = {
        **REWARD_PARAMETERS,
        "keep": Param(0.5, float, "fraction of the drawn candidates kept", above=0, high=1),
        "lambda": Param(1.0, float, "kept synthetic points per real point", low=0),
        "temperature": Param(0.0, float, "0 keeps the top rewards; > 0 samples them with weights exp(r / T)", low=0),
        "real": Param(True, bool, "keep the real set in the training set (false: curated samples only)"),
    }

    def sizes(self, n: int) -> tuple[int, int]:
        """(kept synthetic points, candidates drawn) for n real points."""
        kept = math.floor(self.params["lambda"] * n + 0.5)
        return kept, math.ceil(kept / self.params["keep"] - 1e-9)

    def build(self, step: PolicyStep) -> TrainingSet:
        p = self.params
        n = len(step.real)
        kept, drawn = self.sizes(n)
        if kept == 0:
            if not p["real"]:
                raise ValueError("curated policy with real = false and lambda * n < 0.5 keeps no data at all")
            return TrainingSet(step.real, {"real": n})
        candidates = step.sample(drawn)
        keys = reward(p["reward"], candidates, p["target"])
        if p["temperature"] > 0:
            keys = keys / p["temperature"] + step.rng.gumbel(size=len(keys))
        chosen = np.sort(np.argsort(-keys, kind="stable")[:kept])
        synthetic = candidates[chosen]
        if not p["real"]:
            return TrainingSet(synthetic, {"synthetic": kept})
        return TrainingSet(np.concatenate([step.real, synthetic]), {"real": n, "synthetic": kept})
