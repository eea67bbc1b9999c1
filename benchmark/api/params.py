"""Declared parameters: what a component accepts, checked before anything runs.

Components declare ``parameters = {"name": Param(...)}`` (as benchopt and scikit-learn do), so the
grid loader can reject a wrong type, a value out of range or an unknown key with a message naming it,
and ``retrainbench list`` can show every knob without importing any heavy library.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.errors import suggestion

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


class ParamError(ValueError):
    """A value does not fit its declaration; ``key`` names the parameter."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``type`` is one type or a tuple of accepted types (an int is accepted where a float is).
    ``low``/``high`` are inclusive bounds, ``above`` an exclusive lower bound, ``choices`` the
    allowed values of a string parameter. ``optional`` admits ``None`` (spelled as an absent key
    in TOML, so it is the default). ``required`` parameters have no default: the grid must set them.
    A number must be finite unless ``infinite`` allows ``inf`` (TOML's ``inf``, or ``1e400``).
    ``registered`` names a kind (``"feature-extractor"``): the value must be the name of a registered
    component of that kind, which the grid loader checks against the registry.
    """

    default: Any
    type: type | tuple[type, ...]
    help: str = ""
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    required: bool = False
    infinite: bool = False
    registered: str | None = None

    @property
    def types(self) -> tuple[builtins.type, ...]:  # the field ``type`` hides the builtin in this class
        return self.type if isinstance(self.type, tuple) else (self.type,)

    def check(self, key: str, value: Any) -> Any:
        """Return ``value`` normalised (ints to floats where a float is wanted) or raise ParamError."""
        if value is None:
            if self.optional:
                return None
            raise ParamError(key, "must be set")
        if isinstance(value, bool) and bool not in self.types:
            raise ParamError(key, f"must be {self.describe_type()} (got {value!r})")
        if isinstance(value, str):
            if str not in self.types:
                raise ParamError(key, f"must be {self.describe_type()} (got {value!r})")
            if self.choices is not None and value not in self.choices:
                allowed = ", ".join(repr(c) for c in self.choices if isinstance(c, str))
                raise ParamError(key, f"must be one of {allowed} (got {value!r})")
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if int in self.types and isinstance(value, int):
                pass
            elif float in self.types:
                value = float(value)
            else:
                raise ParamError(key, f"must be {self.describe_type()} (got {value!r})")
            if value != value:
                raise ParamError(key, "must not be NaN")
            if math.isinf(value) and not self.infinite:
                raise ParamError(key, f"must be a finite number (got {value!r})")
            if self.low is not None and value < self.low:
                raise ParamError(key, f"must be >= {self.low} (got {value!r})")
            if self.above is not None and value <= self.above:
                raise ParamError(key, f"must be > {self.above} (got {value!r})")
            if self.high is not None and value > self.high:
                raise ParamError(key, f"must be <= {self.high} (got {value!r})")
            numeric_choices = [c for c in self.choices or () if not isinstance(c, str)]
            if numeric_choices and value not in numeric_choices:
                raise ParamError(key, f"must be one of {', '.join(map(repr, numeric_choices))} (got {value!r})")
            return value
        if isinstance(value, bool):
            return value
        raise ParamError(key, f"must be {self.describe_type()} (got {type(value).__name__} {value!r})")

    def check_default(self, key: str) -> None:
        """Raise ParamError when the default breaks the declaration (a required parameter's default is never used)."""
        if not self.required:
            self.check(key, self.default)

    def describe_type(self) -> str:
        return " or ".join(_TYPE_NAMES.get(t) or t.__name__ for t in self.types)

    def describe(self) -> str:
        """One line for ``retrainbench list``."""
        parts = [self.describe_type()]
        if self.registered is not None:
            parts.append(f"the name of a registered {self.registered}")
        if self.choices is not None:
            parts.append("one of " + "|".join(map(str, self.choices)))
        if self.low is not None:
            parts.append(f">= {self.low}")
        if self.above is not None:
            parts.append(f"> {self.above}")
        if self.high is not None:
            parts.append(f"<= {self.high}")
        text = ("required" if self.required else f"default {self.default!r}") + "; " + ", ".join(parts)
        return f"{text}. {self.help}" if self.help else text


def resolve(declared: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against ``declared`` and fill in defaults; raise ParamError on the first problem."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        hint = suggestion(unknown[0], declared)
        known = ", ".join(sorted(declared)) or "none"
        raise ParamError(unknown[0], f"unknown parameter{hint} (known: {known})")
    resolved = {}
    for key, param in declared.items():
        if key in given:
            resolved[key] = param.check(key, given[key])
        elif param.required:
            raise ParamError(key, f"is required ({param.help})" if param.help else "is required")
        else:
            resolved[key] = param.default
    return resolved
