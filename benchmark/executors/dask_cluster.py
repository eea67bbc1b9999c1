"""The ``dask`` executor: runs on a Dask distributed cluster, or on a local one it starts.

Each run is one Dask task. Workers find their plugins through the same entry points (install
retrainbench and the plugin packages on every worker) and must see the store at the same path
(a shared filesystem; see CONTRIBUTING.md). A task whose workers keep dying is given up by the
scheduler after its ``allowed-failures``; it is then reported lost and recorded as failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from benchmark.api.components import Executor, R, T, TaskLost
from benchmark.api.hookspecs import hookimpl
from benchmark.api.params import Param, ParamError
from benchmark.executors.local import cores


class DaskExecutor(Executor):
    """Dask distributed: connects to a scheduler address, or starts a local cluster of worker processes."""

    name = "dask"
    requires = ("distributed",)
    install_hint = 'pip install "retrainbench[dask]"'
    parameters = {
        "address": Param(
            None, str, "scheduler address, e.g. tcp://10.0.0.5:8786 (default: start a local cluster)", optional=True
        ),
        "workers": Param(
            None, int, "worker processes of the local cluster (default: one per core)", low=1, optional=True
        ),
        "retries": Param(
            2,
            int,
            "times the scheduler retries a task whose worker died (a local cluster only: "
            "a remote scheduler keeps its own distributed.scheduler.allowed-failures)",
            low=0,
        ),
        "connect_timeout": Param(10.0, float, "seconds to wait for the scheduler at address to answer", above=0),
    }

    def check_ready(self) -> None:
        """A scheduler address must be well formed and answer within ``connect_timeout`` (a malformed one fails
        at once), so a bad address is refused before the store is created."""
        address = self.params["address"]
        if address is None:
            return
        import asyncio

        from distributed.comm import connect

        async def probe() -> None:
            comm = await connect(address, timeout=self.params["connect_timeout"])
            await comm.close()

        try:
            asyncio.run(probe())
        except ValueError as exc:  # distributed's word for a malformed address
            raise ParamError("address", f"is not a Dask scheduler address such as tcp://host:8786: {exc}") from None
        except Exception as exc:  # OSError, a timeout, or garbage on the wire from something that is not Dask
            reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ParamError("address", f"no Dask scheduler answers at {address!r}: {reason}") from None

    @property
    def threads_per_run(self) -> int | None:
        if self.params["address"] is not None:
            return None  # a remote worker knows its own cores
        return max(1, cores() // (self.params["workers"] or cores()))

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R | TaskLost]:
        import dask
        from distributed import Client, LocalCluster, as_completed
        from distributed.scheduler import KilledWorker

        tasks = list(tasks)
        with dask.config.set({"distributed.scheduler.allowed-failures": self.params["retries"]}):
            if self.params["address"] is not None:
                client, cluster = Client(self.params["address"], timeout=self.params["connect_timeout"]), None
            else:
                cluster = LocalCluster(
                    n_workers=self.params["workers"] or cores(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                client = Client(cluster)
            try:
                futures = client.map(fn, tasks, pure=False)
                index = {future.key: i for i, future in enumerate(futures)}
                try:
                    for future in as_completed(futures):
                        try:
                            result = future.result()
                        except KilledWorker as exc:
                            result = TaskLost(tasks[index[future.key]], f"worker process died: {exc}")
                        except Exception as exc:  # cancelled, or lost with its worker: one task, not the grid
                            result = TaskLost(tasks[index[future.key]], f"{type(exc).__name__}: {exc}")
                        yield result
                finally:
                    client.cancel(futures)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()


@hookimpl
def register_executors(register):
    register(DaskExecutor)
