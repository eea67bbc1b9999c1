"""``retrainbench status``: what a store holds, run by run: done, running, failed, diverged, pending."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmark.spec import run_spec_from_dict
from benchmark.store import Store


def run_states(store: Store) -> list[dict]:
    """One dict per run: id, label, state, generations stored and requested, reason."""
    states = []
    for run_id in store.run_ids():
        spec = store.spec(run_id)
        finished = len(store.finished_generations(run_id))
        status = store.status(run_id)
        with store.claim(run_id) as free:
            running = not free
        if running:
            state = "running"
        elif status is None or (status["status"] == "done" and finished < spec["generations"] + 1):
            state = "pending"
        else:
            state = status["status"]
        label = run_spec_from_dict(spec).label
        states.append(
            {
                "run_id": run_id,
                "label": label,
                "state": state,
                "stored": finished,
                "requested": spec["generations"] + 1,
                "reason": (status or {}).get("reason", "") if state in ("failed", "diverged", "timed-out") else "",
            }
        )
    return states


def describe_store(root: Path) -> str:
    store = Store(root)
    store.check(create=False)
    states = run_states(store)
    counts = Counter(s["state"] for s in states)
    order = ["done", "running", "pending", "diverged", "failed", "timed-out"]
    ranked = sorted(counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    lines = [f"{store.root}: {len(states)} runs: " + ", ".join(f"{n} {state}" for state, n in ranked)]
    for s in states:
        reason = f": {s['reason']}" if s["reason"] else ""
        lines.append(f"  {s['state']:<9} {s['run_id']}  {s['label']}  ({s['stored']}/{s['requested']} generations){reason}")
    return "\n".join(lines)
