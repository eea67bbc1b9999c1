"""The ``reward-shift`` metric: how far the model's samples have moved in the reward's eyes."""

from __future__ import annotations

import numpy as np

from benchmark import Evaluation, Metric
from retrainbench_example.rewards import REWARD_PARAMETERS, reward


class RewardShift(Metric):
    """Mean reward of the samples minus that of the test set: 0 at the data's level, > 0 where curation pushes."""

    name = "reward-shift"
    # Curation aims for > 0; the benchmark asks how far the model left the data, so the best value is 0.
    higher_is_better = None
    optimum = 0.0
    parameters = dict(REWARD_PARAMETERS)

    def compute(self, evaluation: Evaluation) -> float:
        p = self.params
        gap = np.mean(reward(p["reward"], evaluation.samples, p["target"])) - np.mean(
            reward(p["reward"], evaluation.test, p["target"])
        )
        return float(gap)
