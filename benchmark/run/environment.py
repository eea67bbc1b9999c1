"""Where a grid ran: machine and package versions, stored with the grid and shown in reports."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from datetime import UTC, datetime
from typing import Any

from benchmark.api.components import Executor

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


def describe_environment(executor: Executor | None = None) -> dict[str, Any]:
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "executor": executor.name if executor is not None else None,
        "packages": package_versions(),
    }
