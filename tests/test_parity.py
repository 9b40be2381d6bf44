"""chainorder.jacobian against jax.jacobian on a zoo of functions: values, shapes, dtypes and
pytree layout; and the same exception type for every invalid use."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import chainorder

RNG = np.random.default_rng(0)


def _array(*shape, dtype=jnp.float64):
    return jnp.asarray(RNG.standard_normal(shape), dtype)


W1, W2, W3 = _array(16, 24) / 5, _array(24, 16) / 5, _array(24, 24) / 5
X = jnp.linspace(-1, 1, 24)


def mlp(x):
    return W2 @ jnp.tanh(W1 @ x)


@jax.custom_jvp
def soft_clip(x):
    return jnp.tanh(x)


soft_clip.defjvp(lambda primals, tangents: (soft_clip(primals[0]), (1 - jnp.tanh(primals[0]) ** 2) * tangents[0]))


@jax.custom_vjp
def clip_gradient(x):
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (jnp.clip(g, -0.5, 0.5),))


def rk4(y, steps=20, h=0.05):
    def field(v):
        return jnp.tanh(W3 @ v) - 0.1 * v

    for _ in range(steps):
        k1 = field(y)
        k2 = field(y + h / 2 * k1)
        k3 = field(y + h / 2 * k2)
        k4 = field(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


def _equinox_model():
    model = eqx.nn.MLP(24, 5, 32, 2, key=jax.random.PRNGKey(0))
    return lambda x: model(x)


def _flax_model():
    from flax import nnx

    model = nnx.Sequential(nnx.Linear(24, 32, rngs=nnx.Rngs(0)), nnx.gelu, nnx.Linear(32, 6, rngs=nnx.Rngs(1)))
    return lambda x: model(x)


def _diffrax_solve(y0):
    import diffrax

    term = diffrax.ODETerm(lambda t, y, args: -y + jnp.sin(y))
    solution = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1.0, 0.1, y0, saveat=diffrax.SaveAt(t1=True))
    return solution.ys[0]


def _attention(x):
    q = x.reshape(6, 4)
    scores = jax.nn.softmax(q @ q.T / 2.0, axis=-1)
    return (scores @ q).reshape(-1)


# name: (function, args, kwargs, jacobian options)
CASES = {
    "mlp": (mlp, (X,), {}, {}),
    "elementwise matrix": (jnp.sin, (X.reshape(4, 6),), {}, {}),
    "scalar output": (lambda x: jnp.sum(jnp.tanh(W1 @ x) ** 2), (X,), {}, {}),
    "matrix to matrix": (lambda m: m @ m.T, (X.reshape(4, 6),), {}, {}),
    "softmax": (jax.nn.softmax, (X,), {}, {}),
    "layer norm": (lambda x: (x - x.mean()) / jnp.sqrt(x.var() + 1e-5), (X,), {}, {}),
    "convolution": (lambda x: jnp.convolve(x, jnp.array([0.25, 0.5, 0.25]), mode="same"), (X,), {}, {}),
    "cumsum": (lambda x: jnp.cumsum(jnp.sin(x)), (X,), {}, {}),
    "sort": (lambda x: jnp.sort(jnp.sin(3 * x)), (X,), {}, {}),
    "where": (lambda x: jnp.where(x > 0, x**2, jnp.sin(x)), (X,), {}, {}),
    "gather": (lambda x: x[jnp.array([3, 1, 4, 1, 5])] * 2, (X,), {}, {}),
    "scatter": (lambda x: jnp.zeros(30).at[jnp.arange(24) + 3].set(x**2), (X,), {}, {}),
    "concatenate": (lambda x: jnp.concatenate([jnp.sin(x), W1 @ x]), (X,), {}, {}),
    "dict input": (lambda p: jnp.tanh(p["w"] @ p["x"]), ({"w": W1, "x": X},), {}, {}),
    "tuple output": (lambda x: (jnp.sin(x), W1 @ x), (X,), {}, {}),
    "argnums tuple": (lambda w, x: jnp.tanh(w @ x), (W1, X), {}, {"argnums": (0, 1)}),
    "argnums negative": (lambda w, x: jnp.tanh(w @ x), (W1, X), {}, {"argnums": -1}),
    "has_aux": (lambda x: (mlp(x), {"norm": jnp.linalg.norm(x)}), (X,), {}, {"has_aux": True}),
    "keyword arguments": (lambda x, scale=1.0: scale * mlp(x), (X,), {"scale": 2.0}, {}),
    "Python scalar in the output": (lambda x: (mlp(x), 1.0), (X,), {}, {}),
    "scan": (lambda x: jax.lax.scan(lambda c, _: (jnp.tanh(W3 @ c), None), x, None, length=5)[0], (X,), {}, {}),
    "fori_loop": (lambda x: jax.lax.fori_loop(0, 4, lambda i, c: jnp.sin(W3 @ c), x), (X,), {}, {}),
    # the predicate is far from its threshold: X sums to +-2e-16 by the order of summation, which
    # differs between two compiled programs (it did on a GPU)
    "cond": (lambda x: jax.lax.cond((x + 0.5).sum() > 0, jnp.sin, jnp.cos, x), (X,), {}, {}),
    "switch": (lambda x: jax.lax.switch(1, [jnp.sin, jnp.cos, jnp.tanh], W3 @ x), (X,), {}, {}),
    "custom_jvp": (lambda x: W2 @ soft_clip(W1 @ x), (X,), {}, {}),
    "custom_vjp in a square MLP": (lambda x: jnp.tanh(W3 @ clip_gradient(jnp.tanh(W3 @ x))), (X,), {}, {}),
    "checkpoint": (jax.checkpoint(lambda x: jnp.sin(W3 @ jnp.sin(W3 @ x))), (X,), {}, {}),
    "jit inside": (lambda x: jax.jit(mlp)(jnp.sin(x)), (X,), {}, {}),
    "vmap inside": (lambda x: jax.vmap(jnp.dot, (0, None))(W1, jnp.sin(x)), (X,), {}, {}),
    "linear solve": (lambda x: jnp.linalg.solve(W3 + 5 * jnp.eye(24), jnp.sin(x)), (X,), {}, {}),
    "attention": (_attention, (X,), {}, {}),
    "unrolled RK4": (rk4, (X,), {}, {}),
    "equinox MLP": (_equinox_model(), (X,), {}, {}),
    "flax.nnx model": (_flax_model(), (X,), {}, {}),
    "diffrax solve (custom_vjp adjoint)": (_diffrax_solve, (jnp.linspace(0.1, 1.0, 6),), {}, {}),
    "0-d input": (lambda s: jnp.sin(s * X), (jnp.asarray(0.3),), {}, {}),
    "Python float input": (lambda s: jnp.sin(s * X), (0.3,), {}, {}),
    "bfloat16": (mlp, (X.astype(jnp.bfloat16),), {}, {}),
    "float16": (jnp.sin, (X.astype(jnp.float16),), {}, {}),
    "float32": (mlp, (X.astype(jnp.float32),), {}, {}),
    "zero-size input": (lambda x: jnp.concatenate([x, jnp.ones(3)]), (jnp.ones(0),), {}, {}),
    "zero-size output": (lambda x: x[:0], (X,), {}, {}),
    "holomorphic": (lambda z: jnp.sin(z) * z, (X.astype(jnp.complex128) + 1j,), {}, {"holomorphic": True}),
    # complex in, real out: jax.jacobian is reverse mode; a JVP of a non-holomorphic map differs
    "complex input, real output": (lambda z: jnp.abs(jnp.sin(z)) ** 2, (X.astype(jnp.complex128) + 1j,), {}, {}),
    "complex input, wide": (lambda z: jnp.real(W3 @ jnp.conj(z) * z[0]), (X.astype(jnp.complex128),), {}, {}),
    "real input, complex inside": (lambda x: jnp.abs(jnp.exp(1j * (W3 @ x))) * jnp.real(jnp.exp(1j * x)), (X,), {}, {}),
    "allow_int": (lambda x, n: jnp.sin(x) * n, (X, 3), {}, {"argnums": (0, 1), "allow_int": True}),
    "mixed precision pytree": (lambda p: p["a"] * p["b"].sum(), ({"a": X.astype(jnp.float32), "b": X},), {}, {}),
}


def _same(ours, theirs, tolerance):
    ours_leaves, ours_tree = jax.tree_util.tree_flatten(ours)
    theirs_leaves, theirs_tree = jax.tree_util.tree_flatten(theirs)
    assert ours_tree == theirs_tree
    for mine, reference in zip(ours_leaves, theirs_leaves):
        assert np.shape(mine) == np.shape(reference)
        assert jnp.result_type(mine) == jnp.result_type(reference), (jnp.result_type(mine), jnp.result_type(reference))
        if jnp.issubdtype(jnp.result_type(reference), jnp.inexact):
            mine, reference = np.asarray(mine, np.complex128), np.asarray(reference, np.complex128)
            scale = max(1.0, float(np.max(np.abs(reference), initial=0)))
            assert float(np.max(np.abs(mine - reference), initial=0)) <= tolerance * scale


@pytest.mark.parametrize("name", list(CASES))
def test_equals_jax_jacobian(name):
    function, args, kwargs, options = CASES[name]
    reverse = "diffrax" not in name  # diffrax's adjoint differs from a plain reverse pass in rounding
    reference = jax.jacobian(function, **options)(*args, **kwargs)
    ours = chainorder.jacobian(function, **options)(*args, **kwargs)
    _same(ours, reference, _tolerance(args, reverse))
    # jit composes, and a second call reuses the analysis
    jitted = jax.jit(functools.partial(chainorder.jacobian(function, **options), **kwargs))(*args)
    _same(jitted, reference, max(_tolerance(args, reverse), 1e-5))


def _tolerance(args, reverse: bool) -> float:
    """Relative: half precision 1e-2, float32 1e-5, float64 1e-10 (1e-5 where another mode's rounding differs)."""
    dtypes = {jnp.result_type(leaf) for leaf in jax.tree_util.tree_leaves(args)}
    if dtypes & {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)}:
        return 1e-2
    if dtypes <= {jnp.dtype(jnp.float64), jnp.dtype(jnp.complex128)} and reverse:
        return 1e-10
    return 1e-5


def test_analyze_takes_half_precision_inputs():
    """bfloat16 is inexact to jnp but not to numpy: analyze refused it before (jacobian took it)."""
    for dtype in (jnp.bfloat16, jnp.float16):
        assert chainorder.analyze(mlp, X.astype(dtype)).chain.dims == chainorder.analyze(mlp, X).chain.dims


def test_vmap_composes():
    batch = jnp.stack([X, 2 * X, -X])
    _same(jax.vmap(chainorder.jacobian(mlp))(batch), jax.vmap(jax.jacobian(mlp))(batch), 1e-10)


def test_a_while_loop_gets_a_forward_plan_where_jax_jacobian_fails():
    def f(x):
        return jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (jnp.sin(W3 @ c[0]), c[1] + 1), (x, 0))[0]

    with pytest.raises(ValueError):
        jax.jacobian(f)(X)
    _same(chainorder.jacobian(f)(X), jax.jacfwd(f)(X), 1e-10)


INVALID = {
    "integer input": (jnp.sin, (jnp.arange(3),), {}),
    "integer output": (lambda x: (x * 2).astype(jnp.int32), (X,), {}),
    "complex without holomorphic": (jnp.sin, (X.astype(jnp.complex128),), {}),
    "holomorphic with a real input": (jnp.sin, (X,), {"holomorphic": True}),
    "string output": (lambda x: "text", (X,), {}),
    "argnums out of range": (jnp.sin, (X,), {"argnums": 2}),
    "argnums not an int": (jnp.sin, (X,), {"argnums": 1.5}),
    "has_aux without a pair": (jnp.sin, (X,), {"has_aux": True}),
}


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_uses_raise_what_jax_raises(name):
    function, args, options = INVALID[name]
    with pytest.raises(Exception) as theirs:
        jax.jacobian(function, **options)(*args)
    with pytest.raises(type(theirs.value)):
        chainorder.jacobian(function, **options)(*args)


def test_not_callable_raises_at_wrap_time():
    with pytest.raises(TypeError, match="Expected a callable value"):
        chainorder.jacobian(3)


def test_a_plan_too_big_for_memory_is_refused_before_compiling():
    from chainorder.backend.devices import available_bytes

    free = available_bytes()
    if free is None:
        pytest.skip("this device reports no free memory")
    n = int((4 * free / 8) ** 0.5)  # an n x n float64 Jacobian of four times the free memory
    weight = jnp.ones((10, 1))

    def f(x):
        return jnp.tile(weight @ x[:1], n // 10 + 1)[:n] + x

    with pytest.raises(MemoryError, match=r"needs .* GB at its peak \(the Jacobian itself is .* GB\), but only"):
        chainorder.jacobian(f)(jnp.ones(n))


def test_a_plan_amounting_to_reverse_mode_runs_as_jacrev(monkeypatch):
    """The cost ties of a traced layer-norm MLP give a reverse plan of one adjoint step per layer (it
    holds less at once); chosen freely, it runs as jax.jacrev's program, not a stage per step. Asked
    for with a tape limit, it keeps its steps."""
    from chainorder.backend import dropin
    from chainorder.front.tracedzoo import layer_norm_mlp

    f, x = layer_norm_mlp([16, 40, 6, 40, 2], dtype=jnp.float64)
    plan = chainorder.analyze(f, x).plan
    assert plan.mode == "reverse" and len(plan.steps) > 2
    calls = []

    def spy(*args):
        calls.append(1)
        return reverse(*args)

    reverse = dropin._reverse_program
    monkeypatch.setattr(dropin, "_reverse_program", spy)
    expected = jax.jacobian(f)(x)
    assert jnp.allclose(chainorder.jacobian(f)(x), expected, rtol=1e-12, atol=0) and calls
    calls.clear()
    limited = chainorder.jacobian(f, tape_limit=max(chainorder.trace(f, x).edges))
    assert jnp.allclose(limited(x), expected, rtol=1e-12, atol=0) and not calls
