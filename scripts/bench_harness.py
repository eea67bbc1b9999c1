"""Benchmark of the harness itself: overhead, start-up, parallel scaling, metric caching, memory, seeds together.

Every target is a ratio or a difference measured side by side in one run, because these
machines are noisy. Prints a table and writes the figures as JSON:

    .venv/bin/python scripts/bench_harness.py [--out bench-harness.json] [--quick]

Not part of the test suite: timings belong here, not in tests.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.testing import NoModel

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CLI = [PYTHON, "-m", "benchmark"]


def grid_text(
    name: str,
    generations: int,
    dataset: str,
    model: str,
    policy: str,
    metrics: list[str],
    n: int = 200,
    seeds: tuple[int, ...] = (0,),
    extra: str = "",
) -> str:
    tables = "".join(f'\n[[metrics]]\nname = "{m}"\n' for m in metrics)
    return (
        f'name = "{name}"\ngenerations = {generations}\nseeds = {list(seeds)}\n'
        f"n_real = {n}\nn_test = {n}\nn_eval = {n}\n{extra}\n"
        f"[[datasets]]\n{dataset}\n[[models]]\n{model}\n[[policies]]\n{policy}\n{tables}"
    )


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ 1. harness overhead


def bare_loop(grid_path: Path) -> float:
    """The same work as the harness does for each run of the grid, called directly: no store, no hooks."""
    from benchmark.api.components import Evaluation, PolicyStep
    from benchmark.api.plugins import default_registry
    from benchmark.run.loop import RunParts
    from benchmark.run.seeding import stream
    from benchmark.run.spec import load_grid

    registry = default_registry()
    runs = load_grid(grid_path, registry).runs
    start = time.perf_counter()
    for run in runs:
        parts = RunParts.build(run, registry)
        pool = parts.policy.pool_size(run.n_real, run.generations)
        data = parts.dataset.load(run.n_real, run.n_test, pool, stream(run.seed, "data"))
        model = parts.family.create(data, parts.context)
        state: Mapping[str, np.ndarray] = parts.policy.initial_state()
        for t in range(run.generations + 1):
            if t == 0:
                train = data.train
            else:
                synthetic = stream(run.seed, t, "synthetic")
                built = parts.policy.build(
                    PolicyStep(
                        t,
                        data.train,
                        data.pool,
                        functools.partial(model.sample, rng=synthetic),
                        state,
                        stream(run.seed, t, "policy"),
                    )
                )
                train, state = built.data, built.state
            model.fit(train, warm_start=t > 0 and run.warm_start, rng=stream(run.seed, t, "fit"))
            samples = model.sample(run.n_eval, stream(run.seed, t, "eval"))
            for label, metric in parts.metrics.items():
                metric.compute(
                    Evaluation(
                        samples,
                        data.test,
                        data.train,
                        model,
                        parts.dataset,
                        stream(run.seed, t, "metric", label),
                        parts.context,
                    )
                )
    return time.perf_counter() - start


def harness_run(grid_path: Path, store: Path) -> float:
    """The same grid through `retrainbench run` (in this process, inline executor, store writes included)."""
    from benchmark.cli import main

    start = time.perf_counter()
    code = main(["run", str(grid_path), "--store", str(store), "--executor", "inline", "--no-progress"])
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"retrainbench run {grid_path} exited {code}")
    return elapsed


def overhead(tmp: Path, name: str, grid: str, repeats: int) -> dict[str, Any]:
    path = write(tmp, name, grid)
    from benchmark.api.plugins import default_registry
    from benchmark.run.spec import load_grid

    generations = sum(r.generations + 1 for r in load_grid(path, default_registry()).runs)
    bare, harness = [], []
    for i in range(repeats):  # interleaved, so drifts in machine load hit both sides alike
        bare.append(bare_loop(path))
        harness.append(harness_run(path, tmp / f"{name}-store-{i}"))
    b, h = statistics.median(bare), statistics.median(harness)
    return {
        "generations": generations,
        "bare_s": b,
        "harness_s": h,
        "ratio": h / b,
        "bookkeeping_ms_per_generation": (h - b) / generations * 1000,
    }


# ------------------------------------------------------------------ 2. start-up


def wall(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup(repeats: int) -> dict[str, float]:
    script = str(Path(PYTHON).parent / "retrainbench")
    return {
        "import_pluggy_s": wall([PYTHON, "-c", "import pluggy"], repeats),
        "help_s": wall([script, "--help"], repeats),
        "list_s": wall([script, "list"], repeats),
    }


# ------------------------------------------------------------------ 3. parallel scaling


def scaling(tmp: Path, quick: bool) -> dict[str, float]:
    """8 CPU-bound runs (flows, a few seconds each) on the local executor, 2 workers against 1.

    Each run must be long next to a worker's start-up (a spawned process importing torch), as real
    runs are; a single worker may use every core's threads, as it would for a user."""
    grid = write(
        tmp,
        "scaling",
        grid_text(
            "scaling",
            generations=1,
            dataset='name = "moons"',
            model=f'name = "flow"\nparams = {{ steps = {150 if quick else 400} }}',
            policy='name = "mix"\nparams = { lambda = [0.5, 1.0] }',
            metrics=["mean-distance"],
            n=1000,
            seeds=(0, 1, 2, 3),
        ),
    )
    result = {}
    for workers in (1, 2):
        start = time.perf_counter()
        subprocess.run(
            [
                *CLI,
                "run",
                str(grid),
                "--store",
                str(tmp / f"scaling-{workers}"),
                "--workers",
                str(workers),
                "--no-progress",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result[f"workers_{workers}_s"] = time.perf_counter() - start
    result["speedup"] = result["workers_1_s"] / result["workers_2_s"]
    result["machine_ceiling"] = cpu_ceiling()
    return result


def progress_overhead(tmp: Path, runs: int, repeats: int) -> dict[str, Any]:
    """A grid of ``runs`` tiny analytic runs (inline executor, in this process), progress bar on against off.

    Off is what a log gets (a line per run, and per generation seen); on is the terminal's bar. Both poll
    the store, so the ratio is what the bar's counting costs (issue 18: once quadratic in the runs)."""
    import contextlib

    from benchmark.api.plugins import default_registry
    from benchmark.executors.inline import InlineExecutor
    from benchmark.run.harness import run_grid
    from benchmark.run.spec import load_grid
    from benchmark.run.store import Store

    registry = default_registry()
    path = write(
        tmp,
        f"progress-{runs}",
        grid_text(
            f"progress-{runs}",
            generations=1,
            dataset='name = "gaussian"\nparams = { dim = 2 }',
            model='name = "gaussian"',
            policy='name = "replace"',
            metrics=["mean-distance"],
            n=20,
            seeds=tuple(range(runs)),
        ),
    )
    grid = load_grid(path, registry)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for i in range(repeats):  # interleaved, so drifts in machine load hit both sides alike
        for bar in (False, True):
            with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                start = time.perf_counter()
                run_grid(grid, Store(tmp / f"progress-{runs}-{bar}-{i}"), InlineExecutor(), registry, progress=bar)
                seconds[bar].append(time.perf_counter() - start)
    off, on = statistics.median(seconds[False]), statistics.median(seconds[True])
    return {"runs": runs, "bar_off_s": off, "bar_on_s": on, "ratio": on / off}


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def cpu_ceiling(n: int = 20_000_000) -> float:
    """Speed-up of 2 processes of pure arithmetic over 1 on this machine: the most any executor can get here."""
    import multiprocessing

    start = time.perf_counter()
    _burn(n)
    _burn(n)
    serial = time.perf_counter() - start
    with multiprocessing.get_context("fork").Pool(2) as pool:
        start = time.perf_counter()
        pool.map(_burn, [n, n])
        parallel = time.perf_counter() - start
    return serial / parallel


def sgemm_rate(size: int = 512, repeats: int = 20) -> float:
    """This machine's single-thread float32 matrix-multiply rate, FLOP/s: the compute floor's yardstick."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def dispatch_cost(calls: int = 20_000) -> float:
    """Seconds torch takes for one trivial op on the CPU (adding two 1-element tensors), best of 5: what each
    operation of a step costs in eager mode however little arithmetic it does."""
    import torch

    a, b = torch.ones(1), torch.ones(1)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            a + b
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def ops_per_step(fit: Callable[[int], None]) -> int:
    """The aten operations one training step dispatches: those of a 2-step fit less those of a 1-step fit."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    counts = []
    for steps in (1, 2):
        Count.calls = 0
        with Count():
            fit(steps)
        counts.append(Count.calls)
    return counts[1] - counts[0]


def compute_floor(steps: int = 300, repeats: int = 3) -> dict[str, Any]:
    """A default 2-D training step (flow, ddpm) on one thread: its time over its compute floor, i.e. the step's
    FLOPs (torch's FlopCounterMode, forward and backward) at this machine's single-thread sgemm rate; alone, and
    as one seed's share of a step of 8 seeds trained together."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark import DataSplits, RunContext
    from plugins.datasets.toy import EightGaussians
    from plugins.families.diffusion import DDPMFamily
    from plugins.families.flows import FlowFamily

    torch.set_num_threads(1)
    data = EightGaussians().draw(1000, np.random.default_rng(0))
    splits = DataSplits(train=data, test=data, pool=data[:0], kind="vector")
    context = RunContext(seed=0, device="cpu", threads=1)
    rate = sgemm_rate()
    op_cost = dispatch_cost()
    figures: dict[str, Any] = {"sgemm_gflops": rate / 1e9, "op_us": op_cost * 1e6}
    for family in (FlowFamily, DDPMFamily):
        ops = ops_per_step(
            lambda k, family=family: (  # type: ignore[misc]  # the family's type, a union, defeats inference
                family({"steps": k}).create(splits, context).fit(data, warm_start=False, rng=np.random.default_rng(0))
            )
        )
        counter = FlopCounterMode(display=False)
        with counter:
            family({"steps": 1}).create(splits, context).fit(data, warm_start=False, rng=np.random.default_rng(0))
        flops = counter.get_total_flops()
        best = math.inf
        for _ in range(repeats):
            model = family({"steps": steps}).create(splits, context)
            start = time.perf_counter()
            model.fit(data, warm_start=False, rng=np.random.default_rng(0))
            best = min(best, time.perf_counter() - start)
        step = best / steps
        # The same steps for 8 seeds trained together (fit_together): one seed's share of a batched step.
        share = fit_together_cpu(family.name, steps=steps, repeats=repeats)["together_cpu_s"] / steps / 8
        figures[family.name] = {
            "step_ms": step * 1e3,
            "mflop_per_step": flops / 1e6,
            "over_floor": step * rate / flops,
            "seed_share_of_8_ms": share * 1e3,
            "over_floor_8_together": share * rate / flops,
            # The step's operations at the cost of a trivial one: eager mode's own floor, whatever the arithmetic.
            "ops_per_step": ops,
            "dispatch_floor_ms": ops * op_cost * 1e3,
            "dispatch_over_floor": ops * op_cost * rate / flops,
        }
    return figures


# ------------------------------------------------------------------ 4. metrics with cached real features


def metric_cache(tmp: Path) -> dict[str, float]:
    """FID (domain extractor) on 8x8 digits: first evaluation, a later generation, and a new run on the same data."""
    import numpy as np

    from benchmark.api.components import Dataset, Evaluation, Metric, RunContext
    from benchmark.api.plugins import default_registry
    from benchmark.run import features
    from benchmark.run.features import FeatureSpace
    from benchmark.run.seeding import stream

    registry = default_registry()
    dataset = registry.component(Dataset, "digits")()
    fid = registry.component(Metric, "fid")({"extractor": "domain"})
    data = dataset.load(500, 500, 0, stream(0, "data"))
    context = RunContext(seed=0, device="cpu")
    noise = np.random.default_rng(0)

    def evaluate(space: FeatureSpace, generation: int) -> float:
        samples = np.clip(data.train + 0.05 * noise.standard_normal(data.train.shape), 0, 1)
        evaluation = Evaluation(
            samples,
            data.test,
            data.train,
            NoModel(),
            dataset,
            stream(0, generation),
            context,
            features=space.lookup(samples, generation),
        )
        start = time.perf_counter()
        fid.compute(evaluation)
        return time.perf_counter() - start

    key = {"dataset": "digits", "seed": 0, "n": 500}
    space = FeatureSpace(registry, data, key, context, tmp / "cache")
    first = evaluate(space, 0)  # trains the extractor, then real and synthetic features
    later = evaluate(space, 1)  # real features from memory: only the synthetic side
    start = time.perf_counter()
    space.extractor("domain").extract(data.train, context)
    synthetic_only = time.perf_counter() - start
    features._MEMORY.clear()  # a new run in a new process: real features and extractor come from disk
    new_run = evaluate(FeatureSpace(registry, data, key, context, tmp / "cache"), 0)
    return {
        "first_s": first,
        "later_generation_s": later,
        "new_run_s": new_run,
        "synthetic_features_s": synthetic_only,
        "later_over_synthetic": later / synthetic_only,
    }


# ------------------------------------------------------------------ 5. memory


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of a child process (and its children), in MB.

    The command starts from a small wrapper process: Linux carries a process's peak across fork and
    exec, so a child started straight from this (large, torch-loaded) process would report ours."""
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([PYTHON, "-c", code, *command], check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def memory(tmp: Path) -> dict[str, float]:
    """Peak memory of the smoke grid, and of one default generation of each family on 2-D data
    (measured by scripts/cost_families.py in a child process per family)."""
    figures = {
        "smoke_grid_mb": peak_rss_mb(
            [
                *CLI,
                "run",
                str(REPO / "grids/smoke.toml"),
                "--store",
                str(tmp / "mem-smoke"),
                "--executor",
                "inline",
                "--no-progress",
            ]
        )
    }
    from benchmark.api.plugins import default_registry

    for entry in default_registry():
        if entry.kind == "model" and entry.available and entry.plugin in FIRST_PARTY_FAMILIES:
            figures[f"{entry.name}_mb"] = peak_rss_mb(
                [PYTHON, str(REPO / "scripts/cost_families.py"), "--child", entry.name, "eight-gaussians"]
            )
    return figures


#: Plugins whose families the memory figures cover (third-party ones installed here are left out).
FIRST_PARTY_FAMILIES = ("analytic-families", "flows", "diffusion")


# ------------------------------------------------------------------ report


# ------------------------------------------------------------------ 7. store growth under accumulate


def store_growth(tmp: Path, generations: int = 200, n: int = 1000) -> dict[str, Any]:
    """One `accumulate` run on 2-D data: bytes stored per generation at G = 50 and G = generations, and
    what storing the whole policy state in every generation (before growth was stored alone) would take."""
    from benchmark.run.store import Store

    text = grid_text(
        "growth",
        generations,
        'name = "eight-gaussians"',
        'name = "gaussian"',
        'name = "accumulate"',
        ["mean-distance"],
        n=n,
    )
    harness_run(write(tmp, "growth", text), tmp / "growth-store")
    store = Store(tmp / "growth-store")
    (run_id,) = store.run_ids()

    def gen_bytes(t: int) -> int:
        return sum(p.stat().st_size for p in (store.run_dir(run_id) / f"gen-{t:04d}").iterdir())

    per_generation = [gen_bytes(t) for t in range(generations + 1)]
    synthetic = n * 2 * 8  # one generation's synthetic set: n float64 points in 2-D
    figures: dict[str, Any] = {"n": n, "synthetic_set_bytes": synthetic}
    for g in (50, generations):
        figures[f"run_mb_at_{g}"] = sum(per_generation[: g + 1]) / 1e6
        figures[f"bytes_per_generation_at_{g}"] = per_generation[g]
        # computed, not measured: generation t >= 1 would hold t synthetic sets instead of one
        repeated = synthetic * (g * (g + 1) // 2 - g)
        figures[f"whole_state_run_mb_at_{g}"] = (sum(per_generation[: g + 1]) + repeated) / 1e6
    figures["growth_ratio"] = per_generation[generations] / per_generation[50]
    return figures


#: The families that train seeds together (``fit_together``), measured by ``seeds_together``.
BATCHED_FAMILIES = ("flow", "ddpm", "edm", "cfm")


#: The settings of the seeds-together figure: (key, training steps per generation, generations), full and --quick.
#: ``short`` is a small budget, where sampling and metrics (run one run at a time) weigh heavily; ``default_budget``
#: is the families' default training budget (1000 steps per generation, as the default grids train).
SEEDS_SETTINGS = {
    False: (("short", 300, 2), ("default_budget", 1000, 2)),
    True: (("short", 50, 1), ("default_budget", 200, 1)),
}


def timed_harness_run(grid_path: Path, store: Path) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``harness_run``: CPU time is what load on a shared machine disturbs
    least (the inline executor runs everything in this process)."""
    cpu = time.process_time()
    elapsed = harness_run(grid_path, store)
    return elapsed, time.process_time() - cpu


def seeds_together(tmp: Path, quick: bool, families: tuple[str, ...] = BATCHED_FAMILIES) -> dict[str, Any]:
    """8 seeds of one configuration of each batched family: `retrainbench run` with ``batch_seeds = false`` over
    the same grid trained together (one torch thread, inline executor, store writes included), interleaved, in wall
    and process CPU seconds, at each of ``SEEDS_SETTINGS``; and the fit alone (``fit`` eight times over one
    ``fit_together``) in CPU seconds. The top-level figures of a family are its ``short`` setting's."""
    import torch

    torch.set_num_threads(1)  # one torch thread per worker, as the executors give each run
    figures: dict[str, Any] = {}
    for family in families:
        figures[family] = {}
        for setting, steps, generations in SEEDS_SETTINGS[quick]:
            measured = batched_against_alone(
                tmp,
                f"seeds-{family}-{setting}",
                attempts=1 if quick or setting != "short" else 2,
                steps=steps,
                generations=generations,
                model=f'name = "{family}"',
                policy='name = "mix"\nparams = { lambda = 0.5 }',
                seeds=tuple(range(8)),
            )
            if setting == "short":
                figures[family].update(measured)
            else:
                figures[family][setting] = measured
        figures[family]["fit"] = fit_together_cpu(family, steps=50 if quick else 200, repeats=1 if quick else 3)
    return figures


#: flows-2d's policies: a grid of one seed, whose runs of one configuration differ only by policy.
FLOWS_2D_POLICIES = (
    'name = "mix"\nparams = { lambda = [0.0, 0.5, 2.0] }\n[[policies]]\nname = "replace"\n'
    '[[policies]]\nname = "accumulate"'
)


def policies_together(tmp: Path, quick: bool, families: tuple[str, ...] = BATCHED_FAMILIES) -> dict[str, Any]:
    """A grid shaped as flows-2d (one seed, five policies: mix at lambda 0, 0.5 and 2, replace, accumulate), each
    family at 300 steps a generation: one run at a time over the five runs trained together
    (``trains_together_across = ("policy",)``), as ``seeds_together`` measures it."""
    import torch

    torch.set_num_threads(1)
    steps, generations = (50, 1) if quick else (300, 2)
    return {
        family: batched_against_alone(
            tmp,
            f"policies-{family}",
            attempts=1,
            steps=steps,
            generations=generations,
            model=f'name = "{family}"',
            policy=FLOWS_2D_POLICIES,
            seeds=(0,),
        )
        for family in families
    }


def batched_against_alone(
    tmp: Path,
    name: str,
    *,
    attempts: int,
    steps: int,
    generations: int,
    model: str,
    policy: str,
    seeds: tuple[int, ...],
) -> dict[str, Any]:
    """`retrainbench run` of a grid on eight-gaussians (n = 500) with ``batch_seeds = false`` and ``true``,
    interleaved, best of ``attempts``: wall and process CPU seconds, and their ratios (alone over together)."""
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for attempt in range(attempts):
        for together in (False, True):
            label = f"{name}-{together}-{attempt}"
            grid = grid_text(
                label,
                generations=generations,
                dataset='name = "eight-gaussians"',
                model=model,
                policy=policy,
                metrics=["mean-distance"],
                n=500,
                seeds=seeds,
                extra=f"train_steps = {steps}\nbatch_seeds = {str(together).lower()}",
            )
            elapsed, used = timed_harness_run(write(tmp, label, grid), tmp / label)
            wall[together].append(elapsed)
            cpu[together].append(used)
    return {
        "steps": steps,
        "generations": generations + 1,
        "alone_s": min(wall[False]),
        "together_s": min(wall[True]),
        "ratio": min(wall[False]) / min(wall[True]),
        "alone_cpu_s": min(cpu[False]),
        "together_cpu_s": min(cpu[True]),
        "cpu_ratio": min(cpu[False]) / min(cpu[True]),
        "loadavg": os.getloadavg()[0],
    }


def fit_together_cpu(family_name: str, *, steps: int, repeats: int, seeds: int = 8) -> dict[str, float]:
    """CPU seconds of ``seeds`` default 2-D models of a family fitted one by one and with ``fit_together``
    (one thread, interleaved, best of ``repeats``)."""
    import numpy as np

    from benchmark import DataSplits, ModelFamily, RunContext
    from benchmark.api.plugins import default_registry
    from plugins.datasets.toy import EightGaussians

    family = default_registry().component(ModelFamily, family_name)({"steps": steps})
    data = EightGaussians().draw(500, np.random.default_rng(0))
    splits = DataSplits(train=data, test=data, pool=data[:0], kind="vector")

    def fitted(together: bool) -> float:
        models = [family.create(splits, RunContext(seed=s, device="cpu", threads=1)) for s in range(seeds)]
        rngs = [np.random.default_rng(s) for s in range(seeds)]
        start = time.process_time()
        if together:
            family.fit_together(models, [data] * seeds, warm_start=False, rngs=rngs)  # type: ignore[attr-defined]
        else:
            for model, rng in zip(models, rngs, strict=True):
                model.fit(data, warm_start=False, rng=rng)
        return time.process_time() - start

    alone, batched = math.inf, math.inf
    for _ in range(repeats):
        alone, batched = min(alone, fitted(False)), min(batched, fitted(True))
    return {"steps": steps, "alone_cpu_s": alone, "together_cpu_s": batched, "ratio": alone / batched}


#: Why a figure left out by ``--only`` was not measured.
NOT_ASKED = "not asked for (--only)"


def row(what: str, figure: str, target: str, met: bool | None) -> tuple[str, str, str, str]:
    return what, figure, target, {True: "met", False: "NOT MET", None: "-"}[met]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-harness.json"))
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller work (for a first look)")
    parser.add_argument(
        "--progress-runs", type=int, default=2000, help="runs of the progress-bar grid (issue 18's target: 5,000)"
    )
    parser.add_argument("--only", nargs="+", metavar="FIGURE", help="measure only these figures (e.g. progress)")
    parser.add_argument(
        "--families",
        nargs="+",
        default=list(BATCHED_FAMILIES),
        choices=BATCHED_FAMILIES,
        help="the families seeds_together measures (default: all that train seeds together)",
    )
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    figures: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    rows = []
    # Stores go where users keep them by default (under the working directory), not in /tmp.
    (REPO / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "build") as name:
        tmp = Path(name)
        steps: list[tuple[str, Callable[[], Any]]] = [
            (
                "overhead_gaussian",
                lambda: overhead(
                    tmp,
                    "gaussian",
                    grid_text(
                        "gaussian",
                        generations=100 if args.quick else 300,
                        dataset='name = "gaussian"\nparams = { dim = 2 }',
                        model='name = "gaussian"',
                        policy='name = "replace"',
                        metrics=["mean-distance"],
                    ),
                    repeats,
                ),
            ),
            (
                "overhead_flow",
                lambda: overhead(
                    tmp,
                    "flow",
                    grid_text(
                        "flow",
                        generations=1 if args.quick else 3,
                        dataset='name = "eight-gaussians"',
                        model='name = "flow"',
                        policy='name = "mix"\nparams = { lambda = 0.5 }',
                        metrics=["w2", "nll"],
                        n=500,
                    ),
                    repeats,
                ),
            ),
            ("startup", lambda: startup(5 if args.quick else 11)),
            ("scaling", lambda: scaling(tmp, args.quick)),
            ("metric_cache", lambda: metric_cache(tmp)),
            ("memory", lambda: memory(tmp)),
            ("progress", lambda: progress_overhead(tmp, 500 if args.quick else args.progress_runs, repeats)),
            ("store_growth", lambda: store_growth(tmp, 50 if args.quick else 200)),
            ("compute_floor", lambda: compute_floor(100 if args.quick else 300, repeats)),
            ("seeds_together", lambda: seeds_together(tmp, args.quick, tuple(args.families))),
            ("policies_together", lambda: policies_together(tmp, args.quick, tuple(args.families))),
        ]
        for key, measure in steps:
            if args.only and key not in args.only:
                figures[key] = {"error": NOT_ASKED}
                continue
            print(f"measuring {key} ...", file=sys.stderr, flush=True)
            try:
                figures[key] = measure()
            except Exception as exc:  # one part failing must not hide the others
                figures[key] = {"error": f"{type(exc).__name__}: {exc}"}

    g, f, s, p, c, m, b = (
        figures[k]
        for k in ("overhead_gaussian", "overhead_flow", "startup", "scaling", "metric_cache", "memory", "progress")
    )
    if "error" not in g:
        rows.append(
            row(
                "gaussian: bookkeeping per generation (store writes included)",
                f"{g['bookkeeping_ms_per_generation']:.3f} ms ({g['generations']} generations, "
                f"harness {g['harness_s']:.2f} s vs bare {g['bare_s']:.2f} s)",
                "<= 1 ms",
                g["bookkeeping_ms_per_generation"] <= 1.0,
            )
        )
    if "error" not in f:
        rows.append(
            row(
                "flow (defaults): harness / bare loop",
                f"{f['ratio']:.3f} ({f['harness_s']:.1f} s vs {f['bare_s']:.1f} s)",
                "<= 1.05",
                f["ratio"] <= 1.05,
            )
        )
    if "error" not in s:
        for key, label in (("help_s", "retrainbench --help"), ("list_s", "retrainbench list")):
            rows.append(
                row(
                    f"start-up: {label} (median)",
                    f"{s[key]:.3f} s (import pluggy alone: {s['import_pluggy_s']:.3f} s)",
                    "< 0.3 s",
                    s[key] < 0.3,
                )
            )
    if "error" not in p:
        rows.append(
            row(
                "8 CPU-bound runs, local executor: 2 workers vs 1",
                f"speed-up {p['speedup']:.2f} ({p['workers_1_s']:.1f} s vs {p['workers_2_s']:.1f} s)",
                ">= 1.8",
                p["speedup"] >= 1.8,
            )
        )
        rows.append(
            row(
                "  this machine's ceiling: 2 processes of pure arithmetic vs 1",
                f"speed-up {p['machine_ceiling']:.2f} (the executor reaches "
                f"{p['speedup'] / p['machine_ceiling']:.0%} of it)",
                "reported",
                None,
            )
        )
    if "error" not in c:
        rows.append(
            row(
                "FID (domain features) on digits: later generation / synthetic features alone",
                f"{c['later_over_synthetic']:.2f} (first evaluation {c['first_s']:.2f} s, later "
                f"{c['later_generation_s']:.3f} s, new run {c['new_run_s']:.3f} s)",
                "~1: real side cached",
                None,
            )
        )
    if "error" not in m:
        rows.append(row("peak memory: smoke grid (inline)", f"{m['smoke_grid_mb']:.0f} MB", "reported", None))
        for key, value in m.items():
            if key != "smoke_grid_mb":
                rows.append(
                    row(
                        f"peak memory: {key[:-3]} family, one default generation on 2-D data",
                        f"{value:.0f} MB",
                        "reported",
                        None,
                    )
                )
    if "error" not in b:
        rows.append(
            row(
                f"progress bar on / off, {b['runs']} tiny analytic runs (inline)",
                f"{b['ratio']:.3f} ({b['bar_on_s']:.1f} s vs {b['bar_off_s']:.1f} s)",
                "<= 1.1 (at 5,000 runs)",
                b["ratio"] <= 1.1,
            )
        )
    sg = figures["store_growth"]
    if "error" not in sg:
        top = max(int(k[len("run_mb_at_") :]) for k in sg if k.startswith("run_mb_at_"))
        rows.append(
            row(
                f"accumulate, n = {sg['n']} in 2-D: bytes per generation at G = {top} over G = 50",
                f"{sg['growth_ratio']:.3f} ({sg[f'bytes_per_generation_at_{top}']} vs "
                f"{sg['bytes_per_generation_at_50']} bytes); run {sg['run_mb_at_50']:.1f} MB at 50, "
                f"{sg[f'run_mb_at_{top}']:.1f} MB at {top} (whole state per generation would take "
                f"{sg['whole_state_run_mb_at_50']:.1f}, {sg[f'whole_state_run_mb_at_{top}']:.1f} MB)",
                "~1: linear store",
                sg["growth_ratio"] <= 1.05,
            )
        )
    cf = figures["compute_floor"]
    if "error" not in cf:
        for name in ("flow", "ddpm"):
            rows.append(
                row(
                    f"{name} (defaults, 2-D, one thread): training-step time over its compute floor",
                    f"{cf[name]['over_floor']:.1f}x ({cf[name]['step_ms']:.2f} ms per step, "
                    f"{cf[name]['mflop_per_step']:.1f} MFLOP at {cf['sgemm_gflops']:.0f} GFLOP/s); a seed's share "
                    f"of a step of 8 trained together {cf[name]['over_floor_8_together']:.1f}x "
                    f"({cf[name]['seed_share_of_8_ms']:.2f} ms); its {cf[name]['ops_per_step']} operations at "
                    f"{cf['op_us']:.1f} us each (a trivial op) alone take {cf[name]['dispatch_over_floor']:.1f}x",
                    "<= 3x",
                    cf[name]["over_floor"] <= 3,
                )
            )
    st = figures["seeds_together"]
    if "error" not in st:
        for family, f in st.items():
            d = f["default_budget"]
            rows.append(
                row(
                    f"8 seeds of one {family} configuration (2-D, one thread): one run at a time / trained together",
                    f"{f['steps']} steps: {f['ratio']:.2f}x wall ({f['alone_s']:.1f} s vs {f['together_s']:.1f} s), "
                    f"{f['cpu_ratio']:.2f}x CPU; {d['steps']} steps: {d['ratio']:.2f}x wall, {d['cpu_ratio']:.2f}x CPU "
                    f"({d['alone_cpu_s']:.1f} s vs {d['together_cpu_s']:.1f} s); the fit alone "
                    f"({f['fit']['steps']} steps, CPU time) {f['fit']['ratio']:.2f}x",
                    ">= 2x",
                    d["cpu_ratio"] >= 2.0,
                )
            )
    pt = figures["policies_together"]
    if "error" not in pt:
        for family, f in pt.items():
            rows.append(
                row(
                    f"one seed of five policies of one {family} configuration (flows-2d's shape, 2-D, one thread): "
                    "one run at a time / trained together",
                    f"{f['steps']} steps: {f['ratio']:.2f}x wall ({f['alone_s']:.1f} s vs {f['together_s']:.1f} s), "
                    f"{f['cpu_ratio']:.2f}x CPU",
                    "-",
                    None,
                )
            )
    for key, value in figures.items():
        if isinstance(value, dict) and "error" in value:
            # a figure left out by --only is no verdict; one whose measurement raised is not met
            rows.append(
                row(key, "not measured: " + value["error"], "-", None if value["error"] == NOT_ASKED else False)
            )

    header = ("what", "measured", "target", "")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    args.out.write_text(json.dumps(figures, indent=1))
    print(f"\nfigures written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
