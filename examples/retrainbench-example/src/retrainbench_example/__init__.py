"""retrainbench-example: a third-party retrainbench plugin, packaged on its own.

The package's entry point (group ``retrainbench``) names this module; retrainbench loads it and
calls the hooks below with a ``register`` callback. Only light modules are imported here: the
VAE imports torch when a run uses it.
"""

from __future__ import annotations

from benchmark import hookimpl
from retrainbench_example.curated import Curated
from retrainbench_example.metrics import RewardShift
from retrainbench_example.vae import VAEFamily

__version__ = "0.1.0"
__all__ = ["Curated", "RewardShift", "VAEFamily"]


@hookimpl
def register_model_families(register):
    register(VAEFamily)


@hookimpl
def register_policies(register):
    register(Curated)


@hookimpl
def register_metrics(register):
    register(RewardShift)
