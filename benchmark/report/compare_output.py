"""A comparison (``benchmark.report.compare``) for people and machines: a terminal table, Markdown for a CI
job summary (what fails first, then what changed), JSON, and JUnit XML with one test case per configuration."""

from __future__ import annotations

import json
import math
from typing import Any
from xml.etree import ElementTree

import pandas as pd

from benchmark.report import stats
from benchmark.report.compare import SPEC, Comparison, spec_label
from benchmark.report.compare_rules import FAIL_RULES
from benchmark.report.tables import md_text


def _number(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.3g}"


def _interval(row: pd.Series, stat: str) -> str:
    """A change with its 90% interval, ``+0.012 [-0.003, +0.027]``; without one, why."""
    low, high = row[f"{stat}_low"], row[f"{stat}_high"]
    span = f" [{_number(low)}, {_number(high)}]" if math.isfinite(low) else " (no interval: < 2 seeds)"
    return f"{_number(row[f'{stat}_change'])}{span}"


def _verdicts(row: pd.Series) -> str:
    b, c = row["verdict_baseline"], row["verdict_candidate"]
    return b if b == c else f"{b} -> {c}"


def _outcome(row: pd.Series) -> str:
    return "FAIL: " + "; ".join(row["fails"]) if row["fails"] else ("changed" if row["changed"] else "same")


def headline(result: Comparison) -> str:
    """One line: passed or failed, and how many configurations fail, changed, or are on one side only."""
    rows = result.rows
    failing, changed = int(rows["fails"].map(bool).sum()), int(rows["changed"].sum())
    word = "FAILED" if result.failed else "passed"
    extra = [f"{len(result.only_baseline)} only in the baseline"] if result.only_baseline else []
    extra += [f"{len(result.only_candidate)} only in the candidate"] if result.only_candidate else []
    untested = "; no tests: a change needs 2 or more seeds on each side" if result.tests == 0 else ""
    redefined = int(rows["redefined"].sum())
    if redefined:
        extra.append(f"{redefined} computed by other component versions (a change may be a new definition)")
    return (
        f"retrainbench compare {word}: {failing} failing, {changed} changed of {len(rows)} compared "
        f"(dataset, configuration, metric){'; ' + ', '.join(extra) if extra else ''}; {result.tests} tests adjusted "
        f"together at {stats.ALPHA:.0%} (Benjamini-Hochberg); "
        f"fail on: {', '.join(sorted(result.fail_on)) or 'none'}{untested}"
    )


def _settings_needed(rows: pd.DataFrame) -> bool:
    """Whether a configuration needs its settings to be told apart: two rows share everything else."""
    return bool(rows.duplicated(SPEC).any())


def _table(rows: pd.DataFrame, settings_shown: bool) -> pd.DataFrame:
    """The columns people read; the settings only where they tell configurations apart."""
    return pd.DataFrame(
        {
            "configuration": [spec_label(r, settings_shown) for r in rows.to_dict("records")],
            "seeds": [
                f"{b}/{c}{' paired' if p else ''}"
                for b, c, p in zip(rows["seeds_baseline"], rows["seeds_candidate"], rows["paired"], strict=True)
            ],
            "verdict": [_verdicts(r) for _, r in rows.iterrows()],
            "level change": [_interval(r, "level") for _, r in rows.iterrows()],
            "q": [f"{q:.3g}" if math.isfinite(q) else "n/a" for q in rows["q_level"]],
            "gen-0 change": [_interval(r, "quality") for _, r in rows.iterrows()],
            "tolerance": [f"{t:.3g}" for t in rows["tolerance"]],
            "result": [_outcome(r) for _, r in rows.iterrows()],
        }
    )


def _md_table(rows: pd.DataFrame, settings_shown: bool) -> str:
    return _table(rows, settings_shown).map(md_text).to_markdown(index=False, disable_numparse=True)


def _ordered(result: Comparison) -> pd.DataFrame:
    """Failing rows first, then changed ones, then the rest."""
    rows = result.rows
    order = rows["fails"].map(bool).map({True: 0, False: 1}) + (~rows["changed"]).astype(int)
    return rows.assign(order=order).sort_values("order", kind="stable").drop(columns="order")


def terminal(result: Comparison, show_all: bool = False) -> str:
    """The table of what fails and what changed (every row with ``show_all``), then the one-line headline."""
    rows = _ordered(result)
    shown = rows if show_all else rows[rows["changed"]]
    lines = [f"baseline:  {result.baseline}", f"candidate: {result.candidate}", ""]
    if len(shown):
        lines += [_table(shown, _settings_needed(rows)).to_string(index=False), ""]
    if len(rows) > len(shown):
        lines.append(f"{len(rows) - len(shown)} compared configurations unchanged (--all shows them)")
    lines += [f"only in the baseline: {s}" for s in result.only_baseline]
    lines += [f"only in the candidate: {s}" for s in result.only_candidate]
    lines.append(headline(result))
    return "\n".join(lines)


def markdown(result: Comparison) -> str:
    """A CI job summary: the headline, what fails, what else changed, what is on one side only, the rest folded."""
    rows = _ordered(result)
    failing, changed = rows[rows["fails"].map(bool)], rows[rows["changed"] & ~rows["fails"].map(bool)]
    same = rows[~rows["changed"]]
    many = _settings_needed(rows)
    out = [f"## retrainbench compare: {'FAILED' if result.failed else 'passed'}", "", headline(result), ""]
    sides = f"Baseline {md_text(str(result.baseline))}, candidate {md_text(str(result.candidate))}."
    out += [f"{sides} Changes are candidate - baseline, positive is worse, with their 90% interval across seeds.", ""]
    for title, part in (("Failing", failing), ("Changed", changed)):
        if len(part):
            out += [f"### {title} ({len(part)})", "", _md_table(part, many), ""]
    for title, specs in (
        ("Only in the baseline", result.only_baseline),
        ("Only in the candidate", result.only_candidate),
    ):
        if specs:
            out += [f"### {title} ({len(specs)})", "", *(f"- {md_text(s)}" for s in specs), ""]
    if len(same):
        out += [f"<details><summary>Unchanged ({len(same)})</summary>", "", _md_table(same, many),
                "", "</details>", ""]  # fmt: skip
    out += ["What fails: " + "; ".join(f"**{k}**: {v}" for k, v in FAIL_RULES.items() if k in result.fail_on) + "."]
    return "\n".join(out) + "\n"


def _plain(value: Any) -> Any:
    """A JSON value: NaN and infinities as null, numpy scalars as Python ones."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(result: Comparison) -> str:
    """Everything: the outcome, the rules, every compared row with its statistics, and the one-side specs."""
    rows = [
        {k: _plain(v) if not isinstance(v, list) else v for k, v in r.items()} for r in result.rows.to_dict("records")
    ]
    doc = {
        "baseline": str(result.baseline),
        "candidate": str(result.candidate),
        "failed": result.failed,
        "fail_on": {k: FAIL_RULES[k] for k in sorted(result.fail_on)},
        "alpha": stats.ALPHA,
        "tests": result.tests,
        "compared": rows,
        "only_baseline": result.only_baseline,
        "only_candidate": result.only_candidate,
    }
    return json.dumps(doc, indent=1, allow_nan=False)


def junit(result: Comparison) -> str:
    """JUnit XML: one test case per compared (dataset, configuration, metric), failed when the gate fails it."""
    rows = result.rows
    suite = ElementTree.Element(
        "testsuite",
        name="retrainbench compare",
        tests=str(len(rows)),
        failures=str(int(rows["fails"].map(bool).sum())),
    )
    for r in rows.to_dict("records"):
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"{r['dataset']}.{r['model']}.{r['policy']}",
            name=f"{r['metric']}{' [' + r['settings'] + ']' if r['settings'] else ''}",
        )
        if r["fails"]:
            failure = ElementTree.SubElement(case, "failure", message="; ".join(r["fails"]))
            failure.text = spec_label(r)
    for spec in result.only_baseline:
        case = ElementTree.SubElement(suite, "testcase", classname="only-in-baseline", name=spec)
        ElementTree.SubElement(case, "skipped", message="not in the candidate")
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
