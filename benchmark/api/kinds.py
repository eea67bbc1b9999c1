"""The kinds of component, in one table: hooks, grid sections, the registry and the conformance kit derive from it;
and the kinds of data, in another: the loop's checks, the store's gallery and the conformance kit read it.

Adding a kind means one row here, its base class in ``components``, and its hook in ``hookspecs``
(a test checks that every row names a real hook).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.api.components import Component, Dataset, Executor, FeatureExtractor, Metric, ModelFamily, Policy

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Kind:
    """One kind of component."""

    #: Singular name, as in ``retrainbench list KIND`` and registry look-ups.
    name: str
    #: The base class every registered component of this kind subclasses.
    base: type[Component]
    #: The registration hook whose ``register`` callback adds components of this kind.
    hook: str
    #: Heading for lists of this kind.
    plural: str
    #: The grid file's array of tables listing components of this kind (None: named elsewhere in a grid).
    grid_section: str | None = None
    #: Whether the conformance kit has checks for this kind.
    conformance: bool = False


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("dataset", Dataset, "register_datasets", "datasets", grid_section="datasets", conformance=True),
        Kind("model", ModelFamily, "register_model_families", "models", grid_section="models", conformance=True),
        Kind("policy", Policy, "register_policies", "policies", grid_section="policies", conformance=True),
        Kind("metric", Metric, "register_metrics", "metrics", grid_section="metrics", conformance=True),
        Kind("executor", Executor, "register_executors", "executors"),
        Kind("feature-extractor", FeatureExtractor, "register_feature_extractors", "feature-extractors"),
    )
}

#: Registration hook -> the kind it registers.
REGISTRATION_HOOKS = {kind.hook: name for name, kind in KINDS.items()}
#: Grid section -> the kind it lists.
GRID_SECTIONS = {kind.grid_section: name for name, kind in KINDS.items() if kind.grid_section}
#: Kinds the conformance kit checks.
CONFORMANCE_KINDS = tuple(name for name, kind in KINDS.items() if kind.conformance)


# ---------------------------------------------------------------- kinds of data


@dataclass(frozen=True)
class DataKind:
    """One kind of data crossing the interfaces (``Dataset.kind``, ``ModelFamily.data_kinds``): its array layout,
    what its values are, and what a run on it provides metrics beyond samples."""

    name: str
    #: The layout of an array of n points, as error messages and documentation spell it.
    layout: str
    #: Dimensions of such an array, the leading n included.
    ndim: int
    #: True for integer token ids in [0, vocabulary size), False for floats (finite; images in [0, 1]).
    integer: bool = False
    #: Capabilities (``benchmark.api.compatibility``) every dataset of this kind provides.
    provides: frozenset[str] = frozenset()
    #: Evaluation samples of a generation kept in the store for the report's gallery.
    gallery: int = 1000


DATA_KINDS: dict[str, DataKind] = {
    kind.name: kind
    for kind in (
        # "points": values in a continuous space, what distances, moments and feature extractors compute on
        DataKind("vector", "(n, d)", 2, provides=frozenset({"points"})),
        DataKind("image", "(n, c, h, w) in [0, 1]", 4, provides=frozenset({"points"}), gallery=64),
        # Fixed length: every policy concatenates and subsamples rows, which needs one shape. Variable-length
        # text is cut into windows of that length by its dataset (see README, "Text").
        DataKind(
            "sequence",
            "(n, length) token ids",
            2,
            integer=True,
            provides=frozenset({"tokens"}),
            gallery=24,
        ),
    )
}


def values_problem(kind: str, x: np.ndarray, vocabulary_size: int) -> str | None:
    """Why the values of ``x`` (n points of data kind ``kind``, shape already checked) break the kind's contract,
    or None: floats for vectors and images, integer token ids in [0, ``vocabulary_size``) for sequences."""
    import numpy as np

    data_kind = DATA_KINDS.get(kind)
    if data_kind is None or not data_kind.integer:
        return None if np.issubdtype(x.dtype, np.floating) else f"dtype {x.dtype}"
    if not np.issubdtype(x.dtype, np.integer):
        return f"dtype {x.dtype}"
    if x.size and (int(x.min()) < 0 or int(x.max()) >= vocabulary_size):
        return f"token ids in [{int(x.min())}, {int(x.max())}], outside the vocabulary [0, {vocabulary_size})"
    return None


def expected_values(kind: str, vocabulary_size: int) -> str:
    """What ``values_problem`` accepts, for error messages: "a float array", "token ids in [0, 50)"."""
    data_kind = DATA_KINDS.get(kind)
    return f"integer token ids in [0, {vocabulary_size})" if data_kind and data_kind.integer else "a float array"


def decode(ids: np.ndarray, vocabulary: tuple[str, ...]) -> list[str]:
    """Token-id rows as text: characters joined as they are, longer tokens (words) with spaces between them."""
    separator = "" if all(len(token) == 1 for token in vocabulary) else " "
    return [separator.join(vocabulary[int(i)] for i in row) for row in ids]
