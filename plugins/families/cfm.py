"""Model family ``cfm``: conditional flow matching with minibatch optimal-transport couplings (OT-CFM, torchcfm).

Tong et al. 2024's OT-CFM: each minibatch of data x1 is paired with standard normal draws x0
through the exact optimal-transport plan between the two (squared Euclidean cost), and a network
learns the velocity x1 - x0 at x_t = t x1 + (1 - t) x0 (+ sigma noise). Samples integrate that
velocity field from t = 0 to 1 with ``sampling_steps`` fixed midpoint steps. torchcfm computes the
plan (``OTPlanSampler.get_map``, POT's exact solver) and the probability path
(``ConditionalFlowMatcher``); its own ``sample_plan`` draws the pairs with numpy's global generator,
so the pairs are drawn here from the plan with the run's rng instead. The path's t and noise come
from torch's global generator, which every ``fit`` and ``sample`` seeds from the run's stream.
Seeds of one configuration on vectors, on a CPU, train as one batched network (``CFMFamily.fit_together``):
each member draws its source points, OT pairs, times and noise from its own streams in the solo order and
builds its coupled path alone; only the network's forward and backward passes are batched, bit for bit as alone.

Images go through torchcfm's UNet (the one of its CIFAR-10 experiments, here small) on [-1, 1],
samples clipped to [0, 1]; vectors through a residual MLP, standardised by the mean and standard
deviation of the run's real training set, fitted once when the model is created (the source is a
standard normal). A warm start continues the network, the Adam state and the EMA weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, RunContext, hookimpl
from benchmark.torch_support.parameters import DEFAULT_STEPS, WARM_START, training_parameters

if TYPE_CHECKING:
    import torch
    from ema_pytorch import EMA
    from torch import nn
    from torchcfm import ConditionalFlowMatcher
    from torchcfm.optimal_transport import OTPlanSampler

    from benchmark.torch_support.batched import Member

#: Smallest standard deviation used for scaling vectors, so a collapsed dimension does not divide by zero.
MIN_SCALE = 1e-6
#: Points per sampler call.
CHUNK = 1000
#: Network sizes when ``width`` / ``depth`` are not given: (images: UNet, vectors: MLP).
DEFAULT_WIDTH = {"image": 32, "vector": 128}
DEFAULT_DEPTH = {"image": 2, "vector": 3}
#: The UNet normalises with GroupNorm of 32 groups: its base channels must be a multiple of this.
UNET_GROUPS = 32
#: Residual blocks per UNet resolution (torchcfm's CIFAR-10 UNet has 2; 1 halves the cost at 8x8).
UNET_RES_BLOCKS = 1
#: Gaussian Fourier features of t in the vector network.
FOURIER_DIM = 16


@functools.cache
def _mlp_velocity():
    """The class of the vector velocity network (defined on first use, so torch loads only then)."""
    import math

    import torch
    from torch import nn

    class MLPVelocity(nn.Module):
        """Velocity of points (B, D) at times t (B,); t enters through learned Fourier features."""

        def __init__(self, dim: int, hidden: int, layers: int) -> None:
            super().__init__()
            self.frequencies = nn.Parameter(torch.randn(FOURIER_DIM // 2))
            self.time = nn.Sequential(nn.Linear(FOURIER_DIM + 1, hidden), nn.SiLU())
            self.inp = nn.Linear(dim, hidden)
            self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(layers))
            self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

        def forward(self, t, x):
            angles = 2 * math.pi * t[:, None] * self.frequencies
            h, e = self.inp(x), self.time(torch.cat([t[:, None], angles.sin(), angles.cos()], dim=1))
            for block in self.blocks:
                h = h + block(h + e)
            return self.out(h)

    return MLPVelocity


def ot_pairs(
    plans: OTPlanSampler, x0: torch.Tensor, x1: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """As torchcfm's ``sample_plan``: len(x0) pairs drawn from the exact OT plan, with replacement; drawn by ``rng``."""
    import torch

    plan = plans.get_map(x0, x1)
    weights = plan.ravel() / plan.sum()
    source, target = np.divmod(rng.choice(weights.size, size=len(x0), p=weights), plan.shape[1])
    return x0[torch.as_tensor(source, device=x0.device)], x1[torch.as_tensor(target, device=x1.device)]


def _path(
    matcher: ConditionalFlowMatcher,
    plans: OTPlanSampler,
    x1: torch.Tensor,
    rng: np.random.Generator,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The OT-CFM loss's random part for a minibatch x1 of encoded data: (t, x_t, u_t) on the coupled path.

    As ``matcher.sample_location_and_conditional_flow`` after pairing x1 with normal draws, each tensor drawn
    from ``generator`` (default: torch's global one) in the library's order: x0, then t (on the CPU), then noise.
    """
    import torch

    x0 = torch.randn(x1.shape, device=x1.device, dtype=x1.dtype, generator=generator)
    x0, x1 = ot_pairs(plans, x0, x1, rng)
    t = torch.rand(len(x0), generator=generator).type_as(x0)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    xt = matcher.sample_xt(x0, x1, t, noise)
    return t, xt, matcher.compute_conditional_flow(x0, x1, t, xt)


def _velocity_loss(net: nn.Module, t: torch.Tensor, xt: torch.Tensor, ut: torch.Tensor) -> torch.Tensor:
    """Squared error of the network's velocity against the path's."""
    return ((net(t, xt) - ut) ** 2).mean()


def _stacked_loss(net: nn.Module) -> Callable[..., torch.Tensor]:
    """``_velocity_loss`` of the vector network for every member of a batched fit at once (a ``StackedLoss``).

    ``MLPVelocity.forward`` and the squared error on the members' tensors stacked along dim 0, the solo
    arithmetic in the solo order. Any other network (the UNet) is refused here, before training.
    """
    import math

    import torch
    import torch.nn.functional as F

    from plugins.families.stacked_mlp import stacked_named_linear, stacked_residual_mlp

    if not isinstance(net, _mlp_velocity()):
        raise TypeError(f"cfm: the velocity network {type(net).__name__} has no stacked form")
    blocks = len(net.blocks)

    def loss(
        parameters: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        batch: torch.Tensor,
        t: torch.Tensor,
        xt: torch.Tensor,
        ut: torch.Tensor,
    ) -> torch.Tensor:
        times = t[:, :, None]
        angles = 2 * math.pi * times * parameters["frequencies"][:, None, :]
        features = torch.cat([times, angles.sin(), angles.cos()], dim=2)
        embedding = F.silu(stacked_named_linear(parameters, "time.0", features))
        return ((stacked_residual_mlp(parameters, "", xt, embedding, blocks) - ut) ** 2).mean(dim=(1, 2))

    return loss


class CFMModel(Model):
    """One run's OT-CFM: velocity network, Adam state and EMA weights on the run's device, and the data scaling."""

    def __init__(
        self,
        params: Mapping[str, Any],
        shape: tuple[int, ...],
        kind: str,
        context: RunContext,
        train: np.ndarray,
    ) -> None:
        from benchmark.torch_support.devices import resolve_device
        from benchmark.torch_support.training import to_tensor

        self.params, self.shape, self.kind, self.context = params, shape, kind, context
        self.device = resolve_device(context.device)
        self.steps = context.steps(params["steps"], DEFAULT_STEPS)
        self.width = params["width"] or DEFAULT_WIDTH[kind]
        self.depth = params["depth"] or DEFAULT_DEPTH[kind]
        self.net: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.ema: EMA | None = None
        self.shift, self.scale = self._scaling_of(to_tensor(train, self.device))

    def _scaling_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale) standardising the real training data (images: [0, 1] onto [-1, 1])."""
        if self.kind == "image":
            return x.new_full(x.shape[1:], 0.5), x.new_full(x.shape[1:], 0.5)
        scale = x.std(dim=0).clamp(min=MIN_SCALE) if len(x) > 1 else x.new_ones(x.shape[1:])
        return x.mean(dim=0), scale

    def _new_network(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A fresh velocity network, its Adam state and EMA weights, which become the model's."""

        from torchcfm.models.unet.unet import UNetModel

        from benchmark.torch_support.training import adam, ema

        p = self.params
        net: nn.Module
        if self.kind == "image":
            channels, height, _ = self.shape
            net = UNetModel(
                image_size=height,
                in_channels=channels,
                model_channels=self.width,
                out_channels=channels,
                num_res_blocks=UNET_RES_BLOCKS,
                attention_resolutions=(2 ** (self.depth - 1),),  # attention at the coarsest resolution only
                channel_mult=tuple(2**i for i in range(self.depth)),
            )
        else:
            (dim,) = self.shape
            net = _mlp_velocity()(dim, self.width, self.depth)
        net = net.to(self.device)
        optimizer = adam(net.parameters(), lr=p["lr"])
        self.net, self.optimizer, self.ema = net, optimizer, None
        if p["ema"] > 0:
            self.ema = ema(net, p["ema"])
        return net, optimizer

    def _network(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The velocity network and its Adam state; an error if the model was neither fitted nor loaded."""
        if self.net is None or self.optimizer is None:
            raise RuntimeError("cfm model used before it was fitted or loaded")
        return self.net, self.optimizer

    # ------------------------------------------------------------ scaling between data and the flow's space

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> the flow's space (vectors standardised, images on [-1, 1])."""
        return (x - self.shift) / self.scale

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """The flow's space -> data (images clipped to [0, 1])."""
        x = y * self.scale + self.shift
        return x.clamp(0.0, 1.0) if self.kind == "image" else x

    # ------------------------------------------------------------ training and sampling

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        from torchcfm import ConditionalFlowMatcher
        from torchcfm.optimal_transport import OTPlanSampler

        member = self.member(data, warm_start=warm_start, rng=rng)
        matcher, plans = ConditionalFlowMatcher(sigma=self.params["sigma"]), OTPlanSampler("exact")

        def loss_of(x1: torch.Tensor) -> torch.Tensor:
            """The OT-CFM loss of a minibatch of encoded data: squared error of the velocity on the coupled path."""
            return _velocity_loss(member.network, *_path(matcher, plans, x1, rng))

        return {"loss": member.train_alone(loss_of, steps=self.steps, batch_size=self.params["batch_size"])}

    def member(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Member:
        """This model's part in a batched fit (and ``fit``'s preparation): its network, EMA and streams."""
        from benchmark.torch_support.batched import Member, continued_generator
        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import to_tensor

        seed_torch(rng, self.context.threads)
        if not (warm_start and self.net is not None):
            self._new_network()
        net, optimizer = self._network()
        net.train()
        encoded = self.encode(to_tensor(data, self.device))
        return Member(net, optimizer, encoded, rng, continued_generator(self.device), ema=self.ema)

    def _integrate(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """x at t = 0 carried to t = 1 along the velocity field, with ``sampling_steps`` midpoint steps."""
        steps = self.params["sampling_steps"]
        dt = 1.0 / steps
        for k in range(steps):
            t = x.new_full((len(x),), k * dt)
            half = x + dt / 2 * net(t, x)
            x = x + dt * net(t + dt / 2, half)
        return x

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import in_batches, to_numpy

        net, _ = self._network()
        seed_torch(rng, self.context.threads)
        sampler = self.ema.ema_model if self.ema is not None else net
        sampler.eval()
        parts = []
        with torch.no_grad():
            for size in in_batches(n, CHUNK):
                noise = torch.randn((size, *self.shape), device=self.device)
                parts.append(to_numpy(self.decode(self._integrate(sampler, noise))))
        return np.concatenate(parts) if parts else np.zeros((0, *self.shape))

    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        from benchmark.torch_support.training import checkpoint

        net, optimizer = self._network()
        return checkpoint(net=net, optimizer=optimizer, ema=self.ema)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self.net = self.optimizer = self.ema = None
            return
        from benchmark.torch_support.training import restore

        net, optimizer = self._new_network()
        restore(state, self.device, net=net, optimizer=optimizer, ema=self.ema)


class CFMFamily(ModelFamily):
    """OT conditional flow matching (torchcfm): UNet on images, MLP on vectors, midpoint ODE sampling."""

    name = "cfm"
    warm_start_default = True
    data_kinds = ("vector", "image")
    #: Runs of every policy of a configuration train together: each member fits its own training set.
    trains_together_across = ("policy",)
    requires = ("torch", "torchcfm", "ot", "ema_pytorch")
    install_hint = 'pip install "retrainbench[cfm]" && pip install --no-deps torchcfm==1.0.7'
    parameters = {
        "width": Param(
            None,
            int,
            f"UNet base channels for images (default 32, a multiple of {UNET_GROUPS}), "
            "hidden units of the MLP for vectors (default 128)",
            low=1,
            optional=True,
        ),
        "depth": Param(
            None,
            int,
            "UNet resolutions for images (default 2: channel_mult 1,2), MLP residual blocks for vectors (default 3)",
            low=1,
            optional=True,
        ),
        "sigma": Param(0.0, float, "standard deviation of the Gaussian probability path around x_t", low=0),
        "sampling_steps": Param(50, int, "midpoint steps integrating the ODE (2 network calls each)", low=1),
        **training_parameters(batch_size=128),
        "ema": Param(
            0.995,
            float,
            "EMA decay of the weights used for sampling (0: sample with the trained weights)",
            low=0,
            high=0.9999,
        ),
        "warm_start": WARM_START,
    }

    def create(self, data: DataSplits, context: RunContext) -> CFMModel:
        shape = data.sample_shape
        if data.kind == "image":
            _, height, width = shape
            channels = self.params["width"] or DEFAULT_WIDTH["image"]
            if channels % UNET_GROUPS:
                raise ValueError(
                    f"cfm: width {channels} is not a multiple of {UNET_GROUPS} (the UNet's GroupNorm groups)"
                )
            depth = self.params["depth"] or DEFAULT_DEPTH["image"]
            factor = 2 ** (depth - 1)
            if height % factor or width % factor:
                raise ValueError(
                    f"cfm: images of {height}x{width} do not halve {depth - 1} times (UNet depth {depth}); "
                    f"use a smaller depth or a size divisible by {factor}"
                )
        return CFMModel(self.params, shape, data.kind, context, data.train)

    def fit_together(
        self,
        models: Sequence[CFMModel],
        datasets: Sequence[np.ndarray],
        *,
        warm_start: bool,
        rngs: Sequence[np.random.Generator],
    ) -> list[Mapping[str, float]]:
        """``fit`` on each model (one configuration; seeds and policies differ), trained as one batched network.

        Each model ends exactly as its own ``fit`` leaves it (benchmark.torch_support.batched). Images (the
        UNet) and other devices than the CPU are fitted one by one: off the CPU, the solo loss draws t from the
        CPU's generator and everything else from the device's, and a member continues one generator only.
        """
        from torchcfm import ConditionalFlowMatcher
        from torchcfm.optimal_transport import OTPlanSampler

        from benchmark.torch_support.batched import fit_models_together

        matcher, plans = ConditionalFlowMatcher(sigma=self.params["sigma"]), OTPlanSampler("exact")

        def draws(member: Member, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return _path(matcher, plans, x1, member.rng, member.generator)

        first = models[0]
        return fit_models_together(
            models,
            datasets,
            rngs,
            warm_start=warm_start,
            batched=first.kind == "vector" and first.device.type == "cpu",
            stacked_loss=_stacked_loss,
            batch_size=self.params["batch_size"],
            draws=draws,
        )


@hookimpl
def register_model_families(register):
    register(CFMFamily)
