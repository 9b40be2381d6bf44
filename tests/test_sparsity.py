"""Sparsity detection on the jaxpr, against the real nonzeros of jax.jacobian (float64, random inputs)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse as jax_sparse

import chainorder
from chainorder.backend.compressed import colors_and_density, compression
from chainorder.front.sparsezoo import pde_by_matrix

RNG = np.random.default_rng(0)
W1 = jnp.asarray(RNG.standard_normal((8, 5)))
W2 = jnp.asarray(RNG.standard_normal((5, 8)))


def _random(*shape):
    return jnp.asarray(RNG.standard_normal(shape))


KERNEL = _random(4, 3, 3, 3)  # OIHW
DEPTHWISE = _random(3, 3, 1, 6)  # HWIO, 2 outputs per input channel


LAPLACIAN = jnp.asarray(np.diag(np.full(10, -2.0)) + np.diag(np.ones(9), 1) + np.diag(np.ones(9), -1))
SPARSE_WEIGHTS = jnp.asarray(RNG.standard_normal((5, 8)) * (RNG.random((5, 8)) < 0.4))
MASK = RNG.random(8) < 0.5
BATCHED_SPARSE = jnp.asarray(RNG.standard_normal((3, 4, 4)) * (RNG.random((3, 4, 4)) < 0.4))
FIVE_POINT = jnp.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]  # OIHW

@jax.custom_jvp
def STRAIGHT_THROUGH(x):
    """Rounds (whose derivative is zero); its rule passes the tangent through, reversed: a
    derivative the primal computation does not have."""
    return jnp.round(x)


STRAIGHT_THROUGH.defjvp(lambda primals, tangents: (jnp.round(primals[0]), tangents[0][::-1]))


@jax.custom_vjp
def REVERSED_PRODUCT(x):
    """``sin(x) * x[::-1]`` with its own pullback (what diffrax's adjoints and flash attention do)."""
    return jnp.sin(x) * x[::-1]


REVERSED_PRODUCT.defvjp(
    lambda x: (REVERSED_PRODUCT(x), x),
    lambda x, ct: (jnp.cos(x) * x[::-1] * ct + (jnp.sin(x) * ct)[::-1],),
)


@jax.custom_vjp
def TWO_OUTPUTS(x, y):
    """Two arrays and an integer out of a custom_vjp: ``(x * y[0], cumsum(y), argmax(x))``."""
    return x * y[0], jnp.cumsum(y), jnp.argmax(x)


TWO_OUTPUTS.defvjp(
    lambda x, y: (TWO_OUTPUTS(x, y), (x, y)),
    lambda res, ct: (
        ct[0] * res[1][0],
        jnp.zeros_like(res[1]).at[0].set(jnp.sum(ct[0] * res[0])) + jnp.cumsum(ct[1][::-1])[::-1],
    ),
)


@jax.custom_jvp
def EAGER_RULE(x):
    """A rule that reads its primal's values (eager jax.jvp and jax.jacfwd run it; a trace cannot)."""
    return jnp.sin(x)


@EAGER_RULE.defjvp
def _eager_rule_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    scale = 2.0 if float(jnp.max(x)) > 100 else 1.0
    return jnp.sin(x), scale * jnp.cos(x) * t[::-1]


EXACT = {
    "elementwise": (lambda x: jnp.sin(x) * 2 + x**2 - jnp.tanh(x) / 3, _random(10)),
    "batched MLP (block diagonal)": (lambda X: jnp.tanh(jnp.tanh(X @ W1) @ W2), _random(6, 8)),
    "1D stencil (banded)": (lambda x: x[2:] - 2 * x[1:-1] + x[:-2] + jnp.sin(x[1:-1]), _random(12)),
    "2D Poisson residual": (
        lambda u: u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1] + u[1:-1, 1:-1] ** 3,
        _random(7, 7),
    ),
    "transpose, reshape, reduce": (lambda x: jnp.sum(x.reshape(3, 4).T ** 2, axis=1), _random(12)),
    "cumsum": (lambda x: jnp.cumsum(jnp.sin(x)), _random(6)),
    "batched matmul (attention scores)": (lambda q: jnp.einsum("bij,bjk->bik", q, q), _random(3, 4, 4)),
    "concatenate, pad, rev": (lambda x: jnp.concatenate([jnp.pad(x[:3], 2), x[::-1]]), _random(5)),
    "stack (its own primitive)": (lambda x: jnp.stack([x[1:] ** 2, x[:-1, ::-1] * 3], axis=1), _random(4, 3)),
    "stack of reductions": (lambda x: jnp.stack([jnp.sum(x[1:] ** 2), x[0]]), _random(6)),
    "broadcast a row": (lambda x: jnp.tanh(x[None, :] + jnp.ones((3, 1))), _random(4)),
    "where": (lambda x: jnp.where(x > 0, jnp.sin(x), x**3), _random(6)),
    "pytree out": (lambda x: {"a": x[:2] * 3, "b": jnp.sum(x)}, _random(5)),
    "gather, constant indices": (lambda x: x[np.array([3, 0, 7, 7, -1])] * x[2], _random(9)),
    "take_along_axis": (lambda x: jnp.take_along_axis(x, np.array([[0, 3], [1, 1], [2, 0]]), axis=1), _random(3, 4)),
    "dynamic_update_slice": (lambda x: jax.lax.dynamic_update_slice(x, x[:3] ** 2, (5,)), _random(9)),
    "scatter-add (repeated indices)": (lambda x: x.at[np.array([1, 1, 4])].add(x[:3] ** 2), _random(8)),
    "scatter (overwrite), dropped": (lambda x: x.at[np.array([1, 5, 40])].set(x[:3] ** 2, mode="drop"), _random(8)),
    "conv, padded": (lambda x: jax.lax.conv_general_dilated(x, KERNEL, (1, 1), "SAME"), _random(2, 3, 6, 6)),
    "conv, strided and dilated": (
        lambda x: jax.lax.conv_general_dilated(x, KERNEL, (2, 1), ((2, 2), (1, 1)), rhs_dilation=(2, 1)),
        _random(1, 3, 7, 6),
    ),
    "conv, depthwise NHWC": (
        lambda x: jax.lax.conv_general_dilated(
            x, DEPTHWISE, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3
        ),
        _random(1, 5, 5, 3),
    ),
    "jax.checkpoint": (lambda x: jax.checkpoint(lambda u: jnp.sin(u) * u[::-1])(x), _random(6)),
    "jnp.convolve": (lambda x: jnp.convolve(jnp.sin(x), jnp.array([1.0, -2.0, 1.0]), mode="same"), _random(10)),
    "tile and repeat": (lambda x: jnp.tile(x[:3], (2, 2)).ravel() * jnp.repeat(x[3:6], 4), _random(7)),
    "split": (lambda x: jnp.split(x, [2, 5])[1] * jnp.split(x.reshape(2, 4), 2, axis=1)[0].ravel()[:3], _random(8)),
    # random numbers (key-typed values) are constants: only the product depends on x
    "jax.random inside": (lambda x: x * jax.random.uniform(jax.random.key(0), x.shape), _random(6)),
    # known values: constants' zeros and predicates, read where a rule needs them
    "a sparse matrix stored dense (L @ u)": (lambda u: LAPLACIAN @ u + u**3, _random(10)),
    "weights with zeros, transposed inside": (lambda x: jnp.tanh(x @ SPARSE_WEIGHTS.T), _random(3, 8)),
    "batched product, a constant with zeros": (
        lambda x: jnp.einsum("bij,bjk->bik", BATCHED_SPARSE, jnp.sin(x)) + jnp.einsum("bij,bkj->bki", x, BATCHED_SPARSE)
        ** 2,
        _random(3, 4, 4),
    ),
    "where, a constant mask": (lambda x: jnp.where(MASK, x**2, jnp.roll(x, 1)), _random(8)),
    "where, a mask computed from constants": (lambda x: jnp.where(jnp.arange(8) % 3 == 0, jnp.sin(x), 0.0), _random(8)),
    "conv, a 5-point kernel with zeros": (
        lambda u: jax.lax.conv_general_dilated(u[None, None], FIVE_POINT, (1, 1), "SAME")[0, 0] + u**3,
        _random(6, 6),
    ),
    "stop_gradient": (lambda x: x * jax.lax.stop_gradient(jnp.roll(x, 1)) + jax.lax.stop_gradient(x[0]), _random(6)),
    "a mask from a custom_jvp of constants": (
        lambda x: jnp.sin(x) * (jax.nn.relu(jnp.arange(6.0) - 3) > 0),
        _random(6),
    ),
    "times a constant with zeros": (lambda x: jnp.sin(x) * jnp.array([1.0, 0.0, 2.0, 0.0, 0.0, 3.0]), _random(6)),
    # custom_jvp functions: the pattern of the JVP their rule computes
    "softplus and logaddexp (custom_jvp)": (
        lambda x: jax.nn.softplus(x @ SPARSE_WEIGHTS.T) + jnp.logaddexp(x, x[:, ::-1])[:, :5],
        _random(3, 8),
    ),
    "a straight-through rule (custom_jvp)": (lambda x: STRAIGHT_THROUGH(x) + x[0], _random(6)),
    # custom_vjp functions: the pullback their rule computes, transposed
    "a custom_vjp with its own pullback": (lambda x: REVERSED_PRODUCT(x[1:]) * x[0], _random(6)),
    "a custom_vjp of two arguments, three outputs": (
        lambda x: jnp.concatenate([TWO_OUTPUTS(x[:3], x[2:])[0], TWO_OUTPUTS(x[:3], x[2:])[1] * 2.0]),
        _random(6),
    ),
    "special functions, complex": (
        lambda x: jnp.abs(jax.lax.complex(x, x[::-1])) * jax.scipy.special.i0e(x)
        + jax.scipy.special.gammainc(3.0, x**2) + jax.scipy.special.polygamma(1, x + 2.0)
        + jax.scipy.special.zeta(x + 3.0, 1.0),
        _random(6),
    ),
    "optimization_barrier": (
        lambda x: jnp.prod(jnp.stack(jax.lax.optimization_barrier((x[1:], x[:-1] ** 2))), 0),
        _random(6),
    ),
    # integers and booleans have no derivative: an argmax depends on nothing
    "times an argmax": (lambda x: jnp.sin(x) * (jnp.argmax(x) + 1) + jnp.where(x > x[0], x, 2 * x), _random(6)),
}


def _pattern_and_nonzeros(f, x):
    pattern = np.asarray(chainorder.sparsity(f, x).todense()) != 0
    leaves = jax.tree_util.tree_leaves(jax.jacobian(f)(x))
    nonzeros = np.concatenate([np.asarray(leaf).reshape(-1, x.size) for leaf in leaves]) != 0
    return pattern, nonzeros


@pytest.mark.parametrize("name", list(EXACT))
def test_detected_pattern_equals_the_real_nonzeros(name):
    f, x = EXACT[name]
    pattern, nonzeros = _pattern_and_nonzeros(f, x)
    assert pattern.shape == nonzeros.shape
    np.testing.assert_array_equal(pattern, nonzeros)


@pytest.mark.parametrize(
    "f, x",
    [
        (lambda x: jnp.sort(x) * x, _random(5)),
        (lambda x: jax.lax.fori_loop(0, 3, lambda i, v: jnp.sin(v) + v[::-1], x), _random(5)),
        (lambda x: x[jnp.argsort(x)] * 2, _random(3)),
        (lambda x: x.at[jnp.argmax(x)].add(x[0]), _random(4)),
        (lambda x: EAGER_RULE(x[::-1] * x), _random(5)),
    ],
    ids=["sort", "fori_loop", "gather, computed indices", "scatter, computed index", "a rule reading values"],
)
def test_conservative_rules_never_miss_a_nonzero(f, x):
    pattern, nonzeros = _pattern_and_nonzeros(f, x)
    assert np.all(pattern >= nonzeros)


def test_a_function_closing_over_a_traced_value_under_jit():
    """Under ``jax.jit``, ``f`` may close over the outer function's tracers (here the indices of a
    gather and a mask): they are not known, the pattern is conservative, and the Jacobian is
    jax.jacobian's. The walk read them as numbers before (TracerArrayConversionError)."""
    x = _random(300)
    indices, mask = jnp.asarray(np.arange(300)[::-1]), jnp.asarray(MASK.repeat(38)[:300])

    def outer(indices, mask, x, sparse):
        f = lambda v: jnp.where(mask, jnp.sin(v[indices]) * v, v)  # noqa: E731
        result = chainorder.jacobian(f, sparse=sparse)(x)
        return result.todense() if sparse else result

    expected = jax.jacobian(lambda v: jnp.where(mask, jnp.sin(v[indices]) * v, v))(x)
    for sparse in (False, True):
        result = jax.jit(outer, static_argnums=3)(indices, mask, x, sparse)
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)


def test_a_sparse_matrix_stored_dense_is_compressed_by_its_stencil():
    """``L @ u`` with a constant 2-D Laplacian stored as a dense 1600 x 1600 array: its zeros are
    the Jacobian's, so the residual gets the stencil's colors (5), not one per column, and the dense
    path compresses too (its detection budget counts the products through L's nonzeros only)."""
    residual, _ = pde_by_matrix(40)
    u = _random(40, 40)
    report = colors_and_density(compression(residual, u))
    assert (report["colors"], report["lower_bound"]) == (5, 5)
    laplacian = np.asarray(jax.jacobian(lambda v: residual(v) - v**3)(jnp.zeros_like(u))).reshape(1600, 1600)
    expected = laplacian + np.diag(3 * np.asarray(u).ravel() ** 2)
    dense = chainorder.jacobian(residual)
    np.testing.assert_allclose(np.asarray(dense(u)).reshape(1600, 1600), expected, rtol=1e-6, atol=1e-5)
    assert next(iter(dense.strategies.values())).startswith("compressed forward")
    result = chainorder.jacobian(residual, sparse=True)(u)
    np.testing.assert_allclose(np.asarray(result.todense()).reshape(1600, 1600), expected, rtol=1e-6, atol=1e-5)


def test_a_convolution_kernel_pattern_is_exact():
    convolve = lambda kernel, x: jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME")  # noqa: E731
    kernel, x = _random(4, 3, 3, 3), _random(2, 3, 5, 5)
    pattern = np.asarray(chainorder.sparsity(convolve, kernel, x).todense()) != 0
    nonzeros = np.asarray(jax.jacobian(convolve)(kernel, x)).reshape(-1, kernel.size) != 0
    np.testing.assert_array_equal(pattern, nonzeros)
    assert 0 < nonzeros.mean() < 0.3  # corners of the padded image miss some kernel taps


def test_argnums_and_scale():
    f = lambda a, b: jnp.tanh(a * b[0])  # noqa: E731
    pattern = chainorder.sparsity(f, _random(4), _random(3), argnums=1)
    assert pattern.shape == (4, 3) and np.asarray(pattern.todense())[:, 1:].sum() == 0
    weights = jnp.asarray(RNG.standard_normal((64, 64)) / 8)
    batched = lambda X: jnp.tanh(jnp.tanh(X @ weights) @ weights)  # noqa: E731  (32 x 64: 2048 x 2048, 3% dense)
    start = time.perf_counter()
    pattern = chainorder.sparsity(batched, _random(32, 64))
    assert time.perf_counter() - start < 30
    assert pattern.nse == 32 * 64 * 64


@pytest.mark.parametrize("name", list(EXACT))
def test_sparse_jacobian_by_compression_equals_jax_jacobian(name):
    f, x = EXACT[name]
    sparse_jacobian = chainorder.jacobian(f, sparse=True)
    expected = jax.jacobian(f)(x)
    for compute in (sparse_jacobian, jax.jit(sparse_jacobian)):
        _assert_sparse_equals(compute(x), expected)


def _assert_sparse_equals(result, expected) -> None:
    """``result`` holds a BCOO where ``expected`` (jax.jacobian's) holds an array, in the same pytree,
    each of its shape and dtype, its ``todense()`` equal (1e-12)."""
    is_bcoo = lambda leaf: isinstance(leaf, jax_sparse.BCOO)  # noqa: E731
    assert jax.tree_util.tree_structure(result, is_leaf=is_bcoo) == jax.tree_util.tree_structure(expected)
    blocks = jax.tree_util.tree_leaves(result, is_leaf=is_bcoo)
    for block, reference in zip(blocks, jax.tree_util.tree_leaves(expected)):
        assert is_bcoo(block) and block.shape == reference.shape and block.dtype == reference.dtype
        np.testing.assert_allclose(np.asarray(block.todense()), np.asarray(reference), rtol=0, atol=1e-12)


def test_sparse_result_has_jax_jacobians_layout_for_every_input_and_output_tree():
    """sparse=True returns jax.jacobian's pytree with a BCOO for each block (an output leaf by an input
    leaf), shaped like it, in its dtype: matrices in and out, scalars, dicts and lists of arrays in,
    tuples and dicts out, mixed float32/float64 leaves; eagerly, under jit, and a second call."""
    W = jnp.asarray(RNG.standard_normal((3, 4)))
    cases = {
        "matrix in and out": (lambda X: jnp.tanh(X @ W.T) * X[:, :3], _random(5, 4)),
        "scalar out": (lambda x: jnp.sum(jnp.sin(x) ** 2), _random(6)),
        "scalar in": (lambda s: jnp.stack([s, s**2, jnp.sin(s)]), jnp.float64(0.3)),
        "scalar in and out": (lambda s: jnp.sin(s) * s, jnp.float64(0.3)),
        "dict in, tuple out": (
            lambda d: (d["u"] * 2 + jnp.sum(d["v"]), {"w": jnp.sin(d["u"][:2]) * d["v"][0]}),
            {"u": _random(3), "v": _random(2, 2)},
        ),
        "list in": (lambda pair: pair[0][1:] * pair[1][:-1], [_random(4), _random(4)]),
        "float32 and float64 leaves": (
            lambda d: d["a"].astype(jnp.float64) * d["b"],
            {"a": _random(5).astype(jnp.float32), "b": _random(5)},
        ),
        "an empty block": (lambda d: (jnp.sin(d["a"]), d["a"] * 0 + 1), {"a": _random(4), "b": _random(2)}),
    }
    for name, (f, x) in cases.items():
        expected = jax.jacobian(f)(x)
        sparse_jacobian = chainorder.jacobian(f, sparse=True)
        for compute in (sparse_jacobian, jax.jit(sparse_jacobian), sparse_jacobian):
            try:
                _assert_sparse_equals(compute(x), expected)
            except AssertionError as error:
                raise AssertionError(name) from error


def test_sparse_result_with_argnums_a_tuple_is_jax_jacobians():
    """argnums a tuple: for each output leaf, a tuple of blocks, one per argument, as jax.jacobian gives;
    with every argument differentiated it is found once, and called again with new values."""

    def f(a, b, scale=1.0):
        return {"y": jnp.sin(a[1:]) * b[:-1] * scale, "z": a * 2}

    a, b = _random(6), _random(6)
    for argnums in [(0, 1), (1,), (1, 0), (-1,)]:
        sparse_jacobian = chainorder.jacobian(f, argnums=argnums, sparse=True)
        for compute in (sparse_jacobian, jax.jit(sparse_jacobian), sparse_jacobian):
            _assert_sparse_equals(compute(a, b), jax.jacobian(f, argnums=argnums)(a, b))
        _assert_sparse_equals(sparse_jacobian(b, a, scale=3.0), jax.jacobian(f, argnums=argnums)(b, a, scale=3.0))
        # kept where every argument is differentiated and nothing passed by keyword
        assert len(sparse_jacobian.compression) == (1 if sorted(argnums) == [0, 1] else 0)
    with pytest.raises(TypeError, match="argnums 2 is out of range"):
        chainorder.jacobian(f, argnums=(0, 2), sparse=True)(a, b)


def test_sparse_result_runs_the_mode_jax_can_run():
    """A custom_vjp refuses JVPs: sparse=True pulls its rows back even where columns would need as
    few colors (the elementwise map: one of each). A while_loop refuses VJPs: its columns are pushed.
    jax.jacobian's own errors for invalid uses come first (an integer output)."""

    @jax.custom_vjp
    def sine(v):
        return jnp.sin(v)

    sine.defvjp(lambda v: (jnp.sin(v), v), lambda v, g: (jnp.cos(v) * g,))
    x = _random(50)
    assert compression(jnp.sin, x)[2].mode == "columns"
    assert compression(sine, x)[2].mode == "rows"
    _assert_sparse_equals(chainorder.jacobian(sine, sparse=True)(x), jax.jacobian(sine)(x))

    def looped(v):  # rows: 2 colors, columns: 50 (every column meets row 0)
        u = jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (jnp.sin(c[0]) * 1.5, c[1] + 1), (v, 0))[0]
        return jnp.stack([jnp.sum(u), u[0]])

    assert compression(lambda v: jnp.stack([jnp.sum(jnp.sin(v)), v[0]]), x)[2].mode == "rows"
    assert compression(looped, x)[2].mode == "columns"
    _assert_sparse_equals(chainorder.jacobian(looped, sparse=True)(x), jax.jacfwd(looped)(x))
    with pytest.raises(TypeError, match="real-valued outputs"):
        chainorder.jacobian(lambda v: (v * 2, jnp.arange(3)), sparse=True)(x)
    # complex in, real out: jax.jacobian is reverse mode's; JVPs would give another (wrong) result
    z = x + 0.5j * _random(50)
    for f in (lambda z: jnp.abs(jnp.sin(z)) ** 2, lambda z: jnp.real(z[1:] * jnp.conj(z[:-1]))):
        assert compression(f, z)[2].mode == "rows"
        _assert_sparse_equals(chainorder.jacobian(f, sparse=True)(z), jax.jacobian(f)(z))


def test_a_compressed_jacobian_stored_whole_is_batched_by_rows_with_out_of_bounds_padding():
    """The 2-D residual on a 22 x 22 grid, zero on the boundary: 5 colors of JVPs hold 22 x 22 x 5
    entries for 20 x 20 x 5 nonzeros (within STORED_WHOLE). The BCOO, shaped (22, 22, 22, 22) like
    jax.jacobian's result, is batched over the output (n_batch 2, data (22, 22, 5): each output entry's
    nonzero in each color), the empty entries at input index (22, 22), out of bounds. Every BCOO
    operation drops those: todense, a product, the flat layout with its duplicates summed."""
    from chainorder.backend.compressed import STORED_WHOLE, compression

    residual, x = EXACT["2D Poisson residual"][0], _random(22, 22)

    def f(u):
        return jnp.pad(residual(u), 1)

    rows, columns, coloring, m, n = compression(f, x)
    J = chainorder.jacobian(f, sparse=True)(x)
    dense = np.asarray(jax.jacobian(f)(x))
    slots = coloring.count * m
    assert coloring.mode == "columns" and len(rows) < slots <= STORED_WHOLE * len(rows)
    assert J.shape == dense.shape and (J.n_batch, J.n_sparse, J.n_dense) == (2, 2, 0)
    assert J.data.shape == (22, 22, coloring.count) and J.indices.shape == (22, 22, coloring.count, 2)
    indices = np.asarray(J.indices)
    padding = (indices == (22, 22)).all(axis=-1)
    assert padding.sum() == slots - len(rows) and (indices[~padding] < 22).all()
    assert (np.asarray(J.data)[padding] == 0).all()
    # each stored entry sits in its row's batch, at the column its color holds there
    held = np.argwhere(~padding)
    assert sorted(zip(held[:, 0] * 22 + held[:, 1], indices[~padding] @ (22, 1))) == sorted(zip(rows, columns))
    np.testing.assert_allclose(np.asarray(J.todense()), dense, rtol=0, atol=1e-12)
    v = _random(22, 22)
    product = jax_sparse.bcoo_dot_general(J, v, dimension_numbers=(([2, 3], [0, 1]), ([], [])))
    np.testing.assert_allclose(np.asarray(product), np.einsum("ijkl,kl->ij", dense, v), rtol=1e-12, atol=1e-12)
    flat = jax_sparse.bcoo_update_layout(J, n_batch=0).sum_duplicates(nse=len(rows))
    assert flat.nse == len(rows)
    np.testing.assert_allclose(np.asarray(flat.todense()), dense, rtol=0, atol=1e-12)


def test_a_compressed_jacobian_by_rows_stored_whole_pads_with_out_of_bounds_indices():
    """Compressed by rows (VJPs: two outputs, each of almost every input), the one block stores the
    compressed Jacobian flat, (nse,), the empty entry out of bounds in every dimension."""
    from chainorder.backend.compressed import STORED_WHOLE, compression

    def f(u):
        return jnp.stack([jnp.sum(jnp.sin(u)), jnp.sum(u[1:] ** 2)])

    x = _random(30)
    rows, _, coloring, m, n = compression(f, x)
    J = chainorder.jacobian(f, sparse=True)(x)
    dense = np.asarray(jax.jacobian(f)(x))
    slots = coloring.count * n
    assert coloring.mode == "rows" and len(rows) < slots <= STORED_WHOLE * len(rows)
    assert J.n_batch == 0 and J.nse == slots and J.shape == dense.shape
    indices = np.asarray(J.indices)
    padding = (indices == dense.shape).all(axis=1)
    assert padding.sum() == slots - len(rows) and (indices[~padding] < dense.shape).all()
    np.testing.assert_allclose(np.asarray(J.todense()), dense, rtol=0, atol=1e-12)
    assert J.sum_duplicates(nse=len(rows)).nse == len(rows)


def test_sparse_jacobian_called_eagerly_is_prepared_once():
    """Called without jax.jit, the pattern, colors and the jitted values are found once per shape:
    later calls neither trace ``f`` again nor return the first call's values."""
    traced = []

    def f(u):
        traced.append(1)
        return jnp.sin(u[1:]) * u[:-1] + u[1:] ** 2

    sparse_jacobian = chainorder.jacobian(f, sparse=True)
    sparse_jacobian(_random(300))
    before = len(traced)
    for _ in range(2):
        x = _random(300)
        np.testing.assert_allclose(sparse_jacobian(x).todense(), jax.jacobian(f)(x), rtol=0, atol=1e-12)
    assert len(traced) - before == 2  # jax.jacobian's own traces only


def test_colors_reach_the_lower_bound_on_structured_jacobians():
    weights = jnp.asarray(RNG.standard_normal((16, 16)))
    cases = {
        "batched": (lambda X: jnp.tanh(X @ weights), _random(8, 16), 16),
        "elementwise": (jnp.sin, _random(50), 1),
        "tridiagonal": (lambda x: x[2:] - 2 * x[1:-1] + x[:-2], _random(40), 3),
        # largest first gives 7 here; smallest last, tried next, reaches the bound
        "5-point stencil": (EXACT["2D Poisson residual"][0], _random(64, 64), 5),
        # both give 6 here; smallest last with color interchange, tried third, reaches the bound
        "5-point stencil 40x40": (EXACT["2D Poisson residual"][0], _random(40, 40), 5),
    }
    for name, (f, x, colors) in cases.items():
        report = colors_and_density(compression(f, x))
        assert report["colors"] == report["lower_bound"] == colors, (name, report)
    with pytest.raises(TypeError, match="sparse= takes argnums an int or a sequence of ints"):
        chainorder.jacobian(jnp.sin, argnums="0", sparse=True)


def test_coloring_is_valid_on_random_patterns():
    from chainorder.core.coloring import color_columns, color_rows

    # a row holding every column: one color each, found without building the graph
    pattern = np.zeros((30, 25), dtype=bool)
    pattern[3] = True
    pattern[np.arange(25), np.arange(25)] = True
    full = color_columns(*np.nonzero(pattern), pattern.shape)
    assert full.count == full.lower_bound == 25 and sorted(full.colors) == list(range(25))

    for seed in range(20):
        pattern = np.random.default_rng(seed).random((30, 25)) < 0.1
        rows, columns = np.nonzero(pattern)
        by_columns, by_rows = color_columns(rows, columns, pattern.shape), color_rows(rows, columns, pattern.shape)
        for color in range(by_columns.count):  # no row holds two columns of one color
            assert pattern[:, by_columns.colors == color].sum(axis=1).max(initial=0) <= 1
        for color in range(by_rows.count):
            assert pattern[by_rows.colors == color].sum(axis=0).max(initial=0) <= 1
        assert by_columns.count >= by_columns.lower_bound == pattern.sum(axis=1).max()
        for strategy in ("largest_first", "smallest_last_interchange"):  # a strategy asked for
            only = color_columns(rows, columns, pattern.shape, strategy)
            for color in range(only.count):
                assert pattern[:, only.colors == color].sum(axis=1).max(initial=0) <= 1


def test_coloring_a_diagonal_and_repeated_coordinates():
    """No two columns sharing a row: one color, without a graph; a nonzero listed twice counts once."""
    from chainorder.core.coloring import color_columns

    diagonal = color_columns(np.arange(6), np.array([3, 0, 5, 1, 2, 4]), (6, 7))
    assert diagonal.count == diagonal.lower_bound == 1 and (diagonal.colors == 0).all()
    rows, columns = np.nonzero(np.eye(5, dtype=bool) | np.eye(5, k=1, dtype=bool))
    twice = color_columns(np.r_[rows, rows], np.r_[columns, columns], (5, 5))
    assert (twice.count, twice.lower_bound) == (2, 2)


def test_rows_are_not_colored_where_columns_reach_what_rows_cannot_beat(monkeypatch):
    """Columns colored at their lower bound, the rows' own bound as high: the rows are not colored
    (compression keeps columns on a tie), and where rows might win they are."""
    from chainorder.backend import compressed

    colored = []
    original = compressed._COLORS["rows"]
    monkeypatch.setitem(compressed._COLORS, "rows", lambda *args: colored.append(1) or original(*args))
    assert compressed.compression(lambda v: v * jnp.sin(v), _random(50))[2].count == 1 and not colored
    found = compressed.compression(lambda v: jnp.stack([jnp.sum(v), jnp.sum(v**2)]), _random(50))
    assert colored and found[2].mode == "rows" and found[2].count == 2


def _batched_mlp():
    rng = np.random.default_rng(0)
    w1, w2 = jnp.asarray(rng.standard_normal((16, 48)) / 4), jnp.asarray(rng.standard_normal((48, 16)) / 7)
    return lambda X: jnp.tanh(jnp.tanh(X @ w1) @ w2), jnp.asarray(rng.standard_normal((24, 16)))


def _residual(u):
    inner = u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
    return jnp.pad(inner + u[1:-1, 1:-1] ** 3, 1)


@pytest.mark.parametrize("case", ["batched MLP", "PDE residual", "elementwise"])
def test_the_dense_path_uses_the_structure_of_sparse_jacobians(case):
    f, x = {
        "batched MLP": _batched_mlp(),
        "PDE residual": (_residual, jnp.asarray(np.random.default_rng(1).standard_normal((20, 20)))),
        "elementwise": (lambda v: v * jnp.sin(v) + jnp.exp(-(v**2)), jnp.linspace(-2.0, 2.0, 3000)),
    }[case]
    jacobian = chainorder.jacobian(f)
    for compute in (jacobian, jax.jit(jacobian)):
        J = compute(x)
        expected = jax.jacobian(f)(x)
        assert J.shape == expected.shape and J.dtype == expected.dtype
        np.testing.assert_allclose(np.asarray(J), np.asarray(expected), rtol=1e-10, atol=1e-12)
    (strategy,) = jacobian.strategies.values()
    (cost,) = jacobian.costs.values()
    assert cost < chainorder.analyze(f, x).plan.cost  # cheaper than the whole chain's plan
    if case == "PDE residual":
        assert strategy.startswith("compressed forward"), strategy
        (plan,) = jacobian.plans.values()  # the chain plan it beat stays visible
        assert plan is not None and f"against {plan.cost:,}" in strategy
    else:  # batch-separable along axis 0: one example's plan, vmapped, costs no more than compression
        assert strategy.startswith("per-example plan"), strategy


def test_dense_jacobians_keep_their_plan_and_are_found_dense_at_once():
    from chainorder.backend.patterns import PatternTooDense, pattern_coordinates

    rng = np.random.default_rng(2)
    w1, w2 = jnp.asarray(rng.standard_normal((300, 600))), jnp.asarray(rng.standard_normal((600, 300)))
    f = lambda v: w2 @ jnp.tanh(w1 @ v)  # noqa: E731
    x = jnp.ones(600)
    with pytest.raises(PatternTooDense):
        pattern_coordinates(f, x, budget=1 << 16)
    jacobian = chainorder.jacobian(f)
    np.testing.assert_allclose(np.asarray(jacobian(x)), np.asarray(jax.jacobian(f)(x)), rtol=1e-10, atol=1e-12)
    assert list(jacobian.strategies.values()) == ["plan"]
    # a budget far above a sparse pattern changes nothing
    rows, columns, _ = pattern_coordinates(lambda v: v[1:] * v[:-1], jnp.ones(50), budget=1 << 16)
    assert len(rows) == 98


def test_given_options_or_plans_are_not_second_guessed():
    f, x = _batched_mlp()
    jacobian = chainorder.jacobian(f, objective="fma")
    np.testing.assert_allclose(np.asarray(jacobian(x)), np.asarray(jax.jacobian(f)(x)), rtol=1e-10, atol=1e-12)
    assert list(jacobian.strategies.values()) == ["plan"]


def test_analyze_reports_the_compression_jacobian_uses():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((16, 16)))
    report = chainorder.analyze(_residual, x)
    jacobian = chainorder.jacobian(_residual)
    jacobian(x)
    assert [report.strategy] == list(jacobian.strategies.values())
    assert f"chainorder.jacobian computes it by {report.strategy}" in str(report)
    assert report.structure == report.strategy and "the Jacobian's pattern" not in str(report)  # said once
    assert chainorder.analyze(_residual, x, objective="fma").strategy == "plan"  # options: the plan
    dense = chainorder.analyze(lambda v: jnp.tanh(W1 @ jnp.tanh(W2 @ v)), _random(8))
    assert dense.structure is None  # no pattern worth reporting


def test_a_pattern_too_large_to_hold_is_refused_with_its_size(monkeypatch):
    from chainorder.backend import patterns

    monkeypatch.setattr(patterns, "MAX_DEPENDENCIES", 1000)
    message = r"too large to hold: a value depends on 1,200 input entries in all \(0.0 GB\)"
    with pytest.raises(ValueError, match=message):
        chainorder.sparsity(lambda v: jnp.sin(v), jnp.ones(1200))
    w = jnp.ones((40, 30))
    with pytest.raises(ValueError, match=r"depends on 1,200 input entries.*the limit is 1,000"):
        chainorder.sparsity(lambda v: w @ v, jnp.ones(30))  # 40 x 30 dependencies
    with pytest.raises(ValueError, match="too large to hold"):
        chainorder.jacobian(lambda v: w @ v, sparse=True)(jnp.ones(30))
    # a convolution's maps are refused before they are built: 2 x 4 x 36 positions x 3 channels x 9 taps
    convolve = lambda x: jax.lax.conv_general_dilated(x, KERNEL, (1, 1), "SAME")  # noqa: E731
    with pytest.raises(ValueError, match=r"depends on 7,776 input entries in all.*the limit is 1,000"):
        chainorder.sparsity(convolve, jnp.ones((2, 3, 6, 6)))


def test_rows_too_dense_to_color_get_a_color_per_column(monkeypatch):
    """Past MAX_SHARING_PAIRS the coloring graph is not built (a column in every row would make
    it complete: 3e9 edges at 78,000 rows); one color per column is valid, and the other
    orientation still compresses."""
    from chainorder.core import coloring

    monkeypatch.setattr(coloring, "MAX_SHARING_PAIRS", 100)
    f = lambda v: v * v[0] + jnp.sin(v)  # noqa: E731  row i depends on v[i] and v[0]
    x = jnp.linspace(0.5, 1.5, 40)
    rows, columns = np.nonzero(np.asarray(jax.jacobian(f)(x)))
    by_rows = coloring.color_rows(rows, columns, (40, 40))  # column 0 is in every row: 780 pairs
    assert by_rows.count == 40 and by_rows.lower_bound == 40
    by_columns = coloring.color_columns(rows, columns, (40, 40))
    assert by_columns.count == 2
    J = chainorder.jacobian(f, sparse=True)(x)
    np.testing.assert_allclose(np.asarray(J.todense()), np.asarray(jax.jacobian(f)(x)), rtol=1e-12)


def test_a_row_of_half_the_columns_is_colored_only_while_its_graph_is_small():
    """A layer norm's variance row holds 1,024 of 2,048 columns (523,776 pairs): a coloring can save
    2x at most there, so past FEW_SHARING_PAIRS every column gets its own color (networkx took about
    1 s per such pattern); a smaller such row is still colored at its bound."""
    from chainorder.core import coloring

    def half_row(columns):
        half = columns // 2  # row 0: the first half; row 1 + j: column half + j alone
        rows = np.r_[np.zeros(half, dtype=np.int64), 1 + np.arange(half)]
        return rows, np.r_[np.arange(half), half + np.arange(half)], (1 + half, columns)

    big = coloring.color_columns(*half_row(2048))
    assert big.lower_bound == 1024 and big.count == 2048 and 1024 * 1023 // 2 > coloring.FEW_SHARING_PAIRS
    small = coloring.color_columns(*half_row(400))  # 19,900 pairs
    assert small.lower_bound == small.count == 200
