"""The ``submitit`` executor: SLURM job arrays through submitit (or its local executor, for tests).

Runs are submitted as one job array. A job that SLURM preempts or times out is requeued by
submitit (the callable is Checkpointable) and resumes from the store's last finished
generation. A job that fails without a result is resubmitted ``retries`` times, then reported
lost. The store and the submitit folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from benchmark.api.components import Executor, R, T, TaskLost
from benchmark.api.hookspecs import hookimpl
from benchmark.api.params import Param, ParamError


def _checkpointable(fn: Callable[[T], R]) -> Any:
    """``fn`` wrapped so that submitit requeues it on preemption (resuming from the store)."""
    import submitit

    class Requeueable(submitit.helpers.Checkpointable):
        def __init__(self, fn: Callable[[T], R]) -> None:
            self.fn = fn

        def __call__(self, task: T) -> R:
            return self.fn(task)

    return Requeueable(fn)


class SubmititExecutor(Executor):
    """SLURM job arrays via submitit, requeued on preemption; cluster "local" runs jobs as local processes."""

    name = "submitit"
    requires = ("submitit",)
    install_hint = 'pip install "retrainbench[slurm]"'
    parameters = {
        "folder": Param("submitit-logs", str, "where submitit keeps job logs and results (shared filesystem)"),
        "cluster": Param(
            None,
            str,
            "slurm, local or debug (default: slurm when available, else local)",
            optional=True,
            choices=("slurm", "local", "debug"),
        ),
        "partition": Param(None, str, "SLURM partition", optional=True),
        "timeout_min": Param(60, int, "SLURM time limit per job, minutes (jobs are requeued when it hits)", low=1),
        "cpus_per_task": Param(1, int, "cores per job", low=1),
        "gpus_per_node": Param(0, int, "GPUs per job", low=0),
        "mem_gb": Param(8, int, "memory per job, GB", low=1),
        "array_parallelism": Param(64, int, "jobs of the array running at once", low=1),
        "retries": Param(1, int, "times a job that failed without a result is resubmitted", low=0),
        "poll_seconds": Param(1.0, float, "how often job states are checked", above=0),
    }

    def check_ready(self) -> None:
        """``cluster = "slurm"`` needs SLURM on this machine (submitit looks for ``srun``)."""
        import submitit

        if self.params["cluster"] == "slurm" and submitit.SlurmExecutor.affinity() < 0:
            raise ParamError(
                "cluster", 'is "slurm", but SLURM is not available here (no srun); cluster = "local" runs jobs locally'
            )

    @property
    def threads_per_run(self) -> int:
        return self.params["cpus_per_task"]

    def _executor(self):
        import submitit

        p = self.params
        executor = submitit.AutoExecutor(folder=Path(p["folder"]) / "%j", cluster=p["cluster"])
        settings: dict[str, Any] = {
            "timeout_min": p["timeout_min"],
            "cpus_per_task": p["cpus_per_task"],
            "mem_gb": p["mem_gb"],
        }
        if executor.cluster == "slurm":
            settings.update(slurm_array_parallelism=p["array_parallelism"], gpus_per_node=p["gpus_per_node"])
            if p["partition"]:
                settings["slurm_partition"] = p["partition"]
        elif executor.cluster == "local":
            settings["gpus_per_node"] = p["gpus_per_node"]
        executor.update_parameters(**settings)
        return executor

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R | TaskLost]:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        executor = self._executor()
        job_fn = _checkpointable(fn)
        tasks = list(tasks)
        with executor.batch():
            jobs = [executor.submit(job_fn, task) for task in tasks]
        running = dict(zip(jobs, tasks, strict=True))
        attempts = {id(task): 0 for task in tasks}
        try:
            while running:
                finished = [job for job in running if job.done()]
                if not finished:
                    time.sleep(self.params["poll_seconds"])
                    continue
                for job in finished:
                    task = running.pop(job)
                    try:
                        yield job.result()
                    except (FailedJobError, UncompletedJobError) as exc:
                        attempts[id(task)] += 1
                        if attempts[id(task)] > self.params["retries"]:
                            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                            yield TaskLost(task, f"job {job.job_id} failed: {reason}")
                        else:
                            running[executor.submit(job_fn, task)] = task
        finally:
            for job in running:
                job.cancel(check=False)


@hookimpl
def register_executors(register):
    register(SubmititExecutor)
