"""Crash-safe, resumable result storage in a local (or shared) directory.

Layout::

    STORE/store.json                 {"schema": N}; a store of another schema is refused
    STORE/grids/NAME.json            the grid as last run: its source, run ids, generations, environment
    STORE/runs/RUN_ID/run.json       the run's canonical spec
    STORE/runs/RUN_ID/lock           flock-ed by the one process computing the run
    STORE/runs/RUN_ID/gen-0003/      one finished generation: record.json, model.npz|.pt, samples.npy,
                                     and policy.npz when the policy keeps state
    STORE/runs/RUN_ID/status.json    how the run ended: done, failed, diverged or timed-out, with the reason

A generation directory is written under a temporary name and renamed into place, so it either
exists whole or not at all: a process killed at any instant leaves the run resumable from its
last finished generation (what a killed process wrote is in the page cache and survives it).
Surviving a power cut or a kernel crash also needs the data on disk before the rename: a
``durable`` store (``RETRAINBENCH_DURABLE=1``) fsyncs every file and directory, at a cost of
tens of milliseconds per generation. Only the holder of a run's lock writes it, so two
processes on one store never compute a run twice.
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
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import SCHEMA_VERSION
from benchmark.errors import StoreError
from benchmark.files import fsync_dir, write_atomic
from benchmark.run import checkpoint
from benchmark.run.loop import GenerationResult, Resume

#: What a torn or truncated file raises when read (JSON, numpy archives, torch files).
_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, RuntimeError)


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


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class Store:
    """A result store rooted at one directory."""

    def __init__(self, root: str | Path, *, durable: bool | None = None) -> None:
        self.root = Path(root)
        if durable is None:
            durable = os.environ.get("RETRAINBENCH_DURABLE", "") not in ("", "0")
        #: fsync every generation before it counts as finished (survives power loss, costs time)
        self.durable = durable

    # ------------------------------------------------------------ store-wide

    @property
    def cache_dir(self) -> Path:
        """What runs share and may recompute: real-data features, trained feature extractors."""
        return self.root / "cache"

    def check(self, *, create: bool) -> None:
        """Make sure the store exists (creating it if asked) and has this code's schema."""
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
        elif create:
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

    def grids(self) -> dict[str, dict[str, Any]]:
        folder = self.root / "grids"
        return {p.stem: read_json(p) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}

    def run_ids(self) -> list[str]:
        folder = self.root / "runs"
        return sorted(p.name for p in folder.iterdir() if (p / "run.json").exists()) if folder.exists() else []

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
            written = [checkpoint.save(result.model_state, tmp, "model")]
            if result.policy_state:  # most policies keep nothing
                written.append(checkpoint.save(result.policy_state, tmp, "policy"))
            if result.gallery is not None:
                written.append(tmp / "samples.npy")
                with open(written[-1], "wb") as fh:
                    np.save(fh, result.gallery)
            written.append(tmp / "record.json")
            with open(written[-1], "w", encoding="utf-8") as fh:
                json.dump(result.record, fh, indent=1, sort_keys=True)
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

    def resume_point(self, run_id: str) -> Resume | None:
        """State after the last readable finished generation, or None when nothing has finished.

        A last generation whose files cannot be read (a power cut on a store that is not durable can
        leave empty files behind a completed rename) is set aside as ``.corrupt-gen-*`` (kept for
        inspection) and computed again. Only one is set aside: if the one before cannot be read
        either, the cause is not a torn write, and the error is raised. Call while holding the claim.
        """
        for attempt in range(2):
            finished = self.finished_generations(run_id)
            if not finished:
                return None
            last = self.run_dir(run_id) / f"gen-{finished[-1]:04d}"
            try:
                read_json(last / "record.json")
                policy = checkpoint.load(last, "policy") if any(last.glob("policy.*")) else {}
                return Resume(finished[-1], checkpoint.load(last, "model"), policy)
            except _UNREADABLE:
                if attempt:
                    raise
                os.rename(last, last.with_name(f".corrupt-{last.name}-{uuid.uuid4().hex[:8]}"))
        return None

    def records(self, run_id: str) -> list[dict[str, Any]]:
        directory = self.run_dir(run_id)
        records = []
        for t in self.finished_generations(run_id):
            path = directory / f"gen-{t:04d}" / "record.json"
            try:
                records.append(read_json(path))
            except (OSError, ValueError) as exc:
                raise StoreError(f"{path}: unreadable generation record ({exc})") from None
        return records

    def gallery(self, run_id: str, generation: int) -> np.ndarray | None:
        """The evaluation samples kept for generation ``generation`` (None when none were kept)."""
        path = self.run_dir(run_id) / f"gen-{generation:04d}" / "samples.npy"
        return np.load(path, allow_pickle=False) if path.exists() else None

    def spec(self, run_id: str) -> dict[str, Any]:
        path = self.run_dir(run_id) / "run.json"
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable run spec ({exc})") from None

    def status(self, run_id: str) -> dict[str, Any] | None:
        """How the run ended (``status`` a RunStatus, with ``generations``, ``reason``, ``traceback``), or None
        while it has not (an unreadable or unknown status counts as not ended: the run is computed again)."""
        path = self.run_dir(run_id) / "status.json"
        try:
            stored = read_json(path)
            return {**stored, "status": RunStatus(stored["status"])}
        except (OSError, ValueError, TypeError, KeyError):
            return None

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
