"""The ``flow`` family (normflows): its architectures, an exact density, training, temperature, scaling (what every
torch family does, images, warm start, checkpoints, seeds, devices, resume, is in tests/test_torch_families.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import write_grid
from test_torch_families import torch_family

from benchmark.api.plugins import PLUGINS_ENV
from plugins.datasets.toy import EightGaussians
from plugins.families.flows import ALPHA, ARCHITECTURES, MAX_LOG_SCALE, FlowFamily

FLOW = torch_family("flow")
needs_flows = pytest.mark.skipif(bool(FlowFamily.missing_requirements()), reason=FLOW.unavailable)
model_for = FLOW.model


def vectors(n: int, seed: int) -> np.ndarray:
    return EightGaussians().draw(n, np.random.default_rng(seed))


@needs_flows
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_fits_samples_and_scores_vectors(architecture):
    x = vectors(300, 0)
    model = model_for(x, architecture=architecture)
    stats = model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert set(stats) == {"loss"} and math.isfinite(stats["loss"])
    samples = model.sample(123, np.random.default_rng(2))
    assert samples.shape == (123, 2) and samples.dtype == np.float64 and np.all(np.isfinite(samples))
    log_p = model.log_prob(x[:50])
    assert log_p.shape == (50,) and log_p.dtype == np.float64 and np.all(np.isfinite(log_p))


@needs_flows
@pytest.mark.parametrize("kind", ["vector", "image"])
def test_scaling_round_trips_and_the_density_integrates_to_one(kind):
    """encode/decode invert each other, and the data-space density (flow + preprocessing Jacobian) has mass 1."""
    import torch

    rng = np.random.default_rng(0)
    if kind == "vector":
        data = 3.0 + 2.0 * rng.standard_normal((300, 1)) ** 3  # skewed, far from standard
    else:
        data = rng.beta(2.0, 5.0, size=(300, 1, 1, 1))
    model = model_for(data, kind=kind, architecture="nsf-autoregressive")  # a spline: non-linear even in 1-D
    model.fit(data, warm_start=False, rng=np.random.default_rng(1))

    flat = torch.as_tensor(data.reshape(len(data), -1), dtype=torch.float32)
    z, _ = model.encode(flat)
    np.testing.assert_allclose(model.decode(z).numpy(), flat.numpy(), atol=1e-5)

    if kind == "vector":  # the whole real line, practically
        grid = np.linspace(data.min() - 40, data.max() + 40, 400_001)
    else:  # the logit map's whole domain: u = ALPHA + (1 - 2 ALPHA) x in (0, 1)
        low, high = -ALPHA / (1 - 2 * ALPHA), (1 - ALPHA) / (1 - 2 * ALPHA)
        grid = np.linspace(low, high, 400_001)[1:-1]
    density = np.exp(model.log_prob(grid.reshape(-1, *data.shape[1:])))
    # trapezoid error is O(h^2) and float32 evaluation ~1e-6 relative: 1e-3 is far above both
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)


@needs_flows
def test_test_nll_falls_with_training_on_2d_data():
    train, test = vectors(1000, 0), vectors(2000, 1)
    short = model_for(train, depth=4, hidden=32, steps=5)
    long = model_for(train, depth=4, hidden=32, steps=150)
    for model in (short, long):
        model.fit(train, warm_start=False, rng=np.random.default_rng(2))
    # paired per-point gain in log-likelihood; it must exceed 3 standard errors of its mean (one-sided p < 0.0014)
    gain = long.log_prob(test) - short.log_prob(test)
    assert gain.mean() > 3 * gain.std(ddof=1) / math.sqrt(len(gain))


@needs_flows
def test_temperature_scales_the_base_draws_and_leaves_the_density_alone():
    import torch

    x = vectors(300, 0)
    warm = model_for(x)
    warm.fit(x, warm_start=False, rng=np.random.default_rng(1))
    cool = model_for(x, temperature=0.5)
    cool.load_state_dict(warm.state_dict())
    before = cool.log_prob(x[:50])

    def base_draws(model) -> np.ndarray:
        # the same sampling stream, mapped back through the flow to its base space
        samples = torch.as_tensor(model.sample(200, np.random.default_rng(3)), dtype=torch.float32)
        with torch.no_grad():
            return model.flow.inverse(model.encode(samples)[0]).double().numpy()

    # a float32 round trip through 2 coupling layers: agreement to 1e-3 of the draws' scale
    np.testing.assert_allclose(base_draws(cool), 0.5 * base_draws(warm), atol=1e-3)
    assert np.array_equal(cool.log_prob(x[:50]), before), "sampling at a temperature changed the density"
    assert np.array_equal(cool.log_prob(x[:50]), warm.log_prob(x[:50]))


MISSING_PLUGIN = """
from benchmark import hookimpl
from plugins.families.flows import FlowFamily


class FlowNeedingMissing(FlowFamily):
    \"\"\"A flow whose library is not installed.\"\"\"

    name = "flow-missing"
    requires = ("torch", "normflows_not_installed_here")


@hookimpl
def register_model_families(register):
    register(FlowNeedingMissing)
"""


def test_the_cli_shows_a_family_missing_its_library_as_unavailable_and_refuses_its_grid(run_cli, plugin_dir, tmp_path):
    folder = plugin_dir("plug_flow_missing", MISSING_PLUGIN)
    env = {PLUGINS_ENV: "plug_flow_missing", "PYTHONPATH": str(folder)}
    code, out, err = run_cli(["list", "model"], env=env)
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.strip().startswith("flow-missing ")]
    assert line.endswith('[unavailable: needs normflows_not_installed_here: pip install "retrainbench[flows]"]')

    grid = write_grid(
        tmp_path / "g.toml",
        name="g",
        n_real=10,
        n_test=10,
        n_eval=10,
        datasets=[{"name": "moons"}],
        models=[{"name": "flow-missing"}],
        metrics=[{"name": "nll"}],
    )
    code, out, err = run_cli(["run", grid, "--store", tmp_path / "store", "--executor", "inline"], env=env)
    assert code == 2
    assert err.strip() == (
        f"retrainbench: error: {grid}: models[0].name: model 'flow-missing' is unavailable: "
        'needs normflows_not_installed_here: pip install "retrainbench[flows]"'
    )
    assert not (tmp_path / "store").exists()


@needs_flows
def test_coupling_log_scales_are_bounded_so_huge_weights_cannot_overflow():
    """Coupling networks blown up by one large gradient (output layers x 1e4) leave log_prob finite: each layer's
    log-scale is soft-clamped to MAX_LOG_SCALE, so the log-determinant is bounded too (version 1 exponentiated the
    raw output, which overflowed to inf and made the density NaN)."""
    import torch

    x = vectors(300, 0)
    model = model_for(x, depth=4)
    model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    outputs = [
        [m for m in module.modules() if isinstance(m, torch.nn.Linear)][-1]
        for module in model.flow.modules()
        if type(module).__name__ == "AffineCoupling"
    ]
    assert len(outputs) == 4
    with torch.no_grad():
        for layer in outputs:
            layer.weight.normal_(generator=torch.Generator().manual_seed(0)).mul_(1e4)
    points = torch.as_tensor(x[:100], dtype=torch.float32)
    with torch.no_grad():
        z, log_det = model.flow.inverse_and_log_det(model.encode(points)[0])
    assert torch.all(torch.isfinite(z)) and torch.all(torch.isfinite(log_det))
    assert float(log_det.abs().max()) <= 4 * MAX_LOG_SCALE * 1 + 1e-3  # 4 couplings, each scaling 1 coordinate
    assert np.all(np.isfinite(model.log_prob(x[:100])))


@needs_flows
def test_the_scaling_is_the_real_data_s_and_a_cold_refit_on_other_data_keeps_it():
    import torch

    real = vectors(300, 0)
    model = model_for(real)
    expected = (real.mean(0), real.std(0, ddof=1))
    for data, warm in ((real, False), (5 * real + 7, False), (5 * real + 7, True)):
        model.fit(data, warm_start=warm, rng=np.random.default_rng(1))
        np.testing.assert_allclose(model.shift.numpy(), expected[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(model.scale.numpy(), expected[1], rtol=1e-5)
    assert isinstance(model.shift, torch.Tensor)
