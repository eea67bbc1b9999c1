"""``retrainbench verify``: check every file of a store, and with ``repair`` set the damaged ones aside.

Setting aside moves a damaged file or generation (and the generations computed from it) into
``STORE/quarantine/`` and removes the run's status, so the next ``retrainbench run`` computes the run
again from its last sound generation, to the numbers a clean run gives. Nothing is deleted.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.run.store import Store, repair_hint


def verify_store(root: Path, *, repair: bool = False) -> tuple[bool, list[str]]:
    """(whether damage was found, the lines to print: one per damaged file, then a summary)."""
    store = Store(root)
    store.check(create=False)
    lines: list[str] = []
    damaged_runs = generations = unverified = 0
    grid_problems = store.grid_problems()
    for path, problem in grid_problems:
        lines.append(problem)
        if repair:
            store.set_aside(path)  # the next run of the grid writes it again
    run_ids = store.run_ids()
    for run_id in run_ids:
        with store.claim(run_id) as free:
            if not free:
                lines.append(f"{store.run_dir(run_id)}: being computed by another process; not checked")
                continue
            check = store.repair(run_id) if repair else store.check_run(run_id)
        lines += check.problems
        damaged_runs += bool(check.problems)
        unverified += len(check.unverified)
        generations += len(store.finished_generations(run_id))
    damaged = bool(damaged_runs or grid_problems)
    summary = f"{store.root}: {len(run_ids)} runs, {generations} sound generations"
    if unverified:
        summary += f", {unverified} of them stored without checksums by an older retrainbench" + (
            " (checksums now recorded)" if repair else " (unverified: `--repair` records their checksums)"
        )
    if not damaged:
        lines.append(f"{summary}; no damage")
    elif repair:
        lines.append(
            f"{summary}; set aside the damage of {damaged_runs} runs and {len(grid_problems)} grid files in "
            f"{store.root / 'quarantine'}; the next `retrainbench run` computes them again"
        )
    else:
        lines.append(
            f"{summary}; damage in {damaged_runs} runs and {len(grid_problems)} grid files: {repair_hint(store.root)}"
        )
    return damaged, lines
