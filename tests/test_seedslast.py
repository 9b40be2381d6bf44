"""Forward mode with the seeds kept last (backend/seedslast.py): equal to jax.jacobian, no transposes."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder
from chainorder.backend.seedslast import jacfwd_seeds_last, seeds_last_jaxpr

WEIGHT = jnp.asarray(np.random.default_rng(0).standard_normal((6, 6)) / 2.5)


@jax.jit
def _jitted(v):
    return jnp.tanh(WEIGHT @ v)


@jax.custom_jvp
def _softplus(v):
    return jnp.log1p(jnp.exp(v))


_softplus.defjvp(lambda primals, tangents: (_softplus(primals[0]), jax.nn.sigmoid(primals[0]) * tangents[0]))


#: one function per primitive family a JVP may hold; each runs with the seeds last
SUPPORTED = {
    "dense tanh": lambda v: jnp.tanh(WEIGHT @ v) * v,
    "nested jit": lambda v: _jitted(v) + _jitted(2 * v),
    "checkpoint": lambda v: jax.checkpoint(lambda u: jnp.sin(WEIGHT @ u))(v) * v,
    "custom_jvp rule": lambda v: _softplus(WEIGHT @ v),
    "select and clip": lambda v: jnp.where(v > 0, v**2, jnp.sin(v)) + jnp.clip(v, -0.3, 0.3) * v,
    "cumsum, max": lambda v: jnp.cumsum(v * v) + jnp.max(v) * v,
    "slice, pad, concatenate, rev": lambda v: jnp.concatenate([v[1:], jnp.pad(v[:2], 1)[::-1]]) ** 2,
    "gather, scatter-add": lambda v: (
        v[jnp.array([3, 1, 1, 0])] * jnp.sum(v) + jnp.zeros(4).at[jnp.array([0, 0, 2])].add(v[:3])
    ),
    "dynamic slice and update": lambda v: (
        jax.lax.dynamic_update_slice(v, jax.lax.dynamic_slice(v, (2,), (3,)) ** 3, (1,))
    ),
    "sort": lambda v: jnp.sort(jnp.sin(v)),
    "convolution": lambda v: jnp.convolve(v, jnp.array([1.0, 2.0, 3.0]), mode="same") * v,
    "softmax, reshape, transpose": lambda v: jax.nn.log_softmax(v.reshape(2, 3).T, axis=0).ravel(),
    "integer_pow, div, rsqrt": lambda v: v**3 / (2.0 + v**2) + jax.lax.rsqrt(3.0 + v**2),
    "layer norm": lambda v: (v - v.mean()) / jnp.sqrt(v.var() + 1e-5),
    "scalar output": lambda v: jnp.sum(v**2)[None],
    "constant output": lambda v: jnp.ones(3),
    "unused input": lambda v: jnp.ones(3) * jnp.sum(jnp.zeros(6) * 0.0),
}

#: control flow: run as jax.jacfwd
FALLBACK = {
    "scan": lambda v: jax.lax.scan(lambda c, _: (jnp.sin(WEIGHT @ c), None), v, None, length=3)[0],
    "fori_loop": lambda v: jax.lax.fori_loop(0, 3, lambda _, c: jnp.tanh(c) * 1.5, v),
    "cond": lambda v: jax.lax.cond(True, jnp.sin, jnp.cos, v),
}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_seeds_last_equals_jax_jacobian(name):
    function, x = SUPPORTED[name], jnp.linspace(-1.0, 1.0, 6)
    assert seeds_last_jaxpr(function, x) is not None
    ours, expected = jax.jit(jacfwd_seeds_last(function))(x), jax.jacobian(function)(x)
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_control_flow_runs_as_jacfwd(name):
    function, x = FALLBACK[name], jnp.linspace(-1.0, 1.0, 6)
    assert seeds_last_jaxpr(function, x) is None
    np.testing.assert_allclose(jacfwd_seeds_last(function)(x), jax.jacobian(function)(x), rtol=0, atol=1e-12)


def test_seeds_last_composes_with_vmap_and_grad():
    function = SUPPORTED["select and clip"]
    xs = jnp.stack([jnp.linspace(-1.0, 1.0, 6), jnp.linspace(0.5, -2.0, 6)])
    expected = jax.vmap(jax.jacobian(function))(xs)
    np.testing.assert_allclose(jax.vmap(jacfwd_seeds_last(function))(xs), expected, rtol=0, atol=1e-12)
    dense = SUPPORTED["dense tanh"]
    trace = lambda jacobian: lambda v: jnp.trace(jacobian(dense)(v))  # noqa: E731
    expected = jax.grad(trace(jax.jacfwd))(xs[0])
    np.testing.assert_allclose(jax.grad(trace(jacfwd_seeds_last))(xs[0]), expected, rtol=0, atol=1e-12)


def _rk4(width: int, steps: int):
    weight = jnp.asarray(np.random.default_rng(0).standard_normal((width, width)) / np.sqrt(width), jnp.float32)

    def f(y):
        field = lambda v: jnp.tanh(weight @ v) - 0.1 * v  # noqa: E731
        for _ in range(steps):
            k1 = field(y)
            k2 = field(y + 0.025 * k1)
            k3 = field(y + 0.025 * k2)
            k4 = field(y + 0.05 * k3)
            y = y + 0.05 / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y

    return f, jnp.linspace(-1, 1, width, dtype=jnp.float32)


def _transposes(function, x) -> int:
    return len(re.findall(r"= \S+ transpose\(", jax.jit(function).lower(x).compile().as_text()))


def test_an_unrolled_rk4_compiles_without_the_transposes_of_jacfwd():
    """jax.jacfwd's vmap keeps the seeds first; the products leave them last, so XLA moves them
    back and forth (the drop-in benchmark's RK4: 121 transposes, 1.3x slower than jacrev)."""
    function, x = _rk4(16, 4)
    assert _transposes(jax.jacfwd(function), x) > 0
    assert _transposes(jacfwd_seeds_last(function), x) == 0
    assert _transposes(chainorder.jacobian(function, objective="fma"), x) == 0
    np.testing.assert_allclose(chainorder.jacobian(function)(x), jax.jacfwd(function)(x), rtol=1e-5, atol=1e-6)
