"""The CUDA check: deep families, feature extraction and a small grid on the GPU, timed against the CPU.

Prepared to run as one short script on a machine lent with a GPU (about 3 minutes there); on a
machine without CUDA it runs the CPU half and says so. Prints a Markdown table for README's
"Cost per generation" notes and writes the figures as JSON:

    .venv/bin/python scripts/device_check.py [--out device-check.json] [--steps 1000]

Each figure is one cold fit on 1000 real points plus 1000 samples (images: 500), with the
family's defaults, after one warm-up call on the device so CUDA's start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: (family, dataset, training points, params): the deep families on the data of the reproductions.
CASES = [
    ("flow", "eight-gaussians", 1000, {}),
    ("ddpm", "eight-gaussians", 1000, {}),
    ("edm", "eight-gaussians", 1000, {}),
    ("cfm", "eight-gaussians", 1000, {}),
    ("flow", "digits", 500, {"levels": 17}),
    ("ddpm", "digits", 500, {}),
]

GRID = """name = "device-check"
generations = 2
seeds = [0, 1]
n_real = 500
n_test = 500
n_eval = 500
train_steps = {steps}
device = "{device}"

[[datasets]]
name = "eight-gaussians"

[[models]]
name = "flow"

[[models]]
name = "ddpm"

[[policies]]
name = "mix"
params = {{ lambda = 1.0 }}

[[metrics]]
name = "w2"
"""


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def family_generation(family: str, dataset: str, n: int, params: dict, device: str, steps: int) -> dict[str, float]:
    """Seconds of one cold fit and of n samples for ``family`` on ``device``."""
    from benchmark.api.components import Dataset, ModelFamily, RunContext
    from benchmark.api.plugins import default_registry
    from benchmark.run.seeding import stream

    registry = default_registry()
    data = registry.component(Dataset, dataset)().load(n, n, 0, stream(0, "data"))
    kind = registry.component(ModelFamily, family)({**params, "steps": steps})
    context = RunContext(seed=0, device=device, threads=1)
    kind.create(data, context).fit(data.train, warm_start=False, rng=stream(0, "warm-up"))  # CUDA start-up
    model = kind.create(data, context)
    synchronize(device)
    clock = time.perf_counter()
    model.fit(data.train, warm_start=False, rng=stream(0, "fit"))
    synchronize(device)
    fit = time.perf_counter() - clock
    clock = time.perf_counter()
    model.sample(n, stream(0, "sample"))
    synchronize(device)
    return {"fit_s": fit, "sample_s": time.perf_counter() - clock}


def features(device: str) -> dict[str, float]:
    """Seconds to extract `domain` features of 500 digits (after the extractor is trained once)."""
    from benchmark.api.components import Dataset, RunContext
    from benchmark.api.plugins import default_registry
    from benchmark.run.seeding import stream
    from plugins.features.extractors import Domain

    registry = default_registry()
    data = registry.component(Dataset, "digits")().load(500, 500, 0, stream(0, "data"))
    context = RunContext(seed=0, device=device, threads=1)
    extractor = Domain()
    clock = time.perf_counter()
    extractor.prepare(data, context, None)
    prepare = time.perf_counter() - clock
    extractor.extract(data.test, context)
    synchronize(device)
    clock = time.perf_counter()
    extractor.extract(data.test, context)
    synchronize(device)
    return {"prepare_s": prepare, "extract_500_s": time.perf_counter() - clock}


def small_grid(device: str, steps: int) -> dict[str, Any]:
    """Wall time of a 2-seed, 2-generation flow + ddpm grid through the CLI, and whether it finished cleanly."""
    with tempfile.TemporaryDirectory() as name:
        grid = Path(name) / "grid.toml"
        grid.write_text(GRID.format(device=device, steps=steps))
        clock = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "benchmark", "run", str(grid), "--store", str(Path(name) / "store")],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        return {"wall_s": time.perf_counter() - clock, "exit": done.returncode, "tail": done.stderr[-300:]}


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("device-check.json"))
    parser.add_argument("--steps", type=int, default=1000, help="training steps per fit")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if len(devices) == 1:
        print("no CUDA device here: measuring the CPU only", file=sys.stderr)
    else:
        print(f"CUDA: {torch.cuda.get_device_name(0)}", file=sys.stderr)
    figures: dict[str, Any] = {"devices": devices, "torch": torch.__version__}
    rows = []
    for family, dataset, n, params in CASES:
        by_device: dict[str, dict[str, Any]] = {}
        for device in devices:
            try:
                by_device[device] = family_generation(family, dataset, n, params, device, args.steps)
            except Exception as exc:  # an absent family or library must not hide the others
                by_device[device] = {"error": f"{type(exc).__name__}: {exc}"}
        figures[f"{family}/{dataset}"] = by_device
        rows.append((f"{family} on {dataset}, {n} points, {args.steps} steps", by_device))
    for device in devices:
        figures[f"features/{device}"] = features(device)
        figures[f"grid/{device}"] = small_grid(device, args.steps)
    args.out.write_text(json.dumps(figures, indent=1))

    print("| what | " + " | ".join(devices) + (" | CPU / CUDA |" if len(devices) == 2 else " |"))
    print("|---" * (len(devices) + 1 + (len(devices) == 2)) + "|")

    def cell(figure: dict[str, Any]) -> str:
        if "error" in figure:
            return "not run: " + figure["error"][:60]
        return f"fit {figure['fit_s']:.2f} s, sample {figure['sample_s']:.2f} s"

    for what, by_device in rows:
        cells = [cell(by_device[d]) for d in devices]
        if len(devices) == 2 and all("error" not in by_device[d] for d in devices):
            total = {d: by_device[d]["fit_s"] + by_device[d]["sample_s"] for d in devices}
            cells.append(f"{total['cpu'] / total['cuda']:.1f}x")
        print(f"| {what} | " + " | ".join(cells) + " |")
    for device in devices:
        f, g = figures[f"features/{device}"], figures[f"grid/{device}"]
        extract, prepare = f["extract_500_s"], f["prepare_s"]
        print(f"| {device}: domain features of 500 digits | {extract:.3f} s (training {prepare:.1f} s) |")
        print(f"| {device}: 2-seed flow + ddpm grid, 2 generations | {g['wall_s']:.1f} s, exit {g['exit']} |")
    print(f"\nfigures written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
