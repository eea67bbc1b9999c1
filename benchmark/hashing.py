"""Names from content: one canonical JSON form, hashed, for run ids, configuration ids and cache keys."""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: The JSON layout of keys that name files already on disk (real-data features, trained extractors):
#: json's default separators, as they were first written, so existing caches stay valid.
SPACED = (", ", ": ")


def canonical_json(value: Any, separators: tuple[str, str] = (",", ":")) -> str:
    """``value`` as JSON with sorted keys (compact unless ``separators`` say otherwise): equal values, equal text."""
    return json.dumps(value, sort_keys=True, separators=separators)


def digest(value: Any, length: int, separators: tuple[str, str] = (",", ":")) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value, separators).encode()).hexdigest()[:length]
