"""Seeds trained together (``batch_seeds``): every run's numbers, checkpoints and outcome are those it gets alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import grid_doc

from benchmark.report.leaderboard import results_frame
from benchmark.run import checkpoint
from benchmark.run.harness import GroupTask, RunTask, plan_tasks, run_grid
from benchmark.run.spec import parse_grid
from benchmark.run.store import RunStatus, Store
from plugins.families.cfm import CFMFamily, CFMModel
from plugins.families.diffusion import DDPMFamily, DDPMModel
from plugins.families.edm import EDMFamily, EDMModel
from plugins.families.flows import FlowFamily, FlowModel

#: The families that train seeds together, each skipped where its libraries are missing.
BATCHED_FAMILIES = [
    pytest.param(family.name, marks=pytest.mark.skipif(bool(family.missing_requirements()), reason=family.install_hint))
    for family in (FlowFamily, DDPMFamily, EDMFamily, CFMFamily)
]

#: Minibatches of 32 points (a multiple of ALIGNED_ROWS), so the seeds do stack.
MODELS = {
    "flow": {"name": "flow", "params": {"depth": 2, "hidden": 16, "batch_size": 32}},
    "ddpm": {
        "name": "ddpm",
        "params": {"width": 16, "depth": 1, "timesteps": 50, "sampling_timesteps": 5, "batch_size": 32},
    },
    "edm": {"name": "edm", "params": {"width": 16, "depth": 1, "sampling_steps": 4, "batch_size": 32}},
    "cfm": {"name": "cfm", "params": {"width": 16, "depth": 1, "sampling_steps": 4, "batch_size": 32}},
}


#: Three policies whose training sets differ in size and content (100, 200 and 100 points at generation 1).
POLICIES = [{"name": "mix", "params": {"lambda": 0.5}}, {"name": "accumulate"}, {"name": "replace"}]


def tiny_grid(
    registry,
    family: str,
    *,
    generations: int = 1,
    seeds=(0, 1, 2),
    batch_seeds: bool = True,
    policies=POLICIES[:1],
    **more,
):
    doc = grid_doc(
        name=f"batched-{family}",
        generations=generations,
        seeds=list(seeds),
        n_real=100,
        n_test=100,
        n_eval=100,
        train_steps=15,
        batch_seeds=batch_seeds,
        datasets=[{"name": "eight-gaussians"}],
        models=[MODELS[family]],
        policies=list(policies),
        metrics=[{"name": "mean-distance"}, *([{"name": "nll"}] if family == "flow" else [])],
        **more,
    )
    return parse_grid(doc, registry)


def run(registry, grid, store: Store):
    return run_grid(grid, store, registry.get("executor", "inline").component(), registry, progress=False)


def numbers(store: Store):
    """results.csv's rows without wall-clock columns, ordered by run and generation."""
    frame = results_frame(store)
    frame = frame[[c for c in frame.columns if "seconds" not in c]]
    return frame.sort_values(list(frame.columns[:6])).reset_index(drop=True)


def checkpoints(store: Store, grid) -> tuple[dict, Any]:
    import torch

    out = {}
    for r in grid.runs:
        for g in store.finished_generations(r.run_id):
            state = checkpoint.load(store.run_dir(r.run_id) / f"gen-{g:04d}", "model")
            out[(r.run_id, g)] = state
    assert out and all(isinstance(v, dict) for v in out.values())
    return out, torch


def assert_same_tensors(a, b, torch) -> None:
    from benchmark.torch_support.batched import same_bits

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and same_bits(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tensors(a[k], b[k], torch)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tensors(x, y, torch)
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b)
    else:
        assert a == b


def plan(registry, grid, *, batch_seeds: bool = True, workers: int = 1) -> list[int]:
    """Runs per task."""
    tasks = plan_tasks(
        list(grid.runs),
        registry,
        batch_seeds=batch_seeds,
        make_run=lambda r: RunTask("s", r.describe()),
        make_group=lambda g: GroupTask("s", tuple(r.describe() for r in g)),
        workers=workers,
    )
    return [len(t.runs) if isinstance(t, GroupTask) else 1 for t in tasks]


def test_seeds_of_a_configuration_share_tasks_only_where_the_family_opts_in(registry, monkeypatch):
    flows = tiny_grid(registry, "flow", seeds=range(10))
    assert plan(registry, flows) == [8, 2]  # CPU_GROUP = 8 runs at most on a CPU
    assert plan(registry, flows, workers=4) == [3, 3, 3, 1]  # a task for each worker
    assert plan(registry, flows, batch_seeds=False) == [1] * 10
    assert plan(registry, parse_grid(grid_doc(seeds=[0, 1, 2]), registry)) == [1] * 3  # `gaussian` fits alone
    # the policies of a configuration too, where the family declares it (every torch family does)
    policies = tiny_grid(registry, "flow", seeds=(0, 1), policies=POLICIES)
    assert plan(registry, policies) == [6]
    monkeypatch.setattr(FlowFamily, "trains_together_across", ())
    assert plan(registry, policies) == [2, 2, 2]  # seeds only


@pytest.mark.parametrize("family", BATCHED_FAMILIES)
def test_batched_seeds_store_what_one_run_at_a_time_stores(registry, tmp_path, family):
    """Bit-identity: results.csv rows, every checkpoint tensor and the galleries, batched vs ``batch_seeds = false``;
    2 seeds of 3 policies, whose training sets differ in size, in one group."""
    grids = [tiny_grid(registry, family, seeds=(0, 1), policies=POLICIES, batch_seeds=b) for b in (True, False)]
    together, alone = grids
    assert plan(registry, together) == [6]  # the family trains the seeds and policies together
    assert [r.run_id for r in together.runs] == [r.run_id for r in alone.runs]  # the setting is no part of a run's id
    batched, solo = Store(tmp_path / "batched"), Store(tmp_path / "solo")
    assert run(registry, together, batched).counts == {RunStatus.DONE: 6}
    assert run(registry, alone, solo).counts == {RunStatus.DONE: 6}
    assert numbers(batched).equals(numbers(solo))
    (a, torch), (b, _) = checkpoints(batched, together), checkpoints(solo, alone)
    assert a.keys() == b.keys() and len(a) == 12
    assert_same_tensors(a, b, torch)
    for r in together.runs:  # the files too, byte for byte (torch.save writes a state's entries in their order)
        for g in (0, 1):
            files = [s.run_dir(r.run_id) / f"gen-{g:04d}" / "model.pt" for s in (batched, solo)]
            assert files[0].read_bytes() == files[1].read_bytes()


@pytest.mark.skipif(bool(DDPMFamily.missing_requirements()), reason=DDPMFamily.install_hint)
def test_a_batched_step_updates_every_seeds_adam_state_and_ema_in_one_call(monkeypatch):
    """What makes seeds together cheap, counted (not timed): 3 seeds, 5 steps, one Adam step and one EMA update a
    step for all of them (not one per seed), and the stored weights still those of each seed's own fit."""
    import torch
    from ema_pytorch import EMA

    from benchmark import DataSplits, RunContext
    from plugins.datasets.toy import EightGaussians

    calls = {"adam": 0, "ema": 0}
    adam_step, ema_update = torch.optim.Adam.step, EMA.update

    def counted_step(self, *args, **kwargs):
        calls["adam"] += 1
        return adam_step(self, *args, **kwargs)

    def counted_update(self):
        calls["ema"] += 1
        return ema_update(self)

    family = DDPMFamily({**MODELS["ddpm"]["params"], "steps": 5})
    data = EightGaussians().draw(64, np.random.default_rng(0))
    splits = DataSplits(train=data, test=data, pool=data[:0], kind="vector")
    models = [family.create(splits, RunContext(seed=s, device="cpu", threads=1)) for s in range(3)]
    monkeypatch.setattr(torch.optim.Adam, "step", counted_step)
    monkeypatch.setattr(EMA, "update", counted_update)
    family.fit_together(models, [data] * 3, warm_start=False, rngs=[np.random.default_rng(s) for s in range(3)])
    assert calls == {"adam": 5, "ema": 5}
    monkeypatch.undo()
    alone = [family.create(splits, RunContext(seed=s, device="cpu", threads=1)) for s in range(3)]
    for s, model in enumerate(alone):
        model.fit(data, warm_start=False, rng=np.random.default_rng(s))
    for batched, solo in zip(models, alone, strict=True):
        assert_same_tensors(batched.state_dict(), solo.state_dict(), torch)


#: Each batched family's model class (whose ``member`` a test poisons).
MODEL_CLASSES: dict[str, Any] = {"flow": FlowModel, "ddpm": DDPMModel, "edm": EDMModel, "cfm": CFMModel}


@pytest.mark.parametrize("family", BATCHED_FAMILIES)
def test_a_run_that_diverges_in_a_group_is_recorded_alone_and_its_siblings_finish(
    registry, tmp_path, monkeypatch, family
):
    """One seed's training set is NaN from generation 1 on, so its loss turns NaN inside the batched model: that run
    is recorded diverged at generation 1, and the other two store what they store alone. (Every row: a single NaN
    row may never reach cfm's loss, whose OT pairs, drawn from a uniform plan once the cost is NaN, can skip it.)"""
    model_class = MODEL_CLASSES[family]
    grid = tiny_grid(registry, family)
    doomed = grid.runs[1].seed
    member = model_class.member

    def poisoned(self, data, *, warm_start, rng):
        if self.context.seed == doomed and warm_start:
            data = np.full_like(data, np.nan)
        return member(self, data, warm_start=warm_start, rng=rng)

    monkeypatch.setattr(model_class, "member", poisoned)
    store = Store(tmp_path / "batched")
    outcomes = {o.run_id: o for o in run(registry, grid, store).outcomes}
    diverged = outcomes[grid.runs[1].run_id]
    assert diverged.status is RunStatus.DIVERGED and "non-finite training loss at generation 1" in diverged.reason
    assert store.finished_generations(diverged.run_id) == [0]
    assert [outcomes[r.run_id].status for r in grid.runs if r.seed != doomed] == [RunStatus.DONE] * 2

    siblings = [r.seed for r in grid.runs if r.seed != doomed]
    solo = Store(tmp_path / "solo")
    run(registry, tiny_grid(registry, family, seeds=siblings, batch_seeds=False), solo)
    kept = numbers(store)
    assert kept[kept["seed"] != doomed].reset_index(drop=True).equals(numbers(solo))


@pytest.mark.skipif(bool(FlowFamily.missing_requirements()), reason=FlowFamily.install_hint)
def test_a_run_whose_fit_raises_in_a_group_fails_alone_and_its_siblings_store_what_they_store_alone(
    registry, tmp_path, monkeypatch, capsys
):
    """One seed's fit raises from generation 1 on. The batched fit cannot say whose error it is, so the group goes on
    one run at a time from generation 1: that run fails with its own error and traceback, the others finish with the
    numbers and checkpoints they get alone. (The mechanism is the harness's; one family shows it.)"""
    grid = tiny_grid(registry, "flow", generations=2)
    doomed = grid.runs[1].seed
    member = FlowModel.member

    def poisoned(self, data, *, warm_start, rng):
        if self.context.seed == doomed and warm_start:
            raise RuntimeError("a plugin bug in one seed")
        return member(self, data, warm_start=warm_start, rng=rng)

    monkeypatch.setattr(FlowModel, "member", poisoned)
    store = Store(tmp_path / "batched")
    outcomes = {o.run_id: o for o in run(registry, grid, store).outcomes}
    failed = outcomes[grid.runs[1].run_id]
    assert failed.status is RunStatus.FAILED and failed.reason == "RuntimeError: a plugin bug in one seed"
    assert "a plugin bug in one seed" in store.status(failed.run_id)["traceback"]
    assert store.finished_generations(failed.run_id) == [0]
    assert [outcomes[r.run_id].status for r in grid.runs if r.seed != doomed] == [RunStatus.DONE] * 2
    note = capsys.readouterr().err
    assert "the batched fit raised at generation 1 (RuntimeError: a plugin bug in one seed)" in note
    assert "its runs go on one by one" in note

    siblings = [r.seed for r in grid.runs if r.seed != doomed]
    solo_grid = tiny_grid(registry, "flow", generations=2, seeds=siblings, batch_seeds=False)
    solo = Store(tmp_path / "solo")
    run(registry, solo_grid, solo)
    kept = numbers(store)
    assert kept[kept["seed"] != doomed].reset_index(drop=True).equals(numbers(solo))
    batched_checkpoints, torch = checkpoints(store, solo_grid)
    assert_same_tensors(batched_checkpoints, checkpoints(solo, solo_grid)[0], torch)


@pytest.mark.parametrize("family", BATCHED_FAMILIES)
def test_a_group_resumed_after_a_kill_equals_an_uninterrupted_one(registry, tmp_path, family):
    """A store killed mid-group (2 seeds of 3 policies; seed 0 of accumulate at generation 2, the others at
    generation 1) resumes in sub-groups to the numbers and checkpoints of an uninterrupted batched grid."""
    whole, cut = Store(tmp_path / "whole"), Store(tmp_path / "cut")

    def grid(generations: int, seeds=(0, 1), policies=POLICIES, batch_seeds: bool = True):
        return tiny_grid(
            registry, family, generations=generations, seeds=seeds, policies=policies, batch_seeds=batch_seeds
        )

    run(registry, grid(2), whole)
    run(registry, grid(1), cut)  # the group stopped after generation 1
    run(registry, grid(2, seeds=[0], policies=POLICIES[1:2], batch_seeds=False), cut)
    resumed = run(registry, grid(2), cut)
    assert resumed.counts == {RunStatus.DONE: 6}
    assert numbers(cut).equals(numbers(whole))
    whole_grid = grid(2)
    (a, torch), (b, _) = checkpoints(cut, whole_grid), checkpoints(whole, whole_grid)
    assert_same_tensors(a, b, torch)


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("family", BATCHED_FAMILIES)
def test_the_default_model_fitted_together_ends_as_each_seeds_own_fit(family, dim, registry):
    """The families' default networks and minibatches (the tiny grids above use smaller ones) on 1-, 2- and 3-D
    points (an odd dimension splits a coupling unevenly; one input feature takes the exact one-input form): a
    harness group of seeds fitted together, cold then warm, ends with each seed's own weights, optimiser state, EMA
    and statistics, bit for bit."""
    import torch

    from benchmark import DataSplits, ModelFamily, RunContext
    from benchmark.run.harness import CPU_GROUP

    component = registry.component(ModelFamily, family)({"steps": 4})
    data = np.random.default_rng(dim).normal(size=(300, dim)) * [1.0, 3.0, 0.5][:dim]
    splits = DataSplits(train=data, test=data, pool=data[:0], kind="vector")
    seeds = range(CPU_GROUP)

    def fitted(together: bool) -> list[Any]:
        models = [component.create(splits, RunContext(seed=s, device="cpu", threads=1)) for s in seeds]
        statistics = []
        for warm_start in (False, True):
            rngs = [np.random.default_rng([s, warm_start]) for s in seeds]
            if together:
                datasets = [data] * len(models)
                statistics.append(component.fit_together(models, datasets, warm_start=warm_start, rngs=rngs))
            else:
                statistics.append(
                    [m.fit(data, warm_start=warm_start, rng=r) for m, r in zip(models, rngs, strict=True)]
                )
        return [statistics, [m.state_dict() for m in models]]

    batched, alone = fitted(True), fitted(False)
    assert batched[0] == alone[0]
    assert_same_tensors(batched[1], alone[1], torch)


@pytest.mark.parametrize("shape", [(256, 1, 64), (256, 64, 64), (256, 64, 2), (40, 1, 7), (64, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_the_batched_linear_form_chosen_for_a_shape_is_exact_on_inputs_it_was_not_chosen_on(shape, bias):
    """``batched_linear_form`` picks each form on one draw of random inputs; on another draw, the picked form's
    products and gradients (under vmap, and on stacked tensors through ``stacked_linear``, its input a column slice
    as a coupling layer's is) still equal each replica's solo ones bit for bit."""
    torch = pytest.importorskip("torch")
    from torch.func import vmap

    from benchmark.torch_support import batched

    rows, inputs, outputs = shape
    generator = torch.Generator().manual_seed(12345)
    x = torch.randn(4, rows, inputs + 1, generator=generator)[..., 1:]  # strided, as z.chunk(2, dim=2) gives
    tensors = [x, *(torch.randn(4, *s, generator=generator) for s in ((outputs, inputs), (outputs,)))]
    tensors = tensors if bias else tensors[:2]
    upstream = torch.randn(4, rows, outputs, generator=generator)

    def run(function, arguments, grad):
        leaves = [t.detach().requires_grad_() for t in arguments]
        out = function(*leaves) if bias else function(*leaves, None)
        out.backward(grad)
        return [out.detach(), *(t.grad for t in leaves)]

    solo = [run(torch.nn.functional.linear, [t[i] for t in tensors], upstream[i]) for i in range(4)]
    form = batched._VMAP_FORMS[batched.batched_linear_form(rows, inputs, outputs, 4, "cpu", bias=bias)]
    for function in (vmap(form, in_dims=(0, 0, 0 if bias else None)), batched.stacked_linear):
        together = run(function, tensors, upstream)
        for i, one in enumerate(solo):
            assert all(batched.same_bits(mine[i], theirs) for mine, theirs in zip(together, one, strict=True))


@pytest.mark.skipif(bool(FlowFamily.missing_requirements()), reason=FlowFamily.install_hint)
def test_the_flows_stacked_loss_refuses_a_network_it_does_not_spell_out():
    """The flow's loss on stacked tensors spells out build_flow's RealNVP; another architecture is refused when the
    loss is made, before any training, not computed as if it were a RealNVP."""
    from plugins.families.flows import _stacked_loss, build_flow

    _stacked_loss(build_flow("realnvp", 2, 2, 8, 1))  # the structure it knows
    with pytest.raises(TypeError, match="has no stacked form"):
        _stacked_loss(build_flow("maf", 2, 2, 8, 1))
    other_scaling = build_flow("realnvp", 2, 2, 8, 1)
    other_scaling.flows[0].flows[1].scale_map = "sigmoid"
    with pytest.raises(TypeError, match=r"flow layer flows\.0 \(AffineCouplingBlock\) is not a coupling block"):
        _stacked_loss(other_scaling)


def _refused_networks() -> list[Any]:
    """Per family with a stacked loss, networks that loss does not spell out (built when the test runs)."""

    def ddpm_predicting_v():
        from denoising_diffusion_pytorch import GaussianDiffusion1D

        from plugins.families.diffusion import _mlp_denoiser

        return GaussianDiffusion1D(_mlp_denoiser()(2, 8, 1), seq_length=1, timesteps=10, objective="pred_v")

    def edm_with_a_unet():
        from denoising_diffusion_pytorch import ElucidatedDiffusion, Unet

        unet = Unet(dim=8, dim_mults=(1,), channels=1, learned_sinusoidal_cond=True, learned_sinusoidal_dim=16)
        return ElucidatedDiffusion(unet, image_size=8, channels=1)

    def cfm_with_another_module():
        from torch import nn

        return nn.Linear(2, 2)

    return [
        pytest.param("diffusion", ddpm_predicting_v, "not the vector one", id="ddpm"),
        pytest.param("diffusion", cfm_with_another_module, "not the vector one", id="ddpm-not-a-diffusion"),
        pytest.param("edm", edm_with_a_unet, "not the vector MLP", id="edm"),
        pytest.param("edm", cfm_with_another_module, "not the vector MLP", id="edm-not-a-diffusion"),
        pytest.param("cfm", cfm_with_another_module, "has no stacked form", id="cfm"),
    ]


@pytest.mark.parametrize(("module", "network", "message"), _refused_networks())
def test_a_familys_stacked_loss_refuses_a_network_it_does_not_spell_out(module, network, message):
    """ddpm's, edm's and cfm's losses on stacked tensors spell out their vector networks; another network is
    refused when the loss is made, not computed as if it were theirs."""
    pytest.importorskip("denoising_diffusion_pytorch")
    pytest.importorskip("torchcfm")
    import importlib

    with pytest.raises(TypeError, match=message):
        importlib.import_module(f"plugins.families.{module}")._stacked_loss(network())


@pytest.mark.skipif(bool(DDPMFamily.missing_requirements()), reason=DDPMFamily.install_hint)
@pytest.mark.parametrize("dim", [1, 3])
def test_a_loss_written_for_one_member_trains_each_seed_as_alone_under_vmap(dim):
    """The path for a family that does not spell its network out on stacked tensors: ``loss_of``, one member's
    loss (here the DDPM library's own forward), run under vmap for the group. 8 seeds of the default denoiser
    fitted together, cold then warm, end with each seed's own weights, optimiser state and EMA, bit for bit."""
    import torch

    from benchmark import DataSplits, RunContext
    from benchmark.run.harness import CPU_GROUP
    from benchmark.torch_support.batched import fit_models_together
    from plugins.families.diffusion import _draws

    family = DDPMFamily({"steps": 4})
    data = np.random.default_rng(dim).normal(size=(300, dim))
    splits = DataSplits(train=data, test=data, pool=data[:0], kind="vector")

    def library_loss(diffusion, batch, times, noise):
        return diffusion(batch, times=times, noise=noise)

    def fitted(together: bool) -> list[Any]:
        models = [family.create(splits, RunContext(seed=s, device="cpu", threads=1)) for s in range(CPU_GROUP)]
        for warm_start in (False, True):
            rngs = [np.random.default_rng([s, warm_start]) for s in range(CPU_GROUP)]
            if together:
                fit_models_together(
                    models,
                    [data] * CPU_GROUP,
                    rngs,
                    warm_start=warm_start,
                    batched=True,
                    loss_of=library_loss,
                    batch_size=family.params["batch_size"],
                    draws=_draws,
                )
            else:
                for model, rng in zip(models, rngs, strict=True):
                    model.fit(data, warm_start=warm_start, rng=rng)
        return [m.state_dict() for m in models]

    assert_same_tensors(fitted(True), fitted(False), torch)


@pytest.mark.skipif(bool(CFMFamily.missing_requirements()), reason=CFMFamily.install_hint)
def test_runs_on_several_torch_threads_fit_one_by_one_and_end_as_alone(registry):
    """Torch splits a large elementwise operation over its threads at offsets set by the whole tensor, which can
    fall inside a vector and round apart: 5 default cfm members on 3 threads differed from their solo fits in 134
    of 335 tensors when stacked. On more than one thread the family fits them one by one, exactly as alone, and
    ``train_together`` refuses to run."""
    import torch

    from benchmark import DataSplits, ModelFamily, RunContext
    from benchmark.torch_support.batched import train_together

    component = registry.component(ModelFamily, "cfm")({"steps": 3})
    data = np.random.default_rng(2).normal(size=(300, 2))
    splits = DataSplits(train=data, test=data, pool=data[:0], kind="vector")

    def fitted(together: bool) -> list[Any]:
        models = [component.create(splits, RunContext(seed=s, device="cpu", threads=3)) for s in range(5)]
        rngs = [np.random.default_rng(s) for s in range(5)]
        if together:
            statistics = component.fit_together(models, [data] * 5, warm_start=False, rngs=rngs)
        else:
            statistics = [m.fit(data, warm_start=False, rng=r) for m, r in zip(models, rngs, strict=True)]
        return [statistics, [m.state_dict() for m in models]]

    try:
        batched, alone = fitted(True), fitted(False)
        assert batched[0] == alone[0]
        assert_same_tensors(batched[1], alone[1], torch)
        with pytest.raises(ValueError, match="train_together on 3 torch threads"):
            train_together([], lambda *a: None, steps=1, batch_size=32)
    finally:
        torch.set_num_threads(1)  # as the test session runs


@pytest.mark.skipif(bool(FlowFamily.missing_requirements()), reason=FlowFamily.install_hint)
def test_a_grid_whose_runs_get_several_threads_says_they_fit_one_by_one(registry, tmp_path, monkeypatch, capsys):
    """An executor giving each run more than one torch thread (``--workers 1`` on a machine of several cores)
    gets no batched training: the grid says so once, and its runs still finish."""
    from benchmark.executors.inline import InlineExecutor

    monkeypatch.setattr(InlineExecutor, "threads_per_run", 2, raising=False)
    try:
        summary = run(registry, tiny_grid(registry, "flow", seeds=(0, 1)), Store(tmp_path / "store"))
    finally:
        import torch

        torch.set_num_threads(1)  # as the test session runs
    assert summary.counts == {RunStatus.DONE: 2}
    assert capsys.readouterr().err.count("each run gets 2 torch threads, so the runs of a configuration fit one") == 1
