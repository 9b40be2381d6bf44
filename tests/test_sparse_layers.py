"""Sparse layers inside a chain: found per layer, priced by their colors, executed by compression."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bruteforce import all_plans

import chainorder
from chainorder import Chain, Layer, Plan, optimize
from chainorder.core.coloring import LayerPattern

RNG = np.random.default_rng(7)
WEIGHTS = jnp.asarray(RNG.standard_normal((6, 10)) / 3)


def _functions():
    return [
        lambda x: jnp.sin(x) * x,  # 12 -> 12, diagonal: 1 color
        lambda u: jnp.tanh(u[2:] - 2 * u[1:-1] + u[:-2]) * u[1:-1],  # 12 -> 10, tridiagonal band: 3 colors
        lambda v: WEIGHTS @ v,  # 10 -> 6, dense
        lambda w: jnp.cumsum(jnp.exp(-(w**2))),  # 6 -> 6, lower triangular: 6 colors, not compressed
    ]


def _chain():
    return Chain.from_functions(_functions(), jnp.asarray(RNG.standard_normal(12)))


def test_layers_carry_their_patterns_and_colors():
    chain = _chain()
    assert [layer.compressed for layer in chain] == [True, True, False, False]
    assert (chain[0].tangent_colors, chain[0].adjoint_colors, chain[0].nonzeros) == (1, 1, 12)
    assert (chain[1].tangent_colors, chain[1].adjoint_colors, chain[1].nonzeros) == (3, 3, 30)
    # the pattern holds every nonzero of the layer's Jacobian, and nothing else
    x = jnp.asarray(RNG.standard_normal(12))
    jacobian = np.asarray(jax.jacobian(_functions()[1])(jnp.sin(x) * x))
    pattern = chain[1].pattern
    found = np.zeros(jacobian.shape, bool)
    found[pattern.rows, pattern.columns] = True
    np.testing.assert_array_equal(found, jacobian != 0)


def test_every_plan_using_a_compressed_preaccumulation_equals_jax_jacobian():
    x = jnp.asarray(RNG.standard_normal(12), jnp.float64)  # conftest enables float64
    chain = Chain.from_functions(_functions(), x)
    expected = np.asarray(jax.jacobian(chain)(x))
    sub = Chain(chain[:3])  # the two sparse layers and the dense one
    chosen = [
        steps for steps in all_plans(sub) if any(step.kind.is_preaccumulation and step.first < 2 for step in steps)
    ]
    assert len(chosen) > 40
    sub_expected = np.asarray(jax.jacobian(sub)(x))
    kinds = {(str(step.kind), step.first) for steps in chosen[::7] for step in steps if step.kind.is_preaccumulation}
    both = ("tangent_preaccumulation", "adjoint_preaccumulation")
    assert {(kind, layer) for kind in both for layer in (0, 1)} <= kinds
    for steps in chosen[::7]:  # every seventh: both kinds of compressed preaccumulation, every position
        np.testing.assert_allclose(Plan(sub, steps).jacobian(x), sub_expected, rtol=0, atol=1e-12)
    for strategy in ("optimal", "forward", "reverse"):
        np.testing.assert_allclose(optimize(chain, strategy).jacobian(x), expected, rtol=0, atol=1e-12)


def test_colors_make_plans_cheaper_and_show_in_the_plan():
    chain = _chain()
    dense = chain.without_structure()
    plan, dense_plan = optimize(chain), optimize(dense)
    assert plan.cost <= dense_plan.cost
    assert (plan.forward_cost, plan.reverse_cost) == (dense_plan.forward_cost, dense_plan.reverse_cost)
    text = str(optimize(chain, "forward"))  # preaccumulates layer 0 by its one color
    assert "Sparse layer:    0: density 8.33%, 1 color of 12 columns (JVPs), 1 of 12 rows (VJPs)" in text
    assert "tangent preacc., 1 color " in text


def test_a_wide_sparse_layer_is_preaccumulated_by_its_colors():
    # a 400-wide banded layer (4,000 FMAs a JVP, 3 colors) before a dense 400 x 400 one: forward and
    # reverse mode cost 400 * (4,000 + 160,000); preaccumulating the band with 3 JVPs and pushing its
    # 400 columns through the dense layer, 3 * 4,000 + 400 * 160,000
    band = Layer(400, 400, edges=4000, tangent_colors=3, adjoint_colors=3)
    chain = Chain([band, Layer(400, 400)])
    plan = optimize(chain)
    assert plan.cost == 3 * 4000 + 400 * 160_000 < optimize(chain.without_structure()).cost == 400 * 164_000
    assert plan.steps[0].kind.is_preaccumulation and plan.steps[0].cost == 12_000


def test_plans_with_colors_round_trip_through_json_and_name_a_changed_layer():
    chain = Chain([Layer(50, 50, edges=50, tangent_colors=2, adjoint_colors=3), Layer(50, 4)])
    plan = optimize(chain)
    assert Plan.from_json(plan.to_json(), chain) == plan
    other = Chain([Layer(50, 50, edges=50, tangent_colors=5, adjoint_colors=3), Layer(50, 4)])
    with pytest.raises(ValueError, match="layer 0 differs .*tangent_seeds 2 vs 5"):
        Plan.from_json(plan.to_json(), other)


def test_bad_colors_are_refused_with_the_layer_named():
    with pytest.raises(ValueError, match="layer 'conv': tangent_colors 13 is more than its 12 columns"):
        Layer(12, 10, tangent_colors=13, name="conv")
    with pytest.raises(ValueError, match="tangent_colors must be >= 1"):
        Layer(12, 10, tangent_colors=0)
    assert Layer(12, 10, tangent_colors=12).tangent_colors is None  # as many colors as columns: dense


def test_colors_claimed_below_the_pattern_fail_at_run_time_naming_the_layer():
    functions = _functions()[:2]
    x = jnp.asarray(RNG.standard_normal(12))
    chain = Chain(
        [
            Layer(12, 12, fn=functions[0]),
            Layer(12, 10, fn=functions[1], tangent_colors=2, adjoint_colors=2),  # the band needs 3
        ]
    )
    plan = optimize(chain)
    assert any(step.kind.is_preaccumulation and step.first == 1 for step in plan.steps)
    with pytest.raises(ValueError, match="layer 1: (tangent|adjoint)_colors is 2, but its Jacobian's pattern needs 3"):
        plan.jacobian(x)


def test_traced_segments_get_their_patterns():
    weights = jnp.asarray(RNG.standard_normal((5, 40)))

    def f(u):
        v = jnp.sin(u) * u
        w = jnp.tanh(v[2:] - 2 * v[1:-1] + v[:-2])
        return jnp.tanh(weights @ w)

    x = jnp.asarray(RNG.standard_normal(42))
    chain = chainorder.trace(f, x)
    assert any(isinstance(layer.pattern, LayerPattern) and layer.compressed for layer in chain)
    np.testing.assert_allclose(chainorder.jacobian(f)(x), jax.jacobian(f)(x), rtol=1e-6, atol=1e-6)


def test_the_drop_in_keeps_the_plan_priced_dense_where_colors_save_little():
    # an elementwise layer (1 color) before a dense one: preaccumulating it by its color saves its
    # 64 JVPs but not the dense layer's, under COMPRESSION_MARGIN, and would replace jax.jacfwd by a
    # mixed plan
    weights = jnp.asarray(RNG.standard_normal((64, 64)))

    def f(u):
        return jnp.cumsum(weights @ (jnp.sin(u) * u))

    x = jnp.asarray(RNG.standard_normal(64))
    chain = chainorder.trace(f, x)
    with_colors, dense = optimize(chain), optimize(chain.without_structure())
    assert any(layer.compressed for layer in chain) and with_colors.cost < dense.cost <= 1.25 * with_colors.cost
    jacobian = chainorder.jacobian(f)
    np.testing.assert_allclose(jacobian(x), jax.jacobian(f)(x), rtol=1e-10, atol=1e-12)
    (plan,) = jacobian.plans.values()
    assert plan == dense and plan.mode == "forward"
    assert chainorder.analyze(f, x).plan == dense


def test_consecutive_sparse_segments_form_one_layer_whose_colors_pay():
    # a 3-point band after an elementwise step, traced into thin segments: one layer of 3 colors,
    # which the drop-in preaccumulates by them before the cumulative sum (cheaper by over 1.25x)
    def f(u):
        v = jnp.tanh(u[2:] - 2 * u[1:-1] + u[:-2]) * jnp.sin(u[1:-1])
        return jnp.cumsum(jnp.exp(-(v**2)))

    x = jnp.asarray(RNG.standard_normal(64))
    report = chainorder.analyze(f, x)
    first = report.chain[0]
    assert len(report.segments) > len(report.chain) and first.name.startswith("segments 0..")
    # the state after the run holds tanh(band) (3 inputs an entry) and sin(u[1:-1]) (1 input)
    assert (first.tangent_colors, first.nonzeros) == (3, 62 * 3 + 62)
    assert "form one sparse layer (3 column colors)" in str(report)
    assert report.plan.chain[0].compressed and report.plan.steps[0].cost == 3 * first.tangent_cost
    np.testing.assert_allclose(chainorder.jacobian(f)(x), jax.jacobian(f)(x), rtol=1e-10, atol=1e-12)


def test_a_narrow_state_inside_stays_a_layer_boundary():
    from chainorder.backend.segments import Segment, sparse_runs
    from chainorder.core.coloring import LayerPattern

    def diagonal(size):
        return LayerPattern(np.arange(size), np.arange(size), (size, size))

    def first_entries(rows, columns):  # each row reads column 0 of a rows x columns input
        return LayerPattern(np.arange(rows), np.zeros(rows, int), (rows, columns))

    segments = [Segment(0, 50, 50, [], ""), Segment(1, 50, 1, [], ""), Segment(2, 1, 50, [], "")]
    patterns = [diagonal(50), first_entries(1, 50), first_entries(50, 1)]
    # the 1-wide state between segments 1 and 2 is narrower than both ends of any run across it
    assert [(first, last) for first, last, _ in sparse_runs(segments, patterns, set())] == [(0, 1), (2, 2)]
    # a direction JAX refuses keeps a segment alone
    assert [(first, last) for first, last, _ in sparse_runs(segments[:2], patterns[:2], {1})] == [(0, 0), (1, 1)]


def test_segments_alike_but_for_their_constants_get_their_own_patterns():
    """Two segments of one structure whose constant masks differ: patterns read the masks
    (:mod:`chainorder.backend.knownvalues`), so each segment needs its own. They shared one (found
    for the first mask) and the plan's compressed layer was wrong by up to 1e-4 here."""
    rng = np.random.default_rng(4041)
    masks = [rng.random((3, 3)) < 0.5 for _ in range(2)]

    def f(v):
        for mask in masks:
            product = v[::-1, ::-1] * v
            v = jnp.where(mask, product**2, jnp.roll(product, 1, axis=0))
        return jnp.sort(v, axis=0) * v

    x = jnp.asarray(rng.standard_normal((3, 3)))
    assert any(layer.compressed for layer in chainorder.trace(f, x))  # a compressed layer is in play
    np.testing.assert_allclose(chainorder.jacobian(f)(x), jax.jacobian(f)(x), rtol=1e-10, atol=1e-12)
