"""The residual MLP body of the vector networks of ``ddpm``, ``edm`` and ``cfm``, on stacked members' tensors.

The three families' vector networks share one body: ``h = inp(x)``, then ``h = h + block(h + embedding)`` for
each block (SiLU, then linear), then ``out`` (SiLU, then linear). Their ``StackedLoss`` runs it on the tensors
of every member of a batched fit stacked along dim 0, each linear layer through ``stacked_linear`` (bit for bit
the solo product), so a batched step is a few stacked operations instead of vmap's per-operation machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def stacked_residual_mlp(
    parameters: Mapping[str, torch.Tensor], prefix: str, x: torch.Tensor, embedding: torch.Tensor, blocks: int
) -> torch.Tensor:
    """The body's output for members' inputs ``x`` (S x rows x in) and embeddings (S x rows x hidden), with the
    network's parameters stacked under ``prefix`` (``inp``, ``blocks.i.1``, ``out.1``), in the solo order."""
    import torch.nn.functional as F

    h = stacked_named_linear(parameters, f"{prefix}inp", x)
    for i in range(blocks):
        h = h + stacked_named_linear(parameters, f"{prefix}blocks.{i}.1", F.silu(h + embedding))
    return stacked_named_linear(parameters, f"{prefix}out.1", F.silu(h))


def stacked_named_linear(parameters: Mapping[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """The linear layer ``name`` (its stacked ``weight`` and ``bias``) on members' inputs ``x``."""
    from benchmark.torch_support.batched import stacked_linear

    return stacked_linear(x, parameters[f"{name}.weight"], parameters[f"{name}.bias"])
