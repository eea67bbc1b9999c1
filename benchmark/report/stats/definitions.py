"""What every statistic, verdict and the ranking mean: the documentation every report shows.

leaderboard.md and index.html show ``DEFINITIONS`` verbatim, and the numbers in the text come from the
constants the code uses, so what a reader sees is what the code does. (The verdict is called "status"
there, as in the CSV columns.)
"""

from __future__ import annotations

import math

from benchmark.report.stats.across_seeds import ONE_SEED
from benchmark.report.stats.chains import LATE, TAIL
from benchmark.report.stats.control import CONTROL_PARAMS, CONTROL_POLICY
from benchmark.report.stats.hypotheses import ALPHA, CLAIM_CONFIDENCE
from benchmark.report.stats.intervals import CONFIDENCE
from benchmark.report.stats.verdicts import CONSECUTIVE, FLOOR, THRESHOLD

_CONTROL = f"{CONTROL_POLICY}[{', '.join(f'{k}={v:g}' for k, v in CONTROL_PARAMS.items())}]"

#: What every statistic, verdict ("status") and the ranking mean, as shown on every report.
DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "status",
        "per configuration, the first that applies. failed or diverged: at least half of its seeds ended so "
        "(failed when at least half failed); otherwise the seeds that did not fail or diverge decide. "
        "stable: its level is shown within the tolerance and its late drift too (the chain stays close to its "
        "reference and has stopped moving). collapsed: level shown beyond the tolerance and late drift too (worse, "
        "and still getting worse). settled-worse: level beyond, drift shown within (it converged to a worse "
        "point). worse: level beyond, drift undecided. worsening: drift shown beyond the tolerance, level not (still "
        "moving away). inconclusive: anything else; the note says what would settle it. A configuration is never "
        "stable while at least half of its runs are, alone, worse beyond the tolerance.",
    ),
    (
        "claims",
        f"each of the four claims (level beyond, level within, drift beyond, drift within the tolerance) is a "
        f"one-sided t-test at {ALPHA:.0%} across seeds (n-1 degrees of freedom): a claim of 'within' is an "
        f"equivalence test (TOST), made when the {CLAIM_CONFIDENCE:.0%} interval lies inside the tolerance; "
        "'beyond' when it lies outside. With an unknown direction, within is |x| < tolerance and beyond is "
        f"|x| > tolerance. The p-values of all the claims of a report are adjusted together (Benjamini-Hochberg), so "
        f"the expected share of false claims among those the report makes is at most {ALPHA:.0%}; the report says "
        f'how many tests it makes. With one seed ("{ONE_SEED}") the intervals come from the run\'s own '
        "generation-to-generation noise, which ignores how seeds differ.",
    ),
    (
        "reference",
        f"what a configuration is compared with: the grid's real-only control {_CONTROL} (same dataset, model, "
        "settings, seed and generation), where the grid has one and it covers every seed, else the run's own "
        "generation 0. Paired by seed, the control removes what retraining on real data alone does and the "
        "evaluation noise of generation 0. The control itself is compared with its generation 0.",
    ),
    (
        "level",
        f"e_t = b_t - reference_t, the worsening at generation t in the metric's units (b = badness, positive is "
        f"worse); the level is the mean of e_t over the last ceil(T/{round(1 / TAIL)}) generations "
        f"(generations {21 - math.ceil(TAIL * 20)}..20 when T = 20): what the chain converged to. Shown as mean ± "
        f"half-width of its {CLAIM_CONFIDENCE:.0%} interval across seeds.",
    ),
    (
        "late drift",
        f"how far the least-squares line of e_t over the last ceil(T/{round(1 / LATE)}) generations and the one "
        f"before them (generations {20 - math.ceil(LATE * 20)}..20 when T = 20) moves across them: whether the chain "
        f"is still moving at the end. Shown as mean ± half-width of its {CLAIM_CONFIDENCE:.0%} interval across seeds.",
    ),
    (
        "noise floor",
        "the evaluation noise of one generation: the standard deviation of a run's values around the line of the "
        "late drift (n-2 degrees of freedom), pooled over seeds (root mean square), of the control's runs where the "
        "grid has a control, else of the configuration's own.",
    ),
    (
        "tolerance",
        f"the worsening that matters: {THRESHOLD:.0%} x |generation 0| (its mean over seeds), but never less than "
        f"{FLOOR:g} x the noise floor, so that a change within the evaluation noise is never a worsening.",
    ),
    (
        "worse from",
        f"for a verdict beyond the tolerance, the first generation t >= 1 at which the lower end of the "
        f"{CLAIM_CONFIDENCE:.0%} interval of e_t across seeds exceeds the tolerance at {CONSECUTIVE} consecutive "
        "generations (with one seed, and per run, its own e_t; for a run also when it failed or diverged). "
        "Descriptive: not a separate claim.",
    ),
    (
        "run status",
        "per run and metric (runs.csv and the counts in brackets): failed or diverged when the run ended so; "
        "otherwise the rules of status applied to the run alone, against its own generation 0, with intervals "
        "from its own noise and tolerance from its own generation 0 and noise, each claim tested at "
        f"{ALPHA:.0%} without adjustment.",
    ),
    (
        "rank",
        "per dataset and metric: by stability, not quality. By status (stable first, then inconclusive, "
        "worsening, settled-worse, worse, collapsed, diverged, failed), then by the upper end of the level's "
        "interval in tolerances (|level| with an unknown direction), smaller first. Quality is its own column: "
        "generation 0, the mean over seeds of v_0.",
    ),
    (
        "direction",
        "each metric's plugin says whether higher is better or, if neither, which value is ideal (its optimum). "
        "Every value v then has a badness b: v when lower is better, -v when higher is better, |v - optimum| "
        "otherwise; with an unknown direction b = v and a change either way counts.",
    ),
    (
        "other columns",
        f"(leaderboard.csv, runs.csv) relative change (v_T - v_0) / |v_0|; slope: least-squares slope over all "
        "generations; AUC: the mean over t = 1..T of the relative worsening (b_t - b_0) / |v_0|; across seeds: "
        f"mean, standard deviation (ddof=1) and {CONFIDENCE:.0%} Student-t interval. Descriptive, not used by status.",
    ),
)
