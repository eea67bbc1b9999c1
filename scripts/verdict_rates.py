"""Measure how often the stability verdicts are right on synthetic chains with known answers.

    .venv/bin/python scripts/verdict_rates.py [--reports 200] [--seeds 3 10] [--generations 20]

Each simulated report holds the cases below (``benchmark.report.stats.synthetic``), so the
Benjamini-Hochberg adjustment works on a report of that size, as it would on a grid's. For each case and
number of seeds it prints how often each verdict came out: the detection rate is the share of the right
verdict; the false-positive rates are the shares of wrong claims: "stable" claimed for a chain that is not, a
worsening (worsening, worse, settled-worse, collapsed) claimed for one that is stable. A chain that settles
exactly at the tolerance makes both wrong: each is a test at 5%.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from tabulate import tabulate

from benchmark.report import stats
from benchmark.report.stats import synthetic

LOWER = stats.Direction(higher_is_better=False)
#: Verdicts that claim a worsening.
WORSENING = frozenset(stats.WORSE | {"worsening"})
#: (case, the right verdict). A worsening claimed for a case whose right verdict is "stable", or "stable" claimed
#: for one whose right verdict is not, is a false positive; at the tolerance both are.
CASES = (
    (synthetic.control_case(), "stable"),
    (synthetic.Case("same-as-control", synthetic.constant), "stable"),
    (synthetic.Case("drift", synthetic.drift(0.02)), "collapsed"),
    (synthetic.Case("settling", synthetic.settling(0.3, 1.0)), "settled-worse"),
    (synthetic.Case("at-tolerance", synthetic.settling(0.1, 1.0)), "inconclusive"),
    (synthetic.Case("near-zero-noise", synthetic.constant, base=0.02, noise=0.01, model="n"), "stable"),
    (synthetic.control_case(synthetic.settling(-0.5, 3.0), model="w"), "stable"),
    (synthetic.Case("stays-while-control-improves", synthetic.constant, model="w"), "settled-worse"),
)


def simulate(reports: int, seeds: int, generations: int, seed: int = 0) -> dict[str, Counter[str]]:
    """Verdict counts per case over ``reports`` simulated reports."""
    rng = np.random.default_rng([seed, seeds, generations])
    counts: dict[str, Counter[str]] = {case.model + "/" + case.policy: Counter() for case, _ in CASES}
    cases = [case for case, _ in CASES]
    for _ in range(reports):
        results = synthetic.frame(cases, seeds, generations, rng)
        dirs = {"loss": LOWER}
        board = stats.seed_summary(stats.run_summary(results, dirs), results, dirs)
        for row in board.itertuples():
            counts[f"{row.model}/{row.policy}"][str(row.status)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--generations", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for seeds in args.seeds:
        counts = simulate(args.reports, seeds, args.generations)
        for (case, right), got in zip(CASES, counts.values(), strict=True):
            total = sum(got.values())
            false_stable = got["stable"] / total if right != "stable" else 0.0
            false_worse = sum(got[v] for v in WORSENING) / total if right not in WORSENING else 0.0
            rows.append(
                [
                    f"{case.model}/{case.policy}",
                    seeds,
                    right,
                    f"{got[right] / total:.1%}",
                    f"{false_stable:.1%}",
                    f"{false_worse:.1%}",
                    ", ".join(f"{n} {v}" for v, n in got.most_common()),
                ]
            )
    print(f"{args.reports} reports of {len(CASES)} cases, {args.generations} generations")
    print(tabulate(rows, headers=["case", "seeds", "right", "detection", "false stable", "false worse", "verdicts"]))


if __name__ == "__main__":
    main()
