"""Model family ``ddpm``: denoising diffusion (denoising-diffusion-pytorch), sampled with DDIM.

Images go through the library's ``Unet`` and ``GaussianDiffusion``; vectors through
``GaussianDiffusion1D`` with a small residual MLP denoiser (points as sequences of length 1).
Both diffusions run with ``auto_normalize=False``: this family scales the data itself, images
from [0, 1] to [-1, 1] and vectors by their per-dimension training range into [-FILL, FILL]
(the sampler clips its predictions to [-1, 1], so samples stay within the real range widened by
1 / FILL around its centre). The scaling is fitted once, on the run's real training set, when the
model is created, and never on the model's own samples: version 1 refitted it on every cold start,
so each generation's samples beyond the range widened the next one's and the samples' largest
magnitude grew generation after generation (from 2.8 to 7.5-9.6 on eight-gaussians). A warm start
continues the network, the Adam state and the EMA weights. Version 2 also runs Adam fused and the
EMA with foreach updates (1.2x faster per step on the CPU). The library's ``Trainer`` is not used (it computes FID with
downloaded weights); training is a plain loop here. Its samplers draw from torch's global
generator, so every ``fit`` and ``sample`` seeds it from the run's stream first. Seeds of one
configuration on vectors train as one batched denoiser (``DDPMFamily.fit_together``), each drawing its
times and noise from its own generator in the library's order, bit for bit as alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, RunContext, hookimpl
from benchmark.torch_support.parameters import DEFAULT_STEPS, WARM_START, training_parameters

if TYPE_CHECKING:
    import torch
    from denoising_diffusion_pytorch import GaussianDiffusion, GaussianDiffusion1D
    from ema_pytorch import EMA

    from benchmark.torch_support.batched import Member

    #: The library's diffusion for images (Unet) or for vectors (sequences of length 1).
    Diffusion: TypeAlias = GaussianDiffusion | GaussianDiffusion1D

#: Vectors' training range maps into [-FILL, FILL] (see the module docstring).
FILL = 0.9
#: Smallest half-range used for scaling vectors, so a collapsed dimension does not divide by zero.
MIN_SCALE = 1e-6
#: Points per sampler call.
CHUNK = 500
#: Network sizes when ``width`` / ``depth`` are not given: (images: Unet, vectors: MLP).
DEFAULT_WIDTH = {"image": 16, "vector": 128}
DEFAULT_DEPTH = {"image": 2, "vector": 3}


@functools.cache
def _mlp_denoiser():
    """The class of the vector denoiser (defined on first use, so torch loads only then)."""
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch_1d import SinusoidalPosEmb
    from torch import nn

    class MLPDenoiser(nn.Module):
        """Predicts the noise of points shaped (B, C, 1) at integer times; what GaussianDiffusion1D asks of a model."""

        def __init__(self, channels: int, hidden: int, layers: int, time_dim: int = 32) -> None:
            super().__init__()
            self.channels, self.self_condition = channels, False
            self.time = nn.Sequential(SinusoidalPosEmb(time_dim), nn.Linear(time_dim, hidden), nn.SiLU())
            self.inp = nn.Linear(channels, hidden)
            self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(layers))
            self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, channels))

        def forward(self, x, time, x_self_cond=None):
            h, t = self.inp(x[..., 0]), self.time(time)
            for block in self.blocks:
                h = h + block(h + t)
            return self.out(h)[..., None]

    return MLPDenoiser


def _stacked_loss(diffusion: Diffusion) -> Callable[..., torch.Tensor]:
    """``GaussianDiffusion1D``'s training loss, its times and noise given, for every member of a batched fit at
    once (a ``StackedLoss``): ``q_sample``, the MLP denoiser and the weighted mean squared error on the members'
    tensors stacked along dim 0, the solo arithmetic in the solo order. Anything else is refused here.
    """
    from denoising_diffusion_pytorch import GaussianDiffusion1D
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch_1d import identity
    from einops import reduce
    from torch.nn import functional

    from plugins.families.stacked_mlp import stacked_named_linear, stacked_residual_mlp

    if not (
        isinstance(diffusion, GaussianDiffusion1D)
        and isinstance(denoiser := diffusion.model, _mlp_denoiser())
        and diffusion.objective == "pred_noise"
        and not diffusion.self_condition
        and diffusion.normalize is identity
    ):
        raise TypeError("ddpm: the diffusion is not the vector one _new_network makes, predicting the noise")
    position, blocks = denoiser.time[0], len(denoiser.blocks)

    def loss(
        parameters: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor],
        batch: torch.Tensor,
        times: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        def extract(name: str) -> torch.Tensor:  # the library's extract, per member
            return buffers[name].gather(1, times)

        at = (*times.shape, 1, 1)  # q_sample
        data_scale = extract("sqrt_alphas_cumprod").reshape(at)
        noise_scale = extract("sqrt_one_minus_alphas_cumprod").reshape(at)
        x = data_scale * batch + noise_scale * noise
        embedding = position(times.flatten()).reshape(*times.shape, -1)  # elementwise per time
        embedding = functional.silu(stacked_named_linear(parameters, "model.time.1", embedding))
        predicted = stacked_residual_mlp(parameters, "model.", x[..., 0], embedding, blocks)[..., None]
        losses = reduce(functional.mse_loss(predicted, noise, reduction="none"), "s b ... -> s b", "mean")
        return (losses * extract("loss_weight")).mean(dim=1)

    return loss


def _draws(member: Member, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``GaussianDiffusion1D.forward`` draws from torch's global generator, in its order: times, then noise."""
    import torch

    timesteps: int = member.network.num_timesteps  # type: ignore[assignment]  # the diffusion's, an int
    times = torch.randint(0, timesteps, (len(batch),), device=batch.device, generator=member.generator).long()
    noise = torch.randn(batch.shape, device=batch.device, dtype=batch.dtype, generator=member.generator)
    return times, noise


class DDPMModel(Model):
    """One run's diffusion model: network, Adam state, EMA weights and data scaling, on the run's device."""

    def __init__(self, params: Mapping[str, Any], real: np.ndarray, kind: str, context: RunContext) -> None:
        from benchmark.torch_support.devices import resolve_device
        from benchmark.torch_support.training import to_tensor

        self.params, self.shape, self.kind, self.context = params, tuple(real.shape[1:]), kind, context
        self.device = resolve_device(context.device)
        self.steps = context.steps(params["steps"], DEFAULT_STEPS)
        self.width = params["width"] or DEFAULT_WIDTH[kind]
        self.depth = params["depth"] or DEFAULT_DEPTH[kind]
        self.diffusion: Diffusion | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.ema: EMA | None = None
        self.shift, self.scale = self._real_scaling(to_tensor(real, self.device))

    def _new_network(self) -> tuple[Diffusion, torch.optim.Optimizer]:
        """A fresh diffusion, its Adam state and EMA weights, which become the model's."""
        from denoising_diffusion_pytorch import GaussianDiffusion, GaussianDiffusion1D, Unet

        from benchmark.torch_support.training import adam, ema

        p = self.params
        steps = {"timesteps": p["timesteps"], "sampling_timesteps": p["sampling_timesteps"], "auto_normalize": False}
        if self.kind == "image":
            channels, height, width = self.shape
            unet = Unet(dim=self.width, dim_mults=tuple(2**i for i in range(self.depth)), channels=channels)
            diffusion = GaussianDiffusion(unet, image_size=(height, width), **steps)
        else:
            (dim,) = self.shape
            diffusion = GaussianDiffusion1D(_mlp_denoiser()(dim, self.width, self.depth), seq_length=1, **steps)
        diffusion = diffusion.to(self.device)
        optimizer = adam(diffusion.parameters(), lr=p["lr"])
        self.diffusion, self.optimizer, self.ema = diffusion, optimizer, None
        if p["ema"] > 0:
            self.ema = ema(diffusion, p["ema"])
        return diffusion, optimizer

    def _network(self) -> tuple[Diffusion, torch.optim.Optimizer]:
        """The diffusion and its Adam state; an error if the model was neither fitted nor loaded."""
        if self.diffusion is None or self.optimizer is None:
            raise RuntimeError("ddpm model used before it was fitted or loaded")
        return self.diffusion, self.optimizer

    # ------------------------------------------------------------ scaling between data and model space

    def _real_scaling(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale) from the real training set: images [0, 1] -> [-1, 1], vectors' range -> [-FILL, FILL]."""
        if self.kind == "image":
            return x.new_full(x.shape[1:], 0.5), x.new_full(x.shape[1:], 0.5)
        low, high = x.min(dim=0).values, x.max(dim=0).values
        return (low + high) / 2, ((high - low) / (2 * FILL)).clamp(min=MIN_SCALE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Data (tensor, data shape) -> the diffusion's space and layout."""
        shift, scale = self.shift, self.scale
        y = (x - shift) / scale
        return y if self.kind == "image" else y[..., None]

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """The diffusion's samples -> data (images clipped to [0, 1])."""
        shift, scale = self.shift, self.scale
        x = (y if self.kind == "image" else y[..., 0]) * scale + shift
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
        x = to_tensor(data, self.device)
        if not (warm_start and self.diffusion is not None):
            self._new_network()
        diffusion, optimizer = self._network()
        diffusion.train()
        encoded = self.encode(x)
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
        return checkpoint(diffusion=diffusion, optimizer=optimizer, shift=self.shift, scale=self.scale, ema=self.ema)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self.diffusion = self.optimizer = self.ema = None  # the scaling is the real data's, from creation
            return
        from benchmark.torch_support.training import restore

        diffusion, optimizer = self._new_network()
        restore(state, self.device, diffusion=diffusion, optimizer=optimizer, ema=self.ema)
        self.shift, self.scale = state["shift"].to(self.device), state["scale"].to(self.device)


class DDPMFamily(ModelFamily):
    """Denoising diffusion (denoising-diffusion-pytorch): Unet on images, MLP denoiser on vectors, DDIM sampling."""

    name = "ddpm"
    version = "2"
    warm_start_default = True
    data_kinds = ("vector", "image")
    #: Runs of every policy of a configuration train together: each member fits its own training set.
    trains_together_across = ("policy",)
    requires = ("torch", "torchvision", "denoising_diffusion_pytorch", "ema_pytorch")
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
        "timesteps": Param(1000, int, "diffusion timesteps of training", low=2),
        "sampling_timesteps": Param(25, int, "DDIM sampling steps (= timesteps: ancestral sampling)", low=1),
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

    def create(self, data: DataSplits, context: RunContext) -> DDPMModel:
        p, shape = self.params, data.sample_shape
        if p["sampling_timesteps"] > p["timesteps"]:
            raise ValueError(
                f"ddpm: sampling_timesteps ({p['sampling_timesteps']}) must not exceed timesteps ({p['timesteps']})"
            )
        if data.kind == "image":
            depth = p["depth"] or DEFAULT_DEPTH["image"]
            factor = 2 ** (depth - 1)
            if any(side % factor for side in shape[1:]):
                raise ValueError(
                    f"ddpm: images of {shape[1]}x{shape[2]} do not halve {depth - 1} times (Unet depth {depth}); "
                    f"use a smaller depth or a size divisible by {factor}"
                )
        return DDPMModel(p, data.train, data.kind, context)

    def fit_together(
        self,
        models: Sequence[DDPMModel],
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
    register(DDPMFamily)
