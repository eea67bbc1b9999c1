"""Crash-safe, resumable result storage in a local (or shared) directory.

Layout::

    STORE/store.json                 {"schema": N}; a store of another schema is refused
    STORE/grids/NAME.json            the grid as last run: its source, run ids, generations, environment
    STORE/runs/RUN_ID/run.json       the run's canonical spec
    STORE/runs/RUN_ID/lock           flock-ed by the one process computing the run
    STORE/runs/RUN_ID/gen-0003/      one finished generation: record.json, model.npz|.pt, samples.npy,
                                     policy.npz when the policy keeps state (policy.growth.npz and
                                     policy.extends.json when it continues the previous generation's),
                                     and manifest.json (their sha256)
    STORE/runs/RUN_ID/status.json    how the run ended: done, failed, diverged or timed-out, with the reason
    STORE/quarantine/                damaged files set aside (never deleted), at their paths in the store

A generation directory is written under a temporary name and renamed into place, so it either
exists whole or not at all: a process killed at any instant leaves the run resumable from its
last finished generation (what a killed process wrote is in the page cache and survives it).
Surviving a power cut or a kernel crash also needs the data on disk before the rename: a
``durable`` store (``RETRAINBENCH_DURABLE=1``) fsyncs every file and directory, at a cost of
tens of milliseconds per generation. Only the holder of a run's lock writes it, so two
processes on one store never compute a run twice.

Every read validates what it reads (``benchmark.run.integrity``): readers (``status``, ``report``)
refuse a damaged file with one line naming it; ``repair`` (a worker before it computes a run, and
``retrainbench verify --repair``) moves a damaged generation and every generation after it, a damaged
run.json or status.json, into ``STORE/quarantine/``, so the run is computed again from its last sound
generation to the same numbers.

Policy state that grows (``accumulate``) is stored as its growth: an array whose leading rows are the
previous generation's array is stored as its new rows (policy.growth.npz), with a reference to that
generation (its number and the sha256 of its policy file) in policy.extends.json; reading it back
follows the references to where each array starts. References only point back, so a generation
depends only on earlier ones, and a repair, which sets aside a damaged generation with every one after
it, never leaves one dangling.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import shutil
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import SCHEMA_VERSION
from benchmark.errors import StoreError
from benchmark.files import fsync_dir, naming, read_json, write_atomic
from benchmark.run import checkpoint, integrity
from benchmark.run.loop import GenerationResult, Resume
from benchmark.run.spec import run_spec_from_dict

#: What a torn or truncated file raises when read (JSON, numpy archives, torch files; KeyError: an array missing).
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError)
#: Runs whose last stored policy state a Store keeps in memory, to store the next one as its growth.
_REMEMBERED_RUNS = 8


@dataclass(frozen=True)
class _PolicyState:
    """A stored generation's policy state, whole, as the next generation's state may continue it."""

    generation: int
    #: The sha256 of the generation's policy file (``checkpoint.arrays_path``): what a reference to it records.
    sha256: str
    #: Its arrays, flat (``checkpoint.flatten``), each whole; copies nobody else holds.
    arrays: dict[str, np.ndarray]


class RunStatus(StrEnum):
    """How a run ended: the ``status`` of its status.json, and of its rows in results.csv."""

    #: Every requested generation finished.
    DONE = "done"
    #: A plugin raised, or the worker died.
    FAILED = "failed"
    #: Samples or training losses stopped being finite; the generations before are kept.
    DIVERGED = "diverged"
    #: The run exceeded its time limit.
    TIMED_OUT = "timed-out"


class Unfinished(StrEnum):
    """What a run without a stored ending is (never stored: shown by ``retrainbench status`` and reports)."""

    #: Another process holds the run's lock and is computing it.
    RUNNING = "running"
    #: Never run, interrupted, or done with fewer generations than a grid now asks for.
    PENDING = "pending"


def write_json_atomic(path: Path, data: Any, *, durable: bool) -> None:
    """Replace ``path`` with ``data`` as JSON in one rename; readers never see half a file."""
    write_atomic(path, lambda fh: fh.write(json.dumps(data, indent=1, sort_keys=True).encode("utf-8")), durable=durable)


def repair_hint(root: Path) -> str:
    """What to do about damage, appended to the one line that names it."""
    return f"`retrainbench verify --store {root} --repair` sets it aside for the next run to recompute"


@dataclass
class RunCheck:
    """What ``Store.check_run`` found in one run's folder."""

    #: One line per damaged file, naming it (the first damaged generation only: the ones after it depend on it).
    problems: list[str] = field(default_factory=list)
    #: What a repair sets aside: damaged files and generations, the generations after them, and the run's status.
    damaged: list[Path] = field(default_factory=list)
    #: Sound generations stored without checksums (by a retrainbench before manifests).
    unverified: list[Path] = field(default_factory=list)


class Store:
    """A result store rooted at one directory."""

    def __init__(self, root: str | Path, *, durable: bool | None = None) -> None:
        self.root = Path(root)
        if durable is None:
            durable = os.environ.get("RETRAINBENCH_DURABLE", "") not in ("", "0")
        #: fsync every generation before it counts as finished (survives power loss, costs time)
        self.durable = durable
        #: The last policy state committed or resumed, by run: saves reading it back to store the next as growth.
        self._policy_states: dict[str, _PolicyState] = {}

    # ------------------------------------------------------------ store-wide

    @property
    def cache_dir(self) -> Path:
        """What runs share and may recompute: real-data features, trained feature extractors."""
        return self.root / "cache"

    def check_place(self) -> None:
        """Refuse a store path that is a file, or a store of another schema; creates nothing."""
        marker = self.root / "store.json"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: is a file, not a store directory")
        if marker.exists():
            try:
                schema = read_json(marker).get("schema")
            except (OSError, ValueError, AttributeError) as exc:
                raise StoreError(f"{marker}: unreadable store marker: {exc}") from None
            if schema != SCHEMA_VERSION:
                raise StoreError(
                    f"{marker}: store has result schema {schema}, this retrainbench writes schema {SCHEMA_VERSION}; "
                    "use another --store"
                )

    def check(self, *, create: bool) -> None:
        """Make sure the store exists (creating it if asked) and has this code's schema."""
        self.check_place()
        marker = self.root / "store.json"
        if marker.exists():
            return
        if create:
            try:
                write_json_atomic(marker, {"schema": SCHEMA_VERSION}, durable=self.durable)
            except OSError as exc:
                raise StoreError(f"{self.root}: cannot create a store here: {exc.strerror or exc}") from None
        else:
            raise StoreError(f"{self.root}: not a retrainbench store (no store.json)")

    def record_grid(
        self, name: str, source: str, path: str, run_ids: list[str], generations: int, environment: dict[str, Any]
    ) -> None:
        """Remember which runs (and how many generations of them) a grid asked for, and where it ran, so a
        report can show the grid and select exactly its results."""
        write_json_atomic(
            self.root / "grids" / f"{name}.json",
            {
                "name": name,
                "path": path,
                "source": source,
                "runs": run_ids,
                "generations": generations,
                "environment": environment,
            },
            durable=self.durable,
        )

    def _grid(self, path: Path) -> tuple[Any, str | None]:
        data, problem = integrity.json_problem(path, integrity.GRID_SHAPE)
        if problem is None and not all(isinstance(r, str) for r in data["runs"]):
            problem = f"{path}: key 'runs' must be a list of run ids"
        return data, problem

    def grid_problems(self) -> list[tuple[Path, str]]:
        """(file, problem) for each damaged grids/NAME.json."""
        folder = self.root / "grids"
        checked = [(path, self._grid(path)[1]) for path in sorted(folder.glob("*.json"))] if folder.exists() else []
        return [(path, problem) for path, problem in checked if problem is not None]

    def grids(self) -> dict[str, dict[str, Any]]:
        """Every grid run on the store, by name; a damaged grid file is a StoreError naming it."""
        folder = self.root / "grids"
        grids = {}
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            data, problem = self._grid(path)
            if problem is not None:
                raise StoreError(f"{problem}; {repair_hint(self.root)}")
            grids[path.stem] = data
        return grids

    def run_ids(self) -> list[str]:
        """The runs that were begun: a run.json, or generations stored (a damaged store may have lost its run.json)."""
        folder = self.root / "runs"
        if not folder.exists():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "run.json").exists() or any(p.glob("gen-*")))

    # ------------------------------------------------------------ one run

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    @contextlib.contextmanager
    def claim(self, run_id: str, *, wait: bool = False) -> Iterator[bool]:
        """Hold the run's lock for the block; yields False (without waiting) when another process holds it."""
        directory = self.run_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def begin(self, run: Mapping[str, Any]) -> None:
        """Write the run's spec and clear what a killed writer left half-done. Call while holding the claim."""
        directory = self.run_dir(run["run_id"])
        for leftover in directory.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        write_json_atomic(directory / "run.json", dict(run), durable=self.durable)

    def finished_generations(self, run_id: str) -> list[int]:
        """Generations 0..k stored whole (a gap would end the list: generations only ever finish in order)."""
        directory = self.run_dir(run_id)
        found = (
            {int(p.name[4:]) for p in directory.glob("gen-*") if p.name[4:].isdigit()} if directory.exists() else set()
        )
        done: list[int] = []
        while len(done) in found:
            done.append(len(done))
        return done

    def commit(self, run_id: str, result: GenerationResult) -> None:
        """Store one finished generation atomically. Call while holding the claim."""
        directory = self.run_dir(run_id)
        final = directory / f"gen-{result.generation:04d}"
        if final.exists():
            raise StoreError(f"{final} already exists: generation stored twice")
        tmp = directory / f".tmp-gen-{result.generation:04d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            with naming(final):  # a full disk then says which generation it failed to write
                written = [checkpoint.save(result.model_state, tmp, "model")]
                if result.policy_state:  # most policies keep nothing
                    written += self._save_policy_state(run_id, result.generation, result.policy_state, tmp)
                if result.gallery is not None:
                    written.append(tmp / "samples.npy")
                    with open(written[-1], "wb") as fh:
                        np.save(fh, result.gallery)
                written.append(tmp / "record.json")
                with open(written[-1], "w", encoding="utf-8") as fh:
                    json.dump(result.record, fh, indent=1, sort_keys=True)
                written.append(tmp / integrity.MANIFEST)  # committed in the same rename as the files it lists
                listing = integrity.manifest(written[:-1])
                with open(written[-1], "w", encoding="utf-8") as fh:
                    json.dump(listing, fh, indent=1, sort_keys=True)
                if self.durable:
                    for path in written:
                        with open(path, "rb") as fh:
                            os.fsync(fh.fileno())
                    fsync_dir(tmp)
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if self.durable:
            fsync_dir(directory)
        arrays = checkpoint.arrays_path(final, "policy")
        if result.policy_state and arrays is not None:
            self._remember(run_id, result.generation, listing["sha256"][arrays.name], result.policy_state)

    # ------------------------------------------------------------ policy state, stored as its growth

    def _remember(self, run_id: str, generation: int, sha256: str, state: Mapping[str, Any]) -> None:
        """Keep a copy of the state just stored (a policy may change its arrays in place later)."""
        arrays = {key: array.copy() for key, array in checkpoint.flatten(state).items()}
        self._policy_states.pop(run_id, None)
        self._policy_states[run_id] = _PolicyState(generation, sha256, arrays)
        while len(self._policy_states) > _REMEMBERED_RUNS:
            del self._policy_states[next(iter(self._policy_states))]

    def _policy_sha256(self, directory: Path) -> str | None:
        """The sha256 of a stored generation's numpy policy file (from its manifest, or computed), None without one."""
        path = checkpoint.arrays_path(directory, "policy")
        if path is None:
            return None
        listed, problem = integrity.json_problem(directory / integrity.MANIFEST, {"sha256": dict})
        known = listed["sha256"].get(path.name) if problem is None else None
        return known if isinstance(known, str) else integrity.sha256(path)

    def _previous_policy_state(self, run_id: str, generation: int) -> _PolicyState | None:
        """The policy state stored by ``generation`` (None if none, or unreadable: the next is then stored whole)."""
        directory = self.run_dir(run_id) / f"gen-{generation:04d}"
        sha256 = self._policy_sha256(directory) if generation >= 0 else None
        if sha256 is None:
            return None
        remembered = self._policy_states.get(run_id)
        if remembered is not None and (remembered.generation, remembered.sha256) == (generation, sha256):
            return remembered
        try:
            return _PolicyState(generation, sha256, self._policy_arrays(run_id, generation))
        except (*_UNREADABLE, StoreError):
            return None

    def _save_policy_state(self, run_id: str, generation: int, state: Mapping[str, Any], tmp: Path) -> list[Path]:
        """Write the generation's policy state into ``tmp``: as its growth over the previous one's, where it grew."""
        previous = self._previous_policy_state(run_id, generation - 1)
        if previous is None:
            return [checkpoint.save(state, tmp, "policy")]
        reference = {"generation": previous.generation, "sha256": previous.sha256}
        return checkpoint.save_extending(state, tmp, "policy", previous.arrays, reference)

    def _policy_arrays(self, run_id: str, generation: int) -> dict[str, np.ndarray]:
        """A stored generation's policy state, flat, each array whole: references followed back to its start.

        Raises ValueError (or what a torn file raises) when a reference is not to an earlier generation
        or the rows do not add up."""
        directory = self.run_dir(run_id)
        arrays = checkpoint.load_arrays(directory / f"gen-{generation:04d}", "policy")
        for key, first in checkpoint.extends(directory / f"gen-{generation:04d}", "policy").items():
            reference: dict[str, Any] | None = first
            chain = [(generation, arrays[key], first["rows"])]  # (generation, its rows, rows before them)
            while reference is not None:
                later, earlier = chain[-1][0], reference.get("generation")
                if not isinstance(earlier, int) or not 0 <= earlier < later:
                    raise ValueError(
                        f"{directory / f'gen-{later:04d}' / 'policy.extends.json'}: array {key!r} "
                        f"refers to generation {earlier!r}, not an earlier one"
                    )
                stored = directory / f"gen-{earlier:04d}"
                reference = checkpoint.extends(stored, "policy").get(key)
                rows = None if reference is None else reference["rows"]
                chain.append((earlier, checkpoint.load_arrays(stored, "policy", [key])[key], rows))
            chain.reverse()  # oldest first: the generation that stores the array whole, then each one's growth
            held = len(chain[0][1]) if chain[0][1].ndim else -1
            for later, new, before in chain[1:]:
                if before != held or new.ndim == 0 or new.dtype != chain[0][1].dtype:
                    raise ValueError(
                        f"{directory / f'gen-{later:04d}' / 'policy.extends.json'}: array {key!r} continues "
                        f"{before} rows of {chain[0][1].dtype}, the generation before holds {held} of {new.dtype}"
                    )
                held += len(new)
            arrays[key] = np.concatenate([part for _, part, _ in chain])
        return arrays

    def set_aside(self, path: Path) -> Path:
        """Move ``path`` into STORE/quarantine/ at its place in the store (nothing is deleted); return where."""
        target = self.root / "quarantine" / path.relative_to(self.root)
        target = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
        return target

    def _spec_problem(self, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
        path = self.run_dir(run_id) / "run.json"
        data, problem = integrity.json_problem(path, integrity.RUN_SHAPE)
        if problem is None and data["run_id"] != run_id:
            problem = f"{path}: holds the spec of run {data['run_id']!r}, not of {run_id!r}"
        if problem is None:
            try:
                run_spec_from_dict(data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                problem = f"{path}: not a run spec ({type(exc).__name__}: {exc})"
        return data, problem

    def _status_problem(self, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
        path = self.run_dir(run_id) / "status.json"
        if not path.exists():
            return None, None
        data, problem = integrity.json_problem(path, integrity.STATUS_SHAPE)
        if problem is None and data["status"] not in {s.value for s in RunStatus}:
            known = ", ".join(s.value for s in RunStatus)
            problem = f"{path}: unknown status {data['status']!r} (known: {known})"
        return data, problem

    def check_run(self, run_id: str) -> RunCheck:
        """Check every file of a run: run.json, status.json, and each generation against its checksums.

        Generations must run 0, 1, 2, ... without a gap; the first missing or damaged one is damage,
        and so is every generation after it (computed from it). Read-only."""
        directory = self.run_dir(run_id)
        spec, status = directory / "run.json", directory / "status.json"
        stored = sorted((int(p.name[4:]), p) for p in directory.glob("gen-*") if p.name[4:].isdigit())
        check = RunCheck()
        if not spec.exists() and not stored and not status.exists():
            return check  # claimed, not yet begun
        spec_problem, status_problem = self._spec_problem(run_id)[1], self._status_problem(run_id)[1]
        if spec_problem is not None:  # generations of an unknown spec cannot be trusted: the run starts over
            check.problems.append(spec_problem)
            check.damaged += [p for p in (spec, status) if p.exists()] + [p for _, p in stored]
            return check
        if status_problem is not None:
            check.problems.append(status_problem)
            check.damaged.append(status)
        # A run whose generations were committed with checksums has them in every generation: one without is
        # damage (a deleted manifest must not pass an edited file off as a store written before checksums).
        with_checksums = any((p / integrity.MANIFEST).exists() for _, p in stored)
        for position, (t, path) in enumerate(stored):
            problem: str | None
            if t != position:
                problem = f"{directory / f'gen-{position:04d}'}: missing, but {path.name} is stored"
            else:
                problem, verified = integrity.generation_problem(path, t)
                if problem is None and not verified and with_checksums:
                    problem = f"{path / integrity.MANIFEST}: missing, although the run was stored with checksums"
                if problem is None:
                    problem = self._reference_problem(path, t)
                if problem is None and not verified:
                    check.unverified.append(path)
            if problem is not None:
                check.problems.append(problem)
                check.damaged += [p for _, p in stored[position:]]
                if status.exists() and status not in check.damaged:
                    check.damaged.append(status)  # the run is no longer finished
                break
        return check

    def _reference_problem(self, directory: Path, generation: int) -> str | None:
        """Does each array the generation's policy state continues refer to an earlier generation, stored
        as it was when referred to (the sha256 it recorded)? Earlier generations are checked first."""
        path = checkpoint.extends_path(directory, "policy")
        try:
            references = checkpoint.extends(directory, "policy")
        except (OSError, ValueError) as exc:
            return f"{path}: unreadable ({type(exc).__name__}: {exc})"
        if (directory / "policy.growth.npz").exists() != bool(references):  # one is never written without the other
            return f"{path}: policy.growth.npz and the references to what it continues must come together"
        for key, reference in sorted(references.items()):
            earlier = reference.get("generation")
            if not isinstance(earlier, int) or not 0 <= earlier < generation:
                return f"{path}: array {key!r} refers to generation {earlier!r}, not an earlier one"
            base = directory.parent / f"gen-{earlier:04d}"
            if reference.get("sha256") != self._policy_sha256(base):
                return f"{path}: array {key!r} continues the policy state of {base}, which has changed since"
        return None

    def repair(self, run_id: str) -> RunCheck:
        """Set aside what ``check_run`` finds damaged, and record checksums of sound unverified generations.

        The run is then pending and resumes from its last sound generation. Call while holding the claim."""
        check = self.check_run(run_id)
        for path in check.damaged:
            self.set_aside(path)
        for path in check.unverified:
            write_json_atomic(
                path / integrity.MANIFEST,
                integrity.manifest(p for p in path.iterdir() if p.name != integrity.MANIFEST),
                durable=self.durable,
            )
        return check

    def verified(self, run_id: str) -> None:
        """Raise a StoreError naming the first damaged file of the run, if any (for readers of the store)."""
        problems = self.check_run(run_id).problems
        if problems:
            raise StoreError(f"{problems[0]}; {repair_hint(self.root)}")

    def resume_point(self, run_id: str) -> Resume | None:
        """State after the last finished generation, or None when nothing has finished.

        Call while holding the claim, after ``repair``: the generations left are sound (their checksums
        match), so a file that still cannot be read is set aside as damage and the error raised.
        """
        finished = self.finished_generations(run_id)
        if not finished:
            return None
        last = self.run_dir(run_id) / f"gen-{finished[-1]:04d}"
        try:
            policy: dict[str, Any] = {}
            if (last / "policy.pt").exists():
                policy = checkpoint.load(last, "policy")
            elif checkpoint.arrays_path(last, "policy") is not None:
                arrays = self._policy_arrays(run_id, finished[-1])
                policy = checkpoint.unflatten(arrays)
                self._remember(run_id, finished[-1], self._policy_sha256(last) or "", policy)
            return Resume(finished[-1], checkpoint.load(last, "model"), policy)
        except _UNREADABLE as exc:
            self.set_aside(last)
            raise StoreError(f"{last}: unreadable model or policy state ({exc}); set aside") from None

    def records(self, run_id: str) -> list[dict[str, Any]]:
        """The records of the run's generations, in order, after checking every file of the run."""
        self.verified(run_id)
        directory = self.run_dir(run_id)
        return [read_json(directory / f"gen-{t:04d}" / "record.json") for t in self.finished_generations(run_id)]

    def gallery(self, run_id: str, generation: int) -> np.ndarray | None:
        """The evaluation samples kept for generation ``generation`` (None when none were kept)."""
        path = self.run_dir(run_id) / f"gen-{generation:04d}" / "samples.npy"
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise StoreError(f"{path}: unreadable samples ({exc}); {repair_hint(self.root)}") from None

    def spec(self, run_id: str) -> dict[str, Any]:
        """The run's stored spec (``RunSpec.describe()``); a damaged run.json is a StoreError naming it."""
        data, problem = self._spec_problem(run_id)
        if problem is not None:
            raise StoreError(f"{problem}; {repair_hint(self.root)}")
        assert data is not None
        return data

    def status(self, run_id: str) -> dict[str, Any] | None:
        """How the run ended (``status`` a RunStatus, with ``generations``, ``reason``, ``traceback``), or None
        while it has not. A damaged status.json is a StoreError naming it (``repair`` sets it aside)."""
        data, problem = self._status_problem(run_id)
        if problem is not None:
            raise StoreError(f"{problem}; {repair_hint(self.root)}")
        return None if data is None else {**data, "status": RunStatus(data["status"])}

    def finish(
        self, run_id: str, status: RunStatus, *, generations: int, reason: str = "", traceback: str = ""
    ) -> None:
        write_json_atomic(
            self.run_dir(run_id) / "status.json",
            {"status": status, "generations": generations, "reason": reason, "traceback": traceback},
            durable=self.durable,
        )

    def clear_status(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.run_dir(run_id) / "status.json")
