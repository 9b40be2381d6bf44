"""Explicit layers: an affine map followed by an elementwise one, its Jacobian diag(s'(Wx+b)) W written
directly in the tangent preaccumulation, priced m * n, found on the jaxpr."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bruteforce import all_plans

import chainorder
from chainorder import Chain, Layer, Plan, optimize
from chainorder.backend.explicit import ExplicitJacobian, explicit_jacobian, has_explicit_form
from chainorder.core.memory import MemoryModel

RNG = np.random.default_rng(11)
W = jnp.asarray(RNG.standard_normal((5, 4)))
B = jnp.asarray(RNG.standard_normal(5))
W3 = jnp.asarray(RNG.standard_normal((2, 4, 3)))


@jax.custom_jvp
def _diagonal_rule(u):
    return jnp.sin(u)


_diagonal_rule.defjvp(lambda primals, tangents: (jnp.sin(primals[0]), jnp.cos(primals[0]) * tangents[0]))


@jax.custom_jvp
def _mixing_rule(u):  # elementwise primal, a rule that mixes entries
    return jnp.sin(u)


_mixing_rule.defjvp(lambda primals, tangents: (jnp.sin(primals[0]), jnp.cos(primals[0]) * jnp.roll(tangents[0], 1)))

EXPLICIT = {
    "tanh(Wx+b)": lambda x: jnp.tanh(W @ x + B),
    "relu(x W^T) * 3": lambda x: jax.nn.relu(x @ W.T) * 3.0,
    "sigmoid(...)^2": lambda x: jax.nn.sigmoid(jnp.dot(x, W.T) - 1.0) ** 2,
    "gelu": lambda x: jax.nn.gelu(W @ x),
    "softplus": lambda x: jax.nn.softplus(W @ x + B),
    "3-d weight": lambda x: jnp.sin(jnp.einsum("aib,i->ab", W3, x)).reshape(-1),
    "linear": lambda x: W @ x,
    "custom diagonal rule": lambda x: _diagonal_rule(W @ x),
    "residual block": lambda x: x + jnp.tanh(W[:4] @ x + B[:4]),
    "gate": lambda x: x * jax.nn.sigmoid(x @ W[:4]) - 0.5 * x,
    "residual, x read first": lambda x: jnp.sin(x) * 2.0 + jnp.tanh(W[:4] @ x),
    "product times x": lambda x: (W[:4] @ x) * x,
}
NOT_EXPLICIT = {
    "residual": lambda x: x + jnp.tanh(W.T @ (W @ x)),
    "two products": lambda x: W @ jnp.tanh(W.T @ (W @ x)),
    "softmax": lambda x: jax.nn.softmax(W @ x),
    "sum": lambda x: jnp.sum(W @ x) * jnp.ones(5),
    "square of two products": lambda x: (W @ x) * (W @ x),
    "custom rule that mixes": lambda x: _mixing_rule(W @ x),
    "elementwise only": lambda x: jnp.sin(x),
    "x reshaped into the product": lambda x: jnp.tanh(W @ (2.0 * x)),
    "residual, x moved": lambda x: jnp.roll(x, 1) + jnp.tanh(W[:4] @ x),
}


@pytest.mark.parametrize("name", EXPLICIT)
def test_explicit_jacobians_equal_jax_jacobian(name):
    function = EXPLICIT[name]
    x = jnp.asarray(RNG.standard_normal(4))  # float64 (conftest)
    assert has_explicit_form(function, jax.ShapeDtypeStruct((4,), jnp.float64))
    expected = np.asarray(jax.jacobian(function)(x)).reshape(-1, 4)
    written = jax.jit(lambda v: explicit_jacobian(function, v).dense())(x)
    np.testing.assert_allclose(written, expected, rtol=0, atol=1e-12)
    batch = jnp.stack([x, 2 * x])
    batched = jax.vmap(lambda v: explicit_jacobian(function, v).dense())(batch)
    np.testing.assert_allclose(batched[1], np.asarray(jax.jacobian(function)(2 * x)).reshape(-1, 4), atol=1e-12)


@pytest.mark.parametrize("name", NOT_EXPLICIT)
def test_other_layers_are_not_explicit(name):
    assert not has_explicit_form(NOT_EXPLICIT[name], jax.ShapeDtypeStruct((4,), jnp.float64))
    with pytest.raises(ValueError, match="not an affine map followed by an elementwise one|is not elementwise"):
        explicit_jacobian(NOT_EXPLICIT[name], jnp.ones(4))


def _functions():
    weights = [jnp.asarray(RNG.standard_normal((m, n)) / np.sqrt(n)) for n, m in ((6, 9), (9, 9), (9, 5))]
    return [
        lambda x: jnp.tanh(weights[0] @ x + 0.1),
        lambda x: jax.nn.relu(weights[1] @ x) + 0.5 * (weights[1] @ x),  # two products: not explicit
        lambda x: jax.nn.sigmoid(weights[2] @ x),
    ]


def test_every_plan_with_an_explicit_preaccumulation_equals_jax_jacobian():
    x = jnp.asarray(RNG.standard_normal(6))
    chain = Chain.from_functions(_functions(), x)
    assert [layer.explicit for layer in chain] == [True, False, True]
    expected = np.asarray(jax.jacobian(chain)(x))
    chosen = [
        steps
        for steps in all_plans(chain)
        if any(str(step.kind) == "tangent_preaccumulation" and step.first != 1 for step in steps)
    ]
    assert len(chosen) > 30
    for steps in chosen[::5]:
        np.testing.assert_allclose(Plan(chain, steps).jacobian(x), expected, rtol=0, atol=1e-12)
    for strategy in ("optimal", "forward", "reverse"):
        np.testing.assert_allclose(optimize(chain, strategy).jacobian(x), expected, rtol=0, atol=1e-12)


def test_every_plan_of_residual_blocks_equals_jax_jacobian():
    weights = [jnp.asarray(RNG.standard_normal((5, 5))) for _ in range(3)]
    functions = [lambda x, w=w: x + jnp.tanh(w @ x + 0.2) for w in weights]
    x = jnp.asarray(RNG.standard_normal(5))
    chain = Chain.from_functions(functions, x)
    assert all(layer.preaccumulates_explicitly for layer in chain)
    expected = np.asarray(jax.jacobian(chain)(x))
    plans = list(all_plans(chain))
    for steps in plans[::4]:  # factored Jacobians with a diagonal, in products and as seeds
        np.testing.assert_allclose(Plan(chain, steps).jacobian(x), expected, rtol=0, atol=1e-12)
    residual = explicit_jacobian(functions[0], x)
    assert residual.diagonal is not None
    np.testing.assert_allclose(residual @ jnp.eye(5), residual.dense(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(jnp.eye(5) @ residual, residual.dense(), rtol=0, atol=1e-15)


def test_products_of_explicit_jacobians_stay_factored_and_equal_jax_jacobian():
    weights = [jnp.asarray(RNG.standard_normal((m, n))) for n, m in ((5, 7), (7, 6), (6, 4))]
    functions = [lambda x, w=w: jnp.tanh(w @ x + 0.2) for w in weights]
    x = jnp.asarray(RNG.standard_normal(5))
    chain = Chain.from_functions(functions, x)
    assert all(layer.preaccumulates_explicitly for layer in chain)
    expected = np.asarray(jax.jacobian(chain)(x))
    products = [steps for steps in all_plans(chain) if sum(str(step.kind) == "product" for step in steps) == 2]
    assert {str(step.kind) for steps in products for step in steps} == {"tangent_preaccumulation", "product"} | {
        "adjoint_preaccumulation"
    }
    for steps in products[::3]:  # explicit @ explicit, explicit @ written, written @ explicit
        np.testing.assert_allclose(Plan(chain, steps).jacobian(x), expected, rtol=0, atol=1e-12)
    factored = explicit_jacobian(functions[1], jnp.tanh(weights[0] @ x + 0.2))
    both = factored @ explicit_jacobian(functions[0], x)
    assert isinstance(both, ExplicitJacobian)  # the left factor stays outside
    first_two = jax.jacobian(lambda v: functions[1](functions[0](v)))(x)
    np.testing.assert_allclose(both.dense(), first_two, rtol=0, atol=1e-12)


@pytest.mark.parametrize("columns", [3, 8, 20])
def test_an_explicit_factor_scales_the_smaller_of_its_matrix_and_the_product(columns):
    """``J @ B`` with ``J = diag(d) W`` (12 x 8): where ``B`` has more columns than ``W`` the rows of
    ``W`` are scaled before the product (12 x 8 entries), elsewhere the product after it (12 x n);
    the same matrix either way, with a residual diagonal too."""
    weight = jnp.asarray(RNG.standard_normal((12, 8)))
    derivative, other = jnp.asarray(RNG.standard_normal(12)), jnp.asarray(RNG.standard_normal((8, columns)))
    factored = ExplicitJacobian(derivative, weight)
    np.testing.assert_allclose(factored @ other, factored.dense() @ other, rtol=1e-12)
    scaled = [
        equation.outvars[0].aval.shape
        for equation in jax.make_jaxpr(lambda b: factored @ b)(other).jaxpr.eqns
        if equation.primitive.name == "mul"
    ]
    assert scaled == ([(12, 8)] if columns > 8 else [(12, columns)])
    square = ExplicitJacobian(derivative[:8], weight[:8], jnp.asarray(RNG.standard_normal(8)))
    np.testing.assert_allclose(square @ other, square.dense() @ other, rtol=1e-12)


def test_an_explicit_layer_costs_one_fma_per_entry_and_shows_in_the_plan():
    # 300 -> 300 -> 300, each a 90,000-FMA JVP: forward mode 300 * 180,000; writing layer 0 explicitly
    # (90,000) and pushing its 300 columns through layer 1: 90,000 + 300 * 90,000
    chain = Chain([Layer(300, 300, edges=90_000, explicit=True), Layer(300, 300, edges=90_000)])
    plan = optimize(chain)
    assert plan.cost == 90_000 + 300 * 90_000 < plan.forward_cost == 300 * 180_000
    assert plan.steps[0].cost == 90_000 and plan.mode == "mixed"
    assert chain[0].explicit_cost == 90_000 and chain.without_structure()[0].explicit is False
    text = str(plan)
    assert "Explicit layers: 0 (affine, then elementwise" in text
    assert "tangent preacc., explicit" in text
    # the memory model: the Jacobian written and the m derivatives
    assert MemoryModel(chain).workspace("tangent_preaccumulation", 0, 0) == 300 * 300 + 300
    assert plan.step_times[0] > 0


def test_the_explicit_form_is_taken_only_where_cheaper_than_the_jvps():
    # one JVP of a 1 -> 50 layer costs 40: a preaccumulation by JVPs (40) beats writing 50 entries
    layer = Layer(1, 50, edges=40, explicit=True)
    assert not layer.preaccumulates_explicitly
    assert optimize(Chain([layer])).cost == 40


def test_plans_with_explicit_layers_round_trip_through_json_and_name_a_changed_layer():
    chain = Chain([Layer(40, 40, edges=1700, explicit=True), Layer(40, 4)])
    plan = optimize(chain)
    assert Plan.from_json(plan.to_json(), chain) == plan
    with pytest.raises(ValueError, match="layer 0 differs .*explicit_cost 1600 vs None"):
        Plan.from_json(plan.to_json(), chain.without_structure())
    # a plan priced without the explicit forms (the drop-in's where they save too little) reads back too
    dense = optimize(chain.without_structure())
    assert Plan.from_json(dense.to_json(), chain) == dense
    assert Chain.from_graph(chain.graph) == chain


def test_explicit_claimed_for_another_function_fails_at_run_time_naming_the_layer():
    claimed = Layer(4, 4, edges=100, fn=lambda x: x + jnp.sin(x), explicit=True)
    chain = Chain([claimed, Layer(4, 2, edges=100, fn=lambda x: x[:2])])
    plan = optimize(chain, "forward")
    assert plan.steps[0].kind.value == "tangent_preaccumulation" and chain[0].preaccumulates_explicitly
    with pytest.raises(ValueError, match="layer 0: explicit is True, but its function is not an affine map"):
        plan.jacobian(jnp.ones(4))
    with pytest.raises(TypeError, match="explicit must be True or False"):
        Layer(4, 4, explicit="yes")


def test_the_drop_in_writes_dense_layers_explicitly_where_that_pays():
    params = [(jnp.asarray(RNG.standard_normal((64, 64)) / 8), jnp.full(64, 0.1)) for _ in range(2)]

    def mlp(x, depth=2):
        for weight, bias in params[:depth] * (depth // 2):
            x = jnp.tanh(weight @ x + bias)
        return x

    x = jnp.asarray(RNG.standard_normal(64))
    report = chainorder.analyze(mlp, x)  # two layers: explicit, then one product or a push: 2x fewer FMAs
    assert report.plan.cost * 1.9 < report.plan.forward_cost
    assert any(layer.preaccumulates_explicitly for layer in report.chain)
    np.testing.assert_allclose(chainorder.jacobian(mlp)(x), jax.jacobian(mlp)(x), rtol=0, atol=1e-12)
    deep = lambda v: mlp(v, depth=8)  # noqa: E731 - 8 layers: explicit saves 1/8, under the 1.25x margin
    report = chainorder.analyze(deep, x)
    assert report.plan.mode == "forward" and report.plan.cost == report.plan.forward_cost
    np.testing.assert_allclose(chainorder.jacobian(deep)(x), jax.jacobian(deep)(x), rtol=0, atol=1e-12)

    def resnet(x):  # residual blocks: each traced as one explicit layer with a diagonal
        for weight, bias in params:
            x = x + jnp.tanh(weight @ x + bias)
        return x

    report = chainorder.analyze(resnet, x)
    assert [layer.preaccumulates_explicitly for layer in report.chain] == [True, True]
    assert report.plan.cost * 1.9 < report.plan.forward_cost
    np.testing.assert_allclose(jax.jit(chainorder.jacobian(resnet))(x), jax.jacobian(resnet)(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "sin", "identity"])
@pytest.mark.parametrize("with_weight", [True, False])
def test_zoo_layer_jacobian_written_by_its_parts_is_jax_jacobian(activation, with_weight):
    """What benchmarks/bench_roofline.py writes by hand: diag(derivative(pre, y)) W of a zoo layer."""
    from chainorder.front.zoo import DenseLayer

    weight, bias = (W, B) if with_weight else (None, None)
    layer = DenseLayer(weight, bias, activation)
    x = jnp.asarray(RNG.standard_normal(4))
    pre = layer.pre(x)
    d = layer.derivative(pre, layer(x))
    written = d[:, None] * W if with_weight else jnp.diag(d)
    np.testing.assert_allclose(written, jax.jacobian(layer)(x), rtol=1e-12, atol=1e-12)


def test_zoo_layers_are_the_zoo_chains_functions():
    from chainorder.front.tracedzoo import mlp_function, mlp_layers
    from chainorder.front.zoo import composed, dense_chain

    functions, x = dense_chain([6, 5, 4, 3, 5, 6], 2, jnp.float64)
    assert [layer.activation for layer in functions] == ["tanh"] * 3 + ["sin"] + ["tanh"] * 2
    w0, w1, w2, _, w3, w4 = (layer.weight for layer in functions)
    expected = jnp.tanh(w4 @ jnp.tanh(w3 @ jnp.sin(jnp.tanh(w2 @ jnp.tanh(w1 @ jnp.tanh(w0 @ x))))))
    np.testing.assert_allclose(composed(functions)(x), expected, rtol=1e-12)
    f, x = mlp_function([6, 4, 6])
    layers, _ = mlp_layers([6, 4, 6])
    expected = layers[1].weight @ jnp.tanh(layers[0].weight @ x + layers[0].bias) + layers[1].bias
    np.testing.assert_allclose(f(x), expected, rtol=1e-6)
    assert [layer.activation for layer in layers] == ["tanh", "identity"]
