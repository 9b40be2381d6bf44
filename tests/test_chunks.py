"""Steps that push (pull) their seeds in chunks (``Step.chunk``): values against jax.jacobian,
the memory model against XLA's, the predicted time, JSON and bad input. The chunked DP's
optimality against brute force is in test_memory.py."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder
from chainorder import Chain, Plan, Step, optimize, pareto
from chainorder.core.memory import MemoryModel
from chainorder.core.pure import forward_steps, reverse_steps
from chainorder.front.zoo import composed, dense_chain, xla_bytes

RNG = np.random.default_rng(3)


def _layers(dims, dtype=jnp.float64):
    """Layers ``tanh(W sin(v))``: not affine + elementwise, so every preaccumulation may chunk."""
    weights = [jnp.asarray(RNG.standard_normal((m, n)) / np.sqrt(n), dtype) for n, m in zip(dims, dims[1:])]
    return [lambda v, w=w: jnp.tanh(w @ jnp.sin(v)) for w in weights]


def _chunked(chain, steps, chunk):
    model = MemoryModel(chain)
    return [
        replace(step, chunk=chunk) if step.kind.value != "product" and model.chunkable(step.kind, step.first, step.last)
        else step
        for step in steps
    ]  # fmt: skip


@pytest.mark.parametrize("chunk", [1, 3, 6])
def test_chunked_steps_equal_jax_jacobian_for_every_strategy(chunk):
    dims = [7, 9, 13, 5, 6]
    functions = _layers(dims)
    x = jnp.asarray(RNG.standard_normal(7))
    chain = Chain.from_functions(functions, x)
    reference = jax.jacobian(composed(functions))(x)
    for steps in (forward_steps(chain), reverse_steps(chain), optimize(chain).steps):
        plan = Plan(chain, _chunked(chain, steps, chunk))
        assert any(step.chunk for step in plan.steps)
        assert float(jnp.max(jnp.abs(plan.jacobian(x) - reference))) <= 1e-10
        assert float(jnp.max(jnp.abs(jax.jit(plan.jacobian)(x) - reference))) <= 1e-10


def test_a_memory_limit_below_every_unchunked_plan_gets_chunked_steps():
    """64 tangents across a 2048-wide layer: no plan fits 3x below the least unchunked peak, a
    chunked one does; chainorder.jacobian runs it and equals jax.jacobian."""
    dims = [64, 64, 2048, 64]
    functions = _layers(dims)
    f = composed(functions)
    x = jnp.asarray(RNG.standard_normal(64))
    chain = Chain.from_dims(dims)
    least_unchunked = pareto(chain)[0].peak_memory
    limit = least_unchunked // 3
    plan = optimize(chain, memory_limit=limit)
    assert plan.peak_memory <= limit < least_unchunked
    assert plan.cost == optimize(chain).cost  # the same FMAs
    assert plan.steps[0].chunk is None and 1 < plan.steps[1].chunk < 64
    jacobian = chainorder.jacobian(f, memory_limit=limit)
    assert float(jnp.max(jnp.abs(jacobian(x) - jax.jacobian(f)(x)))) <= 1e-10
    (plan,) = jacobian.plans.values()
    assert plan.mode == "forward" and any(step.chunk for step in plan.steps)
    # it runs chunked, not as jax.jacfwd: XLA holds what the model says, well below jacfwd's
    assert xla_bytes(jacobian, x) <= 1.15 * 8 * plan.peak_memory < xla_bytes(jax.jacfwd(f), x)


def test_chunked_plans_peak_where_xla_says():
    """The model's peak against XLA's argument + output + temp bytes of the compiled plan (float32;
    dense tanh layers, the first written explicitly, the tangent step through the others chunked).
    Chunks of 26 and 100 do not divide the 128 seeds: their last iteration overlaps the one before;
    a shorter last chunk after the loop held 1.21x the model at 100."""
    functions, x = dense_chain([128, 128, 4096, 128], 0, jnp.float32)
    chain = Chain.from_functions(functions, x)
    for chunk in (26, 100, 8, 32):  # the last, 32, against the unchunked plan below
        plan = Plan(chain, _chunked(chain, forward_steps(chain), chunk))
        xla = xla_bytes(plan.jacobian, x)
        assert 0.9 <= xla / (4 * plan.peak_memory) <= 1.1, (chunk, xla, 4 * plan.peak_memory)
    unchunked = Plan(chain, forward_steps(chain))
    assert plan.peak_memory < unchunked.peak_memory / 3


def test_chunks_cost_time_not_fmas_and_survive_json():
    chain = Chain.from_dims([64, 64, 2048, 64])
    steps = forward_steps(chain)
    whole, by_one = Plan(chain, steps), Plan(chain, _chunked(chain, steps, 1))
    assert by_one.cost == whole.cost and by_one.peak_memory < whole.peak_memory
    assert by_one.predicted_time > whole.predicted_time  # 64 iterations of fixed costs, at the matrix-vector rate
    assert Plan.from_json(by_one.to_json(), chain) == by_one
    assert "tangent step, 1 at a time" in str(by_one)


def test_bad_chunks_are_refused():
    with pytest.raises(ValueError, match="a product has no seeds to chunk"):
        Step("product", 0, 1, 0, 24, chunk=4)
    with pytest.raises(ValueError, match="chunk must be a positive number of seeds or None, got 0"):
        Step("tangent_step", 0, 1, 0, 24, chunk=0)
    explicit = Chain([chainorder.Layer(4, 3, explicit=True), chainorder.Layer(3, 2)])
    steps = forward_steps(explicit)
    with pytest.raises(ValueError, match="written explicitly or by compression has no chunks"):
        Plan(explicit, [replace(steps[0], chunk=2), *steps[1:]])
    with pytest.raises(TypeError, match="chunked must be True or False"):
        pareto(explicit, chunked="yes")
