"""Errors the user can act on. Each carries where the problem is, so the CLI prints one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Process exit codes of the CLI.
EXIT_OK = 0
EXIT_RUNS_FAILED = 1
EXIT_BAD_INPUT = 2


class RetrainbenchError(Exception):
    """Base of every error the CLI reports as a single line with exit code 2."""


class GridError(RetrainbenchError):
    """A grid file is malformed or names something that does not exist.

    ``where`` is the file, ``key`` the dotted path inside it (``models[0].params.ddof``).
    """

    def __init__(self, where: str, key: str, message: str) -> None:
        self.where, self.key, self.message = where, key, message
        location = f"{where}: {key}" if key else where
        super().__init__(f"{location}: {message}")


class RegistryError(RetrainbenchError):
    """A plugin registered something twice, or a name was not found."""


class PluginLoadError(RetrainbenchError):
    """A plugin failed to import and ``--strict-plugins`` is on."""


class StoreError(RetrainbenchError):
    """The result store is unreadable or was written by an incompatible schema."""


class Diverged(Exception):
    """Raised inside a run when samples or losses stop being finite; the run is recorded as diverged."""


class ContractViolation(ValueError):
    """Raised inside a run when a plugin hands the loop what its interface forbids (a NaN metric value,
    samples of the wrong shape): the run is recorded as failed, with a reason naming the plugin."""


def suggestion(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known names, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
