"""Checks of what a component class declares (every kind): what ``list``, grid validation and compatibility read."""

from __future__ import annotations

import math

from benchmark.api.compatibility import CAPABILITIES, POLICY_CAPABILITIES, PROVIDED_BY
from benchmark.api.components import TRAINS_TOGETHER_ACROSS, Component, Dataset, Metric, ModelFamily, Policy
from benchmark.api.kinds import DATA_KINDS
from benchmark.api.params import ParamError
from benchmark.testing.common import describe

#: What a metric may declare in ``needs``.
METRIC_NEEDS = CAPABILITIES


def check_declaration(component: type[Component]) -> None:
    """Name, summary, parameters, requirements and kind-specific flags are declared as ``list`` and grids need."""
    who = describe(component)
    if not isinstance(getattr(component, "name", None), str) or not component.name:
        raise AssertionError(f"{component.__name__}: class attribute 'name' must be a non-empty string")
    if not component.summary():
        raise AssertionError(f"{who}: has no docstring; its first line is what `retrainbench list` shows")
    for key, param in component.parameters.items():
        try:
            param.check_default(key)
        except ParamError as exc:
            raise AssertionError(
                f"{who}: the default of parameter {key!r} violates its own declaration: {exc}"
            ) from None
    if isinstance(component.requires, str) or not all(isinstance(r, str) for r in component.requires):
        raise AssertionError(f"{who}: 'requires' must be a tuple of import names, got {component.requires!r}")
    if component.requires and not component.install_hint:
        raise AssertionError(
            f"{who}: declares requires={component.requires!r} but no install_hint telling users what to install"
        )
    if not isinstance(component.version, str):
        raise AssertionError(f"{who}: 'version' must be a string, got {component.version!r}")
    if issubclass(component, ModelFamily):
        kinds = component.data_kinds
        if isinstance(kinds, str) or not kinds or not set(kinds) <= set(DATA_KINDS):
            allowed = "/".join(DATA_KINDS)
            raise AssertionError(f"{who}: data_kinds must be a non-empty tuple of {allowed}, got {kinds!r}")
        if not isinstance(component.warm_start_default, bool):
            raise AssertionError(
                f"{who}: warm_start_default must be True or False, got {component.warm_start_default!r}"
            )
        across = component.trains_together_across
        if not isinstance(across, tuple) or not set(across) <= set(TRAINS_TOGETHER_ACROSS):
            raise AssertionError(
                f"{who}: trains_together_across must be a tuple drawn from {TRAINS_TOGETHER_ACROSS}, got {across!r}"
            )
        if across and not callable(getattr(component, "fit_together", None)):
            raise AssertionError(f"{who}: declares trains_together_across={across!r} but has no fit_together")
    if issubclass(component, (ModelFamily, Dataset)):
        provides, kind = component.provides, "model" if issubclass(component, ModelFamily) else "dataset"
        own = {need for need, (_, by) in PROVIDED_BY.items() if by == kind}
        if not isinstance(provides, frozenset) or not provides <= own:
            raise AssertionError(f"{who}: provides must be a frozenset drawn from {sorted(own)}, got {provides!r}")
    if issubclass(component, Metric):
        check_metric_flags(component)
    if issubclass(component, Policy):
        needs = component.needs
        if not isinstance(needs, frozenset) or not needs <= POLICY_CAPABILITIES:
            raise AssertionError(
                f"{who}: needs must be a frozenset drawn from {sorted(POLICY_CAPABILITIES)}, got {needs!r}"
            )


def check_metric_flags(metric: type[Metric]) -> None:
    """``higher_is_better`` is True, False or None; ``optimum`` a finite number or None; ``needs`` known words."""
    who = f"{metric.__name__} {metric.name!r}"
    if metric.higher_is_better not in (True, False, None) or not isinstance(
        metric.higher_is_better, (bool, type(None))
    ):
        raise AssertionError(f"{who}: higher_is_better must be True, False or None, got {metric.higher_is_better!r}")
    optimum = metric.optimum
    if optimum is not None and (
        isinstance(optimum, bool) or not isinstance(optimum, (int, float)) or not math.isfinite(optimum)
    ):
        raise AssertionError(f"{who}: optimum must be a finite number or None, got {optimum!r}")
    needs = metric.needs
    if isinstance(needs, str) or not isinstance(needs, (set, frozenset)) or not needs <= METRIC_NEEDS:
        raise AssertionError(f"{who}: needs must be a set drawn from {sorted(METRIC_NEEDS)}, got {needs!r}")
