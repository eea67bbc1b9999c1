"""Training parameters the torch model families declare alike: Adam steps, learning rate, minibatch size, warm start.

Declared once, so the families agree on names, bounds and help text. Resolved parameters are hashed
into run ids: renaming one or changing a default here changes the run ids of every family that
uses it. This module does not import torch: families declare their parameters at registration,
and registering or listing them must not load it.
"""

from __future__ import annotations

from benchmark.api.params import Param

#: Training steps per generation when neither the family nor the grid says.
DEFAULT_STEPS = 1000

#: Per-family override of the grid's ``warm_start`` (for families whose ``warm_start_default`` is true).
WARM_START = Param(
    None,
    bool,
    "continue from the previous generation (default: the grid's warm_start, else true)",
    optional=True,
)


def training_parameters(*, batch_size: int) -> dict[str, Param]:
    """``steps``, ``lr`` and ``batch_size`` (defaulting to ``batch_size``), in this order, for a family to merge."""
    return {
        "steps": Param(
            None,
            int,
            f"Adam steps per generation (default: the grid's train_steps, else {DEFAULT_STEPS})",
            low=1,
            optional=True,
        ),
        "lr": Param(1e-3, float, "Adam learning rate", above=0),
        "batch_size": Param(batch_size, int, "minibatch size", low=1),
    }
