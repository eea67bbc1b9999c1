"""The package's regression gate, as its CI runs it: the CI grid again, compared with the committed baseline.

``baseline/`` is the report of ``grids/ci.toml`` (``retrainbench report``); when a change to the package is
meant to alter its numbers, rerun the grid and commit the new report. Runs are seeded, so an unchanged package
compares equal; ``retrainbench compare`` exits 1 on a significant worsening and names the configuration.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def retrainbench(*args, cwd):
    command = [sys.executable, "-m", "benchmark", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_ci_grid_compares_equal_with_the_committed_baseline(tmp_path):
    store = tmp_path / "store"
    run = retrainbench("run", HERE / "grids" / "ci.toml", "--store", store, "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    gate = retrainbench("compare", HERE / "baseline", store, "--markdown", summary, "--junit", junit, cwd=tmp_path)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "passed: 0 failing" in gate.stdout and "passed" in summary.read_text()
    assert 'failures="0"' in junit.read_text()
