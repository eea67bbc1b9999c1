"""The pytest plugin (entry point ``pytest11``, through ``benchmark.testing``): the conformance marker and fixtures.

``@pytest.mark.retrainbench_conformance(distribution=...)`` parametrizes the ``conformance_case``
fixture with one case per (component, check); the other fixtures hand a plugin's own tests the
environment's registry and the kit's reference data.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmark.api.components import DataSplits
from benchmark.api.registry import Registry
from benchmark.testing.cases import conformance_cases
from benchmark.testing.reference import Budget, reference_data

MARKER = "retrainbench_conformance"


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(distribution=None, plugins=None, modules=(), autoload=None, kinds=..., params=None, options=None, "
        "budget=None): "
        "parametrize the `conformance_case` fixture over the retrainbench components of a distribution or plugins",
    )


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize ``conformance_case`` from the ``retrainbench_conformance`` marker."""
    if "conformance_case" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        raise ValueError(
            f"{metafunc.definition.nodeid}: the conformance_case fixture needs "
            f"@pytest.mark.{MARKER}(distribution=...) or (plugins=[...]) to know which components to check"
        )
    from benchmark.api.plugins import build_registry

    kw = dict(marker.kwargs)
    modules = list(kw.pop("modules", ()))
    registry = build_registry(modules, autoload=kw.pop("autoload", None))
    if modules and "plugins" not in kw and "distribution" not in kw:
        kw["plugins"] = [m if isinstance(m, str) else m.__name__ for m in modules]
    kw["budget"] = kw.get("budget") or Budget()
    cases = conformance_cases(registry, **kw)
    if not cases:
        loaded = ", ".join(f"{p} ({d})" for p, (d, _) in sorted(registry.plugins.items()))
        failed = "; ".join(f"{p}: {r}" for p, r in registry.failures) or "none"
        raise ValueError(
            f"{metafunc.definition.nodeid}: no components match {marker.kwargs}; plugins loaded: {loaded}; "
            f"failed: {failed}. Is the package installed (pip install -e .)?"
        )
    metafunc.parametrize("conformance_case", cases)


@pytest.fixture(scope="session")
def retrainbench_registry() -> Registry:
    """The registry of this environment: every installed plugin, loaded through its entry point."""
    from benchmark.api.plugins import build_registry

    return build_registry()


@pytest.fixture
def conformance_budget() -> Budget:
    """The sizes behind the reference-data fixtures (conformance cases take the marker's ``budget=``)."""
    return Budget()


@pytest.fixture
def reference_vectors(conformance_budget: Budget) -> DataSplits:
    """2-D mixture data (train, test) of the kit, for a plugin's own tests."""
    return reference_data("vector", conformance_budget)[1]


@pytest.fixture
def reference_images(conformance_budget: Budget) -> DataSplits:
    """1x8x8 image data (train, test) in [0, 1] of the kit, for a plugin's own tests."""
    return reference_data("image", conformance_budget)[1]
