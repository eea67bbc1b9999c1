"""Model family ``edm``: the Elucidated Diffusion Model of Karras et al. 2022 (denoising-diffusion-pytorch).

The library's ``ElucidatedDiffusion`` gives EDM's preconditioning, its log-normal training noise
levels and its Heun sampler (deterministic by default: ``churn = 0``, as Karras et al. sample
CIFAR-10 and FFHQ, the setting Bertrand et al. 2024 retrain). It takes square images (B, C, S, S)
in [0, 1] and samples them clipped to [0, 1]. Images go through the library's ``Unet`` (with the
learned Fourier time embedding EDM's continuous noise levels ask for); vectors through a small
residual MLP, each point shaped (dim, 1, 1): ``dim`` channels of a 1x1 image.

Vectors are scaled by their per-dimension range in the run's real training set into [-FILL, FILL]
(of the library's [-1, 1]; FILL < 1 leaves room to drift past the range), fitted once when the
model is created, so the scaling never follows the synthetic data of later generations. A warm
start continues the network, the Adam state and the EMA weights. The library's samplers and loss
draw from torch's global generator, so every ``fit`` and ``sample`` seeds it from the run's stream.
Seeds of one configuration on vectors train as one batched denoiser (``EDMFamily.fit_together``), each
drawing its noise levels and noise from its own generator in the library's order, bit for bit as alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, RunContext, hookimpl
from benchmark.torch_support.parameters import DEFAULT_STEPS, WARM_START, training_parameters

if TYPE_CHECKING:
    import torch
    from denoising_diffusion_pytorch import ElucidatedDiffusion
    from ema_pytorch import EMA

    from benchmark.torch_support.batched import Member

#: Vectors' training range maps into [-FILL, FILL] of the library's [-1, 1] (see the module docstring).
FILL = 0.9
#: Smallest half-range used for scaling vectors, so a collapsed dimension does not divide by zero.
MIN_SCALE = 1e-6
#: Points per sampler call.
CHUNK = 500
#: Network sizes when ``width`` / ``depth`` are not given: (images: Unet, vectors: MLP), as the ``ddpm`` family's.
DEFAULT_WIDTH = {"image": 16, "vector": 128}
DEFAULT_DEPTH = {"image": 2, "vector": 3}
#: Learned Fourier features of the noise level (the library Unet's default size).
FOURIER_DIM = 16


@functools.cache
def _mlp_denoiser():
    """The class of the vector denoiser (defined on first use, so torch loads only then)."""
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch import RandomOrLearnedSinusoidalPosEmb
    from torch import nn

    class MLPDenoiser(nn.Module):
        """Denoises points shaped (B, C, 1, 1) at continuous noise levels: what ElucidatedDiffusion asks of a net."""

        def __init__(self, channels: int, hidden: int, layers: int) -> None:
            super().__init__()
            # the library checks these two: a continuous (learned Fourier) noise embedding, no self-conditioning
            self.random_or_learned_sinusoidal_cond, self.self_condition = True, False
            self.time = nn.Sequential(
                RandomOrLearnedSinusoidalPosEmb(FOURIER_DIM), nn.Linear(FOURIER_DIM + 1, hidden), nn.SiLU()
            )
            self.inp = nn.Linear(channels, hidden)
            self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(layers))
            self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, channels))

        def forward(self, x, noise_level, x_self_cond=None):
            h, t = self.inp(x[:, :, 0, 0]), self.time(noise_level)
            for block in self.blocks:
                h = h + block(h + t)
            return self.out(h)[..., None, None]

    return MLPDenoiser


def _stacked_loss(diffusion: ElucidatedDiffusion) -> Callable[..., torch.Tensor]:
    """``ElucidatedDiffusion.forward``'s loss, its noise levels and noise given, for every member of a batched fit
    at once (a ``StackedLoss``): the preconditioning (the library's own elementwise ``c_in``, ``c_skip``, ...), the
    MLP denoiser and the weighted mean squared error on the members' tensors stacked along dim 0, the solo
    arithmetic in the solo order. Anything else is refused here.
    """
    import math

    import torch
    from denoising_diffusion_pytorch import ElucidatedDiffusion
    from denoising_diffusion_pytorch.elucidated_diffusion import normalize_to_neg_one_to_one
    from einops import reduce
    from torch.nn import functional

    from plugins.families.stacked_mlp import stacked_named_linear, stacked_residual_mlp

    if not (
        isinstance(diffusion, ElucidatedDiffusion)
        and isinstance(diffusion.net, _mlp_denoiser())
        and not diffusion.self_condition
    ):
        raise TypeError("edm: the diffusion's network is not the vector MLP _new_network makes")
    blocks = len(diffusion.net.blocks)

    def loss(
        parameters: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        batch: torch.Tensor,
        sigmas: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        images = normalize_to_neg_one_to_one(batch)
        padded = sigmas[:, :, None, None, None]
        noised = images + padded * noise
        # preconditioned_network_forward; the network's input is the scaled noised points, its time the noise level
        levels = diffusion.c_noise(sigmas)[:, :, None]  # RandomOrLearnedSinusoidalPosEmb on each member's levels
        frequencies = levels * parameters["net.time.0.weights"][:, None, :] * 2 * math.pi
        features = torch.cat((levels, torch.cat((frequencies.sin(), frequencies.cos()), dim=-1)), dim=-1)
        embedding = functional.silu(stacked_named_linear(parameters, "net.time.1", features))
        scaled = diffusion.c_in(padded) * noised
        net_out = stacked_residual_mlp(parameters, "net.", scaled[:, :, :, 0, 0], embedding, blocks)[..., None, None]
        denoised = diffusion.c_skip(padded) * noised + diffusion.c_out(padded) * net_out
        losses = reduce(functional.mse_loss(denoised, images, reduction="none"), "s b ... -> s b", "mean")
        return (losses * diffusion.loss_weight(sigmas)).mean(dim=1)

    return loss


def _draws(member: Member, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``ElucidatedDiffusion.forward`` draws from torch's global generator, in its order: the noise levels
    (its ``noise_distribution``), then the noise."""
    import torch

    diffusion = cast("ElucidatedDiffusion", member.network)
    normal = torch.randn((len(batch),), device=batch.device, generator=member.generator)
    sigmas = (diffusion.P_mean + diffusion.P_std * normal).exp()
    noise = torch.randn(batch.shape, device=batch.device, dtype=batch.dtype, generator=member.generator)
    return sigmas, noise


class EDMModel(Model):
    """One run's EDM: network, Adam state and EMA weights on the run's device, and the data scaling."""

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
        self.diffusion: ElucidatedDiffusion | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.ema: EMA | None = None
        self.shift, self.scale = self._scaling_of(to_tensor(train, self.device))

    def _scaling_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale) taking the real training data into [-FILL, FILL] (images: [0, 1] onto [-1, 1])."""
        if self.kind == "image":
            return x.new_full(x.shape[1:], 0.5), x.new_full(x.shape[1:], 0.5)
        low, high = x.min(dim=0).values, x.max(dim=0).values
        return (low + high) / 2, ((high - low) / (2 * FILL)).clamp(min=MIN_SCALE)

    def _new_network(self) -> tuple[ElucidatedDiffusion, torch.optim.Optimizer]:
        """A fresh diffusion, its Adam state and EMA weights, which become the model's."""

        from denoising_diffusion_pytorch import ElucidatedDiffusion, Unet

        from benchmark.torch_support.training import adam, ema

        p = self.params
        if self.kind == "image":
            channels, size, _ = self.shape
            net = Unet(
                dim=self.width,
                dim_mults=tuple(2**i for i in range(self.depth)),
                channels=channels,
                learned_sinusoidal_cond=True,
                learned_sinusoidal_dim=FOURIER_DIM,
            )
        else:
            (channels,), size = self.shape, 1
            net = _mlp_denoiser()(channels, self.width, self.depth)
        diffusion = ElucidatedDiffusion(
            net,
            image_size=size,
            channels=channels,
            num_sample_steps=p["sampling_steps"],
            S_churn=p["churn"],
        ).to(self.device)
        optimizer = adam(diffusion.parameters(), lr=p["lr"])
        self.diffusion, self.optimizer, self.ema = diffusion, optimizer, None
        if p["ema"] > 0:
            self.ema = ema(diffusion, p["ema"])
        return diffusion, optimizer

    def _network(self) -> tuple[ElucidatedDiffusion, torch.optim.Optimizer]:
        """The diffusion and its Adam state; an error if the model was neither fitted nor loaded."""
        if self.diffusion is None or self.optimizer is None:
            raise RuntimeError("edm model used before it was fitted or loaded")
        return self.diffusion, self.optimizer

    # ------------------------------------------------------------ scaling between data and the library's space

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Data (tensor, data shape) -> the library's input: [0, 1] (it maps that onto [-1, 1]), images' layout."""
        y = ((x - self.shift) / self.scale + 1) / 2
        return y if self.kind == "image" else y[..., None, None]

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """The library's samples (in [0, 1]) -> data (images stay in [0, 1])."""
        y = (u if self.kind == "image" else u[..., 0, 0]) * 2 - 1
        x = y * self.scale + self.shift
        return x.clamp(0.0, 1.0) if self.kind == "image" else x

    # ------------------------------------------------------------ Model interface

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        member = self.member(data, warm_start=warm_start, rng=rng)
        return {"loss": member.train_alone(member.network, steps=self.steps, batch_size=self.params["batch_size"])}

    def member(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Member:
        """This model's part in a batched fit (and ``fit``'s preparation): its network, EMA and streams."""
        from benchmark.torch_support.batched import Member, continued_generator
        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import to_tensor

        seed_torch(rng, self.context.threads)
        if not (warm_start and self.diffusion is not None):
            self._new_network()
        diffusion, optimizer = self._network()
        diffusion.train()
        encoded = self.encode(to_tensor(data, self.device))
        return Member(diffusion, optimizer, encoded, rng, continued_generator(self.device), ema=self.ema)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import in_batches, quiet_stderr, to_numpy

        diffusion, _ = self._network()
        seed_torch(rng, self.context.threads)
        sampler = self.ema.ema_model if self.ema is not None else diffusion
        sampler.eval()
        parts = []
        with torch.no_grad(), quiet_stderr():
            for size in in_batches(n, CHUNK):
                parts.append(to_numpy(self.decode(sampler.sample(batch_size=size))))
        return np.concatenate(parts) if parts else np.zeros((0, *self.shape))

    def state_dict(self) -> dict[str, Any]:
        if self.diffusion is None:
            return {}
        from benchmark.torch_support.training import checkpoint

        diffusion, optimizer = self._network()
        return checkpoint(diffusion=diffusion, optimizer=optimizer, ema=self.ema)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self.diffusion = self.optimizer = self.ema = None
            return
        from benchmark.torch_support.training import restore

        diffusion, optimizer = self._new_network()
        restore(state, self.device, diffusion=diffusion, optimizer=optimizer, ema=self.ema)


class EDMFamily(ModelFamily):
    """Elucidated Diffusion Model (Karras et al. 2022; denoising-diffusion-pytorch): Unet on images, MLP on vectors."""

    name = "edm"
    warm_start_default = True
    data_kinds = ("vector", "image")
    #: Runs of every policy of a configuration train together: each member fits its own training set.
    trains_together_across = ("policy",)
    requires = ("torch", "denoising_diffusion_pytorch", "ema_pytorch")
    install_hint = 'pip install "retrainbench[diffusion]"'
    parameters = {
        "width": Param(
            None,
            int,
            "Unet base channels for images (default 16), hidden units of the MLP for vectors (default 128)",
            low=1,
            optional=True,
        ),
        "depth": Param(
            None,
            int,
            "Unet resolutions for images (default 2: dim_mults 1,2), MLP residual blocks for vectors (default 3)",
            low=1,
            optional=True,
        ),
        "sampling_steps": Param(
            18,
            int,
            "noise levels of the Heun sampler, 2 network calls each but the last (Karras et al.'s 18 for CIFAR-10)",
            low=2,
        ),
        "churn": Param(
            0.0,
            float,
            "S_churn of the sampler: noise re-injected per step (0: deterministic ODE sampling; library default 80)",
            low=0,
        ),
        **training_parameters(batch_size=64),
        "ema": Param(
            0.995,
            float,
            "EMA decay of the weights used for sampling (0: sample with the trained weights)",
            low=0,
            high=0.9999,
        ),
        "warm_start": WARM_START,
    }

    def create(self, data: DataSplits, context: RunContext) -> EDMModel:
        shape = data.sample_shape
        if data.kind == "image":
            _, height, width = shape
            if height != width:
                raise ValueError(f"edm: images of {height}x{width} are not square (ElucidatedDiffusion takes S x S)")
            depth = self.params["depth"] or DEFAULT_DEPTH["image"]
            factor = 2 ** (depth - 1)
            if height % factor:
                raise ValueError(
                    f"edm: images of {height}x{width} do not halve {depth - 1} times (Unet depth {depth}); "
                    f"use a smaller depth or a size divisible by {factor}"
                )
        return EDMModel(self.params, shape, data.kind, context, data.train)

    def fit_together(
        self,
        models: Sequence[EDMModel],
        datasets: Sequence[np.ndarray],
        *,
        warm_start: bool,
        rngs: Sequence[np.random.Generator],
    ) -> list[Mapping[str, float]]:
        """``fit`` on each model (one configuration; seeds and policies differ), trained as one batched denoiser.

        Each model ends exactly as its own ``fit`` leaves it (benchmark.torch_support.batched); images
        (the library's Unet) are fitted one by one.
        """
        from benchmark.torch_support.batched import fit_models_together

        return fit_models_together(
            models,
            datasets,
            rngs,
            warm_start=warm_start,
            batched=models[0].kind == "vector",
            stacked_loss=_stacked_loss,
            batch_size=self.params["batch_size"],
            draws=_draws,
        )


@hookimpl
def register_model_families(register):
    register(EDMFamily)
