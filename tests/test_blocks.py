"""Out-of-core Jacobians: blocks within a budget, written into a host array, equal to jax.jacobian."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder
from chainorder import Chain, optimize
from chainorder.core.blocking import choose_blocking

RNG = np.random.default_rng(0)


def mlp(widths):
    weights = [jnp.asarray(RNG.standard_normal((b, a)) / np.sqrt(a)) for a, b in zip(widths, widths[1:])]

    def f(v):
        for weight in weights:
            v = jnp.tanh(weight @ v)
        return v

    return f, jnp.linspace(-1.0, 1.0, widths[0])


@pytest.mark.parametrize("widths", [[300, 4, 300], [40, 6, 500], [500, 6, 40]])
def test_blocks_equal_jax_jacobian(widths):
    f, x = mlp(widths)
    expected = np.asarray(jax.jacobian(f)(x))
    budget = expected.size // 5  # the Jacobian is five times the budget
    chain = chainorder.analyze(f, x, objective="fma").chain
    orientation, size = choose_blocking(chain, budget, {})
    assert size < (chain.in_dim if orientation == "columns" else chain.out_dim)  # really in blocks
    assert optimize(chain, objective="fma").peak_memory > budget
    out = np.zeros(expected.shape)
    assert chainorder.jacobian(f, memory_limit=budget, out=out)(x) is out
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_blocks_into_a_memmap_with_array_shapes_and_a_plan(tmp_path):
    weight = jnp.asarray(RNG.standard_normal((20 * 15, 10 * 30)) / 50)

    def f(v):  # (10, 30) -> (20, 15)
        return jnp.sin(weight @ v.ravel()).reshape(20, 15)

    x = jnp.asarray(RNG.standard_normal((10, 30)))
    out = np.lib.format.open_memmap(tmp_path / "J.npy", mode="w+", dtype=np.float64, shape=(20, 15, 10, 30))
    chainorder.jacobian(f, memory_limit="80KB", out=out)(x)
    out.flush()
    np.testing.assert_allclose(np.load(tmp_path / "J.npy"), np.asarray(jax.jacobian(f)(x)), rtol=0, atol=1e-10)
    g, v = mlp([120, 5, 120])
    plan = optimize(Chain.from_functions([g], v))
    blocked = np.zeros((120, 120))
    plan.jacobian(v, out=blocked, memory_limit=3000)
    np.testing.assert_allclose(blocked, np.asarray(jax.jacobian(g)(v)), rtol=0, atol=1e-10)
    with pytest.raises(TypeError, match="give out= too"):
        plan.jacobian(v, memory_limit=3000)


def test_keyword_arguments_and_other_argnums_pass_through():
    f, x = mlp([60, 3, 60])

    def h(scale, v, *, shift):
        return f(v) * scale + shift

    out = np.zeros((60, 60))
    chainorder.jacobian(h, argnums=1, memory_limit=1000, out=out)(2.0, x, shift=1.0)
    np.testing.assert_allclose(out, np.asarray(jax.jacobian(h, argnums=1)(2.0, x, shift=1.0)), atol=1e-10)


@pytest.mark.parametrize(
    "out, options, error, message",
    [
        (np.zeros((300, 299)), {}, ValueError, "out has shape \\(300, 299\\); this Jacobian has shape \\(300, 300\\)"),
        (np.zeros((300, 300), np.float32), {}, ValueError, "out has dtype float32; this Jacobian's dtype is float64"),
        (np.zeros((300, 300)).T, {}, ValueError, "C-contiguous"),
        ([[0.0]], {}, TypeError, "numpy array or np.memmap"),
        (np.zeros((300, 300)), {"memory_limit": 5}, ValueError, "below what even one column or one row"),
        (np.zeros((300, 300)), {"memory_limit": "lots"}, ValueError, "does not parse"),
    ],
)
def test_bad_out_or_budget_is_refused_and_nothing_is_written(out, options, error, message):
    f, x = mlp([300, 4, 300])
    with pytest.raises(error, match=message):
        chainorder.jacobian(f, out=out, **options)(x)
    if isinstance(out, np.ndarray):
        assert not out.any()


def test_read_only_out_jit_and_unsupported_options():
    f, x = mlp([30, 3, 30])
    frozen = np.zeros((30, 30))
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        chainorder.jacobian(f, out=frozen)(x)
    out = np.zeros((30, 30))
    with pytest.raises(TypeError, match="cannot run under jax.jit"):
        jax.jit(chainorder.jacobian(f, out=out))(x)
    with pytest.raises(TypeError, match="argnums an int"):
        chainorder.jacobian(f, argnums=(0,), out=out)
    with pytest.raises(TypeError, match="does not combine with has_aux"):
        chainorder.jacobian(f, has_aux=True, out=out)


def test_no_plan_fits_so_the_device_result_is_filled_in_blocks():
    f, x = mlp([256, 256, 256, 256])
    chain = chainorder.analyze(f, x, objective="fma").chain
    least = chainorder.pareto(chain)[0].peak_memory
    budget = int(256 * 256 * 1.3)  # 1.3x the Jacobian, under the least peak of any plan of the whole
    assert least > budget
    from chainorder.core.optimize import NoPlanFits

    with pytest.raises(NoPlanFits):
        optimize(chain, memory_limit=budget)
    J = chainorder.jacobian(f, memory_limit=budget)(x)
    assert isinstance(J, jax.Array) and J.shape == (256, 256)
    np.testing.assert_allclose(np.asarray(J), np.asarray(jax.jacobian(f)(x)), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="Jacobian alone is 65,536 elements .* give out="):
        chainorder.jacobian(f, memory_limit=60_000)(x)
    with pytest.raises(ValueError, match="no plan fits memory_limit") as error:  # under jit: no blocks
        jax.jit(chainorder.jacobian(f, memory_limit=budget))(x)
    assert any("called outside jax.jit and jax.vmap" in note for note in error.value.__notes__)


@pytest.mark.parametrize(
    "options",
    [{"strategy": "forward"}, {"strategy": "reverse"}, {"objective": "fma"}, {"objective": "time"}, {"dense": 1}],
    ids=["forward", "reverse", "fma", "time", "dense-only"],
)
def test_every_strategy_in_blocks_equals_jax_jacobian(options):
    if options == {"dense": 1}:
        options = {"matrix_free": False}
    f, x = mlp([120, 6, 30, 120])
    expected = np.asarray(jax.jacobian(f)(x))
    budget = expected.size // 3
    out = np.zeros(expected.shape)
    chainorder.jacobian(f, memory_limit=budget, out=out, **options)(x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)
    if "strategy" not in options:  # a pure strategy cannot always fit the rest of a budget on the device
        on_device = chainorder.jacobian(f, memory_limit=int(expected.size * 1.6), **options)(x)
        np.testing.assert_allclose(np.asarray(on_device), expected, rtol=0, atol=1e-10)
