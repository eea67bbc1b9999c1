"""The kinds of component, in one table: hooks, grid sections, the registry and the conformance kit derive from it.

Adding a kind means one row here, its base class in ``components``, and its hook in ``hookspecs``
(a test checks that every row names a real hook).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.api.components import Component, Dataset, Executor, FeatureExtractor, Metric, ModelFamily, Policy


@dataclass(frozen=True)
class Kind:
    """One kind of component."""

    #: Singular name, as in ``retrainbench list KIND`` and registry look-ups.
    name: str
    #: The base class every registered component of this kind subclasses.
    base: type[Component]
    #: The registration hook whose ``register`` callback adds components of this kind.
    hook: str
    #: Heading for lists of this kind.
    plural: str
    #: The grid file's array of tables listing components of this kind (None: named elsewhere in a grid).
    grid_section: str | None = None
    #: Whether the conformance kit has checks for this kind.
    conformance: bool = False


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("dataset", Dataset, "register_datasets", "datasets", grid_section="datasets", conformance=True),
        Kind("model", ModelFamily, "register_model_families", "models", grid_section="models", conformance=True),
        Kind("policy", Policy, "register_policies", "policies", grid_section="policies", conformance=True),
        Kind("metric", Metric, "register_metrics", "metrics", grid_section="metrics", conformance=True),
        Kind("executor", Executor, "register_executors", "executors"),
        Kind("feature-extractor", FeatureExtractor, "register_feature_extractors", "feature-extractors"),
    )
}

#: Registration hook -> the kind it registers.
REGISTRATION_HOOKS = {kind.hook: name for name, kind in KINDS.items()}
#: Grid section -> the kind it lists.
GRID_SECTIONS = {kind.grid_section: name for name, kind in KINDS.items() if kind.grid_section}
#: Kinds the conformance kit checks.
CONFORMANCE_KINDS = tuple(name for name, kind in KINDS.items() if kind.conformance)
