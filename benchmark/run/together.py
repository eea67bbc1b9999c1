"""Seeds of one configuration in lock step: the retraining loop for a group of runs trained as one batched model.

Runs that differ only by seed train networks of the same shape. A family that can train several
of them as one batched model (``fit_together``, see CONTRIBUTING.md section 6.4) gets them in one
call per generation; everything else happens run by run, each run drawing from its own streams
exactly as ``loop.generations`` does, so each run's results are those it gets alone. A run that
raises or diverges leaves the group, which goes on without it. When the batched fit itself raises,
no one run is to blame and every model is half-trained: ``lock_step`` raises ``BatchedFitFailed``,
and the caller continues each run alone from its last stored generation, where it fails or not on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.api.components import Component, TrainingSet
from benchmark.api.registry import Registry
from benchmark.errors import ContractViolation
from benchmark.run.global_random import untouched_global_random_state
from benchmark.run.loop import GenerationResult, OpenRun, Resume, open_run, stopwatch
from benchmark.run.spec import RunSpec

#: A family's batched fit: (models, training sets, warm start, fit streams) -> each model's losses.
FitTogether = Callable[..., Sequence[Mapping[str, float]]]


class BatchedFitFailed(Exception):
    """A group's batched fit raised at generation ``generation``: its runs must continue one by one from the store."""

    def __init__(self, generation: int, cause: Exception) -> None:
        super().__init__(f"the batched fit raised at generation {generation} ({type(cause).__name__}: {cause})")
        self.generation, self.cause = generation, cause


def fits_together(family: type[Component] | Component) -> bool:
    """Whether a family trains several seeds' models as one batched model (it defines ``fit_together``)."""
    return callable(getattr(family, "fit_together", None))


def together_key(run: RunSpec, family: type[Component] | Component) -> str:
    """What runs computed in lock step share: everything but the seed and what the family trains together across
    (``ModelFamily.trains_together_across``): the model and its parameters, the data, the lengths and settings."""
    across = set(getattr(family, "trains_together_across", ()))
    shared = {k: v for k, v in run.describe().items() if k not in {"run_id", "seed", *across}}
    shared["given"] = {k: v for k, v in shared["given"].items() if k not in across}
    shared["versions"] = {k: v for k, v in shared["versions"].items() if k.split(":")[0] not in across}
    return repr(shared)


def lock_step(
    runs: Sequence[RunSpec],
    registry: Registry,
    resumes: Sequence[Resume | None],
    *,
    threads: int | None = None,
    cache_dir: Path | None = None,
) -> Iterator[tuple[int, GenerationResult | Exception]]:
    """Yield ``(i, result)`` for each generation of each run ``runs[i]``, generation by generation, and
    ``(i, error)`` once for a run that raised (Diverged, ContractViolation, a plugin's error), which then
    leaves the group while the others go on. Raises ``BatchedFitFailed`` when the batched fit itself raises
    (the runs' stored generations are complete up to the one before).

    ``runs`` share their ``together_key`` (seeds of one configuration, and its policies where the family says so)
    and continue from the same generation (``resumes[i]`` is run i's stored state, all of one generation, or all
    None). Per run, everything is drawn as in ``loop.generations``: the results are bit for bit those of the run
    alone.
    """
    starts = {None if r is None else r.generation for r in resumes}
    family = registry.get("model", runs[0].model.name).component
    if len(starts) != 1 or len({together_key(r, family) for r in runs}) != 1:
        raise ValueError("lock_step: runs must share a configuration (together_key) and resume from one generation")
    live: dict[int, OpenRun] = {}
    for i, (run, resume) in enumerate(zip(runs, resumes, strict=True)):
        try:
            live[i] = open_run(run, registry, resume, threads=threads, cache_dir=cache_dir)
        except Exception as exc:
            yield i, exc
    if not live:
        return
    first = next(iter(live.values()))
    for t in range(first.start, first.run.generations + 1):
        seconds: dict[int, dict[str, float]] = {i: {} for i in live}
        built: dict[int, TrainingSet] = {}
        for i, opened in list(live.items()):
            try:
                with stopwatch(seconds[i], "policy"):
                    built[i] = opened.generation(t).training_set(opened.policy_state)
            except Exception as exc:
                del live[i]
                yield i, exc
        fits = _fit_together(live, built, t, seconds)
        for i, fit in fits.items():
            if isinstance(fit, Exception):
                del live[i]
                yield i, fit
        for i, opened in list(live.items()):
            try:
                generation = opened.generation(t)
                with stopwatch(seconds[i], "sample"):
                    samples = generation.sample()
                with stopwatch(seconds[i], "metrics"):
                    metrics = generation.measure(samples)
                fit = fits[i]
                assert not isinstance(fit, Exception)
                result = opened.result(t, built[i], fit, samples, metrics, seconds[i])
            except Exception as exc:
                del live[i]
                yield i, exc
                continue
            yield i, result
        if not live:
            return


def _fit_together(
    live: Mapping[int, OpenRun], built: Mapping[int, TrainingSet], t: int, seconds: Mapping[int, dict[str, float]]
) -> dict[int, dict[str, float] | Exception]:
    """Each live run's checked fit losses (or its error): one ``fit_together`` call where the family has one.

    Each run is charged an equal share of the batched fit's seconds. An error of the batched fit itself
    raises ``BatchedFitFailed``.
    """
    indices = list(live)
    if not indices:
        return {}
    family = live[indices[0]].parts.family
    generations = {i: live[i].generation(t) for i in indices}
    out: dict[int, dict[str, float] | Exception] = {}
    if not fits_together(family) or len(indices) == 1:
        for i in indices:
            with stopwatch(seconds[i], "fit"):
                try:
                    out[i] = generations[i].fit(built[i].data)
                except Exception as exc:
                    out[i] = exc
        return out
    label = live[indices[0]].run.model.label
    start = time.perf_counter()
    try:
        with untouched_global_random_state(f"model {label!r} fit_together() at generation {t}"):
            fit_together: FitTogether = family.fit_together  # type: ignore[attr-defined]  # an optional method
            losses: Sequence[Any] = fit_together(
                [live[i].model for i in indices],
                [built[i].data for i in indices],
                warm_start=generations[indices[0]].warm_start,
                rngs=[generations[i].rng("fit") for i in indices],
            )
            if len(losses) != len(indices):
                raise ContractViolation(
                    f"model {label!r}: fit_together() returned {len(losses)} results for {len(indices)} models"
                )
    except Exception as exc:
        raise BatchedFitFailed(t, exc) from exc
    share = (time.perf_counter() - start) / len(indices)
    for i, loss in zip(indices, losses, strict=True):
        seconds[i]["fit"] = share
        try:
            out[i] = generations[i].fitted(loss)
        except Exception as exc:
            out[i] = exc
    return out
