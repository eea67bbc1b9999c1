"""A conformance kit for plugin authors: checks every component must pass, and a pytest plugin to run them.

A broken plugin must be caught by its author's tests, not by our users. Each ``check_*`` function
is a plain function that raises ``AssertionError`` saying what is wrong, so it works under any test
runner. ``conformance_cases(registry, ...)`` turns them into pytest parameters, one per
(component, check); and this package is a pytest plugin (entry point ``pytest11``), so that::

    import pytest

    pytestmark = pytest.mark.retrainbench_conformance(distribution="my-dist")

    def test_conformance(conformance_case):
        conformance_case.run()

runs the whole suite against every component the distribution registers. The checks use their
own small reference data (the core cannot depend on the first-party plugins) and tiny training
budgets (``Budget``), so a family's checks take seconds.

One module a job: ``reference`` (Budget and the reference data), ``declarations`` (what every
class declares), ``datasets``, ``families``, ``policies`` and ``metrics`` (the checks of each kind;
each fails, as the loop would, a component that uses numpy's or torch's global random state or writes
into the read-only arrays it is handed: ``common.judged_as_in_the_loop``), ``cases``
(one case per component and check) and ``pytest_plugin`` (marker, hooks, fixtures; imported here
where pytest is installed, since the entry point names this package). ``run_in_memory`` and
``model_states`` live in ``benchmark.run.memory`` and are re-exported for plugin authors' tests.
"""

from __future__ import annotations

from importlib.util import find_spec

from benchmark.run.memory import model_states, run_in_memory
from benchmark.testing.cases import CHECKED_KINDS, Case, component_cases, conformance_cases
from benchmark.testing.datasets import DATASET_CHECKS, check_dataset_deterministic, check_dataset_loads
from benchmark.testing.declarations import METRIC_NEEDS, check_declaration, check_metric_flags
from benchmark.testing.families import (
    FAMILY_CHECKS,
    check_family_checkpoint,
    check_family_deterministic,
    check_family_fits,
    check_family_log_prob,
    check_family_warm_start,
)
from benchmark.testing.metrics import (
    METRIC_CHECKS,
    check_metric_deterministic,
    check_metric_direction,
    check_metric_identical,
)
from benchmark.testing.policies import POLICY_CHECKS, SOURCES, check_policy_builds, check_policy_deterministic
from benchmark.testing.reference import (
    REFERENCE_DATASETS,
    Budget,
    NoDataset,
    NoModel,
    ReferenceImages,
    ReferenceMixture,
    reference_data,
)

if find_spec("pytest") is not None:  # the plugin needs pytest; the checks above work without it
    from benchmark.testing.pytest_plugin import (
        MARKER,
        conformance_budget,
        pytest_configure,
        pytest_generate_tests,
        reference_images,
        reference_vectors,
        retrainbench_registry,
    )

__all__ = [
    "CHECKED_KINDS",
    "DATASET_CHECKS",
    "FAMILY_CHECKS",
    "MARKER",
    "METRIC_CHECKS",
    "METRIC_NEEDS",
    "POLICY_CHECKS",
    "REFERENCE_DATASETS",
    "SOURCES",
    "Budget",
    "Case",
    "NoDataset",
    "NoModel",
    "ReferenceImages",
    "ReferenceMixture",
    "check_dataset_deterministic",
    "check_dataset_loads",
    "check_declaration",
    "check_family_checkpoint",
    "check_family_deterministic",
    "check_family_fits",
    "check_family_log_prob",
    "check_family_warm_start",
    "check_metric_deterministic",
    "check_metric_direction",
    "check_metric_flags",
    "check_metric_identical",
    "check_policy_builds",
    "check_policy_deterministic",
    "component_cases",
    "conformance_budget",
    "conformance_cases",
    "model_states",
    "pytest_configure",
    "pytest_generate_tests",
    "reference_data",
    "reference_images",
    "reference_vectors",
    "retrainbench_registry",
    "run_in_memory",
]
