"""An observer plugin: every finished generation, as one JSON line, appended to a file.

Set ``RETRAINBENCH_JSONL=/path/to/log.jsonl`` and each stored generation of every run (in any
worker process) appends one line: the generation record (metrics, composition, training size, fit
statistics, seconds) plus ``run_id``, the run's ``labels`` (dataset, model, policy, seed, as the
progress output shows them) and its canonical ``spec``. Unset, the plugin does nothing. Lines are
written whole under an exclusive lock, so parallel workers never interleave them; ``tail -f``
follows a grid live and ``pandas.read_json(path, lines=True)`` reads it back.

A W&B or MLflow logger is the same hook in its own package::

    _runs = {}                                         # run id -> W&B run, in this worker

    @hookimpl
    def on_generation_end(run, record):
        import wandb                                   # heavy import inside the hook, not at load time
        if run["run_id"] not in _runs:
            _runs[run["run_id"]] = wandb.init(project="retrainbench", name=run["run_id"], config=run, reinit=True)
        values = {label: m["value"] for label, m in record["metrics"].items()}
        _runs[run["run_id"]].log(values, step=record["generation"])

    # MLflow: the same, with mlflow.start_run(run_name=run["run_id"]) once per run id,
    # mlflow.log_params(...) of the flattened spec, and mlflow.log_metrics(values, step=...).

registered under the ``retrainbench`` entry-point group like this module. The hook runs in the
worker that computed the generation, after it is safely stored; it must not modify its arguments,
and an exception in it fails the run, so a remote logger should catch its own network errors.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from typing import Any

from benchmark import hookimpl
from benchmark.hashing import canonical_json
from benchmark.run.spec import run_spec_from_dict

#: Environment variable naming the JSON-lines file; unset or empty turns the logger off.
JSONL_ENV = "RETRAINBENCH_JSONL"


def labels(run: Mapping[str, Any]) -> dict[str, Any]:
    """Short labels of a run, as in the CLI's output: ``mix[lambda=0.5]`` and so on."""
    spec = run_spec_from_dict(run)
    return {
        "dataset": spec.dataset.label,
        "model": spec.model.label,
        "policy": spec.policy.label,
        "seed": spec.seed,
    }


def line(run: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """The JSON line logged for one generation of one run."""
    spec = {k: v for k, v in run.items() if k not in ("run_id", "given")}
    entry = {"run_id": run["run_id"], "labels": labels(run), **record, "spec": spec}
    return canonical_json(entry) + "\n"


@hookimpl
def on_generation_end(run: dict[str, Any], record: dict[str, Any]) -> None:
    path = os.environ.get(JSONL_ENV)
    if not path:
        return
    data = line(run, record).encode("utf-8")
    with open(path, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(data)
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
