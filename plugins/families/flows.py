"""Model family ``flow``: normalizing flows (normflows) with an exact likelihood.

Architectures: RealNVP (affine coupling, the default), neural spline flows with coupling or
autoregressive layers, and MAF. Vectors are standardised with the training set's mean and
standard deviation; images are flattened, dequantised, mapped to logit space and standardised
there (as in RealNVP). ``log_prob`` includes the Jacobian of that preprocessing, so it is the
density of the data as the benchmark hands it over (the ``nll`` metric compares models fairly).
The scaling is fitted once, on the run's real training set, when the model is created: a cold
refit on a mixed or synthetic training set keeps it, so the flow's space does not drift with the
model's own samples. A warm start continues the network and the Adam state: the model is then
exactly the previous one, trained further. A ``temperature`` below 1 samples from a narrowed base:
the sampling bias (truncation) of Alemohammad et al. 2023.

Version 2 made the arithmetic sound by design, so a diverged run means the model diverged: the
RealNVP coupling log-scales are soft-clamped to (-MAX_LOG_SCALE, MAX_LOG_SCALE) (one large
gradient can no longer overflow ``exp``), gradients are clipped to ``max_grad_norm``, the scaling
comes from the real data only, and Adam runs fused (about 1.25x faster per step on the CPU).
Seeds of one configuration train as one batched RealNVP (``FlowFamily.fit_together``), bit for bit
as alone. torch and normflows are imported only when a model is built.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, RunContext, hookimpl
from benchmark.torch_support.parameters import DEFAULT_STEPS, WARM_START, training_parameters

if TYPE_CHECKING:
    import torch
    from normflows import NormalizingFlow

    from benchmark.torch_support.batched import Member

#: Logit-space boundary for images: pixels map into [ALPHA, 1 - ALPHA] before the logit, so 0 and 1 stay finite.
ALPHA = 0.05
#: Smallest standard deviation used for scaling, so a collapsed dimension does not divide by zero.
MIN_SCALE = 1e-6
#: Points per forward pass when sampling or evaluating densities.
CHUNK = 4096
#: Bound on each RealNVP coupling's log-scale (soft clamp c * tanh(s / c), as in Glow-style invertible networks):
#: a layer scales a coordinate by at most e^2 = 7.4, eight layers by e^16, far beyond what 2-D data needs.
MAX_LOG_SCALE = 2.0

ARCHITECTURES = ("realnvp", "nsf-coupling", "nsf-autoregressive", "maf")


@functools.cache
def _soft_clamped_scales():
    """A module bounding the log-scales of an AffineCoupling's parameters (odd channels), leaving the shifts."""
    import torch
    from torch import nn

    class SoftClampedScales(nn.Module):
        def forward(self, param: torch.Tensor) -> torch.Tensor:
            # normflows' AffineCoupling reads shifts from channels 0::2 and log-scales from 1::2 (the last dim, so
            # the module serves the seeds stacked along a leading dim too)
            shift, log_scale = param[..., 0::2], param[..., 1::2]
            bounded = MAX_LOG_SCALE * torch.tanh(log_scale / MAX_LOG_SCALE)
            return torch.stack((shift, bounded), dim=-1).flatten(-2)

    return SoftClampedScales


@functools.cache
def _inverted_flow():
    """A normflows layer running another one backwards: MAF's fast direction is the density, not sampling."""
    import normflows as nf

    class Inverted(nf.flows.Flow):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return self.inner.inverse(z)

        def inverse(self, x):
            return self.inner(x)

    return Inverted


def build_flow(architecture: str, dim: int, depth: int, hidden: int, blocks: int) -> NormalizingFlow:
    """A normflows NormalizingFlow on ``dim`` dimensions with a standard normal base."""
    import normflows as nf
    import torch

    layers = []
    if architecture == "realnvp" and dim == 1:
        # a coupling layer conditions half the coordinates on the other half; in 1-D it reduces to an affine map
        layers.append(nf.flows.AffineConstFlow((1,)))
    elif architecture == "realnvp":
        for _ in range(depth):
            # one network gives shift and log-scale of the last dim // 2 coordinates from the first (dim + 1) // 2;
            # the swap brings the transformed coordinates to the front for the next layer
            net = nf.nets.MLP([(dim + 1) // 2, *[hidden] * blocks, 2 * (dim // 2)], init_zeros=True)
            bounded = torch.nn.Sequential(net, _soft_clamped_scales()())
            layers += [nf.flows.AffineCouplingBlock(bounded), nf.flows.Permute(dim, mode="swap")]
    else:
        for i in range(depth):
            if architecture == "nsf-coupling":
                layers.append(nf.flows.CoupledRationalQuadraticSpline(dim, blocks, hidden, reverse_mask=i % 2 == 1))
            elif architecture == "nsf-autoregressive":
                layers.append(nf.flows.AutoregressiveRationalQuadraticSpline(dim, blocks, hidden))
            else:
                layers.append(_inverted_flow()(nf.flows.MaskedAffineAutoregressive(dim, hidden, num_blocks=blocks)))
            layers.append(nf.flows.LULinearPermute(dim))
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), layers)


def _stacked_loss(flow: NormalizingFlow) -> Callable[..., torch.Tensor]:
    """``FlowModel.fit``'s loss on vectors for every member of a batched fit at once (a ``StackedLoss``).

    normflows' RealNVP ``log_prob``, as ``build_flow`` makes it, written on the members' tensors stacked along dim 0,
    the solo arithmetic in the solo order: the layers come from ``flow``'s structure, the weights from the stacked
    parameters by name. Under vmap the same network cost about four times the solo dispatch per operation, which
    held 8 seeds together to 1.7x one at a time. Any other structure is refused here, before training.
    """
    import normflows as nf
    import torch
    from torch import nn

    from benchmark.torch_support.batched import stacked_linear

    names = {id(module): name for name, module in flow.named_modules()}
    base = flow.q0
    if not (isinstance(base, nf.distributions.DiagGaussian) and base.n_dim == 1 and base.temperature is None):
        raise TypeError("the flow's base is not build_flow's diagonal normal at temperature 1")
    dim = int(base.d)
    #: Per coupling block, its conditioner: (module, weight name, bias name), the names set for linear layers only.
    conditioners: dict[int, list[tuple[nn.Module, str | None, str | None]]] = {}
    for layer in flow.flows:
        where = f"flow layer {names[id(layer)]} ({type(layer).__name__})"
        if isinstance(layer, nf.flows.AffineCouplingBlock):
            split, coupling, merge = layer.flows
            param_map = coupling.param_map
            parts: list[nn.Module] = list(param_map) if isinstance(param_map, nn.Sequential) else []
            mlp = parts[0].net if parts and isinstance(parts[0], nf.nets.MLP) else None
            layers: list[nn.Module] = list(mlp) if isinstance(mlp, nn.Sequential) else []
            if not (
                split.mode == merge.mode == "channel"
                and coupling.scale
                and coupling.scale_map == "exp"
                and [type(m) for m in parts] == [nf.nets.MLP, _soft_clamped_scales()]
                and layers
                and all(isinstance(m, (nn.Linear, nn.LeakyReLU)) for m in layers)
            ):
                raise TypeError(f"{where} is not a coupling block as build_flow makes them")
            conditioners[id(layer)] = [
                (m, f"{names[id(m)]}.weight", f"{names[id(m)]}.bias" if m.bias is not None else None)
                if isinstance(m, nn.Linear)
                else (m, None, None)
                for m in [*layers, parts[1]]
            ]
        elif not (isinstance(layer, nf.flows.Permute) and layer.mode == "swap" and layer.num_channels == dim):
            raise TypeError(f"{where} has no stacked form")
    half = (dim + 1) // 2  # the coordinates a swap moves to the back

    def conditioned(
        h: torch.Tensor, layers: list[tuple[nn.Module, str | None, str | None]], parameters: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        for module, weight, bias in layers:
            if weight is None:
                h = module(h)  # elementwise, or on the last dim
            else:
                h = stacked_linear(h, parameters[weight], parameters[bias] if bias is not None else None)
        return h

    def loss(
        parameters: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        batch: torch.Tensor,
        shift: torch.Tensor,
        scale: torch.Tensor,
    ) -> torch.Tensor:
        leading = batch.shape[:2]  # (members, minibatch rows)
        z = (batch - shift.unsqueeze(1)) / scale.unsqueeze(1)  # FlowModel.encode
        log_det = torch.zeros(leading, device=batch.device) - scale.log().sum(dim=1, keepdim=True)
        # NormalizingFlow.log_prob, its in-place sums out of place. normflows also adds the zero log-dets of its
        # splits, merges and permutations: left out, as adding zero to a sum that starts at +0 changes no bit of it
        log_q = z.new_zeros(leading)
        for layer in reversed(flow.flows):
            if id(layer) in conditioners:
                z1, z2 = z.chunk(2, dim=2)  # Merge.inverse
                param = conditioned(z1, conditioners[id(layer)], parameters)  # AffineCoupling.inverse
                z2 = (z2 - param[..., 0::2]) * torch.exp(-param[..., 1::2])
                log_q = log_q + -torch.sum(param[..., 1::2], dim=[2])
                z = torch.cat([z1, z2], 2)  # Split.inverse
            else:  # Permute(mode="swap").inverse
                z = torch.cat([z[:, :, half:], z[:, :, :half]], dim=2)
        tensors = {**parameters, **buffers}  # DiagGaussian.log_prob; its loc and log-scale fixed or trained
        loc, base_log_scale = tensors["q0.loc"], tensors["q0.log_scale"]
        log_p = -0.5 * dim * np.log(2 * np.pi) - torch.sum(
            base_log_scale + 0.5 * torch.pow((z - loc) / torch.exp(base_log_scale), 2), [2]
        )
        return -(log_q + log_p + log_det).mean(dim=1)

    return loss


class FlowModel(Model):
    """One run's flow: the network, its Adam state and the data scaling, all on the run's device."""

    def __init__(self, params: Mapping[str, Any], real: np.ndarray, kind: str, context: RunContext) -> None:
        from benchmark.torch_support.devices import resolve_device
        from benchmark.torch_support.training import to_tensor

        self.params, self.shape, self.kind, self.context = params, tuple(real.shape[1:]), kind, context
        self.dim = math.prod(self.shape)
        self.device = resolve_device(context.device)
        self.steps = context.steps(params["steps"], DEFAULT_STEPS)
        self.flow: NormalizingFlow | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.shift, self.scale = self._real_scaling(to_tensor(real.reshape(len(real), -1), self.device))

    def _new_flow(self) -> tuple[NormalizingFlow, torch.optim.Optimizer]:
        """A fresh network and its Adam state, which become the model's."""
        from benchmark.torch_support.training import adam

        p = self.params
        flow = build_flow(p["architecture"], self.dim, p["depth"], p["hidden"], p["blocks"]).to(self.device)
        optimizer = adam(flow.parameters(), lr=p["lr"])
        self.flow, self.optimizer = flow, optimizer
        return flow, optimizer

    def _network(self) -> tuple[NormalizingFlow, torch.optim.Optimizer]:
        """The network and its Adam state; an error if the model was neither fitted nor loaded."""
        if self.flow is None or self.optimizer is None:
            raise RuntimeError("flow model used before it was fitted or loaded")
        return self.flow, self.optimizer

    # ------------------------------------------------------------ scaling between data and flow space

    def _dequantize(self, x: torch.Tensor) -> torch.Tensor:
        """Uniform dequantisation of image intensities (``levels`` of them): a discrete image becomes a density."""
        import torch

        if self.kind != "image":
            return x
        levels = self.params["levels"]
        return (x * (levels - 1) + torch.rand_like(x)) / levels

    def _pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> the space the scaling applies to (identity for vectors, logit for images) and its log-det."""
        import torch

        if self.kind != "image":
            return x, torch.zeros(len(x), device=x.device)
        u = ALPHA + (1 - 2 * ALPHA) * x
        log_det = (math.log(1 - 2 * ALPHA) - torch.log(u) - torch.log1p(-u)).sum(dim=1)
        return torch.log(u) - torch.log1p(-u), log_det

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flattened data (tensor) -> flow space, with the log-determinant of that map for each point."""
        shift, scale = self.shift, self.scale
        y, log_det = self._pre(x)
        return (y - shift) / scale, log_det - scale.log().sum()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Flow space -> flattened data (images clipped to [0, 1])."""
        import torch

        shift, scale = self.shift, self.scale
        y = z * scale + shift
        if self.kind != "image":
            return y
        return ((torch.sigmoid(y) - ALPHA) / (1 - 2 * ALPHA)).clamp(0.0, 1.0)

    def _real_scaling(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale) standardising the real training set; images dequantised at mid-level (no randomness)."""
        if self.kind == "image":
            levels = self.params["levels"]
            x = (x * (levels - 1) + 0.5) / levels
        y, _ = self._pre(x)
        shift = y.mean(dim=0)
        scale = y.std(dim=0).clamp(min=MIN_SCALE) if len(y) > 1 else y.new_ones(y.shape[1])
        return shift, scale

    # ------------------------------------------------------------ Model interface

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        member = self.member(data, warm_start=warm_start, rng=rng)
        flow, _ = self._network()  # the network member() made ready, with its type

        def loss_of(batch: torch.Tensor) -> torch.Tensor:
            z, log_det = self.encode(self._dequantize(batch))
            return -(flow.log_prob(z) + log_det).mean()

        p = self.params
        loss = member.train_alone(
            loss_of, steps=self.steps, batch_size=p["batch_size"], max_grad_norm=p["max_grad_norm"]
        )
        return {"loss": loss}

    def member(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Member:
        """This model's part in a batched fit (and ``fit``'s preparation): its network and streams."""
        from benchmark.torch_support.batched import Member, continued_generator
        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import to_tensor

        seed_torch(rng, self.context.threads)
        x = to_tensor(data.reshape(len(data), -1), self.device)
        if not (warm_start and self.flow is not None):
            self._new_flow()
        flow, optimizer = self._network()
        flow.train()
        return Member(flow, optimizer, x, rng, continued_generator(self.device), constants=(self.shift, self.scale))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import in_batches, to_numpy

        flow, _ = self._network()
        seed_torch(rng, self.context.threads)
        flow.eval()
        parts = []
        # normflows' base scales its draws by its temperature; it is set for sampling only, as log_prob reads it too
        flow.q0.temperature = self.params["temperature"]
        try:
            with torch.no_grad():
                for size in in_batches(n, CHUNK):
                    z, _ = flow.sample(size)
                    parts.append(to_numpy(self.decode(z)))
        finally:
            flow.q0.temperature = None
        flat = np.concatenate(parts) if parts else np.zeros((0, self.dim))
        return flat.reshape(n, *self.shape)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        import torch

        from benchmark.torch_support.training import to_numpy, to_tensor

        flow, _ = self._network()
        flow.eval()
        flat = np.asarray(x).reshape(len(x), -1)
        out = []
        with torch.no_grad():
            for start in range(0, len(flat), CHUNK):
                z, log_det = self.encode(to_tensor(flat[start : start + CHUNK], self.device))
                out.append(to_numpy(flow.log_prob(z) + log_det))
        return np.concatenate(out) if out else np.zeros(0)

    def state_dict(self) -> dict[str, Any]:
        if self.flow is None:
            return {}
        from benchmark.torch_support.training import checkpoint

        flow, optimizer = self._network()
        return checkpoint(flow=flow, optimizer=optimizer, shift=self.shift, scale=self.scale)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self.flow = self.optimizer = None  # the scaling is the real data's, from creation
            return
        from benchmark.torch_support.training import restore

        flow, optimizer = self._new_flow()
        restore(state, self.device, flow=flow, optimizer=optimizer)
        self.shift, self.scale = state["shift"].to(self.device), state["scale"].to(self.device)


class FlowFamily(ModelFamily):
    """Normalizing flow (normflows): RealNVP, neural spline flows or MAF, trained by maximum likelihood."""

    name = "flow"
    version = "2"
    provides = frozenset({"log_prob"})
    warm_start_default = True
    data_kinds = ("vector", "image")
    #: Runs of every policy of a configuration train together: each member fits its own training set.
    trains_together_across = ("policy",)
    requires = ("torch", "normflows")
    install_hint = 'pip install "retrainbench[flows]"'
    parameters = {
        "architecture": Param("realnvp", str, "layer type", choices=ARCHITECTURES),
        "depth": Param(8, int, "number of flow layers", low=1),
        "hidden": Param(64, int, "hidden units of each layer's conditioner network", low=1),
        "blocks": Param(2, int, "hidden layers (residual blocks for splines and MAF) per conditioner", low=1),
        **training_parameters(batch_size=256),
        "max_grad_norm": Param(
            100.0,
            float,
            "gradients are clipped to this norm (the default 2-D flow's norms: median 6, 99th percentile 32)",
            above=0,
        ),
        "temperature": Param(
            1.0,
            float,
            "standard deviation of the base draws when sampling (below 1: samples drawn nearer the modes)",
            above=0,
        ),
        "levels": Param(256, int, "intensity levels of image data, for uniform dequantisation (17 for digits)", low=2),
        "warm_start": WARM_START,
    }

    def create(self, data: DataSplits, context: RunContext) -> FlowModel:
        shape = data.sample_shape
        if self.params["architecture"] == "nsf-coupling" and math.prod(shape) < 2:
            raise ValueError(
                "flow architecture 'nsf-coupling' needs data of at least 2 dimensions; use 'realnvp' or 'maf'"
            )
        return FlowModel(self.params, data.train, data.kind, context)

    def fit_together(
        self,
        models: Sequence[FlowModel],
        datasets: Sequence[np.ndarray],
        *,
        warm_start: bool,
        rngs: Sequence[np.random.Generator],
    ) -> list[Mapping[str, float]]:
        """``fit`` on each model (one configuration; seeds and policies differ), trained as one batched RealNVP.

        Each model ends exactly as its own ``fit`` leaves it (benchmark.torch_support.batched). Other
        architectures, 1-D data and images are fitted one by one.
        """
        from benchmark.torch_support.batched import fit_models_together

        first = models[0]
        return fit_models_together(
            models,
            datasets,
            rngs,
            warm_start=warm_start,
            batched=self.params["architecture"] == "realnvp" and first.dim >= 2 and first.kind == "vector",
            stacked_loss=_stacked_loss,
            batch_size=self.params["batch_size"],
            max_grad_norm=self.params["max_grad_norm"],
        )


@hookimpl
def register_model_families(register):
    register(FlowFamily)
