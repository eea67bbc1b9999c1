"""The interfaces plugins implement: datasets, model families, policies, metrics, executors.

Every component is a class with a ``name``, declared ``parameters`` and, if it needs heavy
libraries, ``requires`` (import names) and an ``install_hint``. Classes are registered, not
instances, so registering costs nothing: heavy imports belong inside methods.
All data crosses these interfaces as numpy arrays (vectors ``(n, d)``, images ``(n, c, h, w)``
in [0, 1], sequences ``(n, length)`` of integer token ids: ``benchmark.api.kinds.DATA_KINDS``); a
family that works on a device converts at its own boundary.
"""

from __future__ import annotations

import importlib.util
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from benchmark.api.params import Param, resolve

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")
R = TypeVar("R")


class Component:
    """Base of every registrable component: a name, declared parameters, optional requirements."""

    #: Name used in grid files and on the command line.
    name: ClassVar[str]
    #: Declared parameters, checked before any run starts.
    parameters: ClassVar[Mapping[str, Param]] = {}
    #: Modules that must be importable for the component to run (checked without importing them).
    requires: ClassVar[tuple[str, ...]] = ()
    #: What to install when ``requires`` is not met, shown by ``list`` and by grid validation.
    install_hint: ClassVar[str] = ""
    #: Bump when the component's numbers change for the same parameters: it is part of every run key.
    version: ClassVar[str] = "1"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = MappingProxyType(resolve(self.parameters, params or {}))

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """Required modules that cannot be imported here (found without importing them)."""
        missing = []
        for module in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        return missing

    @classmethod
    def check_sizes(cls, params: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Raise ``ParamError`` naming the parameter when ``params`` (resolved) cannot work with the run's
        ``settings`` (``n_real``, ``n_test``, ``n_eval``, ``generations``, ... as the grid file sets them),
        for example more mixture components than training points. Called when the grid is checked, before
        anything runs; the default accepts every size."""

    @classmethod
    def summary(cls) -> str:
        """First line of the docstring: the one-line description ``list`` shows."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


# ---------------------------------------------------------------- run-wide settings


@dataclass(frozen=True)
class RunContext:
    """Settings every component of a run may read: where to compute and how much to train."""

    seed: int
    #: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    #: Training steps per generation requested by the grid (None: the family's own default).
    train_steps: int | None = None
    #: Upper bound on training steps in smoke mode (None: no bound).
    max_train_steps: int | None = None
    #: Threads a run may use (executors set it so parallel workers do not oversubscribe).
    threads: int | None = None

    def steps(self, own: int | None, default: int) -> int:
        """Training steps for a family: its own parameter, else the grid's, else its default; capped in smoke mode."""
        steps = own if own is not None else self.train_steps if self.train_steps is not None else default
        return min(steps, self.max_train_steps) if self.max_train_steps is not None else steps


def _with_legacy_flag(cls: type[Component], flag: str, capability: str) -> frozenset[str]:
    """``cls.provides`` after the 0.1 flag ``cls`` itself sets (``has_density = True`` or ``False``), if any."""
    provides = frozenset(getattr(cls, "provides", frozenset()))
    if flag not in cls.__dict__:
        return provides
    return provides | {capability} if cls.__dict__[flag] else provides - {capability}


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DataSplits:
    """The real data of one run: training set D, held-out test set T, and a pool of fresh points."""

    train: np.ndarray
    test: np.ndarray
    pool: np.ndarray
    kind: str
    #: Sequence data: the text of each token id (id i is ``vocabulary[i]``), so its length is the vocabulary
    #: size families model and the loop checks ids against; empty for other kinds.
    vocabulary: tuple[str, ...] = ()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)


#: Points per block of a dataset's pool (see ``Dataset.load``).
POOL_BLOCK = 1024


class Dataset(Component):
    """A source of real data. Override ``draw`` for a generator, ``load`` for a finite set."""

    #: "vector" for (n, d) data, "image" for (n, c, h, w) data in [0, 1], "sequence" for (n, length) integer
    #: token ids (``load`` then returns splits with their ``vocabulary``; see ``benchmark.api.kinds``).
    kind: ClassVar[str] = "vector"
    #: What the dataset offers metrics (see ``benchmark.api.compatibility``): "density" when ``log_density``
    #: gives the true density, "modes" when ``modes`` gives the mixture's centres, "source" when ``log_density``
    #: gives the exact log-probability of token sequences (a known discrete source).
    provides: ClassVar[frozenset[str]] = frozenset()
    #: retrainbench 0.1's declaration, still honoured and kept equal to ``"density" in provides``.
    has_density: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides_modes = "modes" in cls.__dict__ and "provides" not in cls.__dict__  # 0.1: an overridden ``modes``
        cls.provides = _with_legacy_flag(cls, "has_density", "density") | ({"modes"} if overrides_modes else set())
        cls.has_density = "density" in cls.provides

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent points of the true distribution."""
        raise NotImplementedError(f"dataset {self.name!r} cannot draw new points")

    def load(self, n_train: int, n_test: int, n_pool: int, rng: np.random.Generator) -> DataSplits:
        """Split real data into train, test and pool.

        The pool is drawn after, in fixed-size blocks with a stream each, so that neither train, test
        nor the pool's first points depend on the pool's size: a run extended to more generations
        (a larger pool for ``fresh``) keeps all the real data it had.
        """
        import numpy as np

        block_streams = rng.spawn(1)[0].spawn(-(-n_pool // POOL_BLOCK))
        data = self.draw(n_train + n_test, rng)
        blocks = [self.draw(POOL_BLOCK, stream) for stream in block_streams]
        pool = np.concatenate(blocks)[:n_pool] if blocks else data[:0]
        return DataSplits(
            train=data[:n_train], test=data[n_train:], pool=pool, kind=self.kind, vocabulary=self.vocabulary()
        )

    def vocabulary(self) -> tuple[str, ...]:
        """Sequence data: the text of each token id (``DataSplits.vocabulary``); empty for other kinds."""
        return ()

    def modes(self) -> np.ndarray | None:
        """Mode centres of a mixture dataset, for mode-coverage metrics; None when it has none."""
        return None

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """Log of the true density at ``x`` (datasets that provide "density"), or the exact log-probability of each
        token sequence of ``x`` (datasets that provide "source")."""
        raise NotImplementedError(f"dataset {self.name!r} has no known density")

    def density_box(self, outside: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Corners ``(lo, hi)``, each of shape ``(d,)``, of a box holding all but at most ``outside`` of the true
        density's mass, for metrics that integrate over it (``tv``, ``kl``); None where the dataset cannot say
        (they then use the test set's extent)."""
        return None


# ---------------------------------------------------------------- model families


class Model(ABC):
    """A fitted (or fittable) generative model of one run."""

    @abstractmethod
    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        """Fit to ``data``; continue from the current parameters when ``warm_start``. Returns training stats."""

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` samples with the data's shape."""

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Log-density of each row of ``x`` (families that provide "log_prob")."""
        raise NotImplementedError

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue from here: numpy arrays (or torch tensors for torch families)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


#: What runs a family trains together may differ in besides the seed (``ModelFamily.trains_together_across``).
TRAINS_TOGETHER_ACROSS = ("policy",)


class ModelFamily(Component):
    """A kind of generative model; ``create`` builds an unfitted model for a run's data."""

    #: What the family offers metrics: "log_prob" when its models implement ``log_prob``.
    provides: ClassVar[frozenset[str]] = frozenset()
    #: retrainbench 0.1's declaration, still honoured and kept equal to ``"log_prob" in provides``.
    has_log_prob: ClassVar[bool] = False
    #: Whether retraining continues from the previous generation unless the grid says otherwise.
    warm_start_default: ClassVar[bool] = False
    #: Data kinds the family can model.
    data_kinds: ClassVar[tuple[str, ...]] = ("vector",)
    #: For a family with ``fit_together``: what its runs trained at once may differ in besides the seed (drawn
    #: from ``TRAINS_TOGETHER_ACROSS``). ``("policy",)`` takes runs of every data policy of one configuration,
    #: whose training sets differ in content and size; by default only seeds of one configuration train together.
    trains_together_across: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.provides = _with_legacy_flag(cls, "has_log_prob", "log_prob")
        cls.has_log_prob = "log_prob" in cls.provides

    @abstractmethod
    def create(self, data: DataSplits, context: RunContext) -> Model:
        """A new, unfitted model for data shaped like ``data``."""


# ---------------------------------------------------------------- policies


@dataclass(frozen=True)
class PolicyStep:
    """What a policy sees when it builds the training set of generation ``generation`` (>= 1)."""

    generation: int
    real: np.ndarray
    pool: np.ndarray
    #: Draws samples of the previous generation's model.
    sample: Callable[[int], np.ndarray]
    #: What the policy kept from earlier generations (see ``Policy.initial_state``).
    state: Mapping[str, np.ndarray]
    rng: np.random.Generator
    #: The previous generation's model's log-density of each row of ``x`` (n points shaped like the data in,
    #: ``(n,)`` floats out, finite or -inf), for a policy that declares ``needs = frozenset({"log_prob"})``; None
    #: for other policies, or when the family does not provide "log_prob". The model sees ``x`` read-only.
    log_prob: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class TrainingSet:
    """A policy's answer: the data to fit, where it came from, and the state to keep."""

    data: np.ndarray
    #: Counts by source, for example {"real": 500, "synthetic": 250}; must add up to len(data).
    composition: Mapping[str, int]
    state: Mapping[str, np.ndarray] = field(default_factory=dict)


class Policy(Component):
    """How the training set of generation t >= 1 is built from real data and the model's samples."""

    #: What the policy uses beyond samples: "log_prob" (``PolicyStep.log_prob``, the previous model's
    #: likelihood). A grid pairing it with a family that lacks it skips that combination (see ``compatibility``).
    needs: ClassVar[frozenset[str]] = frozenset()

    def pool_size(self, n_real: int, generations: int) -> int:
        """Fresh real points the policy consumes over ``generations`` generations."""
        return 0

    def initial_state(self) -> dict[str, np.ndarray]:
        """State carried across generations (stored with every checkpoint); empty for most policies."""
        return {}

    @abstractmethod
    def build(self, step: PolicyStep) -> TrainingSet:
        """The training set of ``step.generation``."""


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Measured:
    """A metric value with an optional note on how it was computed (for example "sliced, 500 projections")."""

    value: float
    detail: str = ""

    @classmethod
    def of(cls, result: float | Measured) -> Measured:
        """What ``Metric.compute`` returned, as a ``Measured`` (a bare number has no detail)."""
        return result if isinstance(result, Measured) else cls(result)

    def violation(self) -> str:
        """Why ``value`` breaks the metric contract, or "" when it keeps it.

        A value is a real number (int, float or numpy scalar; not a bool), never NaN. Infinity is a
        value (the log-determinant of a singular covariance is -inf); NaN is not, and would be stored
        as an empty cell that a leaderboard ranks as if it were a result.
        """
        import numbers

        import numpy as np

        value = self.value
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            return f"returned {type(value).__name__} {value!r}, expected a real number"
        if math.isnan(value):
            return "returned NaN"
        return ""


@dataclass(frozen=True)
class Evaluation:
    """Everything a metric may use at one generation."""

    samples: np.ndarray
    test: np.ndarray
    train: np.ndarray
    model: Model
    dataset: Dataset
    rng: np.random.Generator
    context: RunContext
    #: ``features(extractor, which)``: features of "samples", "test" or "train" (real ones are cached).
    features: Callable[[str, str], np.ndarray] | None = None


class Metric(Component):
    """A number computed after every generation from the model's samples (and more, per ``needs``)."""

    #: True if larger is better, False if smaller is better, None if neither (see ``optimum``).
    higher_is_better: ClassVar[bool | None] = False
    #: The ideal value when there is one (0 for a distance, 1 for a ratio).
    optimum: ClassVar[float | None] = None
    #: What the metric uses: "samples", "points" (vector or image data: values in a continuous space, which
    #: token ids are not), "log_prob" (model density), "density" (true density), "modes" (dataset modes),
    #: "features" (a feature extractor), "tokens" (sequence data: token ids and their vocabulary), "source"
    #: (the exact probability of sequences). The default suits a metric of distances or moments between points.
    needs: ClassVar[frozenset[str]] = frozenset({"samples", "points"})

    @abstractmethod
    def compute(self, evaluation: Evaluation) -> float | Measured:
        """The metric's value for one generation."""


# ---------------------------------------------------------------- feature extractors


class FeatureExtractor(Component):
    """Maps images to feature vectors for feature-space metrics (FID, precision/recall)."""

    def prepare(self, data: DataSplits, context: RunContext, cache_dir: Path | None) -> None:
        """Get ready for a run's data once (load weights, or train on ``data.train`` and cache under ``cache_dir``)."""

    @abstractmethod
    def extract(self, images: np.ndarray, context: RunContext) -> np.ndarray:
        """Features ``(n, k)`` of images ``(n, c, h, w)`` in [0, 1]."""


# ---------------------------------------------------------------- executors


@dataclass(frozen=True)
class TaskLost:
    """Yielded by an executor for a task whose worker died (after any retries) without a result."""

    task: Any
    reason: str


class Executor(Component):
    """Where runs execute. ``map`` calls ``fn`` on every task and yields results as they finish."""

    #: True when ``fn`` runs in this process (so it may receive unpicklable arguments).
    in_process: ClassVar[bool] = False

    def check_ready(self) -> None:
        """Raise ``ParamError`` naming the parameter at fault when this executor cannot start here (a
        scheduler that does not answer, a cluster this machine lacks). Called before the store is created,
        so a bad set-up leaves nothing behind; the default has nothing to check."""

    @property
    def threads_per_run(self) -> int | None:
        """Threads each run may use, so parallel workers do not oversubscribe the cores (None: no limit)."""
        return None

    @abstractmethod
    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R | TaskLost]:
        """Run ``fn(task)`` for every task; yield each result when it is ready, in any order.

        ``fn`` records its own failures; a task whose worker died is yielded as ``TaskLost``.
        """
