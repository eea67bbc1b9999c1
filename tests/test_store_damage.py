"""A damaged store: each kind of file corrupted in turn, read by `status`, `report`, `run` and `verify`.

Every reader names the damaged file in one line and exits 2; `run` and `verify --repair` set the damage
aside (nothing deleted) and the next run computes it again, to a results.csv identical to a clean run's.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import clean_env, write_grid

from benchmark.cli import main
from benchmark.errors import StoreError
from benchmark.files import write_atomic
from benchmark.report.leaderboard import results_frame
from benchmark.run import integrity
from benchmark.run.store import Store


def cli(capsys, *args: str | Path) -> tuple[int, str, str]:
    """The CLI in this process (a subprocess per call would make this file take a minute)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, Path, str]:
    """(grid file, a clean store of it, its results.csv): 2 runs of 4 generations, analytic."""
    tmp = tmp_path_factory.mktemp("clean")
    grid = write_grid(
        tmp / "grid.toml",
        name="damage",
        generations=3,
        n_real=30,
        n_test=30,
        n_eval=30,
        models=[{"name": "gaussian"}, {"name": "kde"}],
        policies=[{"name": "accumulate"}],  # keeps state: a policy.npz per generation
        metrics=[{"name": "mean-distance"}, {"name": "variance"}],
    )
    store = tmp / "store"
    assert main(["run", str(grid), "--store", str(store), "--executor", "inline", "--no-progress"]) == 0
    return grid, store, results_csv(store)


def first_run(store: Path) -> Path:
    return sorted((store / "runs").iterdir())[0]


def write_record_list(store: Path) -> Path:
    path = first_run(store) / "gen-0001" / "record.json"
    path.write_text("[1, 2]")
    return path


def edit_metric_value(store: Path) -> Path:
    path = first_run(store) / "gen-0002" / "record.json"
    record = json.loads(path.read_text())
    record["metrics"]["variance"]["value"] *= 0.5
    path.write_text(json.dumps(record, indent=1, sort_keys=True))
    return path


def edit_and_delete_manifest(store: Path) -> Path:
    """An edit hidden by deleting the generation's checksums: the other generations have theirs."""
    edit_metric_value(store)
    path = first_run(store) / "gen-0002" / integrity.MANIFEST
    path.unlink()
    return path


def bogus_status(store: Path) -> Path:
    path = first_run(store) / "status.json"
    path.write_text('{"status": "bogus"}')
    return path


def unknown_status_value(store: Path) -> Path:
    path = first_run(store) / "status.json"
    path.write_text(json.dumps({"status": "bogus", "generations": 3, "reason": "", "traceback": ""}))
    return path


def run_json_missing_keys(store: Path) -> Path:
    path = first_run(store) / "run.json"
    spec = json.loads(path.read_text())
    del spec["schema"], spec["seed"]
    path.write_text(json.dumps(spec))
    return path


def garbage_samples(store: Path) -> Path:
    path = first_run(store) / "gen-0001" / "samples.npy"
    path.write_bytes(b"not a numpy file")
    return path


def truncated_policy(store: Path) -> Path:
    (path,) = (first_run(store) / "gen-0002").glob("policy*.npz")  # policy.growth.npz: its growth over gen-0001
    path.write_bytes(path.read_bytes()[:40])
    return path


def swapped_model(store: Path) -> Path:
    run = first_run(store)
    path = run / "gen-0002" / "model.npz"
    shutil.copyfile(run / "gen-0001" / "model.npz", path)
    return path


def garbage_grid(store: Path) -> Path:
    path = store / "grids" / "damage.json"
    path.write_text("{not json")
    return path


def missing_middle_generation(store: Path) -> Path:
    path = first_run(store) / "gen-0001"
    shutil.rmtree(path)
    return path


#: (damage, whether `status` and `run` read that file: they read run.json, status.json and every generation, but
#: not grids/NAME.json, which `run` writes again)
DAMAGE: list[tuple[Callable[[Path], Path], bool]] = [
    (write_record_list, True),
    (edit_metric_value, True),
    (edit_and_delete_manifest, True),
    (bogus_status, True),
    (unknown_status_value, True),
    (run_json_missing_keys, True),
    (garbage_samples, True),
    (truncated_policy, True),
    (swapped_model, True),
    (garbage_grid, False),
    (missing_middle_generation, True),
]


def files_kept(store: Path) -> set[tuple[str, ...]]:
    """Every file of the store by its path in it; a file in the quarantine counts at the path it was set aside from."""
    kept = set()
    for path in store.rglob("*"):
        if path.is_file() and path.name != "lock":
            parts = path.relative_to(store).parts
            if parts[0] == "quarantine":
                parts = tuple(re.sub(r"\.[0-9a-f]{8}$", "", part) for part in parts[1:])
            kept.add(parts)
    return kept


def one_error_naming(err: str, path: Path) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retrainbench: error: "), err
    assert str(path) in lines[0], err


def results_csv(store: Path) -> str:
    """results.csv of the store, as `report` writes it (without the page, which takes most of a report's time)."""
    return results_frame(Store(store)).to_csv(index=False)


@pytest.mark.parametrize("damage, runs_read_it", DAMAGE, ids=[d.__name__ for d, _ in DAMAGE])
def test_damage_is_named_then_repaired_to_a_clean_runs_results(capsys, tmp_path, clean, damage, runs_read_it):
    grid, clean_store, expected = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store)
    damaged = damage(store)

    code, _, err = cli(capsys, "status", "--store", store)
    if runs_read_it:
        assert code == 2
        one_error_naming(err, damaged)
    else:
        assert code == 0, err
    code, _, err = cli(capsys, "report", "--store", store, "--out", tmp_path / "report")
    assert code == 2
    one_error_naming(err, damaged)
    assert not (tmp_path / "report" / "results.csv").exists(), "nothing half-written"

    code, out, err = cli(capsys, "verify", "--store", store)
    assert code == 2 and not err
    assert [line for line in out.splitlines() if str(damaged) in line], out

    # `run` on the damaged store sets the damage aside itself and recomputes it
    direct = tmp_path / "direct"
    shutil.copytree(store, direct)
    code, _, err = cli(capsys, "run", grid, "--store", direct, "--executor", "inline", "--no-progress")
    assert code == 0, err
    notes = [line for line in err.splitlines() if str(damaged).replace(str(store), str(direct)) in line]
    assert len(notes) == (1 if runs_read_it else 0), err
    assert results_csv(direct) == expected

    # `verify --repair` sets it aside (kept in the quarantine), the next `run` recomputes it
    before = files_kept(store)
    code, out, err = cli(capsys, "verify", "--store", store, "--repair")
    assert code == 0, err
    assert any((store / "quarantine").iterdir()), out
    assert before <= files_kept(store), "nothing is deleted: what is set aside is kept in the quarantine"
    code, _, err = cli(capsys, "verify", "--store", store)
    assert code == 0, err
    code, _, err = cli(capsys, "run", grid, "--store", store, "--executor", "inline", "--no-progress")
    assert code == 0, err
    assert results_csv(store) == expected


def test_a_store_written_before_checksums_reads_and_gets_them_on_repair(capsys, tmp_path, clean):
    _, clean_store, expected = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store)
    for manifest in store.glob(f"runs/*/gen-*/{integrity.MANIFEST}"):
        manifest.unlink()
    assert results_csv(store) == expected
    code, out, _ = cli(capsys, "verify", "--store", store)
    assert code == 0 and "8 of them stored without checksums" in out and "unverified" in out
    edit_metric_value(store)  # without a checksum an edit cannot be seen ...
    assert cli(capsys, "verify", "--store", store)[0] == 0

    shutil.rmtree(store)
    shutil.copytree(clean_store, store)
    for manifest in store.glob(f"runs/*/gen-*/{integrity.MANIFEST}"):
        manifest.unlink()
    code, out, _ = cli(capsys, "verify", "--store", store, "--repair")
    assert code == 0 and "checksums now recorded" in out
    assert len(list(store.glob(f"runs/*/gen-*/{integrity.MANIFEST}"))) == 8
    damaged = edit_metric_value(store)  # ... with the checksums recorded by --repair, it can
    code, out, _ = cli(capsys, "verify", "--store", store)
    assert code == 2 and f"{damaged}: checksum mismatch" in out


def test_hidden_files_of_the_filesystem_are_not_damage(capsys, tmp_path, clean):
    """A shared filesystem's .nfsXXXX or a desktop's .DS_Store beside a generation's files is not ours to judge."""
    _, clean_store, _ = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store)
    (first_run(store) / "gen-0001" / ".nfs0000000001").write_bytes(b"held open elsewhere")
    code, out, _ = cli(capsys, "verify", "--store", store)
    assert code == 0, out


def test_an_unfinished_runs_damaged_generation_is_set_aside_and_recomputed(capsys, tmp_path, clean):
    """The harness resumes from the last sound generation, not from a damaged one."""
    grid, clean_store, expected = clean
    store = tmp_path / "store"
    shutil.copytree(clean_store, store)
    run = first_run(store)
    (run / "status.json").unlink()  # as if killed after generation 3
    damaged = swapped_model(store)
    code, _, err = cli(capsys, "run", grid, "--store", store, "--executor", "inline", "--no-progress")
    assert code == 0, err
    assert f"{damaged}: checksum mismatch" in err
    assert results_csv(store) == expected


def test_a_full_disk_names_the_file(tmp_path):
    def fill(fh):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left on device") as raised:
        write_atomic(tmp_path / "grids" / "g.json", fill)
    assert raised.value.filename == str(tmp_path / "grids" / "g.json")
    assert not list((tmp_path / "grids").iterdir()), "nothing half-written"


def test_a_full_disk_while_committing_a_generation_names_it(tmp_path, monkeypatch):
    from benchmark.run import checkpoint
    from benchmark.run.loop import GenerationResult

    def full(state, directory, stem):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "save", full)
    store = Store(tmp_path / "store")
    store.check(create=True)
    result = GenerationResult(0, {"generation": 0, "metrics": {}}, {"mean": np.zeros(2)}, {})
    with store.claim("run"), pytest.raises(OSError) as raised:
        store.commit("run", result)
    assert raised.value.filename == str(store.run_dir("run") / "gen-0000")
    assert [p.name for p in store.run_dir("run").iterdir()] == ["lock"], "nothing half-written"


def test_a_full_disk_while_writing_a_report_names_the_file_and_writes_nothing(capsys, tmp_path, clean, monkeypatch):
    """A write that fails as on a full disk is one line naming the file, and leaves no file and no temporary."""
    from test_leaderboard import full_disk_for

    out = tmp_path / "report"
    out.mkdir()
    full_disk_for(monkeypatch, "results.csv")
    code, _, err = cli(capsys, "report", "--store", clean[1], "--out", out)
    assert code == 2
    one_error_naming(err, out / "results.csv")
    assert "No space left on device" in err
    assert list(out.iterdir()) == []


def test_report_into_an_existing_file_is_one_line(capsys, tmp_path, clean):
    _, store, _ = clean
    (tmp_path / "out").write_text("")
    code, _, err = cli(capsys, "report", "--store", store, "--out", tmp_path / "out")
    assert code == 2
    one_error_naming(err, tmp_path / "out")


def test_run_into_a_store_that_is_a_file_is_one_line(capsys, tmp_path, clean):
    grid = clean[0]
    (tmp_path / "file").write_text("")
    code, out, err = cli(capsys, "run", grid, "--store", tmp_path / "file", "--executor", "inline")
    assert code == 2 and not out
    one_error_naming(err, tmp_path / "file")


def test_reads_refuse_damage_with_the_file_named(tmp_path, clean):
    store = tmp_path / "store"
    shutil.copytree(clean[1], store)
    path = unknown_status_value(store)
    with pytest.raises(StoreError, match="unknown status 'bogus'"):
        Store(store).status(path.parent.name)


@pytest.mark.parametrize("command", [["list", "--json"], ["status", "--store", "STORE"]])
def test_a_closed_pipe_ends_quietly(tmp_path, clean, command):
    """`retrainbench status | head`: the reader left; exit 141 (128 + SIGPIPE) like a Unix tool, no message."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write fails with EPIPE
    args = [str(clean[1]) if a == "STORE" else a for a in command]
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env({"PYTHONPATH": os.pathsep.join(sys.path)}),
        timeout=120,  # a guard against a hung child, not a measurement
    )
    os.close(write)
    assert done.returncode == 141 and done.stderr == ""
