"""The ``cfm`` family (OT-CFM, torchcfm): OT pairs, data scaling and parameter checks (what every torch family does,
warm start, checkpoints, seeds, devices, resume, quality, is in tests/test_torch_families.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_torch_families import CONTEXT, images, splits, torch_family, vectors

from benchmark import ParamError
from benchmark.run.global_random import untouched_global_random_state
from plugins.families.cfm import CFMFamily, ot_pairs

CFM = torch_family("cfm")
needs_cfm = pytest.mark.skipif(bool(CFMFamily.missing_requirements()), reason=CFM.unavailable)
model_for = CFM.model


@needs_cfm
def test_vectors_fit_and_sample_in_data_units():
    x = vectors(300, 0)
    model = model_for(x)
    stats = model.fit(x, warm_start=False, rng=np.random.default_rng(1))
    assert set(stats) == {"loss"} and math.isfinite(stats["loss"])
    samples = model.sample(400, np.random.default_rng(2))
    assert samples.shape == (400, 2) and samples.dtype == np.float64 and np.all(np.isfinite(samples))
    # in data units: the sample mean within one data standard deviation of the data's mean in each dimension
    # (samples left standardised would sit 12 and 6 standard deviations away, at the origin)
    assert np.all(np.abs(samples.mean(0) - x.mean(0)) < x.std(0)), samples.mean(0)


@needs_cfm
def test_the_scaling_standardises_the_real_training_data_once():
    import torch

    real = vectors(200, 0)
    model = model_for(real)
    encoded = model.encode(torch.as_tensor(real, dtype=torch.float32))
    np.testing.assert_allclose(encoded.mean(0).numpy(), [0, 0], atol=1e-4)
    np.testing.assert_allclose(encoded.std(0).numpy(), [1, 1], atol=1e-4)
    np.testing.assert_allclose(model.decode(encoded).numpy(), real, rtol=1e-5, atol=1e-4)
    # a later generation's data spreads further: a cold fit must not restandardise to it
    model.fit(3 * real, warm_start=False, rng=np.random.default_rng(1))
    np.testing.assert_allclose(model.decode(encoded).numpy(), real, rtol=1e-5, atol=1e-4)

    pictures = images(50, 1)
    encoded = model_for(pictures, kind="image").encode(torch.as_tensor(pictures, dtype=torch.float32))
    np.testing.assert_allclose(encoded.numpy(), 2 * pictures - 1, atol=1e-6)


@needs_cfm
def test_pairs_are_drawn_from_the_optimal_transport_plan_by_the_rng():
    """Each drawn pair is one of the optimal assignment's (unique for points in general position)."""
    import torch
    from scipy.optimize import linear_sum_assignment
    from torchcfm.optimal_transport import OTPlanSampler

    rng = np.random.default_rng(0)
    x0, x1 = (torch.as_tensor(rng.standard_normal((40, 3)), dtype=torch.float32) for _ in range(2))
    rows, cols = linear_sum_assignment(torch.cdist(x0, x1).numpy() ** 2)
    partner = {tuple(x0[i].tolist()): tuple(x1[j].tolist()) for i, j in zip(rows, cols, strict=True)}
    with untouched_global_random_state("ot_pairs"):
        a0, a1 = ot_pairs(OTPlanSampler("exact"), x0, x1, np.random.default_rng(1))
        b0, _ = ot_pairs(OTPlanSampler("exact"), x0, x1, np.random.default_rng(1))
        c0, _ = ot_pairs(OTPlanSampler("exact"), x0, x1, np.random.default_rng(2))
    assert a0.shape == a1.shape == (40, 3)
    assert all(partner[tuple(p.tolist())] == tuple(q.tolist()) for p, q in zip(a0, a1, strict=True))
    assert a0.equal(b0) and not a0.equal(c0)


@pytest.mark.parametrize(
    ("params", "shape", "message"),
    [
        ({"width": 48}, (1, 8, 8), "cfm: width 48 is not a multiple of 32 (the UNet's GroupNorm groups)"),
        (
            {"depth": 3},
            (1, 6, 6),
            "cfm: images of 6x6 do not halve 2 times (UNet depth 3); use a smaller depth or a size divisible by 4",
        ),
    ],
)
def test_impossible_settings_are_refused_when_the_model_is_created(params, shape, message):
    with pytest.raises(ValueError) as caught:
        CFMFamily(params).create(splits(np.zeros((4, *shape)), "image"), CONTEXT)
    assert str(caught.value) == message


@pytest.mark.parametrize(("params", "message"), [({"sampling_steps": 0}, "must be >= 1"), ({"sigma": -0.1}, ">= 0")])
def test_out_of_bounds_parameters_are_refused(params, message):
    with pytest.raises(ParamError, match=message) as caught:
        CFMFamily(params)
    assert caught.value.key == next(iter(params))
