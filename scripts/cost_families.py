"""Measure what one retraining generation costs for every model family, and print a Markdown table.

One generation here is: fit the family at its default settings (cold start) on N real points,
then draw N samples. It runs on 2-D data (eight Gaussians) and on scikit-learn's 8x8 digits
(for the families that model images). Each (family, data) pair runs in a fresh child process, so
its peak resident memory (resource.getrusage's ru_maxrss, which includes the Python interpreter
and the libraries the family imports) is its own.

    .venv/bin/python scripts/cost_families.py                  # every available family
    .venv/bin/python scripts/cost_families.py --families flow ddpm --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

DATASETS = {"2-D (eight Gaussians)": "eight-gaussians", "8x8 digits": "digits"}


def measure(family: str, dataset: str, n: int, threads: int | None) -> dict:
    """In the child: one cold fit on ``n`` points and ``n`` samples, timed, plus this process's peak memory."""
    from benchmark.api.components import Dataset, ModelFamily, RunContext
    from benchmark.api.plugins import default_registry
    from benchmark.run.seeding import stream

    registry = default_registry()
    source = registry.component(Dataset, dataset)()
    kind = registry.component(ModelFamily, family)()
    data = source.load(n, 0, 0, stream(0, "data"))
    model = kind.create(data, RunContext(seed=0, threads=threads))
    clock = time.perf_counter()
    model.fit(data.train, warm_start=False, rng=stream(0, 0, "fit"))
    fit = time.perf_counter() - clock
    clock = time.perf_counter()
    model.sample(n, stream(0, 0, "eval"))
    sample = time.perf_counter() - clock
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"fit": fit, "sample": sample, "steps": getattr(model, "steps", None), "peak_mib": peak_kib / 1024}


def families_to_measure(names: list[str] | None) -> list[tuple[str, tuple[str, ...]]]:
    from benchmark.api.components import ModelFamily
    from benchmark.api.plugins import default_registry

    registry = default_registry()
    entries = [e for e in registry if e.kind == "model" and (names is None or e.name in names)]
    unknown = sorted(set(names or ()) - {e.name for e in entries})
    if unknown:
        raise SystemExit(f"cost_families: unknown model families: {', '.join(unknown)}")
    chosen = []
    for entry in entries:
        if entry.available:
            chosen.append((entry.name, registry.component(ModelFamily, entry.name).data_kinds))
        else:
            print(f"cost_families: skipping {entry.name}: {entry.unavailable_reason()}", file=sys.stderr)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", help="model families to measure (default: every available one)")
    parser.add_argument("--n", type=int, default=1000, help="training points and samples per generation (default 1000)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--child", nargs=2, metavar=("FAMILY", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        family, dataset = args.child
        print(json.dumps(measure(family, dataset, args.n, args.threads)))
        return 0

    rows = []
    for family, kinds in families_to_measure(args.families):
        for label, dataset in DATASETS.items():
            if ("image" if dataset == "digits" else "vector") not in kinds:
                continue
            command = [sys.executable, __file__, "--child", family, dataset, "--n", str(args.n)]
            if args.threads is not None:
                command += ["--threads", str(args.threads)]
            print(f"cost_families: {family} on {label} ...", file=sys.stderr, flush=True)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"cost_families: {family} on {label} failed:\n{done.stderr}", file=sys.stderr)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            steps = "" if result["steps"] is None else str(result["steps"])
            rows.append(
                f"| {family} | {label} | {steps} | {result['fit']:.3f} | {result['sample']:.3f} | "
                f"{result['fit'] + result['sample']:.3f} | {result['peak_mib']:.0f} |"
            )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"Default settings, {args.n} training points, {args.n} samples, cold start; "
        f"{os.cpu_count()} cores, torch threads {args.threads or 'default'}, load average {load}.\n"
    )
    print("| family | data | training steps | fit (s) | sample (s) | s / generation | peak memory (MiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
