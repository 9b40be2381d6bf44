"""Executing plans in JAX: every strategy equals jax.jacobian, jit and vmap compose."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainorder import Chain, Layer, optimize
from chainorder.backend.execute import jacobian_function

STRATEGIES = [
    dict(),
    dict(strategy="forward"),
    dict(strategy="reverse"),
    dict(matrix_free=False),
    dict(parallel=True),
    dict(tape_limit="half"),  # half of the largest layer's tape: forces tangent work there
]


def _options(chain, options):
    if options.get("tape_limit") == "half":
        options = dict(options, tape_limit=max(chain.edges) // 2)
    return options


def _matrix(rng, rows, cols, dtype):
    return jnp.asarray(rng.standard_normal((rows, cols)) / np.sqrt(max(cols, 1)), dtype)


@st.composite
def function_chains(draw, dtype=jnp.float64):
    """Random chains of dense+tanh, sin, softplus, linear and matrix-shaped layers."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    length = draw(st.integers(1, 7))
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 300)),)
    else:
        shape = (draw(st.integers(1, 17)), draw(st.integers(1, 17)))
    x = jnp.asarray(rng.standard_normal(shape), dtype)
    functions = []
    for _ in range(length):
        size = int(np.prod(shape))
        kind = draw(st.sampled_from(["dense", "sin", "softplus", "linear", "matrix"]))
        if kind in ("dense", "linear"):
            width = draw(st.integers(1, 300))
            weight = _matrix(rng, width, size, dtype)
            if kind == "dense":
                functions.append(lambda v, w=weight: jnp.tanh(w @ jnp.reshape(v, (-1,))))
            else:
                functions.append(lambda v, w=weight: w @ jnp.reshape(v, (-1,)))
            shape = (width,)
        elif kind == "sin":
            functions.append(jnp.sin)
        elif kind == "softplus":
            functions.append(jax.nn.softplus)
        else:  # matrix: a 2-d output, or a left multiplication of a 2-d input
            if len(shape) == 2:
                rows = draw(st.integers(1, 20))
                weight = _matrix(rng, rows, shape[0], dtype)
                functions.append(lambda v, w=weight: jnp.tanh(w @ v))
                shape = (rows, shape[1])
            else:
                rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 12))
                weight = _matrix(rng, rows * cols, size, dtype)
                functions.append(lambda v, w=weight, s=(rows, cols): jnp.reshape(w @ v, s))
                shape = (rows, cols)
    return functions, x


def _relative_error(computed, reference):
    scale = float(jnp.max(jnp.abs(reference)))
    return float(jnp.max(jnp.abs(computed - reference))) / (scale if scale > 0 else 1.0)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(function_chains())
def test_every_strategy_equals_jax_jacobian_float64(case):
    functions, x = case
    chain = Chain.from_functions(functions, x)
    reference = jax.jacobian(chain)(x)
    plans = {}  # strategies often agree: each distinct plan runs once
    for options in STRATEGIES:
        plan = optimize(chain, **_options(chain, options))
        plans.setdefault(tuple(plan.steps), (options, plan))
    for options, plan in plans.values():
        computed = plan.jacobian(x)
        assert computed.shape == reference.shape
        assert computed.dtype == reference.dtype == jnp.float64
        assert _relative_error(computed, reference) < 1e-10, (options, plan)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(function_chains(dtype=jnp.float32))
def test_float32_within_1e_4(case):
    functions, x = case
    chain = Chain.from_functions(functions, x)
    reference = jax.jacobian(chain)(x)
    strategies = (dict(), dict(matrix_free=False), dict(tape_limit="half"))
    plans = {tuple(plan.steps): plan for plan in (optimize(chain, **_options(chain, o)) for o in strategies)}
    for plan in plans.values():
        computed = plan.jacobian(x)
        assert computed.dtype == reference.dtype == jnp.float32
        assert _relative_error(computed, reference) < 1e-4


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_plans_run(dtype):
    """bfloat16 is floating to jnp but not to numpy: plan.jacobian refused it before."""
    functions, x = _autoencoder(dtype)
    chain = Chain.from_functions(functions, x)
    reference = jax.jacobian(chain)(x).astype(jnp.float32)
    for strategy in ("optimal", "forward", "reverse"):
        computed = optimize(chain, strategy).jacobian(x)
        assert computed.dtype == dtype
        assert _relative_error(computed.astype(jnp.float32), reference) < 5e-2


def _autoencoder(dtype=jnp.float64):
    rng = np.random.default_rng(0)
    dims = [60, 30, 3, 30, 60]
    weights = [_matrix(rng, dims[i + 1], dims[i], dtype) for i in range(4)]
    functions = [lambda v, w=w: jnp.tanh(w @ v) for w in weights]
    return functions, jnp.asarray(rng.standard_normal(60), dtype)


def test_autoencoder_plan_is_mixed_and_exact():
    functions, x = _autoencoder()
    chain = Chain.from_functions(functions, x)
    plan = optimize(chain)
    assert plan.mode == "mixed" and plan.speedup > 2
    report = plan.validate(x)
    assert report["max_rel_error"] < 1e-12 and report["shape"] == (60, 60)


def test_jit_and_vmap_compose():
    functions, x = _autoencoder()
    chain = Chain.from_functions(functions, x)
    plan = optimize(chain)
    xs = jnp.stack([x, 2 * x, -x])
    batched = jax.vmap(plan.jacobian)(xs)
    expected = jax.vmap(jax.jacobian(chain))(xs)
    assert batched.shape == (3, 60, 60)
    assert _relative_error(batched, expected) < 1e-12
    assert _relative_error(jax.jit(plan.jacobian)(x), jax.jacobian(chain)(x)) < 1e-12
    assert jacobian_function(plan) is jacobian_function(plan)  # compiled once, cached


def test_chain_call_composes_the_functions():
    functions, x = _autoencoder()
    chain = Chain.from_functions(functions, x)
    expected = x
    for function in functions:
        expected = function(expected)
    np.testing.assert_allclose(chain(x), expected)


def test_layers_made_by_hand_with_fn():
    weight = jnp.arange(12.0).reshape(4, 3) / 10
    chain = Chain([Layer(3, 4, fn=lambda v: jnp.sin(weight @ v)), Layer(4, 2, fn=lambda v: v[:2] * v[2:])])
    x = jnp.array([0.1, -0.4, 0.7])
    for options in STRATEGIES[:5]:
        plan = optimize(chain, **options)
        assert _relative_error(plan.jacobian(x), jax.jacobian(chain)(x)) < 1e-12


def test_errors_name_the_layer():
    x = jnp.ones(3)
    with pytest.raises(ValueError, match="layer 1 has no function"):
        optimize(Chain([Layer(3, 4, fn=jnp.sin), Layer(4, 2)])).jacobian(jnp.ones(3))
    bad = Chain([Layer(3, 3, fn=jnp.sin), Layer(3, 2, fn=lambda v: v[:1])])
    message = r"layer 1: its function returned shape \(1,\) \(1 entries\), but out_dim is 2"
    with pytest.raises(ValueError, match=message):
        optimize(bad).jacobian(x)
    with pytest.raises(ValueError, match="layer 1: its function returned shape"):
        bad(x)
    good = Chain.from_functions([jnp.sin, jnp.cos], x)
    plan = optimize(good)
    with pytest.raises(TypeError, match="float dtype.*int"):
        plan.jacobian(jnp.ones(3, dtype=jnp.int32))
    for options in (dict(), dict(strategy="forward"), dict(strategy="reverse")):  # no plan-dependent number
        with pytest.raises(TypeError, match="requires real-valued inputs.*complex"):
            optimize(good, **options).jacobian(jnp.ones(3, dtype=jnp.complex128))
    with pytest.raises(ValueError, match=r"x has shape \(4,\), but layer 0 takes in_shape \(3,\)"):
        plan.jacobian(jnp.ones(4))
    with pytest.raises(TypeError, match="layer 1: its function must return an array"):
        Chain.from_functions([jnp.sin, lambda v: (v, v)], x)
    with pytest.raises(ValueError, match="layer 1: calling its function on shape"):
        Chain.from_functions([jnp.sin, lambda v: jnp.ones((2, 2)) @ v], x)
    with pytest.raises(TypeError, match="x0 must have a float dtype"):
        Chain.from_functions([jnp.sin], jnp.ones(3, dtype=jnp.int32))


def test_memory_limited_plans_execute_exactly():
    from chainorder import pareto

    rng = np.random.default_rng(3)
    dims = [128, 16, 16, 8, 4, 4, 16]  # a front of three plans
    weights = [_matrix(rng, dims[i + 1], dims[i], jnp.float64) for i in range(6)]
    functions = [lambda v, w=w: jnp.tanh(w @ v) for w in weights]
    x = jnp.asarray(rng.standard_normal(128))
    chain = Chain.from_functions(functions, x)
    front = pareto(chain)
    assert len(front) == 3
    reference = jax.jacobian(chain)(x)
    for plan in front:
        limited = optimize(chain, memory_limit=plan.peak_memory)
        assert limited.peak_memory <= plan.peak_memory and limited.cost == plan.cost
        assert _relative_error(limited.jacobian(x), reference) < 1e-10


def test_a_product_pushed_through_an_elementwise_layer_compiles_without_transposes():
    """A tangent step whose seed a product made: XLA folds vmap's move of the columns into the
    dot and fuses the move back with the layer's elementwise op, a transposing loop about 8x slower
    than the step (1024 wide: 1.9 ms against 0.25 ms) unless the seed is written out first."""
    from chainorder import Plan
    from chainorder.core.costs import CostModel
    from chainorder.core.steps import Step, StepKind

    rng = np.random.default_rng(0)
    dims = [256, 64, 16, 64, 256]
    weights = [_matrix(rng, dims[i + 1], dims[i], jnp.float32) for i in range(4)]
    functions = [lambda v, w=w: jnp.tanh(w @ v) for w in weights] + [jnp.sin]
    x = jnp.asarray(rng.standard_normal(256), jnp.float32)
    chain = Chain.from_functions(functions, x)
    costs = CostModel.exact(chain)
    layout = [  # (a(0) << a(1)) and (t(2) >> t(3)), their product, pushed through sin (layer 4)
        (StepKind.ADJOINT_PREACCUMULATION, 1, 1, None),
        (StepKind.ADJOINT_STEP, 0, 1, 0),
        (StepKind.TANGENT_PREACCUMULATION, 2, 2, None),
        (StepKind.TANGENT_STEP, 2, 3, 2),
        (StepKind.PRODUCT, 0, 3, 1),
        (StepKind.TANGENT_STEP, 0, 4, 3),
    ]
    plan = Plan(chain, [Step(kind, *span, int(costs.cost(kind, *span))) for kind, *span in layout])
    hlo = jax.jit(plan.jacobian).lower(x).compile().as_text()
    assert not [line for line in hlo.splitlines() if " transpose(" in line.split("metadata=")[0]]
    reference = jax.jacobian(lambda v: functools.reduce(lambda value, f: f(value), functions, v))(x)
    assert _relative_error(plan.jacobian(x), reference) < 1e-5


def test_large_plans_compile_with_the_memory_scheduler_and_compose():
    """The options apply where chainorder's program is the top-level one, and are left out where it
    is traced inside the caller's (JAX refuses compiler options on a nested jit)."""
    import chainorder
    from chainorder.backend.xlaoptions import LARGE_PEAK, top_level_jit
    from chainorder.core.profile import default_profile
    from chainorder.front.fidelity import fidelity_plans
    from chainorder.front.tracedzoo import traced_models

    options = chainorder.compiler_options("cpu")
    assert options == {"xla_cpu_scheduler_type": "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED"}
    square = top_level_jit(lambda v: jnp.sin(v) ** 2, options)
    x = jnp.linspace(0.0, 1.0, 5)
    expected = jnp.sin(x) ** 2
    np.testing.assert_allclose(square(x), expected)  # called with an array: compiled with the options
    assert (square.optioned._cache_size(), square.plain._cache_size()) == (1, 0)
    for got in (jax.jit(square)(x), jax.vmap(square)(x)):  # traced: part of the caller's program
        np.testing.assert_allclose(got, expected)
    np.testing.assert_allclose(jax.grad(lambda v: square(v).sum())(x), 2 * jnp.sin(x) * jnp.cos(x))
    # the layer-norm MLP's plan of dense products: the default scheduler placed its scattered zero
    # blocks first (40 MiB of temporaries in float32), the memory-optimized one keeps fewer live
    _, f, x = traced_models("layer-norm", dtype=jnp.float32)[0]
    plans = fidelity_plans(chainorder.trace(f, x), default_profile("cpu"), samples=0)
    plan = plans["dense-only"]
    assert plan.peak_memory >= LARGE_PEAK > plans["fma-optimal"].peak_memory
    assert chainorder.plan_compiler_options(plan) == options
    assert chainorder.plan_compiler_options(plans["fma-optimal"]) is None

    def temporaries(compiler_options):
        compiled = jax.jit(plan.jacobian, compiler_options=compiler_options).lower(x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temporaries(options) < 0.8 * temporaries(None)
    np.testing.assert_allclose(plan.jacobian(x), jax.jacobian(f)(x), rtol=2e-4, atol=2e-5)
