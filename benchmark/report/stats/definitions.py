"""What every statistic, verdict and the ranking mean: the documentation every report shows.

leaderboard.md and index.html show ``DEFINITIONS`` verbatim, and the numbers in the text come from the
constants the code uses, so what a reader sees is what the code does. (The verdict is called "status"
there, as in the CSV columns.)
"""

from __future__ import annotations

import math

from benchmark.report.stats.across_seeds import ONE_SEED
from benchmark.report.stats.intervals import CONFIDENCE
from benchmark.report.stats.per_run import TAIL
from benchmark.report.stats.verdicts import CONSECUTIVE, ROUNDING, THRESHOLD

#: What every statistic, verdict ("status") and the ranking mean, as shown on every report.
DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "direction",
        "Each metric's plugin says whether higher is better or, if neither, which value is ideal "
        "(its optimum). Every value v then has a badness b: v when lower is better, -v when higher is better, "
        "|v - optimum| otherwise. A metric whose plugin is not installed, or that declares neither, has an "
        "unknown direction.",
    ),
    (
        "worsening",
        "d_t = b_t - b_0 at generation t of a run, in the metric's own units (positive is worse): a "
        "difference, not a ratio, so a noisy generation-0 value near zero does not inflate it. With an unknown "
        "direction d_t = v_t - v_0 (signed), and a systematic change either way counts (see status): seeds that "
        "drift apart in opposite directions cancel out.",
    ),
    (
        "late worsening",
        f"L = the mean of d_t over the last ceil(T/{round(1 / TAIL)}) generations of a run "
        f"(T = its last stored generation; generations {21 - math.ceil(TAIL * 20)}..20 when T = 20), which averages "
        "out the "
        "generation-to-generation noise of the evaluation. Across seeds: mean ± half-width of its "
        f"{CONFIDENCE:.0%} confidence interval (Student t, n-1 degrees of freedom), over the seeds that did not "
        "fail or diverge; paired by construction, as each run is measured against its own generation 0.",
    ),
    (
        "threshold",
        f"tau = {THRESHOLD:.0%} x |generation 0|, the mean over seeds of v_0, in the metric's units: "
        f"{THRESHOLD:.0%} worse than the configuration's generation-0 quality, without dividing each run by its own "
        f"noisy v_0. When that mean is 0 or not finite: {THRESHOLD:.0%} of the spread instead, the standard "
        "deviation (ddof=1) of all the configuration's values (every seed and generation); none when that is "
        "undefined too (then nothing is collapsed).",
    ),
    (
        "status",
        "per configuration, the first rule that applies. failed or diverged: at least half of its seeds "
        "ended so (failed when at least half failed, diverged otherwise); their values up to the last stored "
        "generation are kept. Otherwise, from the seeds that did not fail or diverge, with B = the lower bound of "
        f"the {CONFIDENCE:.0%} confidence interval of L: collapsed when B > tau (worse than generation 0 by more "
        f"than {THRESHOLD:.0%}, beyond the seeds' noise); degraded when B > 0 (significantly worse than generation 0, "
        f"but not shown to exceed {THRESHOLD:.0%}); stable otherwise (not significantly worse). With an unknown "
        "direction B is the interval's distance from zero (its bound nearer to zero, when the interval excludes "
        "zero; otherwise B <= 0). With a single such seed there is no interval: its own L (|L| with an unknown "
        f'direction) stands for B, and the status says "{ONE_SEED}". Degraded needs B above {ROUNDING:g} x '
        "the scale of tau (|generation 0| or the spread): less is floating-point rounding. In brackets: how many "
        "seeds have each run status.",
    ),
    (
        "run status",
        "per run and metric (runs.csv and the counts in brackets): failed or diverged when the run "
        f"ended so; otherwise the rules of a single seed with the run's own L and tau = {THRESHOLD:.0%} x |v_0| "
        "(x the spread of its values when v_0 is 0 or not finite). A single run has no interval, so its degraded "
        "can be noise: the configuration's status is the one that accounts for it.",
    ),
    (
        "collapse start",
        f"per configuration, the first generation t >= 1 at which the lower bound of the "
        f"{CONFIDENCE:.0%} confidence interval of d_t across seeds exceeds tau at {CONSECUTIVE} consecutive "
        "generations (t and t+1), from the seeds that did not fail or diverge; with one such seed (and per run) "
        "its own d_t (|d_t| with an unknown direction). One bad generation, the last one included, is not a "
        "start; a configuration can recover after its start. Empty when there is none.",
    ),
    (
        "relative worsening",
        "w_t = (b_t - b_0) / |v_0| at generation t: the change in the worse direction in "
        "units of the generation-0 value (positive is worse). With an unknown direction any departure counts: "
        "w_t = |v_t - v_0| / |v_0|. Empty when v_0 = 0. A generation-0 value near zero (a distance between "
        "almost equal samples) makes small absolute changes large relative ones: read those beside the values. "
        "Used by the AUC and the maximum worsening of runs.csv only, not by status or collapse start.",
    ),
    ("relative change", "(v_T - v_0) / |v_0| for the last stored generation T; signed, whatever the direction."),
    ("slope", "least-squares slope of the value over generations 0..T, in value units per generation."),
    (
        "AUC",
        "area under the relative-degradation curve: the mean of w_t over t = 1..T. 0 is as good as "
        "generation 0 on average, 0.25 is 25% worse on average, negative is better.",
    ),
    (
        "across seeds",
        "runs of one configuration that differ only in their seed: mean, standard deviation "
        f"(ddof=1), {CONFIDENCE:.0%} confidence interval of the mean (Student t, n-1 degrees of freedom; none with "
        "one seed), shown as mean ± half-width, and the number of seeds.",
    ),
    (
        "rank",
        "per dataset and metric, over configurations (model x policy with parameters): by score, the "
        "mean over seeds of the badness at the last generation, lower first; ties go to the smaller AUC. So a "
        "configuration ranks high by ending good, not by staying equally bad: generation-0 quality and the "
        "stability columns stand beside it. Failed or diverged configurations rank after all others; a metric "
        "with an unknown direction is not ranked.",
    ),
)
