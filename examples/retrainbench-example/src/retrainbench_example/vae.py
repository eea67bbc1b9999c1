"""The ``vae`` model family: a small variational autoencoder in torch, on vectors or images.

torch is imported inside methods only, so registering the family (and ``retrainbench list``) costs
nothing and a machine without torch sees the family as unavailable with its install hint.
Every random number comes from the rng the harness passes: initial weights from a seed drawn from
it (inside ``torch.random.fork_rng``, leaving torch's global generator alone), mini-batches and
noise from a ``torch.Generator`` seeded from it. A fresh Adam optimizer starts every generation,
so the weights (and the data scaling) are the whole state and a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, RunContext
from benchmark.run.seeding import derive_int
from benchmark.torch_support.devices import resolve_device, torch_generator


def _network(dim: int, latent: int, hidden: int):
    """Encoder (to mean and log-variance), decoder, and the decoder's per-coordinate log-scale."""
    import torch
    from torch import nn

    def mlp(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, outputs)
        )

    return nn.ModuleDict(
        {
            "encoder": mlp(dim, 2 * latent),
            "decoder": mlp(latent, dim),
            "noise": nn.ParameterDict({"log_scale": nn.Parameter(torch.zeros(dim))}),
        }
    )


class VAEModel(Model):
    def __init__(
        self, shape: tuple[int, ...], kind: str, params: Mapping[str, Any], steps: int, context: RunContext
    ) -> None:
        self.shape, self.kind, self.params, self.steps, self.context = shape, kind, params, steps, context
        self.dim = int(np.prod(shape))
        self.net = None
        # Vectors are standardised with the statistics of the first training set; images stay in [0, 1].
        self.shift = np.zeros(self.dim)
        self.scale = np.ones(self.dim)

    @property
    def device(self):
        return resolve_device(self.context.device)

    def _build(self, seed: int) -> None:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = _network(self.dim, self.params["latent"], self.params["hidden"])
        self.net.to(self.device)

    def _loss(self, x, generator):
        """Negative ELBO per point: reconstruction (Gaussian, or Bernoulli logits for images) + beta * KL."""
        import torch
        import torch.nn.functional as F

        mean, log_var = self.net["encoder"](x).chunk(2, dim=1)
        z = mean + torch.exp(0.5 * log_var) * torch.randn(mean.shape, generator=generator, device=x.device)
        out = self.net["decoder"](z)
        if self.kind == "image":
            reconstruction = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(dim=1)
        else:
            log_scale = self.net["noise"]["log_scale"]
            reconstruction = (0.5 * ((x - out) / torch.exp(log_scale)) ** 2 + log_scale).sum(dim=1)
        kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(dim=1)
        return (reconstruction + self.params["beta"] * kl).mean()

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        import torch

        if self.context.threads is not None:
            torch.set_num_threads(self.context.threads)
        flat = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        if not warm_start or self.net is None:
            if self.kind == "vector":
                self.shift, self.scale = flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)
            self._build(derive_int(rng))
        generator = torch_generator(rng, self.device)
        x = torch.as_tensor((flat - self.shift) / self.scale, dtype=torch.float32, device=self.device)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.params["lr"])
        batch = min(self.params["batch_size"], len(x))
        self.net.train()
        loss = torch.zeros(())
        for _ in range(self.steps):
            rows = torch.randint(0, len(x), (batch,), generator=generator, device=self.device)
            loss = self._loss(x[rows], generator)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {"loss": float(loss.detach()), "steps": float(self.steps)}

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        if self.net is None:
            raise RuntimeError("vae: sample() before fit()")
        generator = torch_generator(rng, self.device)
        self.net.eval()
        with torch.no_grad():
            z = torch.randn((n, self.params["latent"]), generator=generator, device=self.device)
            out = self.net["decoder"](z)
            if self.kind == "image":
                x = torch.sigmoid(out)  # the decoder's mean image, in [0, 1]
            else:
                noise = torch.randn(out.shape, generator=generator, device=self.device)
                x = out + torch.exp(self.net["noise"]["log_scale"]) * noise
        flat = x.double().cpu().numpy() * self.scale + self.shift
        return flat.reshape(n, *self.shape)

    def state_dict(self) -> dict[str, Any]:
        import torch

        if self.net is None:
            return {}
        return {
            "net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "shift": torch.tensor(self.shift),
            "scale": torch.tensor(self.scale),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self.net = None
            return
        self._build(0)  # the architecture; the weights come from the state
        self.net.load_state_dict(state["net"])
        self.shift = np.asarray(state["shift"].cpu().numpy(), dtype=np.float64)
        self.scale = np.asarray(state["scale"].cpu().numpy(), dtype=np.float64)


class VAEFamily(ModelFamily):
    """Variational autoencoder (torch MLPs): Gaussian decoder on vectors, Bernoulli-logit decoder on images."""

    name = "vae"
    requires = ("torch",)
    install_hint = (
        "pip install 'retrainbench-example[vae]' (on CPU machines pin torch, see retrainbench's constraints.txt)"
    )
    warm_start_default = True
    data_kinds = ("vector", "image")
    parameters = {
        "latent": Param(2, int, "latent dimension", low=1),
        "hidden": Param(64, int, "hidden units of the encoder and decoder MLPs", low=1),
        "steps": Param(
            None, int, "Adam steps per generation (default: the grid's train_steps, else 500)", low=1, optional=True
        ),
        "batch_size": Param(128, int, "mini-batch size", low=1),
        "lr": Param(1e-3, float, "Adam learning rate", above=0),
        "beta": Param(1.0, float, "weight of the KL term (beta-VAE); 1 is the ELBO", low=0),
    }

    def create(self, data: DataSplits, context: RunContext) -> VAEModel:
        steps = context.steps(self.params["steps"], 500)
        return VAEModel(data.sample_shape, data.kind, self.params, steps, context)
