"""Errors the user can act on. Each carries where the problem is, so the CLI prints one line."""

from __future__ import annotations

import difflib
import signal
from collections.abc import Iterable

#: Process exit codes of the CLI. A command stopped by a signal exits with 128 + the signal's number,
#: as shells report it: 130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP (see ``Interrupted``).
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


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT, SIGTERM, SIGHUP) asked the command to stop; ``detail`` says what was left unfinished.

    A KeyboardInterrupt, so that whatever cleans up after Ctrl-C cleans up after the other signals too.
    """

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum, self.detail = signum, detail
        super().__init__(signum, detail)

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"interrupted by {name}: {self.detail}" if self.detail else f"interrupted by {name}"

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention for a process a signal ended."""
        return 128 + self.signum


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
