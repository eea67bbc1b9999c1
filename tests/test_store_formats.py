"""The store executes no code: a pickle planted in a stored generation is refused when read, never run.

A store may come from someone else (a shared folder, an archive): it is read as JSON, numpy without
pickles and torch with ``weights_only=True`` (CONTRIBUTING, "What can execute code").
"""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import grid_doc

from benchmark.api.plugins import build_registry
from benchmark.errors import StoreError
from benchmark.report.leaderboard import write_report
from benchmark.run import checkpoint
from benchmark.run.harness import RunTask, execute_run
from benchmark.run.spec import parse_grid
from benchmark.run.store import Store


class Payload:
    """Unpickled, it creates ``marker``: what a planted pickle would do with a shell command instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(path: Path, payload: Payload) -> None:
    """Write ``payload`` pickled inside the kind of file ``path`` names."""
    if path.suffix == ".pt":
        torch = pytest.importorskip("torch")
        torch.save({"mean": payload}, path)
    elif path.suffix == ".npz":
        np.savez(path, mean=np.array([payload], dtype=object))
    else:
        np.save(path, np.array([payload], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("name", ["model.npz", "model.pt", "samples.npy"])
def test_a_pickle_planted_in_a_stored_generation_is_refused_not_run(tmp_path, name):
    registry = build_registry()
    doc = grid_doc(name="planted", generations=2, n_real=40, n_test=40, n_eval=40, models=[{"name": "gaussian"}])
    (run,) = parse_grid(doc, registry).runs
    store = Store(tmp_path / "store")
    store.check(create=True)
    execute_run(RunTask(str(store.root), run.describe()), registry)
    last = store.run_dir(run.run_id) / "gen-0002"
    assert (last / "samples.npy").exists() and (last / "model.npz").exists(), "the files planted into must be read"
    marker = tmp_path / "the-pickle-ran"
    plant(last / name, Payload(marker))

    with pytest.raises((ValueError, pickle.UnpicklingError, StoreError)):  # refused where it is read
        checkpoint.load(last, "model") if name.startswith("model") else store.gallery(run.run_id, 2)
    (longer,) = parse_grid({**doc, "generations": 3}, registry).runs
    execute_run(RunTask(str(store.root), longer.describe()), registry)  # resumes from generation 2
    with contextlib.suppress(Exception):  # whether a report refuses the file or sets it aside is not the point
        write_report(store.root, tmp_path / "report")
    assert not marker.exists(), "reading the store ran code planted in it"
