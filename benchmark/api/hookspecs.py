"""The hooks a retrainbench plugin can implement.

Registration hooks receive a ``register`` callback and call it once per component class, so the
host can refuse duplicate names and remember which plugin registered what (the style of the
``llm`` and ``tox`` projects). Implement them with ``@benchmark.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from benchmark.api.components import Dataset, Executor, FeatureExtractor, Metric, ModelFamily, Policy

PROJECT_NAME = "retrainbench"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_datasets(register: Callable[[type[Dataset]], Any]) -> None:
    """Register dataset classes: ``register(MyDataset)``."""


@hookspec
def register_model_families(register: Callable[[type[ModelFamily]], Any]) -> None:
    """Register model family classes: ``register(MyFamily)``."""


@hookspec
def register_policies(register: Callable[[type[Policy]], Any]) -> None:
    """Register data-mixing policy classes: ``register(MyPolicy)``."""


@hookspec
def register_metrics(register: Callable[[type[Metric]], Any]) -> None:
    """Register metric classes: ``register(MyMetric)``."""


@hookspec
def register_executors(register: Callable[[type[Executor]], Any]) -> None:
    """Register executor classes, which decide where runs execute: ``register(MyExecutor)``."""


@hookspec
def register_feature_extractors(register: Callable[[type[FeatureExtractor]], Any]) -> None:
    """Register feature extractor classes for feature-space metrics: ``register(MyExtractor)``."""


@hookspec
def on_generation_end(run: dict[str, Any], record: dict[str, Any]) -> None:
    """Called in the process that computed it, after a generation is safely stored.

    ``run`` is the run's canonical spec (with its ``run_id``); ``record`` the stored generation
    record: ``generation``, ``metrics`` ({label: {"value", "detail"}}), ``composition``, ``fit``
    and ``seconds``. Observers (loggers to files, W&B, MLflow, ...) must not modify either.
    """
