r"""Mean ± standard error over seeds, per configuration, at chosen generations of a leaderboard's results.csv.

The figures of docs/reproductions.md come from this: SE = std(ddof=1) / sqrt(seeds), over the seeds
that have the generation (a run that diverged earlier drops out, and the cell says how many remain).

    python scripts/reproduction_figures.py leaderboards/bertrand-2d/results.csv \
        --generations 0,10,20 --metrics w2,recall --slope 10:20

``--slope A:B`` adds a column: each seed's least-squares slope per generation over generations A to B
(the seeds that have all of them), mean ± SE over seeds: "still moving at the end" as a number.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from benchmark.report.stats import generation_summary


def cell(row: pd.Series | None, seeds: int) -> str:
    """One generation's summary row (mean, std, n over seeds) as mean ± SE."""
    if row is None or row["n"] == 0:
        return "—"
    if row["n"] == 1:
        return f"{row['mean']:.3g}"
    text = f"{row['mean']:.3g} ± {row['std'] / math.sqrt(row['n']):.2g}"
    return text if row["n"] == seeds else f"{text} ({row['n']} seeds)"


def at_generation(summary: pd.DataFrame, generation: int) -> pd.Series | None:
    """The row of ``generation`` in one configuration's summary (indexed by generation), None if no seed has it."""
    if generation not in summary.index:
        return None
    row = summary.loc[generation]
    if isinstance(row, pd.DataFrame):
        raise ValueError(f"{len(row)} summary rows for generation {generation} of one configuration")
    return row


def slope(runs: pd.DataFrame, first: int, last: int) -> str:
    """Mean ± SE over seeds of each seed's least-squares slope per generation over ``first``..``last``."""
    wanted = range(first, last + 1)
    slopes = []
    for _, seed in runs.groupby("seed"):
        values = seed.set_index("generation")["value"].reindex(wanted)
        if values.notna().all() and np.isfinite(values).all():
            fitted = float(np.polyfit(np.asarray(wanted, dtype=float), values.to_numpy(float), 1)[0])
            slopes.append(0.0 if abs(fitted) < 1e-12 else fitted)  # a constant chain's slope is 0, not 2e-17
    if not slopes:
        return "—"
    if len(slopes) == 1:
        return f"{slopes[0]:+.3g} (1 seed)"
    mean = float(np.mean(slopes))
    mean = 0.0 if abs(mean) < 1e-12 else mean  # slopes that cancel to rounding error
    text = f"{mean:+.3g} ± {np.std(slopes, ddof=1) / math.sqrt(len(slopes)):.2g}"
    return text if len(slopes) == runs.seed.nunique() else f"{text} ({len(slopes)} seeds)"


def table(results: pd.DataFrame, metric: str, generations: list[int], slope_over: tuple[int, int] | None) -> str:
    rows = results[results.metric == metric]
    slope_head = f" slope, t = {slope_over[0]}..{slope_over[1]} |" if slope_over else ""
    lines = [
        f"### {metric}",
        "",
        "| model | policy | " + " | ".join(f"t = {g}" for g in generations) + " |" + slope_head + " run status |",
        "|---|---|" + "---|" * (len(generations) + bool(slope_over)) + "---|",
    ]
    summary = generation_summary(rows)  # the leaderboard's own per-generation mean, std and n over seeds
    for (dataset, config, model, policy), runs in rows.groupby(["dataset", "config", "model", "policy"], sort=False):
        ours = summary[(summary.dataset == dataset) & (summary.config == config)].set_index("generation")
        seeds = runs.seed.nunique()
        cells = [cell(at_generation(ours, g), seeds) for g in generations]
        cells += [slope(runs, *slope_over)] if slope_over else []
        status = ", ".join(f"{n} {s}" for s, n in runs.drop_duplicates("seed").status.value_counts().items())
        lines.append(f"| {model} | {policy} | " + " | ".join(cells) + f" | {status} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a leaderboard's results.csv")
    parser.add_argument("--generations", default="0", help="comma-separated generations (default: 0)")
    parser.add_argument("--metrics", help="comma-separated metric labels (default: all)")
    parser.add_argument("--slope", help="A:B, add each seed's slope per generation over generations A..B")
    args = parser.parse_args()
    slope_over = None
    if args.slope:
        first, _, last = args.slope.partition(":")
        if not (first.isdigit() and last.isdigit() and int(first) < int(last)):
            parser.error(f"--slope {args.slope}: expected A:B with generations A < B, e.g. 10:20")
        slope_over = (int(first), int(last))
    results = pd.read_csv(args.results)
    generations = [int(g) for g in args.generations.split(",")]
    metrics = args.metrics.split(",") if args.metrics else sorted(results.metric.unique())
    unknown = sorted(set(metrics) - set(results.metric))
    if unknown:
        parser.error(
            f"{args.results}: no metric {', '.join(unknown)} (has {', '.join(sorted(results.metric.unique()))})"
        )
    print("\n\n".join(table(results, m, generations, slope_over) for m in metrics))


if __name__ == "__main__":
    main()
