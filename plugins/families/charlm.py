"""``char-lm``: a small recurrent language model of token sequences (an embedding, a GRU, a linear read-out).

Trained by teacher forcing: the network reads a start symbol and the tokens before each position and
predicts the next one (cross-entropy, Adam). ``log_prob`` is the trained network's exact likelihood
of a sequence. Sampling draws token after token from that distribution, optionally biased as
Alemohammad et al. (2023) study: logits divided by ``temperature`` (below 1: sharper), then only the
``top_k`` most likely tokens (0: all), then the smallest set holding ``top_p`` of the mass (1: all).
The bias changes only how samples are drawn, not ``log_prob``: the likelihood of the real test text
stays the network's own, so perplexity measures what the network learned.

Warm start continues the previous generation's network and Adam state (both are in the checkpoint, so
a resumed run continues exactly). Token draws use the run's numpy stream on the CPU, so a seed gives the
same tokens whatever the device computes the probabilities on up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import DataSplits, Model, ModelFamily, Param, RunContext, hookimpl
from benchmark.torch_support.parameters import DEFAULT_STEPS, WARM_START, training_parameters

if TYPE_CHECKING:
    import torch

#: Sequences per forward pass when sampling or scoring.
CHUNK = 1024


def _network(vocab: int, embedding: int, hidden: int, layers: int) -> torch.nn.Module:
    import torch

    class GRULanguageModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(vocab + 1, embedding)  # id ``vocab`` is the start symbol
            self.gru = torch.nn.GRU(embedding, hidden, num_layers=layers, batch_first=True)
            self.out = torch.nn.Linear(hidden, vocab)

        def forward(self, tokens: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            output, state = self.gru(self.embed(tokens), state)
            return self.out(output), state

    return GRULanguageModel()


class CharLMModel(Model):
    """One run's network and its Adam state, on the run's device."""

    def __init__(self, params: Mapping[str, Any], vocab: int, length: int, context: RunContext) -> None:
        from benchmark.torch_support.devices import resolve_device

        self.params, self.vocab, self.length, self.context = params, vocab, length, context
        self.device = resolve_device(context.device)
        self.steps = context.steps(params["steps"], DEFAULT_STEPS)
        self.net: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def _new_network(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:

        from benchmark.torch_support.training import adam

        p = self.params
        self.net = _network(self.vocab, p["embedding"], p["hidden"], p["layers"]).to(self.device)
        self.optimizer = adam(self.net.parameters(), lr=p["lr"])
        return self.net, self.optimizer

    def _fitted(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        if self.net is None or self.optimizer is None:
            raise RuntimeError("char-lm model used before it was fitted or loaded")
        return self.net, self.optimizer

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The start symbol, then every token but the last: what the network reads to predict ``x``."""
        import torch

        start = torch.full((len(x), 1), self.vocab, dtype=torch.long, device=x.device)
        return torch.cat([start, x[:, :-1]], dim=1)

    def _log_probs(self, net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Log-probability of each sequence of ``x`` under the network (teacher forcing)."""
        import torch

        logits, _ = net(self._inputs(x))
        return torch.log_softmax(logits, dim=-1).gather(2, x.unsqueeze(2)).squeeze(2).sum(dim=1)

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]:
        import torch

        from benchmark.torch_support.devices import seed_torch
        from benchmark.torch_support.training import train

        seed_torch(rng, self.context.threads)
        if not (warm_start and self.net is not None):
            self._new_network()
        net, optimizer = self._fitted()
        net.train()
        x = torch.tensor(np.asarray(data, dtype=np.int64), device=self.device)  # a copy: the real data is read-only

        def loss_of(batch: torch.Tensor) -> torch.Tensor:
            return -self._log_probs(net, batch).mean() / self.length

        loss = train(loss_of, optimizer, x, steps=self.steps, batch_size=self.params["batch_size"], rng=rng)
        return {"loss": loss}

    def _biased(self, logits: np.ndarray) -> np.ndarray:
        """Rows of sampling probabilities: temperature, then top-k, then top-p (see the module's docstring)."""
        p = self.params
        scaled = logits / p["temperature"]
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        order = np.argsort(-probs, axis=1, kind="stable")
        ranked = np.take_along_axis(probs, order, axis=1)
        keep = np.ones_like(ranked, dtype=bool)
        if p["top_k"]:
            keep[:, p["top_k"] :] = False
        if p["top_p"] < 1:
            mass = np.cumsum(ranked, axis=1) / ranked.sum(axis=1, keepdims=True)
            keep &= np.concatenate([np.ones((len(mass), 1), bool), mass[:, :-1] < p["top_p"]], axis=1)
        kept = np.zeros_like(probs)
        np.put_along_axis(kept, order, np.where(keep, ranked, 0.0), axis=1)
        return kept / kept.sum(axis=1, keepdims=True)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        import torch

        net, _ = self._fitted()
        net.eval()
        out = np.zeros((n, self.length), dtype=np.int64)
        with torch.no_grad():
            for start in range(0, n, CHUNK):
                size = min(CHUNK, n - start)
                token = torch.full((size, 1), self.vocab, dtype=torch.long, device=self.device)
                state = None
                for i in range(self.length):
                    logits, state = net(token, state)
                    probs = self._biased(logits[:, -1].to("cpu", torch.float64).numpy())
                    cumulative = np.cumsum(probs, axis=1)
                    u = rng.random(size) * cumulative[:, -1]
                    drawn = np.minimum(np.sum(cumulative <= u[:, None], axis=1), self.vocab - 1)
                    out[start : start + size, i] = drawn
                    token = torch.as_tensor(drawn[:, None], device=self.device)
        return out

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        import torch

        net, _ = self._fitted()
        net.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), CHUNK):
                chunk = torch.tensor(np.asarray(x[start : start + CHUNK], dtype=np.int64), device=self.device)
                parts.append(self._log_probs(net, chunk).to("cpu", torch.float64).numpy())
        return np.concatenate(parts) if parts else np.zeros(0)

    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        from benchmark.torch_support.training import checkpoint

        net, optimizer = self._fitted()
        return checkpoint(net=net, optimizer=optimizer)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self.net = self.optimizer = None
            return
        from benchmark.torch_support.training import restore

        net, optimizer = self._new_network()
        restore(state, self.device, net=net, optimizer=optimizer)


class CharLM(ModelFamily):
    """A small GRU language model of token sequences; temperature, top-k and top-p sampling; exact log_prob."""

    name = "char-lm"
    provides = frozenset({"log_prob"})
    warm_start_default = True
    data_kinds = ("sequence",)
    requires = ("torch",)
    install_hint = "pip install torch (the version constraints.txt pins), or pip install 'retrainbench[flows]'"
    parameters = {
        "embedding": Param(32, int, "size of the token embedding", low=1),
        "hidden": Param(128, int, "GRU hidden units", low=1),
        "layers": Param(1, int, "GRU layers", low=1),
        **training_parameters(batch_size=64),
        "temperature": Param(1.0, float, "divides the logits when sampling (below 1: sharper samples)", above=0),
        "top_k": Param(0, int, "sample only among the k most likely tokens (0: all)", low=0),
        "top_p": Param(
            1.0, float, "sample only from the smallest set holding this much mass (1: all)", above=0, high=1
        ),
        "warm_start": WARM_START,
    }

    def create(self, data: DataSplits, context: RunContext) -> CharLMModel:
        return CharLMModel(self.params, data.vocabulary_size, data.sample_shape[0], context)


@hookimpl
def register_model_families(register):
    register(CharLM)
