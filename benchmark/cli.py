"""The ``retrainbench`` command line: run, list, plugins, status, report, verify, compare.

Heavy modules (numpy, pandas, torch) are imported inside the commands that need them, so
``--help``, ``list`` and ``plugins`` start instantly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmark import __version__
from benchmark.api.kinds import KINDS
from benchmark.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUNS_FAILED, Interrupted, RetrainbenchError

DEFAULT_RESULTS = Path("results")
#: Where ``report GRID`` writes unless --out: report/NAME, beside the store results/NAME.
DEFAULT_REPORTS = Path("report")


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
    run.add_argument(
        "--store", type=Path, help="result store directory (default: results/GRID-NAME, or results/GRID-NAME-smoke)"
    )
    run.add_argument("--executor", help="where runs execute (default: the grid's executor, else 'local')")
    run.add_argument("--workers", type=int, help="parallel worker processes for the local executor (default: cores)")
    run.add_argument(
        "--smoke", action="store_true", help="shrink sizes, generations, seeds and training to the smoke budget"
    )
    run.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="executor parameter, e.g. -o workers=4 -o address=tcp://host:8786 "
        "(overrides the grid's [executor] params)",
    )
    run.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="record a run as timed-out after this many seconds"
    )
    run.add_argument("--fail-fast", action="store_true", help="stop the grid at the first failed run")
    run.add_argument(
        "--retry-failed", action="store_true", help="run again the runs stored as failed, diverged or timed-out"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar (one line per finished run instead)")

    listing = commands.add_parser(
        "list", parents=[common], help="list datasets, model families, policies, metrics, executors"
    )
    listing.add_argument("kind", nargs="?", help=f"only this kind ({', '.join(KINDS)})")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    commands.add_parser("plugins", parents=[common], help="list loaded plugins, what they registered, and failures")

    status = commands.add_parser(
        "status",
        parents=[common],
        help="what a store holds of a grid: per configuration, its seeds done / running / pending / failed",
    )
    _grid_or_store(status, "read")
    status.add_argument(
        "--runs", "-v", action="store_true", help="list every run under its configuration, not only those that failed"
    )

    report = commands.add_parser("report", parents=[common], help="build results and leaderboards from a store")
    _grid_or_store(report, "report on")
    report.add_argument("--out", type=Path, help="output directory (default with GRID: report/GRID-NAME[-smoke])")
    report.add_argument(
        "--grid", dest="grid_name", help="only the runs of this grid (default: GRID's; without GRID: every run)"
    )

    verify = commands.add_parser(
        "verify", parents=[common], help="check every file of a store against its checksums; --repair sets damage aside"
    )
    verify.add_argument("--store", type=Path, required=True, help="result store directory")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="move damaged files into STORE/quarantine/ so the next `run` computes them again",
    )
    _add_compare(commands, common)
    return parser


def _grid_or_store(command: argparse.ArgumentParser, verb: str) -> None:
    """GRID and --store, as ``run`` takes them: the grid file names the default store."""
    command.add_argument(
        "grid", type=Path, nargs="?", help=f"grid file (TOML): {verb} its runs, in its store unless --store"
    )
    command.add_argument(
        "--store", type=Path, help="result store directory (default with GRID: results/GRID-NAME[-smoke])"
    )
    command.add_argument("--smoke", action="store_true", help="the grid as `run --smoke` runs it (and its store)")


def _default_store(grid, smoke: bool) -> Path:
    """Where ``run`` stores a grid unless told otherwise: results/NAME, or results/NAME-smoke."""
    return DEFAULT_RESULTS / (f"{grid.name}-smoke" if smoke else grid.name)


def _grid_and_store(args: argparse.Namespace):
    """The grid file's spec (None without one) and the store: --store, else the grid's default store."""
    from benchmark.errors import GridError
    from benchmark.run.spec import load_grid

    if args.grid is None:
        if args.store is None:
            raise GridError(args.command, "", "give a grid file or --store DIR")
        if args.smoke:
            raise GridError("--smoke", "", "needs a grid file")
        return None, args.store
    grid = load_grid(args.grid, _registry(args), smoke=args.smoke)
    return grid, args.store or _default_store(grid, args.smoke)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _stop_on_signals():
            code = _COMMANDS[args.command](args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
    except BrokenPipeError:  # `retrainbench status | head`: the reader has what it wanted
        return _quiet_broken_pipe()
    except RetrainbenchError as exc:
        print(f"retrainbench: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # an output or store path that cannot be written, read or created
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"retrainbench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        interrupted = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        print(f"retrainbench: {interrupted}", file=sys.stderr)
        return interrupted.exit_code


#: Signals that stop a command cleanly, as Ctrl-C does: a scheduler's or ``timeout``'s SIGTERM, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn the first of STOP_SIGNALS into ``Interrupted`` (so cleanup runs and the exit code names it);
    later ones are ignored while that cleanup runs (SIGKILL still ends the process, and the store survives it)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        for stop in STOP_SIGNALS:
            signal.signal(stop, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {stop: signal.signal(stop, interrupt) for stop in STOP_SIGNALS}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def _quiet_broken_pipe() -> int:
    """Exit like a Unix tool whose reader went away (128 + SIGPIPE), without Python's flush error at exit."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _registry(args: argparse.Namespace):
    from benchmark.api.plugins import default_registry

    registry = default_registry(strict=args.strict_plugins)
    for plugin, reason in registry.failures:
        print(f"retrainbench: warning: plugin {plugin!r} skipped: {reason}", file=sys.stderr)
    for plugin, warning in registry.warnings:
        print(f"retrainbench: warning: plugin {plugin!r} {warning}", file=sys.stderr)
    return registry


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.errors import GridError
    from benchmark.run.harness import run_grid
    from benchmark.run.spec import load_grid
    from benchmark.run.store import Store

    registry = _registry(args)
    grid = load_grid(args.grid, registry, smoke=args.smoke)
    if args.timeout is not None and not 0 < args.timeout < 1e9:
        raise GridError("--timeout", "", f"must be > 0 seconds (got {args.timeout})")
    executor = _executor(args, grid, registry)
    name = executor.name
    store = Store(args.store or _default_store(grid, args.smoke))
    store.check_place()
    for note in grid.skipped:
        print(f"retrainbench: note: skipped: {note}", file=sys.stderr)
    for note in grid.smoke_notes:
        print(f"retrainbench: note: smoke mode: {note}", file=sys.stderr)
    print(
        f"retrainbench: grid {grid.name!r}: {len(grid.runs)} runs on executor {name!r}, store {store.root}",
        file=sys.stderr,
    )
    summary = run_grid(
        grid,
        store,
        executor,
        registry,
        retry_failed=args.retry_failed,
        timeout=args.timeout,
        fail_fast=args.fail_fast,
        progress=False if args.no_progress else None,
    )
    print(summary.describe())
    return EXIT_RUNS_FAILED if summary.failed else EXIT_OK


def _executor(args: argparse.Namespace, grid, registry):
    """The executor from --executor / --workers / --option, else the grid's [executor], else ``local``, checked
    ready to start (``Executor.check_ready``) before anything is written."""
    from benchmark.api.params import ParamError
    from benchmark.errors import GridError

    name = args.executor or (grid.executor.name if grid.executor else "local")
    try:
        entry = registry.get("executor", name)
    except RetrainbenchError as exc:
        raise GridError("--executor", "", str(exc)) from None
    reason = entry.unavailable_reason()
    if reason:
        raise GridError("--executor", "", f"executor {name!r} is unavailable: {reason}")
    from_grid = grid.executor is not None and grid.executor.name == name
    params = dict(grid.executor.kwargs) if from_grid else {}
    options = set()
    for option in args.option:
        key, sep, text = option.partition("=")
        if not sep or not key:
            raise GridError("--option", option, "must be KEY=VALUE")
        params[key] = _parse_value(text)
        options.add(key)
    if args.workers is not None:
        params["workers"] = args.workers

    def error(exc: ParamError) -> GridError:  # named where the value came from: a flag, else the grid file
        if exc.key == "workers" and args.workers is not None:
            return GridError("--workers", exc.key, f"executor {name!r}: {exc}")
        if from_grid and exc.key not in options and exc.key in grid.executor.given:
            return GridError(grid.path, f"executor.params.{exc.key}", f"executor {name!r}: {exc}")
        return GridError("--option", exc.key, f"executor {name!r}: {exc}")

    try:
        executor = entry.component(params)
        executor.check_ready()
    except ParamError as exc:
        raise error(exc) from None
    return executor


def _parse_value(text: str):
    """A command-line value as the TOML scalar it spells (int, float, bool), else a string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def cmd_list(args: argparse.Namespace) -> int:
    from benchmark.errors import suggestion

    registry = _registry(args)
    if args.kind is not None and args.kind not in KINDS:
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
                "parameters": {
                    k: {"default": p.default, "help": p.describe()} for k, p in e.component.parameters.items()
                },
            }
            for e in entries
        ]
        print(json.dumps(out, indent=1))
        return EXIT_OK
    kind = None
    for e in entries:
        if e.kind != kind:
            kind = e.kind
            print(f"\n{KINDS[kind].plural}:")
        status = "" if e.available else f"  [unavailable: {e.unavailable_reason()}]"
        print(f"  {e.name:<22} {e.component.summary()}  (plugin {e.plugin}){status}")
        for key, param in e.component.parameters.items():
            print(f"      {key}: {param.describe()}")
    return EXIT_OK


def _plugin_origin(plugin: str) -> str:
    """Where a plugin that failed came from: its entry point's distribution, or the environment variable."""
    import importlib.metadata

    from benchmark.api.plugins import ENTRY_POINT_GROUP, PLUGINS_ENV

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=plugin):
        if ep.dist is not None:
            return f"entry point {ep.value!r} of {ep.dist.name} {ep.dist.version}"
    return f"module named in {PLUGINS_ENV} or passed by the caller"


def cmd_plugins(args: argparse.Namespace) -> int:
    from benchmark.api.kinds import REGISTRATION_HOOKS

    registry = _registry(args)
    registered: dict[str, list[str]] = {}
    for e in registry:
        registered.setdefault(e.plugin, []).append(f"{e.kind} {e.name}")
    for hook in sorted(
        name for name in vars(registry.hook) if not name.startswith("_") and name not in REGISTRATION_HOOKS
    ):
        for impl in getattr(registry.hook, hook).get_hookimpls():
            registered.setdefault(impl.plugin_name, []).append(f"observer {hook}")
    warnings = dict(registry.warnings)
    for plugin, (dist, version) in sorted(registry.plugins.items()):
        print(f"{plugin}  ({dist} {version})")
        for item in registered.get(plugin, []):
            print(f"    {item}")
        if plugin in warnings:
            print(f"    ({warnings[plugin]})")
    for plugin, reason in registry.failures:
        print(f"{plugin}  FAILED: {reason}")
        print(f"    from {_plugin_origin(plugin)}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.run.status import describe_store
    from benchmark.run.store import Store

    grid, root = _grid_and_store(args)
    print(describe_store(Store(root), None if grid is None else (grid.name, grid.runs), every_run=args.runs))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.errors import GridError
    from benchmark.report.leaderboard import write_report

    grid, root = _grid_and_store(args)
    out = args.out
    if out is None:
        if grid is None:
            raise GridError("--out", "", "give an output directory (or a grid file: report/GRID-NAME by default)")
        out = DEFAULT_REPORTS / _default_store(grid, args.smoke).name
    if out.exists() and not out.is_dir():
        raise RetrainbenchError(f"{out}: --out is a file; give a folder for the report")
    written = write_report(root, out, grid=args.grid_name or (grid.name if grid is not None else None))
    for path in written:
        print(path)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from benchmark.run.verify import verify_store

    damaged, lines = verify_store(args.store, repair=args.repair)
    for line in lines:
        print(line)
    return EXIT_BAD_INPUT if damaged and not args.repair else EXIT_OK


# --- compare: the regression gate (benchmark.report.compare) ---


def _add_compare(commands, common: argparse.ArgumentParser) -> None:
    from benchmark.report.compare_rules import FAIL_RULES

    compare = commands.add_parser(
        "compare",
        parents=[common],
        help="compare results with a baseline; exit 1 on a significant worsening (a regression gate for CI)",
    )
    compare.add_argument("baseline", type=Path, help="baseline: a store, a report folder or its results.csv")
    compare.add_argument("candidate", type=Path, help="candidate: a store, a report folder or its results.csv")
    compare.add_argument(
        "--fail-on",
        default="all",
        metavar="RULES",
        help="comma-separated rules that fail the gate, or all / none (default: all): "
        + "; ".join(f"{k}: {v}" for k, v in FAIL_RULES.items()),
    )
    compare.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="worsening that matters, in metric units, or METRIC=P%% of |generation 0|; VALUE alone for every "
        "metric (default: the baseline's tolerance, as its leaderboard defines it)",
    )
    compare.add_argument(
        "--ignore-settings", action="store_true", help="match configurations by components alone (n_real, smoke, ...)"
    )
    compare.add_argument("--all", action="store_true", help="show unchanged configurations in the table too")
    compare.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary (CI job summary)")
    compare.add_argument("--json", type=Path, metavar="FILE", help="write every comparison as JSON")
    compare.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML, a test case per configuration")


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.report import compare_output
    from benchmark.report.compare import compare, parse_fail_on, parse_tolerances

    fail_on, tolerances = parse_fail_on(args.fail_on), parse_tolerances(args.tolerance)
    result = compare(args.baseline, args.candidate, _registry(args), fail_on, tolerances, args.ignore_settings)
    outputs = {
        args.markdown: compare_output.markdown,
        args.json: compare_output.to_json,
        args.junit: compare_output.junit,
    }
    texts = {path: render(result) for path, render in outputs.items() if path is not None}  # all before any is written
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    print(compare_output.terminal(result, show_all=args.all))
    return EXIT_RUNS_FAILED if result.failed else EXIT_OK


_COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "plugins": cmd_plugins,
    "status": cmd_status,
    "report": cmd_report,
    "verify": cmd_verify,
    "compare": cmd_compare,
}
