"""Reward functions: how much a (simulated) user likes a sample. Shared by the curated policy and its metric.

``closeness``  r(x) = -||x - target||: users prefer samples near the point (target, ..., target).
``mean``       r(x) = mean of x's coordinates (for images, brightness): users prefer larger values.

Both take any sample shape (vectors ``(n, d)``, images ``(n, c, h, w)``) and return one reward per sample.
"""

from __future__ import annotations

import numpy as np

from benchmark import Param

REWARD_PARAMETERS = {
    "reward": Param(
        "closeness",
        str,
        "reward function: 'closeness' (-||x - target||) or 'mean' (mean coordinate)",
        choices=("closeness", "mean"),
    ),
    "target": Param(0.0, float, "every coordinate of the point the 'closeness' reward prefers"),
}


def reward(name: str, x: np.ndarray, target: float = 0.0) -> np.ndarray:
    """Reward ``name`` of each sample of ``x``: an array of shape (n,)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if name == "closeness":
        return -np.linalg.norm(flat - target, axis=1)
    if name == "mean":
        return flat.mean(axis=1)
    raise ValueError(f"unknown reward {name!r}: use 'closeness' or 'mean'")
