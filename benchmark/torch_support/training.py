"""What the torch model families share: numpy <-> tensors, the minibatch training loop, state on a device.

This module imports torch at the top: plugin modules import it only inside the methods that
train or sample, so registering and listing the families never loads torch.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

#: Training losses averaged into the reported "loss": the last steps, where the fit ended.
LOSS_WINDOW = 50


def to_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 tensor on ``device``: the networks' precision, a copy (the loop's real data is read-only)."""
    return torch.tensor(np.asarray(x, dtype=np.float32), device=device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """float64 array on the CPU: the benchmark's interface precision."""
    return t.detach().to("cpu", torch.float64).numpy()


def adam(parameters: Iterable[torch.nn.Parameter], *, lr: float) -> torch.optim.Adam:
    """Adam in its fused form (one kernel for all parameters: 1.2-1.3x faster per step on the 2-D families'
    CPU steps), else its foreach form where this torch or device has no fused kernel."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except RuntimeError:  # a device or torch release without the fused kernel
        return torch.optim.Adam(parameters, lr=lr, foreach=True)


def ema(module: torch.nn.Module, decay: float) -> Any:
    """ema_pytorch's EMA of ``module``'s weights, updated every step from the start (the library ramps the decay
    up to ``decay`` itself), with foreach updates: the sampling weights of the diffusion and flow-matching families."""
    from ema_pytorch import EMA

    return EMA(module, beta=decay, update_after_step=0, update_every=1, include_online_model=False, use_foreach=True)


def train(
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    rng: np.random.Generator,
    after_step: Callable[[], None] | None = None,
    max_grad_norm: float | None = None,
) -> float:
    """``steps`` optimiser steps on minibatches drawn (with replacement) by ``rng``; the mean of the last losses.

    Gradients are clipped to ``max_grad_norm`` when given. Stops at the first non-finite loss and
    returns it, so the loop records the run as diverged.
    """
    n = len(data)
    batch = min(batch_size, n)
    recent: deque[float] = deque(maxlen=LOSS_WINDOW)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for _ in range(steps):
        index = torch.as_tensor(rng.integers(0, n, size=batch), device=data.device)
        loss = loss_of(data[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm, foreach=True)
        optimizer.step()
        if after_step is not None:
            after_step()
        value = float(loss.detach())
        if not math.isfinite(value):
            return value
        recent.append(value)
    return float(np.mean(recent)) if recent else math.nan


def on_device(state: Any, device: torch.device) -> Any:
    """``state`` (nested dicts / lists of tensors, as checkpoints hold them) with every tensor on ``device``."""
    if isinstance(state, torch.Tensor):
        return state.to(device, copy=True)  # never alias the caller's tensors: training updates in place
    if isinstance(state, Mapping):
        return {k: on_device(v, device) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(on_device(v, device) for v in state)
    return state


def checkpoint(**parts: Any) -> dict[str, Any]:
    """A model's training state for its checkpoint: each part's ``state_dict()`` (a tensor as it is), None left out.

    A deep copy: the live tensors keep changing with the next fit.
    """
    kept = {key: part for key, part in parts.items() if part is not None}
    return copy.deepcopy({key: p.state_dict() if hasattr(p, "state_dict") else p for key, p in kept.items()})


def restore(state: Mapping[str, Any], device: torch.device, **parts: Any) -> None:
    """Load each part that is not None from ``state`` (made by ``checkpoint`` under the same keys), on ``device``."""
    for key, part in parts.items():
        if part is not None:
            part.load_state_dict(on_device(state[key], device))


def in_batches(n: int, size: int) -> Iterator[int]:
    """Sizes of consecutive batches covering ``n`` items."""
    for start in range(0, n, size):
        yield min(size, n - start)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Swallow progress bars a library prints on every call (its samplers' tqdm bars)."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield
