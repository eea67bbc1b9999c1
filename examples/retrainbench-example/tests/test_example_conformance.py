"""The plugin author's own tests: retrainbench's conformance kit, run through its pytest plugin.

Nothing to import: installing retrainbench registers the kit with pytest (entry point ``pytest11``),
which provides the ``conformance_case`` fixture and the ``retrainbench_conformance`` marker.
Run with ``pip install -e . && pytest``.
"""

import pytest

pytestmark = pytest.mark.retrainbench_conformance(
    distribution="retrainbench-example",
    params={"model:vae": {"hidden": 16}},  # a small network: the checks test behaviour, not quality
)


def test_conformance(conformance_case):
    conformance_case.run()


def test_curated_keeps_the_documented_composition():
    from retrainbench_example import Curated

    from benchmark.testing import check_policy_builds

    # lambda = 0.5: the real set plus round(0.5 n) kept samples, every generation
    check_policy_builds(Curated({"lambda": 0.5}), expected=lambda t, n: {"real": n, "synthetic": round(0.5 * n)})
