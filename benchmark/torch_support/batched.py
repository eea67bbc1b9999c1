"""Several runs' copies of one network trained as one batched model, each bit for bit as if trained alone.

Runs of one configuration that differ only by seed train networks of identical shapes. Stacking their
parameters turns S small forward and backward passes into one of S-fold batched tensors, which costs
about as much dispatch as one: the step time of these 2-D networks is mostly dispatch, not arithmetic.
A family gives its loss in one of two forms. A loss of one member (``BatchedLoss``) runs on any network,
``torch.func``'s ``functional_call`` under ``vmap``; but vmap costs several times the solo dispatch per
operation. A loss written on the stacked tensors (``StackedLoss``, its linear layers ``stacked_linear``)
costs about the solo dispatch; a family that spells its network out that way gains most (the flow).

Bit-identity with the solo loop (``training.train``) is kept by construction where it can be:
each member draws its minibatch indices from its own numpy stream and its random tensors from its
own torch generator, in the solo order; the per-run parameters become views into the stacked
tensors; one fused Adam call steps the stacked tensors with the runs' states stacked, where each run's
share is a multiple of ``ALIGNED_ROWS`` floats (the kernel's vector loop then updates each slice as alone),
and each run's own tensor with its own state elsewhere; clipping is torch's ``clip_grad_norm_`` operation for
operation on each run's slices; one ema_pytorch update moves every run's EMA weights, stacked (its lerp is
elementwise and rounds alike in its vector loop and its tail, which the bit-identity tests check).
The forward and backward passes are batched, and two things could round them apart from the solo
ones. A batched matrix product: MKL's solo ``addmm`` fuses the bias add when the inner dimension is 1,
``bmm`` does not, and its products of one column round apart from the solo ones; so every linear layer's
shapes are checked once per process (``batched_linear_form``), and a layer whose batched products differ from
the solo ones on random inputs takes an exact form: one fused multiply-add forward and the solo products
backward for one input feature, else the product replica by replica. And ATen's elementwise loops,
which step by two SIMD vectors (``ALIGNED_ROWS`` floats) and finish with a scalar tail that may round a
transcendental function differently: members stack only when their minibatch is a multiple of
``ALIGNED_ROWS``, so each run's tensors split into vectors and tail exactly as alone; other minibatch sizes
train one member per stack. The same loops split a large tensor over torch's threads at offsets set by its
whole size, which may fall inside a vector and send its elements down the scalar path: members are batched
only on one torch thread (with 3 threads, 134 of 335 tensors of 5 default ``cfm`` members rounded apart).

This module imports torch at the top; families import it only inside the methods that train.
"""

from __future__ import annotations

import copy
import functools
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from benchmark.api.components import RunContext
from benchmark.torch_support.training import LOSS_WINDOW, train

#: Minibatch rows that keep each member's elementwise work aligned with ATen's CPU loops, which step by two
#: SIMD vectors (2 x 16 float32 lanes with AVX-512) before a scalar tail.
ALIGNED_ROWS = 32

#: A loss on one member's minibatch: (the network, the minibatch, the member's extra tensors) -> scalar.
BatchedLoss = Callable[..., torch.Tensor]

#: Makes every member's loss at once from one member's network, read for its structure only: the loss takes the
#: members' parameters and buffers stacked along dim 0 (by name), their stacked minibatches and extra tensors, and
#: returns their S losses. Written on stacked tensors, a network costs about the solo dispatch per operation;
#: under vmap it costs several times that, which caps what batching can gain for small networks.
StackedLoss = Callable[[nn.Module], Callable[..., torch.Tensor]]


@dataclass
class Member:
    """One run's part in a batched fit: its network, optimiser, data and random streams."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    data: torch.Tensor
    #: The run's fit stream: minibatch indices, as in the solo loop.
    rng: np.random.Generator
    #: Continues the run's seeded torch stream (what the solo code draws from torch's global generator).
    generator: torch.Generator
    #: Tensors of this run the loss reads every step (e.g. its data scaling).
    constants: tuple[torch.Tensor, ...] = ()
    #: The run's EMA of its weights (``training.ema``), updated after every step; batched with the others' EMAs.
    ema: Any = None
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=LOSS_WINDOW))
    #: The first non-finite loss, where the solo loop would have stopped.
    stopped: float | None = None

    def finish_step(self) -> None:
        """What follows each optimiser step when the member trains alone: its EMA update."""
        if self.ema is not None:
            self.ema.update()

    def train_alone(
        self,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        *,
        steps: int,
        batch_size: int,
        max_grad_norm: float | None = None,
    ) -> float:
        """``training.train`` of this member alone (a family's solo ``fit``): what ``train_together`` does for it."""
        return train(
            loss_of,
            self.optimizer,
            self.data,
            steps=steps,
            batch_size=batch_size,
            rng=self.rng,
            after_step=self.finish_step,
            max_grad_norm=max_grad_norm,
        )

    def result(self) -> float:
        """What ``training.train`` returns: the first non-finite loss, else the mean of the last ones."""
        if self.stopped is not None:
            return self.stopped
        return float(np.mean(self.recent)) if self.recent else math.nan


class _LinearByVmapRule(torch.autograd.Function):
    """``F.linear``; under vmap, a subclass's ``vmap`` rule computes it on the replicas stacked along dim 0, and
    autograd differentiates that rule's operations."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad):  # pragma: no cover - the vmap rule's operations carry the gradient
        raise NotImplementedError("a linear layer run by its vmap rule is differentiated through that rule")


def _stacked_arguments(info, in_dims: Sequence[int | None], *arguments: torch.Tensor | None) -> list[Any]:
    """A vmap rule's arguments with their replicas along dim 0 (an unbatched one repeated as a view)."""
    return [
        t if t is None else t.expand(info.batch_size, *t.shape) if dim is None else t.movedim(dim, 0)
        for t, dim in zip(arguments, in_dims, strict=True)
    ]


class _PerReplicaLinear(_LinearByVmapRule):
    """``F.linear``; under vmap computed replica by replica, so its rounding is the solo one."""

    @staticmethod
    def vmap(info, in_dims, *arguments):
        return _per_replica_products(*_stacked_arguments(info, in_dims, *arguments)), 0


def _per_replica_products(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Replicas' ``F.linear`` on tensors stacked along dim 0, each the solo product."""
    biases = [None] * len(x) if bias is None else bias.unbind(0)
    parts = zip(x.unbind(0), weight.unbind(0), biases, strict=True)
    return torch.stack([nn.functional.linear(*part) for part in parts])


def _batched_products(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Replicas' ``F.linear`` on tensors stacked along dim 0 as one batched product (``baddbmm``)."""
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class _OneInputProducts(torch.autograd.Function):
    """Replicas' ``F.linear`` of one input feature, on tensors stacked along dim 0: the forward is one fused
    multiply-add (``addcmul``: MKL's solo ``addmm`` rounds ``x * w + b`` once when the inner dimension is 1),
    the backward the solo products (``mm``) replica by replica, written into one tensor."""

    @staticmethod
    def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is None:  # the solo mm's one product, rounded once
            return x * weight.transpose(1, 2)
        return torch.addcmul(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # as addmm's backward: grad @ mat2.t(), mat2 = weight.t()
            grad_x = grad.new_empty(x.shape)
            for i in range(len(grad)):
                torch.mm(grad[i], weight[i], out=grad_x[i])
        if ctx.needs_input_grad[1]:  # weight.t() is column-major, so addmm's backward takes (grad.t() @ x)
            grad_weight = grad.new_empty(weight.shape)
            for i in range(len(grad)):
                torch.mm(grad[i].t(), x[i], out=grad_weight[i])
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(1)
        return grad_x, grad_weight, grad_bias


class _OneInputLinear(_LinearByVmapRule):
    """``F.linear`` of a layer with one input feature; under vmap ``_OneInputProducts``, as exact as
    ``_PerReplicaLinear`` (``batched_linear_form`` checks it) for a fraction of its operations."""

    @staticmethod
    def vmap(info, in_dims, *arguments):
        return _OneInputProducts.apply(*_stacked_arguments(info, in_dims, *arguments)), 0


#: How a linear layer runs under vmap, fastest first: vmap's own batching rule, one fused multiply-add for a
#: single input feature, or the solo product replica by replica (always exact).
_VMAP_FORMS: dict[str, Callable[..., torch.Tensor]] = {
    "vmap": nn.functional.linear,
    "one-input": _OneInputLinear.apply,
    "per-replica": _PerReplicaLinear.apply,
}

#: The same forms on tensors stacked along dim 0 (``StackedLoss``), outside vmap.
_STACKED_FORMS: dict[str, Callable[..., torch.Tensor]] = {
    "batched": _batched_products,
    "one-input": _OneInputProducts.apply,
    "per-replica": _per_replica_products,
}


class _ExactLinear(nn.Linear):
    """A Linear run under vmap in the form ``batched_linear_form`` found exact for its shapes (``form``)."""

    form = "per-replica"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _VMAP_FORMS[self.form](x, self.weight, self.bias)


@functools.cache
def batched_linear_form(
    rows: int,
    inputs: int,
    outputs: int,
    replicas: int,
    device: str,
    *,
    bias: bool = True,
    stacked: bool = False,
    input_strides: tuple[int, int, int] | None = None,
) -> str:
    """The fastest form of ``_VMAP_FORMS`` (vmapped), or of ``_STACKED_FORMS`` when ``stacked``, whose replicas'
    ``F.linear`` (forward, and gradients of input, weight, bias) equal the solo ones bit for bit on random float32
    inputs of these shapes on ``device``: whether the batched kernels round as the solo ones. ``input_strides``:
    the stacked input's layout (a kernel may take another path for another one); contiguous by default."""
    generator = torch.Generator(device=device).manual_seed(0)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=device)

    x = draw(replicas, rows, inputs)
    if input_strides is not None:  # the same values, laid out as the real input
        x = torch.empty_strided(x.shape, input_strides, device=device).copy_(x)
    tensors = [x, draw(replicas, outputs, inputs)]
    if bias:
        tensors.append(draw(replicas, outputs))
    upstream = draw(replicas, rows, outputs)

    def run(function: Callable[..., torch.Tensor], arguments: Sequence[torch.Tensor], grad: torch.Tensor):
        leaves = [t.detach().requires_grad_() for t in arguments]  # views: each keeps its layout
        out = function(*leaves) if bias else function(*leaves, None)
        out.backward(grad)
        return [out.detach(), *(cast(torch.Tensor, t.grad) for t in leaves)]

    solo = [run(nn.functional.linear, [t[i] for t in tensors], upstream[i]) for i in range(replicas)]
    forms = _STACKED_FORMS if stacked else _VMAP_FORMS
    candidates = [form for form in forms if form != "one-input" or inputs == 1]
    for form in candidates[:-1]:
        function = forms[form] if stacked else vmap(forms[form], in_dims=(0, 0, 0 if bias else None))
        batched = run(function, tensors, upstream)
        if all(
            same_bits(mine[i], theirs) for i, one in enumerate(solo) for mine, theirs in zip(batched, one, strict=True)
        ):
            return form
    return candidates[-1]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bits: ``torch.equal`` also takes -0.0 for +0.0."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(
        a.detach().contiguous().reshape(-1).view(torch.uint8), b.detach().contiguous().reshape(-1).view(torch.uint8)
    )


def stacked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Replicas' ``F.linear`` on tensors stacked along dim 0 (``x``: S x rows x in, ``weight``: S x out x in), for a
    ``StackedLoss``: each replica's product, and its gradients, bit for bit as alone (``batched_linear_form``)."""
    replicas, rows, inputs = x.shape
    layout = cast(tuple[int, int, int], x.stride())
    form = batched_linear_form(
        rows,
        inputs,
        weight.shape[1],
        replicas,
        str(x.device),
        bias=bias is not None,
        stacked=True,
        input_strides=layout,
    )
    return _STACKED_FORMS[form](x, weight, bias)


class _Bound(nn.Module):
    """The loss as a module of the network, so ``functional_call`` can substitute a member's parameters."""

    def __init__(self, network: nn.Module, loss_of: BatchedLoss) -> None:
        super().__init__()
        self.network, self.loss_of = network, loss_of

    def forward(self, batch: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        return self.loss_of(self.network, batch, *inputs)


def _template(network: nn.Module, rows: int, replicas: int) -> nn.Module:
    """A copy of ``network`` to run under vmap, its linear layers made exact where batched products round apart."""
    template = copy.deepcopy(network)
    device = str(next(network.parameters()).device)
    for module in template.modules():
        if type(module) is nn.Linear:
            form = batched_linear_form(
                rows, module.in_features, module.out_features, replicas, device, bias=module.bias is not None
            )
            if form != "vmap":
                module.__class__ = _ExactLinear
                cast(_ExactLinear, module).form = form
    return template


def continued_generator(device: torch.device) -> torch.Generator:
    """A generator in the state of torch's global one on ``device``: it draws what the solo code would draw next."""
    generator = torch.Generator(device=device)
    if device.type == "cuda":
        generator.set_state(torch.cuda.get_rng_state(device))
    else:
        generator.set_state(torch.get_rng_state())
    return generator


def train_together(
    members: Sequence[Member],
    loss_of: BatchedLoss | None = None,
    *,
    stacked_loss: StackedLoss | None = None,
    steps: int,
    batch_size: int,
    draws: Callable[[Member, torch.Tensor], tuple[torch.Tensor, ...]] | None = None,
    max_grad_norm: float | None = None,
) -> list[float]:
    """``training.train`` for every member at once; each member's returned loss and final state are its solo ones.

    ``loss_of(network, batch, *drawn, *constants)`` is one member's loss, written with ops vmap can batch;
    or ``stacked_loss`` (a ``StackedLoss``) gives every member's loss at once, written on stacked tensors:
    faster, for a family that spells its network out;
    ``draws(member, batch)`` draws a member's random tensors for a step from ``member.generator``, in the
    order the solo loss draws them from torch's global generator. Members stack when their minibatches have
    the same size, a multiple of ``ALIGNED_ROWS``; others train one per stack. A member whose loss stops being
    finite is stopped there, as the solo loop stops (its later state is never used: the run diverged);
    its siblings go on.
    """
    if (loss_of is None) == (stacked_loss is None):
        raise TypeError("train_together takes either loss_of or stacked_loss")
    if torch.get_num_threads() != 1:
        raise ValueError(
            f"train_together on {torch.get_num_threads()} torch threads: the threads would split the stacked "
            "elementwise operations where they round apart from the solo ones; fit each member alone instead"
        )
    stacks: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(members):
        batch = min(batch_size, len(m.data))
        stacks.setdefault((batch, 0 if batch % ALIGNED_ROWS == 0 else i), []).append(i)
    results: dict[int, float] = {}
    for (batch, _), indices in stacks.items():
        stack = _Stack([members[i] for i in indices], batch, loss_of, stacked_loss)
        try:
            for _ in range(steps):
                stack.step(draws, max_grad_norm)
        finally:
            stack.release()
        results.update((i, members[i].result()) for i in indices)
    return [results[i] for i in range(len(members))]


class Batchable(Protocol):
    """A torch model that can take part in a batched fit: its solo ``fit`` and its part in a batch."""

    steps: int
    #: The run's settings; ``context.threads`` is the torch threads its ``member`` sets (None: as they are).
    context: RunContext

    def fit(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Mapping[str, float]: ...

    def member(self, data: np.ndarray, *, warm_start: bool, rng: np.random.Generator) -> Member: ...


def fit_models_together(
    models: Sequence[Batchable],
    datasets: Sequence[np.ndarray],
    rngs: Sequence[np.random.Generator],
    *,
    warm_start: bool,
    batched: bool,
    loss_of: BatchedLoss | None = None,
    stacked_loss: StackedLoss | None = None,
    batch_size: int,
    draws: Callable[[Member, torch.Tensor], tuple[torch.Tensor, ...]] | None = None,
    max_grad_norm: float | None = None,
) -> list[Mapping[str, float]]:
    """A family's ``fit_together``: each model's fit, as one batched model when ``batched``, else one by one.

    Families pass ``batched=False`` for what their batched loss does not cover (images, some devices); on more
    than one torch thread the models are fitted one by one too (see the module docstring). Either way each model
    ends as its own ``fit`` leaves it.
    """
    triples = list(zip(models, datasets, rngs, strict=True))
    if not batched or (models[0].context.threads or torch.get_num_threads()) != 1:
        return [m.fit(d, warm_start=warm_start, rng=r) for m, d, r in triples]
    members = [m.member(d, warm_start=warm_start, rng=r) for m, d, r in triples]
    losses = train_together(
        members,
        loss_of,
        stacked_loss=stacked_loss,
        steps=models[0].steps,
        batch_size=batch_size,
        draws=draws,
        max_grad_norm=max_grad_norm,
    )
    return [{"loss": loss} for loss in losses]


class _Stack:
    """Members' parameters stacked into one batched model; each run's parameters are views of its slice."""

    def __init__(
        self, members: Sequence[Member], batch: int, loss_of: BatchedLoss | None, stacked_loss: StackedLoss | None
    ) -> None:
        self.members, self.batch = members, batch
        first = members[0].network
        # the loss first: a StackedLoss refusing the network does so before the members' weights become views
        self.loss = stacked_loss(first) if stacked_loss is not None else self._vmapped(cast(BatchedLoss, loss_of))
        self.names = [name for name, _ in first.named_parameters()]
        self.own = [dict(m.network.named_parameters()) for m in members]
        self.own_lists = [[parameters[name] for name in self.names] for parameters in self.own]
        self.buffers = {
            name: torch.stack([dict(m.network.named_buffers())[name] for m in members])
            for name, _ in first.named_buffers()
        }
        with torch.no_grad():
            self.stacked = {name: torch.stack([p[name] for p in self.own]).requires_grad_() for name in self.names}
            for i, parameters in enumerate(self.own):  # each run's parameter now reads and writes its slice
                for name in self.names:
                    parameters[name].data = self.stacked[name].data[i]
        self.optimizer = _JointAdam.of(members, self.own, self.stacked)
        self.ema = _StackedEMA.of(members, {**self.stacked, **self.buffers})

    def _vmapped(self, loss_of: BatchedLoss) -> Callable[..., torch.Tensor]:
        """Every member's loss at once: ``loss_of`` on a template of the network, vmapped over the members."""
        bound = _Bound(_template(self.members[0].network, self.batch, len(self.members)), loss_of)

        def one(params: dict[str, torch.Tensor], bufs: dict[str, torch.Tensor], x, *inputs) -> torch.Tensor:
            tensors = {f"network.{name}": tensor for name, tensor in {**params, **bufs}.items()}
            return functional_call(bound, tensors, (x, *inputs))

        return vmap(one)

    def step(self, draws: Callable[[Member, torch.Tensor], tuple[torch.Tensor, ...]] | None, max_norm: float | None):
        """One optimiser step of every member, as ``training.train`` takes it alone."""
        xs, extras = [], []
        for m in self.members:  # each member draws from its own streams, in the solo order
            index = torch.as_tensor(m.rng.integers(0, len(m.data), size=self.batch), device=m.data.device)
            x = m.data[index]
            xs.append(x)
            extras.append((*(draws(m, x) if draws is not None else ()), *m.constants))
        inputs = [torch.stack(column) for column in zip(*extras, strict=True)]
        losses = self.loss(self.stacked, self.buffers, torch.stack(xs), *inputs)
        for p in self.stacked.values():
            p.grad = None
        losses.sum().backward()  # d(sum)/d(loss_i) = 1: each member's gradient is its solo one
        grads = [cast(torch.Tensor, self.stacked[name].grad) for name in self.names]
        slices = list(zip(*(grad.unbind(0) for grad in grads), strict=True))  # [member][parameter]: one op a tensor
        if max_norm is not None:
            _clip_each(grads, slices, max_norm)
        if self.optimizer is not None:
            self.optimizer.step(slices)
        else:
            for parameters, own_grads, m in zip(self.own_lists, slices, self.members, strict=True):
                for parameter, grad in zip(parameters, own_grads, strict=True):
                    parameter.grad = grad
                m.optimizer.step()
        if self.ema is not None:
            self.ema.update()
        else:
            for m in self.members:
                m.finish_step()
        for m, value in zip(self.members, losses.detach().tolist(), strict=True):
            if m.stopped is None and not math.isfinite(value):
                m.stopped = value
            elif m.stopped is None:
                m.recent.append(value)

    def release(self) -> None:
        """Give each run's parameters storage of their own again, and its optimiser its state."""
        with torch.no_grad():
            for parameters in self.own:
                for name in self.names:
                    parameters[name].data = parameters[name].data.clone()
                    parameters[name].grad = None
        if self.ema is not None:
            self.ema.release()
        if self.optimizer is not None:
            self.optimizer.release()


class _StackedEMA:
    """Every member's EMA (ema_pytorch's, as ``training.ema`` makes them) updated as one: the library's own update
    on the stacked weights, its lerp elementwise, so each member's slice moves as its own EMA would move it (the
    bit-identity tests compare the stored EMA weights). Each member's EMA weights become views of their slices,
    and its step counter follows the stacked one's."""

    #: The settings of an EMA that decide its update, all equal across members for one update to serve them all.
    SETTINGS = ("beta", "update_after_step", "update_every", "inv_gamma", "power", "min_value", "use_foreach")

    def __init__(self, members: Sequence[Member], online: Mapping[str, torch.Tensor]) -> None:
        """``online``: the stacked weights and buffers the members' EMAs follow, under the network's names."""
        from ema_pytorch import EMA

        self.emas = [m.ema for m in members]
        first = self.emas[0]
        self.own = [{**dict(e.ema_model.named_parameters()), **dict(e.ema_model.named_buffers())} for e in self.emas]
        with torch.no_grad():
            self.stacked = {name: torch.stack([own[name] for own in self.own]) for name in self.own[0]}
            for i, own in enumerate(self.own):
                for name, tensor in own.items():
                    tensor.data = self.stacked[name].data[i]
        buffers = [name for name, _ in first.ema_model.named_buffers()]
        settings = {key: getattr(first, key) for key in self.SETTINGS}
        self.ema = EMA(  # two holders filled in one order: the library pairs their tensors by it
            _holder({name: online[name] for name in self.stacked}, buffers),
            ema_model=_holder(self.stacked, buffers),
            include_online_model=False,
            **settings,
        )
        self.ema.step.copy_(first.step)
        self.ema.initted.copy_(first.initted)

    @classmethod
    def of(cls, members: Sequence[Member], online: Mapping[str, torch.Tensor]) -> _StackedEMA | None:
        """The stacked EMA of ``members`` when each has one and one update serves them all, else None (each
        member updates its own)."""
        emas = [m.ema for m in members]
        if any(e is None for e in emas) or len(members) < 2:
            return None

        def how(e: Any) -> tuple[Any, ...]:
            plain = (
                not (e.ignore_names or e.ignore_startswith_names or e.param_or_buffer_names_no_ema)
                and e.update_model_with_ema_every is None
                and not (e.allow_different_devices or e.coerce_dtype)
            )
            names = [name for name, _ in e.ema_model.named_parameters()]
            return (type(e), plain, names, int(e.step), bool(e.initted), *(getattr(e, k) for k in cls.SETTINGS))

        first = how(emas[0])
        weights = [name for name, _ in members[0].network.named_parameters()]
        if not first[1] or first[2] != weights or any(how(e) != first for e in emas[1:]):
            return None
        return cls(members, online)

    def update(self) -> None:
        self.ema.update()

    def release(self) -> None:
        """Each member's EMA weights get storage of their own again, and its step counter the stacked one's."""
        with torch.no_grad():
            for e, own in zip(self.emas, self.own, strict=True):
                for tensor in own.values():
                    tensor.data = tensor.data.clone()
                e.step.copy_(self.ema.step)
                e.initted.copy_(self.ema.initted)


def _holder(tensors: Mapping[str, torch.Tensor], buffers: Sequence[str]) -> nn.Module:
    """A module holding ``tensors`` (sharing their storage) under their names, those in ``buffers`` as buffers:
    what ema_pytorch reads and writes through ``named_parameters`` and ``named_buffers``, which it pairs by order, so
    two holders filled in the same order pair up."""
    holder = nn.Module()
    for name, tensor in tensors.items():
        *path, leaf = name.split(".")
        module = holder
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        if name in buffers:
            module.register_buffer(leaf, tensor)
        else:
            module.register_parameter(leaf, nn.Parameter(tensor, requires_grad=False))
    return holder


class _JointAdam:
    """Every member's fused Adam in one optimiser step. A parameter whose per-member size is a multiple of
    ``ALIGNED_ROWS`` is stepped as its stacked tensor, with the members' Adam state stacked: the fused kernel's vector
    loop then rounds each member's slice as alone. Its scalar tail rounds apart from the vector loop, so parameters of
    other sizes (and any whose members' step counts differ) are stepped as each member's own tensor, sharing the
    member's state (the kernel works tensor by tensor)."""

    def __init__(
        self,
        optimizers: Sequence[torch.optim.Optimizer],
        own: Sequence[Mapping[str, torch.Tensor]],
        stacked: Mapping[str, torch.Tensor],
    ) -> None:
        self.optimizers, self.own, self.stacked = optimizers, own, stacked
        states = {name: [o.state.get(p[name], {}) for o, p in zip(optimizers, own, strict=True)] for name in stacked}
        self.together = [
            name
            for name, tensor in stacked.items()
            if tensor[0].numel() % ALIGNED_ROWS == 0 and _same_steps(states[name])
        ]
        self.apart = [name for name in stacked if name not in self.together]
        #: Where each parameter stepped apart stands in a member's gradients (which follow ``stacked``'s order).
        self.apart_at = [(name, list(stacked).index(name)) for name in self.apart]
        parameters = [stacked[name] for name in self.together] + [p[name] for p in own for name in self.apart]
        settings = {k: v for k, v in optimizers[0].param_groups[0].items() if k != "params"}
        self.optimizer = torch.optim.Adam(parameters, **settings)
        with torch.no_grad():
            for name in self.together:
                first = states[name][0]
                if first:
                    self.optimizer.state[stacked[name]] = {
                        key: value.clone() if key == "step" else torch.stack([s[key] for s in states[name]])
                        for key, value in first.items()
                    }
        for o, p in zip(optimizers, own, strict=True):
            for name in self.apart:
                if p[name] in o.state:
                    self.optimizer.state[p[name]] = o.state[p[name]]

    @classmethod
    def of(
        cls, members: Sequence[Member], own: Sequence[Mapping[str, torch.Tensor]], stacked: Mapping[str, torch.Tensor]
    ) -> _JointAdam | None:
        """The joint Adam of ``members`` when each has a one-group fused Adam over its network's parameters with the
        same settings, else None (each member's optimiser steps on its own)."""
        optimizers = [m.optimizer for m in members]
        if not all(type(o) is torch.optim.Adam and len(o.param_groups) == 1 for o in optimizers):
            return None
        settings = [{k: v for k, v in o.param_groups[0].items() if k != "params"} for o in optimizers]
        if not settings[0].get("fused") or any(s != settings[0] for s in settings):
            return None
        if any(
            {id(t) for t in o.param_groups[0]["params"]} != {id(t) for t in p.values()}
            for o, p in zip(optimizers, own, strict=True)
        ):
            return None
        return cls(optimizers, own, stacked)

    def step(self, slices: Sequence[Sequence[torch.Tensor]]) -> None:
        """Step every member; ``slices[i]`` are member i's gradients, in the order of the stacked parameters."""
        for name, k in self.apart_at:
            for p, grads in zip(self.own, slices, strict=True):
                p[name].grad = grads[k]
        self.optimizer.step()

    def release(self) -> None:
        """Give each member's optimiser its own state again."""
        with torch.no_grad():
            for i, (o, p) in enumerate(zip(self.optimizers, self.own, strict=True)):
                for name in self.together:
                    state = self.optimizer.state.get(self.stacked[name])
                    if state:
                        o.state[p[name]] = {
                            key: value.clone() if key == "step" else value[i].clone() for key, value in state.items()
                        }
                for name in self.apart:
                    if p[name] in self.optimizer.state:
                        o.state[p[name]] = self.optimizer.state[p[name]]
                # in the order the solo Adam creates its state, its parameters' order: state_dict() and the
                # checkpoint file written from it follow this order, so the file is the solo run's, byte for byte
                ordered = [(q, o.state[q]) for group in o.param_groups for q in group["params"] if q in o.state]
                o.state.clear()
                o.state.update(ordered)


def _same_steps(states: Sequence[Mapping[str, torch.Tensor]]) -> bool:
    """Whether members' Adam states of one parameter are all fresh, or all at the same step."""
    if not any(states):
        return True
    return all(s and torch.equal(s["step"], states[0]["step"]) for s in states)


def _clip_each(grads: Sequence[torch.Tensor], slices: Sequence[Sequence[torch.Tensor]], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_(..., foreach=True)`` on each replica's slices of the stacked gradients
    (``slices[i]``: replica i's views of ``grads``), operation for operation: each replica's norm is its own."""
    norms = torch._foreach_norm([g for one in slices for g in one], 2.0)
    totals = torch.stack(
        [
            torch.linalg.vector_norm(torch.stack(norms[i * len(grads) : (i + 1) * len(grads)]), 2.0)
            for i in range(len(slices))
        ]
    )
    coefficients = torch.clamp(max_norm / (totals + 1e-6), max=1.0)
    for grad in grads:
        grad.mul_(coefficients.view(-1, *[1] * (grad.dim() - 1)))
