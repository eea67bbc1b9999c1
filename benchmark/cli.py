"""The ``retrainbench`` command line: run, list, plugins, status, report.

Heavy modules (numpy, pandas, torch) are imported inside the commands that need them, so
``--help``, ``list`` and ``plugins`` start instantly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark import __version__
from benchmark.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUNS_FAILED, RetrainbenchError

DEFAULT_RESULTS = Path("results")


def _plugin_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--strict-plugins", action="store_true", help="treat a plugin that fails to load as an error (exit 2)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _plugin_options()
    parser = argparse.ArgumentParser(
        prog="retrainbench",
        description="Retrain generative models on their own samples, generation after generation, and measure "
        "whether they stay stable or collapse.",
    )
    parser.add_argument("--version", action="version", version=f"retrainbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", parents=[common], help="run a grid file (resumes what is already stored)")
    run.add_argument("grid", type=Path, help="grid file (TOML)")
    run.add_argument("--store", type=Path, help="result store directory (default: results/GRID-NAME, or results/GRID-NAME-smoke)")
    run.add_argument("--executor", help="where runs execute (default: the grid's executor, else 'local')")
    run.add_argument("--workers", type=int, help="parallel worker processes for the local executor (default: cores)")
    run.add_argument("--smoke", action="store_true", help="shrink sizes, generations, seeds and training to the smoke budget")
    run.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed or diverged")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run instead)")

    listing = commands.add_parser("list", parents=[common], help="list datasets, model families, policies, metrics, executors")
    listing.add_argument("kind", nargs="?", help="only this kind (dataset, model, policy, metric, executor, feature-extractor)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    commands.add_parser("plugins", parents=[common], help="list loaded plugins, what they registered, and failures")

    status = commands.add_parser("status", parents=[common], help="show done / running / failed / pending runs of a store")
    status.add_argument("--store", type=Path, required=True, help="result store directory")

    report = commands.add_parser("report", parents=[common], help="build results and leaderboards from a store")
    report.add_argument("--store", type=Path, required=True, help="result store directory")
    report.add_argument("--out", type=Path, required=True, help="output directory")
    report.add_argument("--grid", help="only the runs of this grid (default: every run in the store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except RetrainbenchError as exc:
        print(f"retrainbench: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("retrainbench: interrupted; finished generations are stored, rerun to resume", file=sys.stderr)
        return 130


def _registry(args: argparse.Namespace):
    from benchmark.plugins import default_registry

    registry = default_registry(strict=args.strict_plugins)
    for plugin, reason in registry.failures:
        print(f"retrainbench: warning: plugin {plugin!r} skipped: {reason}", file=sys.stderr)
    return registry


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.errors import GridError
    from benchmark.harness import run_grid
    from benchmark.spec import load_grid
    from benchmark.store import Store

    registry = _registry(args)
    grid = load_grid(args.grid, registry, smoke=args.smoke)
    if args.workers is not None and args.workers < 1:
        raise GridError("--workers", "", f"must be >= 1 (got {args.workers})")
    name = args.executor or (grid.executor.name if grid.executor else "local")
    try:
        entry = registry.get("executor", name)
    except RetrainbenchError as exc:
        raise GridError("--executor", "", str(exc)) from None
    params = dict(grid.executor.kwargs) if grid.executor and grid.executor.name == name else {}
    if args.workers is not None:
        if "workers" not in entry.component.parameters:
            raise GridError("--workers", "", f"executor {name!r} takes no workers")
        params["workers"] = args.workers
    executor = entry.component(params)
    store = Store(args.store or DEFAULT_RESULTS / (f"{grid.name}-smoke" if args.smoke else grid.name))
    for note in grid.skipped:
        print(f"retrainbench: note: skipped: {note}", file=sys.stderr)
    print(f"retrainbench: grid {grid.name!r}: {len(grid.runs)} runs on executor {name!r}, store {store.root}", file=sys.stderr)
    summary = run_grid(
        grid, store, executor, registry, retry_failed=args.retry_failed, progress=False if args.no_progress else None
    )
    print(summary.describe())
    return EXIT_RUNS_FAILED if summary.failed else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.components import KINDS

    registry = _registry(args)
    if args.kind is not None and args.kind not in KINDS:
        from benchmark.registry import suggestion

        raise RetrainbenchError(f"unknown kind {args.kind!r}{suggestion(args.kind, KINDS)}; kinds: {', '.join(KINDS)}")
    entries = [e for e in registry if args.kind in (None, e.kind)]
    if args.json:
        out = [
            {
                "kind": e.kind,
                "name": e.name,
                "plugin": e.plugin,
                "summary": e.component.summary(),
                "available": e.available,
                "unavailable_reason": e.unavailable_reason(),
                "parameters": {k: {"default": p.default, "help": p.describe()} for k, p in e.component.parameters.items()},
            }
            for e in entries
        ]
        print(json.dumps(out, indent=1))
        return EXIT_OK
    kind = None
    for e in entries:
        if e.kind != kind:
            kind = e.kind
            print(f"\n{kind}s:" if kind != "policy" else "\npolicies:")
        status = "" if e.available else f"  [unavailable: {e.unavailable_reason()}]"
        print(f"  {e.name:<22} {e.component.summary()}  (plugin {e.plugin}){status}")
        for key, param in e.component.parameters.items():
            print(f"      {key}: {param.describe()}")
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    registry = _registry(args)
    registered: dict[str, list[str]] = {}
    for e in registry:
        registered.setdefault(e.plugin, []).append(f"{e.kind} {e.name}")
    for plugin, (dist, version) in sorted(registry.plugins.items()):
        print(f"{plugin}  ({dist} {version})")
        for item in registered.get(plugin, []) or ["(registered nothing)"]:
            print(f"    {item}")
    for plugin, reason in registry.failures:
        print(f"{plugin}  FAILED: {reason}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.status import describe_store

    print(describe_store(args.store))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.leaderboard import write_report

    written = write_report(args.store, args.out, grid=args.grid)
    for path in written:
        print(path)
    return EXIT_OK


_COMMANDS = {"run": cmd_run, "list": cmd_list, "plugins": cmd_plugins, "status": cmd_status, "report": cmd_report}
