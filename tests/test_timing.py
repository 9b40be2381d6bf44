"""The time model: machine profiles, predicted seconds, objective="time", calibration."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
from bruteforce import all_plan_times
from conftest import chains
from hypothesis import given, settings
from hypothesis import strategies as st

import chainorder
from chainorder import Chain, MachineProfile, Objective, optimize
from chainorder.core.pareto import pareto_steps
from chainorder.core.profile import DEFAULT_PROFILES, default_profile
from chainorder.core.timedp import fastest_steps
from chainorder.core.timing import TimeModel, plan_time, step_times


@st.composite
def profiles(draw):
    dims = sorted(draw(st.sets(st.integers(1, 2048), min_size=1, max_size=4)))
    rates = [draw(st.floats(1e8, 1e12)) for _ in dims]
    return MachineProfile(
        "cpu",
        "drawn",
        tuple(dims),
        tuple(rates),
        bandwidth=draw(st.floats(1e8, 1e12)),
        step_overhead=draw(st.floats(0, 1e-4)),
        tangent_overhead=draw(st.floats(0, 1e-5)),
        adjoint_overhead=draw(st.floats(0, 1e-5)),
        mode_dims=(1, 64),
        tangent_factors=(draw(st.floats(0.2, 5)), draw(st.floats(0.2, 5))),
        adjoint_factors=(draw(st.floats(0.2, 5)), draw(st.floats(0.2, 5))),
        conv_dims=(4, 256),
        conv_tangent_factors=(draw(st.floats(0.5, 20)), draw(st.floats(0.5, 20))),
        conv_adjoint_factors=(draw(st.floats(0.5, 20)), draw(st.floats(0.5, 20))),
        reduction_dims=(8, 512),
        reduction_tangent_factors=(draw(st.floats(0.5, 80)), draw(st.floats(0.5, 80))),
        reduction_adjoint_factors=(draw(st.floats(0.5, 80)), draw(st.floats(0.5, 80))),
        write_sizes=tuple(sizes := sorted(draw(st.sets(st.integers(4, 4 * 60 * 60), min_size=1, max_size=2)))),
        write_factors=tuple(draw(st.floats(0.5, 50)) for _ in sizes),
    )


def with_families(chain, data):
    """``chain`` with a drawn share of each layer's JVP FMAs in convolutions and in reductions."""
    return Chain(
        dataclasses.replace(
            layer,
            conv_cost=data.draw(st.integers(0, layer.tangent_cost)),
            reduction_cost=data.draw(st.integers(0, layer.tangent_cost)),
        )
        for layer in chain
    )


def test_profile_round_trips_and_rejects_bad_fields():
    profile = DEFAULT_PROFILES["gpu"]
    assert MachineProfile.from_json(profile.to_json()) == profile
    data = json.loads(profile.to_json())
    for field, value, message in [
        ("bandwidth", -1, "bandwidth must be positive"),
        ("gemm_rates", [1.0], "one rate per dimension"),
        ("gemm_dims", [4, 1, 16, 64, 256, 1024], "rising"),
        ("step_overhead", float("nan"), "finite"),
        ("itemsize", 0, "itemsize"),
        ("tangent_factors", [1.0, 2.0], "one rate per dimension of mode_dims"),
        ("conv_adjoint_factors", [1.0, 2.0], "one rate per dimension of conv_dims"),
        ("conv_tangent_factors", [0.0], "positive finite"),
        ("reduction_adjoint_factors", [1.0, 2.0], "one rate per dimension of reduction_dims"),
        ("reduction_dims", [8, 8], "rising"),
        ("write_sizes", [2**25, 2**24], "rising"),
        ("write_factors", [1.0, 2.0], "one rate per dimension of write_sizes"),
    ]:
        with pytest.raises(ValueError, match=message):
            MachineProfile.from_json(json.dumps({**data, field: value}))
    for text, message in [("{", "malformed"), ("[]", "version"), (json.dumps({**data, "peak": 1}), "unknown fields")]:
        with pytest.raises(ValueError, match=message):
            MachineProfile.from_json(text)


def test_step_times_follow_the_documented_formulas():
    """Each kind's seconds written out again from the table of chainorder.core.timing."""
    profile = MachineProfile(
        "cpu",
        "x",
        (1, 100),
        (1e9, 1e11),
        2e9,
        1e-6,
        3e-7,
        5e-7,
        mode_dims=(1,),
        tangent_factors=(1.5,),
        adjoint_factors=(2.0,),
    )
    chain = Chain.from_dims([30, 7, 50, 9])  # tangent/adjoint costs: out * in per layer
    model = TimeModel(chain, profile)

    def rate(d):
        return float(np.interp(np.log(d), np.log([1, 100]), [1e9, 1e11]))

    def bytes_time(elements):
        return 4 * elements / 2e9

    # tangent step: push the 30 columns of J[0..0] (7x30) through layers 1..2, each GEMM at the
    # rate of its narrowest side (7 -> 50: 7; 50 -> 9: 9; both narrower than the 30 seeds)
    arithmetic = 30 * 7 * 50 / rate(7) + 30 * 50 * 9 / rate(9)
    expected = 1.5 * arithmetic + bytes_time(7 * 30 + 9 * 30) + 1e-6 + 2 * 3e-7
    assert math.isclose(float(model.cost("tangent_step", 0, 2, 0)), expected, rel_tol=1e-12)
    # adjoint step: pull the 9 rows of J[2..1] (9x7) back through layer 0 (30 -> 7: rate of 7)
    fmas = 9 * (7 * 30)
    expected = 2.0 * fmas / rate(7) + bytes_time(9 * 7 + 9 * 30) + 1e-6 + 5e-7
    assert math.isclose(float(model.cost("adjoint_step", 0, 2, 0)), expected, rel_tol=1e-12)
    # product J[2..1] (9x7) @ J[0..0] (7x30)
    expected = 9 * 7 * 30 / rate(7) + bytes_time(9 * 7 + 7 * 30 + 9 * 30) + 1e-6
    assert math.isclose(float(model.cost("product", 0, 2, 0)), expected, rel_tol=1e-12)
    # preaccumulation: 7 adjoints of layer 0 (no operand)
    expected = 2.0 * 7 * 210 / rate(7) + bytes_time(7 * 30) + 1e-6 + 5e-7
    assert math.isclose(float(model.cost("adjoint_preaccumulation", 0, 0)), expected, rel_tol=1e-12)


def test_a_result_block_from_the_write_sizes_on_is_written_at_its_factor():
    """A step's result of ``write_sizes[0]`` bytes or more costs ``write_factor - 1`` times its bytes at
    the bandwidth more, whatever the step's kind; its operands and smaller results cost as before."""
    plain = MachineProfile("cpu", "x", (1, 100), (1e9, 1e11), 2e9, 1e-6)
    slow = dataclasses.replace(plain, write_sizes=(4 * 9 * 30,), write_factors=(20.0,))
    chain = Chain.from_dims([30, 7, 50, 9])
    before, after = TimeModel(chain, plain), TimeModel(chain, slow)
    extra = 19 * 4 * 9 * 30 / 2e9  # the 9 x 30 Jacobian: 19 more times its bytes
    for kind in ("tangent_step", "adjoint_step", "product"):
        assert math.isclose(float(after.cost(kind, 0, 2, 0) - before.cost(kind, 0, 2, 0)), extra, rel_tol=1e-12)
    assert after.cost("product", 1, 2, 1) == before.cost("product", 1, 2, 1)  # 9 x 7: below the size
    assert float(slow.write_factor(4 * 9 * 30 - 1)) == 1.0 and DEFAULT_PROFILES["cpu"].write_factor(2**26) > 1
    data = json.loads(plain.to_json())  # saved before the fields existed: every block at the bandwidth
    del data["write_sizes"], data["write_factors"]
    assert MachineProfile.from_json(json.dumps(data)) == plain


def test_the_primal_pass_is_every_layer_once_at_the_matrix_vector_rate():
    chain = Chain.from_dims([4, 3, 2])  # JVPs of 12 and 6 FMAs
    profile = MachineProfile("cpu", "x", (1, 4), (1e9, 4e9), 1e10, 1e-7, primal_overhead=2e-6)
    assert math.isclose(TimeModel(chain, profile).primal_time(), 18 / 1e9 + 2 * 2e-6, rel_tol=1e-12)
    plan = optimize(chain, profile=profile)
    assert math.isclose(plan.predicted_time, plan_time(chain, plan.steps, profile), rel_tol=1e-12)
    # saved before the field existed: no fixed cost per layer, the arithmetic stays
    data = json.loads(profile.to_json())
    del data["primal_overhead"]
    assert MachineProfile.from_json(json.dumps(data)).primal_overhead == 0.0


@pytest.mark.parametrize("family", ["conv", "reduction"])
def test_families_are_priced_at_the_profiles_factor_for_their_share(family):
    """A step's arithmetic through a layer counts its share of a family of operations (convolutions,
    reductions) ``family_factor(seeds)`` times; a layer without them, and a profile saved before the
    factors existed, price as before."""
    from chainorder.backend.calibration import _FAMILY_LAYERS
    from chainorder.backend.opcount import FAMILY_PRIMITIVES
    from chainorder.core.layer import OP_FAMILIES

    assert set(FAMILY_PRIMITIVES) == set(_FAMILY_LAYERS) == set(OP_FAMILIES)  # counted, measured, priced
    plain = MachineProfile("cpu", "x", (1, 1024), (1e9, 1e10), 1e10, 0.0)
    tables = {f"{family}_dims": (16, 256), f"{family}_tangent_factors": (3.0, 5.0)}
    profile = dataclasses.replace(plain, **tables, **{f"{family}_adjoint_factors": (2.0, 2.0)})
    layer = chainorder.Layer(64, 64, tangent_cost=1000, adjoint_cost=1000, **{f"{family}_cost": 250})
    assert layer.family_share(family) == 0.25 and f"{family}_cost=250" in repr(layer)
    chain = Chain([layer])
    for kind, factor in (("tangent_preaccumulation", 4.0), ("adjoint_preaccumulation", 2.0)):  # 64 seeds: halfway
        base = float(TimeModel(chain, plain).cost(kind, 0, 0))
        moved = float(
            TimeModel(Chain([chainorder.Layer(64, 64, tangent_cost=0, adjoint_cost=0)]), plain).cost(kind, 0, 0)
        )
        arithmetic = base - moved
        assert math.isclose(
            float(TimeModel(chain, profile).cost(kind, 0, 0)), moved + arithmetic * (0.75 + 0.25 * factor)
        )
    dense = Chain([dataclasses.replace(layer, **{f"{family}_cost": 0})])
    assert TimeModel(dense, profile).cost("tangent_preaccumulation", 0, 0) == TimeModel(dense, plain).cost(
        "tangent_preaccumulation", 0, 0
    )
    data = json.loads(profile.to_json())
    for field in (f"{family}_dims", f"{family}_tangent_factors", f"{family}_adjoint_factors"):
        del data[field]
    assert MachineProfile.from_json(json.dumps(data)) == plain
    assert MachineProfile.from_json(profile.to_json()) == profile
    with pytest.raises(ValueError, match=f"{family}_cost 1,001 is more than its tangent_cost 1,000"):
        dataclasses.replace(layer, **{f"{family}_cost": 1001})
    assert getattr(Chain.from_graph(chain.graph)[0], f"{family}_cost") == 250


@settings(max_examples=40, deadline=None)
@given(chain=chains(max_length=5, colors=True), profile=profiles(), data=st.data())
def test_time_objective_is_optimal_for_its_own_cost(chain, profile, data):
    chain = with_families(chain, data)
    every = all_plan_times(chain, profile)
    steps, seconds = fastest_steps(chain, profile)
    assert math.isclose(seconds, min(every), rel_tol=1e-9)
    assert math.isclose(sum(step_times(chain, steps, profile)), seconds, rel_tol=1e-9)
    plan = optimize(chain, objective="time", profile=profile)
    primal = TimeModel(chain, profile).primal_time()  # every plan's, so not part of the DP
    assert plan.objective is Objective.TIME and math.isclose(plan.predicted_time, min(every) + primal, rel_tol=1e-9)


@settings(max_examples=25, deadline=None)
@given(chain=chains(max_length=5), profile=profiles(), data=st.data())
def test_time_objective_under_limits(chain, profile, data):
    tape_limit = data.draw(st.integers(max(chain.edges), sum(chain.edges)))
    every = all_plan_times(chain, profile, tape_limit=tape_limit)
    plan = optimize(chain, objective="time", tape_limit=tape_limit, profile=profile)
    primal = TimeModel(chain, profile).primal_time()
    assert math.isclose(plan.predicted_time, min(every) + primal, rel_tol=1e-9)
    limit = chainorder.pareto(chain)[0].peak_memory
    limited = optimize(chain, objective="time", memory_limit=limit, profile=profile)
    assert limited.peak_memory <= limit
    # the fastest of the front that fits: plans equal in FMAs and peak are one point of the front,
    # and which of them stands for it depends on the run (an unlimited run kept one whose two
    # adjoint steps move more bytes than the one-step plan the limited run kept)
    fitting = [steps for _, _, steps in pareto_steps(chain, memory_limit=limit)]
    assert limited.predicted_time <= min(plan_time(chain, steps, profile) for steps in fitting) * (1 + 1e-12)


def test_predicted_times_are_positive_and_additive():
    chain = Chain.from_dims([1024, 512, 16, 512, 1024])
    plan = optimize(chain, profile=default_profile("cpu"))
    assert all(seconds > 0 for seconds in plan.step_times) and plan.primal_time > 0
    assert math.isclose(plan.predicted_time, plan.primal_time + sum(plan.step_times))
    assert plan.predicted_speedup > 1  # the bottleneck plan is predicted faster than both pure modes
    data = json.loads(plan.to_json())
    assert math.isclose(data["predicted_ms"], 1e3 * plan.predicted_time)
    assert math.isclose(data["primal_predicted_ms"], 1e3 * plan.primal_time)
    assert "pred. ms" in str(plan) and "Predicted time:" in str(plan) and "primal pass" in str(plan)
    assert optimize(chain, objective="time", profile=default_profile("cpu")).predicted_time <= plan.predicted_time


def test_time_objective_tells_thin_products_from_square_ones():
    """Equal FMAs, different shapes: the time model prefers the square product."""
    profile = MachineProfile("cpu", "x", (1, 256), (1e9, 1e11), 1e12, 0.0)
    chain = Chain.from_dims([256, 256, 256])
    model = TimeModel(chain, profile)
    thin = Chain.from_dims([1, 256, 65536])
    assert model.cost("product", 0, 1, 0) < TimeModel(thin, profile).cost("product", 0, 1, 0)


def test_pareto_refuses_the_time_objective():
    with pytest.raises(ValueError, match="objective='time' is not supported"):
        chainorder.pareto(Chain.from_dims([3, 4, 5]), objective="time")
    with pytest.raises(TypeError, match="MachineProfile"):
        optimize(Chain.from_dims([3, 4, 5]), objective="time", profile={"gemm": 1})


def test_missing_or_corrupt_profile_falls_back_with_one_warning(tmp_path, monkeypatch):
    from chainorder.backend import calibration

    monkeypatch.setenv("CHAINORDER_CACHE", str(tmp_path))
    calibration._load.cache_clear()
    with pytest.warns(calibration.ProfileWarning, match="no measured machine profile"):
        assert calibration.machine_profile() == default_profile("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibration.machine_profile()  # once per process
    calibration.profile_path().write_text("{not json")
    calibration._load.cache_clear()
    with pytest.warns(calibration.ProfileWarning, match="unreadable machine profile .*profile-cpu"):
        assert calibration.machine_profile() == default_profile("cpu")
    calibration._load.cache_clear()


def test_calibrate_measures_saves_and_is_loaded(tmp_path, monkeypatch):
    from chainorder.backend import calibration

    monkeypatch.setenv("CHAINORDER_CACHE", str(tmp_path))
    profile = chainorder.calibrate(repeat=3, progress=False)
    assert profile.calibrated and profile.platform == "cpu" and profile.gemm_peak > 1e8
    assert profile.conv_dims == (16, 512) and min(profile.conv_tangent_factors + profile.conv_adjoint_factors) > 0
    assert profile.reduction_dims == (16, 512) and min(profile.reduction_adjoint_factors) > 0
    assert max(profile.reduction_tangent_factors) > 2  # a reduction is a pass over memory (28-124 here)
    assert profile.mode_dims == (512, 1024, 2048) and min(profile.tangent_factors + profile.adjoint_factors) > 0
    assert profile.write_sizes == (2**24, 2**25, 2**27) and min(profile.write_factors) >= 1
    assert calibration.profile_path().exists()
    assert chainorder.machine_profile() == profile
    plan = optimize(Chain.from_dims([64, 8, 64]))
    assert plan.machine == profile and "measured profile" in str(plan)
    calibration._load.cache_clear()


def test_random_plan_is_public_and_seeded():
    chain = Chain.from_dims([5, 40, 3, 60, 2])
    plans = [chainorder.random_plan(chain, seed=seed) for seed in range(12)]
    assert plans[3] == chainorder.random_plan(chain, seed=3)
    assert len({plan.steps for plan in plans}) > 1
    assert all(plan.cost >= optimize(chain).cost for plan in plans)


def test_plot_fidelity_draws_and_checks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    chain = Chain.from_dims([64, 8, 64])
    plans = [optimize(chain, profile=default_profile()), optimize(chain, "forward", profile=default_profile())]
    fig, ax = chainorder.plot_fidelity(plans, [2e-4, 5e-4], ["optimal", "forward"])
    assert len(ax.collections[0].get_offsets()) == 2 and ax.get_yscale() == "log"
    fig.savefig(tmp_path / "fidelity.png")
    with pytest.raises(ValueError, match="as many predicted as measured"):
        chainorder.plot_fidelity([1e-3], [1e-3, 2e-3])
    with pytest.raises(ValueError, match="positive"):
        chainorder.plot_fidelity([0.0], [1e-3])


def test_measure_plans_times_each_distinct_plan_once_and_the_others_in_the_same_rounds(monkeypatch):
    import jax
    import jax.numpy as jnp

    from chainorder.front import fidelity
    from chainorder.front.zoo import dense_chain, fresh_array

    functions, x = dense_chain([6, 3, 5], 0, jnp.float32)
    chain = Chain.from_functions(functions, x)
    plans = {"forward": optimize(chain, "forward"), "also forward": optimize(chain, "forward")}
    plans["reverse"] = optimize(chain, "reverse")
    timed = []
    original = fidelity.round_times
    monkeypatch.setattr(fidelity, "round_times", lambda fns, *a: timed.append(sorted(fns)) or original(fns, *a))
    floor = {"floor": fresh_array((chain.out_dim, chain.in_dim))}
    measured = fidelity.measure_plans(plans, x, 2, others=floor)
    assert timed == [sorted(["forward", "reverse", "floor"])]  # one interleaved call, each plan once
    assert set(measured) == {"forward", "also forward", "reverse", "floor"}
    assert measured["forward"] == measured["also forward"] and all(t > 0 for t in measured.values())
    rounds = fidelity.measure_rounds(plans, x, 3, others=floor)
    assert set(rounds) == set(measured) and all(len(times) == 3 and min(times) > 0 for times in rounds.values())
    assert rounds["forward"] is rounds["also forward"]
    # the halves' medians: a 1 s, b 2 s, c 3 s in the even rounds; c, b, a in the odd ones
    reversed_odd = {"a": [1.0, 3.0, 1.0], "b": [2.0, 2.0, 2.0], "c": [3.0, 1.0, 3.0]}
    assert fidelity.split_half(reversed_odd, "abc") == pytest.approx(-1.0) == fidelity.split_half(reversed_odd, "ab")
    assert math.isnan(fidelity.split_half({"a": [1.0], "b": [2.0]}, "ab"))
    assert fresh_array((5, 6))(x).shape == (5, 6) and jax.numpy.all(fresh_array((5, 6))(x)[1:] == 0)
    with pytest.raises(ValueError, match="name both a plan and another function"):
        fidelity.measure_plans(plans, x, 1, others={"reverse": fresh_array((5, 6))})


def test_faults_per_call_counts_the_pages_of_a_fresh_block_past_glibcs_mapping_ceiling():
    import jax.numpy as jnp

    from chainorder.front.zoo import faults_per_call, fresh_array

    x = jnp.ones(3, jnp.float32)
    large = faults_per_call(fresh_array((4096, 4096)), x, calls=3)  # 64 MiB: mapped fresh each call
    if large is None:
        pytest.skip("this platform does not count page faults")
    assert large > faults_per_call(fresh_array((4, 4)), x, calls=3)


def test_cli_objective_time_and_calibrate(tmp_path, monkeypatch, capsys):
    from chainorder.backend import calibration
    from chainorder.front.cli import main

    monkeypatch.setenv("CHAINORDER_CACHE", str(tmp_path))
    calibration._load.cache_clear()
    assert main(["analyze", "--dims", "1024,512,16,512,1024", "--objective", "time", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["objective"] == "time" and data["predicted_ms"] > 0 and len(data["step_predicted_ms"]) == 5
    assert data["profile"] == {"device_kind": "cpu", "calibrated": False}
    (warning,) = captured.err.splitlines()  # one line
    assert warning.startswith("chainorder: warning: no measured machine profile")
    assert main(["calibrate", "--repeat", "2"]) == 0
    captured = capsys.readouterr()
    assert "GEMM GFMA/s by smallest side" in captured.out and str(calibration.profile_path()) in captured.out
    assert main(["analyze", "--dims", "64,8,64"]) == 0
    assert "measured profile" in capsys.readouterr().out
    calibration._load.cache_clear()


def test_measured_first_keeps_fmas_unless_time_wins_by_the_margin():
    from chainorder.core.optimize import TIME_MARGIN, optimize_measured_first

    chain = Chain.from_dims([64, 8, 64, 8, 64])
    fixed_costs = MachineProfile("cpu", "x", (1,), (1e11,), 1e11, 1e-4)  # 0.1 ms per step: fewer steps win
    by_time = optimize(chain, objective="time", profile=fixed_costs)
    by_fma = optimize(chain, profile=fixed_costs)
    assert by_time.predicted_time * TIME_MARGIN < by_fma.predicted_time
    assert optimize_measured_first(chain, fixed_costs) == by_time
    flat = MachineProfile("cpu", "x", (1,), (1e11,), 1e11, 0.0)  # time ~ FMAs: within the margin
    assert optimize_measured_first(chain, flat) == optimize(chain)
    import jax.numpy as jnp

    w1, w2 = jnp.ones((8, 64)) / 64, jnp.ones((64, 8)) / 8
    f = lambda v: w2 @ jnp.tanh(w1 @ v)  # noqa: E731
    assert chainorder.analyze(f, jnp.ones(64)).plan.objective is Objective.FMA  # the analytic default: FMAs


@pytest.mark.parametrize(
    "name, primal_overhead",
    [("NVIDIA-H200-jax0.11.2", 0.0), ("NVIDIA-H100-80GB-HBM3-jax0.11.2", 9.76e-6)],
)
def test_gpu_profiles_measured_on_an_h200_and_an_h100_load_and_predict(name, primal_overhead):
    """The profiles `chainorder calibrate` wrote on an NVIDIA H200 and an H100 (jax 0.11.2): the
    same format as the CPU's (the H200's from before the primal pass was priced: its field
    defaults), and the plans' predicted times follow from them."""
    from pathlib import Path

    text = (Path(__file__).parent / "data" / f"profile-gpu-{name}.json").read_text()
    profile = MachineProfile.from_json(text)
    assert (profile.platform, profile.calibrated) == ("gpu", True)
    assert profile.device_kind.replace(" ", "-") == name.rsplit("-jax", 1)[0]
    assert profile.primal_overhead == pytest.approx(primal_overhead, rel=1e-3)
    assert MachineProfile.from_json(profile.to_json()) == profile
    assert profile.gemm_dims[-1] == 4096 and profile.gemm_peak > 1e14  # FMA/s: TF32 matmuls
    chain = Chain.from_dims([8192, 4096, 128, 4096, 8192])
    plan = optimize(chain, objective="time", profile=profile)
    assert plan.predicted_time > plan.primal_time > 0 and plan.mode == "mixed"
