"""The training loop the torch families share: gradient clipping and the optimiser it builds."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmark.torch_support.training import adam, train  # noqa: E402


def quadratic_run(max_grad_norm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """One SGD step (lr 1) on |w - target|^2 from w = 0: returns (update, gradient)."""
    target = torch.tensor([30.0, 40.0])  # gradient at w = 0 is -2 * target, norm 100
    w = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([w], lr=1.0)
    data = torch.zeros(4, 1)
    train(
        lambda batch: ((w - target) ** 2).sum() + 0 * batch.sum(),
        optimizer,
        data,
        steps=1,
        batch_size=4,
        rng=np.random.default_rng(0),
        max_grad_norm=max_grad_norm,
    )
    return w.detach().numpy(), (-2 * target).numpy()


def test_gradients_are_clipped_to_the_given_norm_and_keep_their_direction():
    update, gradient = quadratic_run(max_grad_norm=10.0)
    np.testing.assert_allclose(np.linalg.norm(update), 10.0, rtol=1e-5)
    np.testing.assert_allclose(update / np.linalg.norm(update), -gradient / np.linalg.norm(gradient), rtol=1e-6)


def test_without_a_bound_the_full_gradient_is_applied():
    update, gradient = quadratic_run(max_grad_norm=None)
    np.testing.assert_allclose(update, -gradient, rtol=1e-6)


def test_adam_is_fused_where_torch_offers_it_and_steps_like_plain_adam():
    """The fused kernel is one implementation of the same update: after 20 steps it agrees with torch's reference
    single-tensor Adam to float32 rounding."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=generator)
    grads = [torch.randn(50, generator=generator) for _ in range(20)]
    finals = []
    for build in (lambda p: adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False)):
        w = torch.nn.Parameter(start.clone())
        optimizer = build([w])
        for g in grads:
            w.grad = g.clone()
            optimizer.step()
        finals.append(w.detach().numpy())
    assert adam([torch.nn.Parameter(start.clone())], lr=1e-2).defaults["fused"] is True  # on this torch and CPU
    np.testing.assert_allclose(finals[0], finals[1], rtol=0, atol=1e-6)
