"""Where a grid ran: machine and package versions, stored with the grid and shown in reports.

The packages are the distributions the numbers depend on, plus every distribution that registered a
plugin, with the version run ids include (``local+DIGEST`` for a module loaded by name, which no
distribution names: ``RETRAINBENCH_PLUGINS``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from benchmark.api.components import Executor
from benchmark.api.registry import Registry

#: Distributions whose versions matter for the numbers (reported when installed).
PACKAGES = (
    "retrainbench",
    "numpy",
    "scipy",
    "scikit-learn",
    "pot",
    "pandas",
    "pluggy",
    "torch",
    "torchvision",
    "normflows",
    "denoising-diffusion-pytorch",
    "clean-fid",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (read from metadata, nothing imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def plugin_versions(registry: Registry) -> dict[str, str]:
    """The distribution (or module loaded by name) of every loaded plugin, with the version its run ids carry."""
    return dict(registry.plugins.values())


def describe_environment(executor: Executor | None = None, registry: Registry | None = None) -> dict[str, Any]:
    """The machine, the executor and the package versions; with ``registry``, its plugins' distributions too."""
    plugins = plugin_versions(registry) if registry is not None else {}
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "executor": executor.name if executor is not None else None,
        "packages": {**plugins, **package_versions()},
    }


def unchanged_since(recorded: Mapping[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """The environment to record when a grid runs again: the recorded one, start time included, when nothing
    but the start time differs; so running a grid again on the same machine changes no byte of its report."""
    if recorded is not None and {**recorded, "started": None} == {**current, "started": None}:
        return dict(recorded)
    return current
