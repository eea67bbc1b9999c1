"""``retrainbench status``: what a store holds, run by run: done, running, failed, diverged, pending."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from benchmark.run.harness import stored_outcome
from benchmark.run.spec import run_spec_from_dict
from benchmark.run.store import RunStatus, Store, Unfinished

#: The order of the summary line: results first, then what is left to do, then what went wrong.
_ORDER = [
    RunStatus.DONE,
    Unfinished.RUNNING,
    Unfinished.PENDING,
    RunStatus.DIVERGED,
    RunStatus.FAILED,
    RunStatus.TIMED_OUT,
]


def run_states(store: Store) -> list[dict[str, Any]]:
    """One dict per run: id, label, state (a RunStatus or Unfinished), generations stored and requested, reason."""
    states = []
    for run_id in store.run_ids():
        run = run_spec_from_dict(store.spec(run_id))
        with store.claim(run_id) as free:
            running = not free
        if not running:  # a run being computed changes under the reader; its writer checks it
            store.verified(run_id)
        outcome = None if running else stored_outcome(store, run)
        state: RunStatus | Unfinished = (
            Unfinished.RUNNING if running else outcome.status if outcome else Unfinished.PENDING
        )
        states.append(
            {
                "run_id": run_id,
                "label": run.label,
                "state": state,
                "stored": len(store.finished_generations(run_id)),
                "requested": run.generations + 1,
                "reason": outcome.reason if outcome else "",
            }
        )
    return states


def describe_store(root: Path) -> str:
    store = Store(root)
    store.check(create=False)
    states = run_states(store)
    counts = Counter(s["state"] for s in states)
    ranked = sorted(counts.items(), key=lambda item: _ORDER.index(item[0]))
    lines = [f"{store.root}: {len(states)} runs: " + ", ".join(f"{n} {state}" for state, n in ranked)]
    for s in states:
        reason = f": {s['reason']}" if s["reason"] else ""
        lines.append(
            f"  {s['state']:<9} {s['run_id']}  {s['label']}  ({s['stored']}/{s['requested']} generations){reason}"
        )
    return "\n".join(lines)
