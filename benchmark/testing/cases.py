"""One case per (component, check): what the pytest plugin parametrizes over, and what a plugin's own tests can run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from benchmark.api.components import Component, ModelFamily
from benchmark.api.kinds import CONFORMANCE_KINDS, KINDS
from benchmark.testing.datasets import DATASET_CHECKS
from benchmark.testing.declarations import check_declaration
from benchmark.testing.families import FAMILY_CHECKS
from benchmark.testing.metrics import METRIC_CHECKS
from benchmark.testing.policies import POLICY_CHECKS
from benchmark.testing.reference import Budget

if TYPE_CHECKING:
    import pytest

    from benchmark.api.registry import Registry

#: Kinds of component the kit checks beyond their declarations.
CHECKED_KINDS = CONFORMANCE_KINDS


@dataclass(frozen=True)
class Case:
    """One check of one component: ``run()`` raises AssertionError with what is wrong."""

    kind: str
    name: str
    check: str
    component: type[Component]
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Data kind a family is checked on.
    data_kind: str | None = None
    budget: Budget = Budget()
    registry: Any = field(default=None, repr=False, compare=False)
    #: Extra keyword arguments of the check (``iterative``, ``tolerance``, ``expected``).
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        parts = [self.kind, self.name] + ([self.data_kind] if self.data_kind else []) + [self.check]
        return "-".join(parts)

    def run(self) -> None:
        if self.check == "declaration":
            check_declaration(self.component)
            return
        instance = self.component(self.params)
        options = dict(self.options)
        if self.kind == "model":
            if self.check != "warm-start":
                options.pop("iterative", None)
            FAMILY_CHECKS[self.check](instance, self.data_kind, self.budget, **options)
        elif self.kind == "policy":
            if self.check != "builds":
                options.pop("expected", None)
            POLICY_CHECKS[self.check](instance, self.budget, **options)
        elif self.kind == "metric":
            if self.check != "identical":
                options.pop("tolerance", None)
            METRIC_CHECKS[self.check](instance, self.budget, registry=self.registry, **options)
        elif self.kind == "dataset":
            DATASET_CHECKS[self.check](instance, self.budget, **options)
        else:
            raise AssertionError(f"no conformance checks for kind {self.kind!r}")


def component_cases(
    kind: str,
    component: type[Component],
    *,
    params: Mapping[str, Any] | None = None,
    budget: Budget = Budget(),
    registry: Registry | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Case]:
    """Every check that applies to one component class."""
    base = Case(
        kind, component.name, "declaration", component, dict(params or {}), None, budget, registry, dict(options or {})
    )
    cases = [base]
    if kind == "model":
        family = cast("type[ModelFamily]", component)
        for data_kind in family.data_kinds:
            for check in FAMILY_CHECKS:
                if check != "log-prob" or "log_prob" in family.provides:
                    cases.append(replace(base, check=check, data_kind=data_kind))
    elif kind == "policy":
        cases += [replace(base, check=check) for check in POLICY_CHECKS]
    elif kind == "metric":
        cases += [replace(base, check=check) for check in METRIC_CHECKS]
    elif kind == "dataset":
        cases += [replace(base, check=check) for check in DATASET_CHECKS]
    return cases


def conformance_cases(
    registry: Registry,
    *,
    distribution: str | None = None,
    plugins: Iterable[str] | None = None,
    kinds: Iterable[str] = CHECKED_KINDS,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    budget: Budget = Budget(),
) -> list[pytest.ParameterSet]:
    """pytest parameters, one per (component, check), for the components of ``distribution`` or ``plugins``.

    ``params`` and ``options`` are keyed by ``"kind:name"`` (for example ``"model:vae"``): parameters
    that make a component tiny, and extra arguments of its checks. A component whose requirements
    are missing is skipped with its install hint.
    """
    try:
        import pytest
    except ImportError:  # pragma: no cover - the checks themselves run without pytest
        raise RuntimeError("conformance_cases builds pytest parameters: pip install pytest") from None
    kinds = tuple(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"conformance_cases: unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
    wanted = set(plugins) if plugins is not None else None
    out = []
    for entry in registry:
        dist = registry.plugins.get(entry.plugin, ("?", "?"))[0]
        if entry.kind not in kinds:
            continue
        if distribution is not None and dist != distribution:
            continue
        if wanted is not None and entry.plugin not in wanted:
            continue
        key = f"{entry.kind}:{entry.name}"
        reason = entry.unavailable_reason()
        marks = [pytest.mark.skip(reason=f"{key} unavailable: {reason}")] if reason else []
        for case in component_cases(
            entry.kind,
            entry.component,
            params=(params or {}).get(key),
            budget=budget,
            registry=registry,
            options=(options or {}).get(key),
        ):
            out.append(pytest.param(case, id=case.id, marks=marks))
    return out
