"""Growing policy state is stored as its growth: linear store size, exact resume, damage still set aside.

``accumulate`` keeps every synthetic set so far; each generation stores only its new set and refers to
the previous generation for the rest (``policy.extends.json``), so a run's store grows linearly with
its generations instead of as O(G^2 n).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import grid_doc

from benchmark.api.plugins import build_registry
from benchmark.report.leaderboard import results_frame
from benchmark.run import checkpoint, integrity
from benchmark.run.harness import RunTask, execute_run
from benchmark.run.loop import Resume, generations
from benchmark.run.spec import RunSpec, parse_grid
from benchmark.run.store import Store

N_REAL = 100


def accumulate_run(policy: str = "accumulate", generations: int = 6) -> RunSpec:
    doc = grid_doc(
        name="growing",
        generations=generations,
        seeds=[4],
        n_real=N_REAL,
        n_test=60,
        n_eval=60,
        datasets=[{"name": "moons"}],
        models=[{"name": "kde"}],
        policies=[{"name": policy}],
        metrics=[{"name": "mean-distance"}],
    )
    (run,) = parse_grid(doc, build_registry()).runs
    return run


def computed(root: Path, run: RunSpec) -> Store:
    store = Store(root)
    store.check(create=True)
    execute_run(RunTask(str(root), run.describe()), build_registry())
    return store


def policy_bytes(store: Store, run: RunSpec, generation: int) -> int:
    return sum(p.stat().st_size for p in (store.run_dir(run.run_id) / f"gen-{generation:04d}").glob("policy*"))


def resumed(store: Store, run: RunSpec) -> Resume:
    point = store.resume_point(run.run_id)
    assert point is not None, "nothing stored"
    return point


def results_csv(store: Store) -> str:
    return results_frame(store).to_csv(index=False)


def cut_after(source: Store, root: Path, run: RunSpec, generation: int) -> Store:
    """A copy of ``source`` as a run killed after ``generation`` leaves it."""
    shutil.copytree(source.root, root)
    directory = Store(root).run_dir(run.run_id)
    (directory / "status.json").unlink()
    for later in directory.glob("gen-*"):
        if int(later.name[4:]) > generation:
            shutil.rmtree(later)
    return Store(root)


def rewrite_manifest(directory: Path) -> None:
    """As someone editing a store who also updates its checksums would."""
    (directory / integrity.MANIFEST).write_text(
        json.dumps(integrity.manifest(p for p in directory.iterdir() if p.name != integrity.MANIFEST))
    )


@pytest.mark.parametrize("policy", ["accumulate", "accumulate-subsample"])
def test_policy_state_stored_per_generation_stays_n_points_as_the_run_grows(tmp_path, policy):
    run = accumulate_run(policy, generations=40)
    store = computed(tmp_path / "store", run)
    n_points = N_REAL * 2 * 8  # the synthetic set one generation adds: n two-dimensional float64 points
    at_10, at_40 = policy_bytes(store, run, 10), policy_bytes(store, run, 40)
    assert resumed(store, run).policy_state["synthetic"].shape == (40 * N_REAL, 2)
    assert at_40 <= at_10 * 1.01, f"{at_40} bytes at generation 40 against {at_10} at 10: the store grows faster"
    assert at_40 < 1.5 * n_points, f"{at_40} bytes for {n_points} bytes of new points"


def test_a_run_resumed_after_any_generation_gives_the_numbers_of_one_run_straight_through(tmp_path):
    run = accumulate_run(generations=6)
    straight = computed(tmp_path / "straight", run)
    states = [dict(result.policy_state) for result in generations(run, build_registry())]
    last = straight.run_dir(run.run_id) / "gen-0006"
    assert (last / "policy.growth.npz").exists(), "stored as growth"
    assert not (last / "policy.npz").exists(), "a reader that does not follow references finds no policy.npz"
    expected = results_csv(straight)
    for generation in range(6):
        cut = cut_after(straight, tmp_path / f"cut-{generation}", run, generation)
        resumed_at = resumed(cut, run)
        assert resumed_at.generation == generation
        assert sorted(resumed_at.policy_state) == sorted(states[generation])
        for key, array in states[generation].items():
            assert resumed_at.policy_state[key].dtype == array.dtype
            assert resumed_at.policy_state[key].tobytes() == np.asarray(array).tobytes(), (generation, key)
        execute_run(RunTask(str(cut.root), run.describe()), build_registry())
        assert results_csv(cut) == expected, f"resumed after generation {generation}"


def test_generations_committed_by_separate_store_objects_are_still_stored_as_growth(tmp_path):
    """A Store remembers the last state it committed; without it, it reads the previous one back."""
    run = accumulate_run(generations=4)
    root = tmp_path / "store"
    Store(root).check(create=True)
    with Store(root).claim(run.run_id):
        Store(root).begin(run.describe())
        for result in generations(run, build_registry()):
            Store(root).commit(run.run_id, result)
            last = result
    stored = Store(root).run_dir(run.run_id) / "gen-0004"
    assert checkpoint.extends(stored, "policy")["synthetic"]["rows"] == 3 * N_REAL
    whole = resumed(Store(root), run).policy_state["synthetic"]
    assert whole.tobytes() == last.policy_state["synthetic"].tobytes()
    with pytest.raises(ValueError, match="stored as growth over an earlier state"):  # never its new rows alone
        checkpoint.load(stored, "policy")


def test_a_store_with_whole_policy_state_per_generation_still_reads_and_resumes(tmp_path):
    """Stores written before this change hold the whole state in every generation's policy.npz."""
    run = accumulate_run(generations=5)
    straight = computed(tmp_path / "straight", run)
    states = [dict(result.policy_state) for result in generations(run, build_registry())]
    old = cut_after(straight, tmp_path / "old", run, 3)
    for generation in range(1, 4):
        directory = old.run_dir(run.run_id) / f"gen-{generation:04d}"
        for grown in (checkpoint.extends_path(directory, "policy"), directory / "policy.growth.npz"):
            grown.unlink(missing_ok=True)
        checkpoint.save(states[generation], directory, "policy")
        rewrite_manifest(directory)
    assert old.check_run(run.run_id).problems == []
    restored = resumed(old, run).policy_state["synthetic"]
    assert restored.tobytes() == states[3]["synthetic"].tobytes()
    execute_run(RunTask(str(old.root), run.describe()), build_registry())
    assert results_csv(old) == results_csv(straight)
    assert checkpoint.extends(old.run_dir(run.run_id) / "gen-0004", "policy")["synthetic"]["generation"] == 3


def test_a_generation_whose_policy_state_continues_damage_is_set_aside_with_it(tmp_path):
    run = accumulate_run(generations=5)
    clean = computed(tmp_path / "clean", run)
    expected = results_csv(clean)
    names = [f"gen-{g:04d}" for g in range(6)]

    # the generation that holds the start of later generations' state is damaged: it and all after it go
    broken = cut_after(clean, tmp_path / "broken", run, 5)
    base = broken.run_dir(run.run_id) / "gen-0002" / "policy.growth.npz"
    base.write_bytes(base.read_bytes()[:40])
    check = broken.check_run(run.run_id)
    assert check.problems == [f"{base}: checksum mismatch (edited, swapped or damaged)"]
    assert [p.name for p in check.damaged] == names[2:]
    execute_run(RunTask(str(broken.root), run.describe()), build_registry())  # repairs, then recomputes
    assert results_csv(broken) == expected

    # a reference that points forward (checksums rewritten to match) is damage too, never followed
    forward = cut_after(clean, tmp_path / "forward", run, 5)
    directory = forward.run_dir(run.run_id) / "gen-0003"
    extends = json.loads(checkpoint.extends_path(directory, "policy").read_text())
    extends["synthetic"]["generation"] = 4
    checkpoint.extends_path(directory, "policy").write_text(json.dumps(extends))
    rewrite_manifest(directory)
    check = forward.check_run(run.run_id)
    assert check.problems == [
        f"{checkpoint.extends_path(directory, 'policy')}: array 'synthetic' refers to generation 4, not an earlier one"
    ]
    assert [p.name for p in check.damaged] == names[3:]
    execute_run(RunTask(str(forward.root), run.describe()), build_registry())
    assert results_csv(forward) == expected

    # an earlier generation replaced since it was referred to, its own checksums consistent
    replaced = cut_after(clean, tmp_path / "replaced", run, 5)
    directory = replaced.run_dir(run.run_id) / "gen-0001"
    checkpoint.save({"synthetic": np.zeros((N_REAL, 2))}, directory, "policy")
    rewrite_manifest(directory)
    check = replaced.check_run(run.run_id)
    assert check.problems == [
        f"{directory.parent / 'gen-0002' / 'policy.extends.json'}: array 'synthetic' continues the policy state of "
        f"{directory}, which has changed since"
    ]
    assert [p.name for p in check.damaged] == names[2:]


def test_only_a_bit_for_bit_continuation_is_stored_as_growth(tmp_path):
    """-0.0 == 0.0 numerically, but a resumed run must get the bits it had."""
    earlier = {"synthetic": np.array([[0.0, 1.0]])}
    grown: dict[str, Any] = {"synthetic": np.array([[-0.0, 1.0], [2.0, 3.0]]), "count": np.int64(2)}
    written = checkpoint.save_extending(grown, tmp_path, "policy", earlier, {"generation": 0})
    assert written == [tmp_path / "policy.npz"]  # nothing continues: stored whole
    assert checkpoint.load(tmp_path, "policy")["synthetic"].tobytes() == grown["synthetic"].tobytes()

    grown["synthetic"][0, 0] = 0.0
    (tmp_path / "continued").mkdir()
    written = checkpoint.save_extending(grown, tmp_path / "continued", "policy", earlier, {"generation": 0})
    assert [p.name for p in written] == ["policy.growth.npz", "policy.extends.json"]
    assert checkpoint.extends(tmp_path / "continued", "policy") == {"synthetic": {"generation": 0, "rows": 1}}
    assert checkpoint.load_arrays(tmp_path / "continued", "policy")["synthetic"].tolist() == [[2.0, 3.0]]
