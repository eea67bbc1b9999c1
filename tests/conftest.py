"""Shared fixtures: the first-party registry, the real CLI in a subprocess, throwaway plugin modules."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pytest

from benchmark.api.plugins import build_registry
from benchmark.api.registry import Registry


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any RETRAINBENCH_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAINBENCH_")}
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The installed first-party plugins (through their entry points) and the built-in executors."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("RETRAINBENCH_")}
    try:
        return build_registry(autoload=True)
    finally:
        os.environ.update(saved)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., CliResult]:
    """Run ``python -m benchmark ARGS`` (in ``tmp_path`` unless ``cwd``) and return (exit code, stdout, stderr).

    The child gets this environment minus RETRAINBENCH_* variables, plus ``env``. ``command`` launches
    something else instead of ``python -m benchmark`` (the console script, ``python -c``).
    """

    def run(
        args: Sequence[str],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "benchmark"),
    ) -> CliResult:
        done = subprocess.run(
            [*command, *map(str, args)],
            cwd=cwd or tmp_path,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=300,  # a guard against a hung child, not a measurement
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """A factory writing importable plugin modules into a fresh directory on ``sys.path``.

    ``write(name, source)`` returns the directory (put it on PYTHONPATH for a child process).
    Modules imported from it are removed from ``sys.modules`` afterwards.
    """
    folder = tmp_path / "plugin_modules"
    folder.mkdir()
    written: list[str] = []
    sys.path.insert(0, str(folder))

    def write(name: str, source: str) -> Path:
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        importlib.invalidate_caches()
        return folder

    yield write
    sys.path.remove(str(folder))
    for name in written:
        sys.modules.pop(name, None)
