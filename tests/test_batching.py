"""Batch-separable functions: found on the jaxpr, split into examples, computed with per-example plans.

Every separable verdict is checked against the truth (jax.jacobian's block-diagonal structure), every
result against jax.jacobian in float64, and the per-example cost against one example's optimal plan.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse as jax_sparse

import chainorder
from chainorder.backend.batching import separate

jax.config.update("jax_enable_x64", True)

B, N = 5, 6
KEY = jax.random.PRNGKey(0)
X = jax.random.normal(KEY, (B, N)).at[0, 0].set(0.0)  # a zero: relu's custom rule decides there
W = jax.random.normal(jax.random.PRNGKey(1), (N, N))
V = jax.random.normal(jax.random.PRNGKey(2), (4, N))
Y = jax.random.normal(jax.random.PRNGKey(3), (B, N))  # per-example targets
A = jax.random.normal(jax.random.PRNGKey(4), (B, N, N))  # per-example matrices


def row(v):
    return jnp.tanh(V.T @ jnp.sin(V @ v))


SEPARABLE = {
    "vmap(row)": jax.vmap(row),
    "batched matmul": lambda X: jnp.tanh(X @ W) @ W.T,
    "output transposed": lambda X: jnp.tanh(X @ W).T,
    "per-example targets": lambda X: (jnp.tanh(X @ W) - Y) ** 2,
    "arange per example": lambda X: jnp.sin(X) * jnp.arange(B, dtype=X.dtype)[:, None],
    "relu (custom_jvp)": lambda X: jax.nn.relu(X @ W) + jax.nn.relu(X),
    "softmax per row": lambda X: jax.nn.softmax(X @ W, axis=-1),
    "per-example matrices": lambda X: jnp.einsum("bij,bj->bi", A, jnp.cos(X)),
    "reduction within rows": lambda X: jnp.sum(jnp.sin(X) ** 2, axis=1, keepdims=True) * X,
    "reshape within rows": lambda X: jnp.tanh(X.reshape(B, 2, 3)).transpose(0, 2, 1).reshape(B, 6) @ W,
    "concatenate, slice, pad": lambda X: jnp.pad(jnp.concatenate([X[:, 1:], jnp.sin(X[:, :2])], 1), ((0, 0), (1, 0))),
    "cumsum within rows": lambda X: jnp.cumsum(jnp.exp(X), axis=1),
    "stack (its own primitive)": lambda X: jnp.stack([jnp.sin(X), X**2], 1).reshape(B, 2 * N) @ jnp.vstack([W, W.T]),
    "stack before the batch": lambda X: jnp.stack([jnp.sin(X), X * Y[:, :N]]),
    "nested jit": jax.jit(lambda X: jax.jit(jnp.tanh)(X @ W)),
}

NOT_SEPARABLE = {
    "mean over the batch": lambda X: X - X.mean(axis=0),
    "gram matrix": lambda X: X @ X.T,
    "cumsum along the batch": lambda X: jnp.cumsum(X, axis=0),
    "shift along the batch": lambda X: X[1:] - X[:-1],
    "reversed batch": lambda X: X[::-1] * X,
    "flattened": lambda X: jnp.sin(X.reshape(-1)),
    "sort (no rule)": lambda X: jnp.sort(X, axis=1),
    "gather (no rule)": lambda X: X[:, jnp.array([0, 2, 2])],
    "constant output": lambda X: jnp.ones((B, N)),
    "stack of shifted examples": lambda X: jnp.stack([X[1:], X[:-1]], axis=1),
}


def block_diagonal(J: np.ndarray, out_axis: int) -> bool:
    """Whether jax.jacobian's ``J`` (out dims + (B, N)) is zero between different examples."""
    J = np.moveaxis(np.asarray(J), out_axis, 0).reshape(B, -1, B, N)
    off = J * (1 - np.eye(B))[:, None, :, None]
    return not np.any(off)


@pytest.mark.parametrize("name", sorted(SEPARABLE))
def test_separable_functions_are_found_and_split_exactly(name):
    f = SEPARABLE[name]
    found = separate(f, X)
    assert found is not None and found.batch == B
    expected = jax.jacobian(f)(X)
    assert block_diagonal(expected, found.out_axis)
    outputs = np.asarray(f(X))
    for b in range(B):  # each example's output, and its Jacobian, from the example alone
        np.testing.assert_allclose(found.per_example(X[b], b), np.take(outputs, b, axis=found.out_axis), atol=1e-12)
        block = jax.jacobian(found.per_example)(X[b], b)
        whole = np.take(np.take(np.asarray(expected), b, axis=found.out_axis), b, axis=outputs.ndim - 1)
        np.testing.assert_allclose(block, whole, atol=1e-12)


@pytest.mark.parametrize("name", sorted(NOT_SEPARABLE))
def test_functions_mixing_examples_or_without_rules_are_not_split(name):
    assert separate(NOT_SEPARABLE[name], X) is None


def test_a_batch_of_one_or_a_scalar_is_not_split():
    assert separate(jnp.sin, jnp.ones((1, 4))) is None
    assert separate(jnp.sin, jnp.ones(())) is None


@pytest.mark.parametrize("seed", range(12))
def test_random_compositions_never_get_a_wrong_split(seed):
    """Random chains of row-wise and batch-mixing ops: a split is only ever claimed where
    jax.jacobian is block diagonal, and then its per-example Jacobians are exact."""
    rng = np.random.default_rng(seed)
    cumulative_axis = int(rng.integers(2))
    ops = [
        lambda Z: jnp.tanh(Z @ W),
        lambda Z: Z * jnp.sin(Z),
        lambda Z: Z - Z.mean(axis=0, keepdims=True),
        lambda Z: jnp.roll(Z, 1, axis=0),
        lambda Z: jnp.roll(Z, 1, axis=1),
        lambda Z: Z[::-1],
        lambda Z: jax.nn.relu(Z) + Y,
        lambda Z: jnp.cumsum(Z, axis=cumulative_axis),
        lambda Z: jnp.flip(Z, axis=1) * jnp.arange(N, dtype=Z.dtype),
    ]
    chosen = [ops[int(i)] for i in rng.integers(len(ops), size=4)]

    def f(Z):
        for op in chosen:
            Z = op(Z)
        return Z

    found = separate(f, X)
    expected = jax.jacobian(f)(X)
    if found is None:
        return
    assert block_diagonal(expected, found.out_axis)
    got = chainorder.jacobian(f)(X)
    np.testing.assert_allclose(got, expected, atol=1e-10)


@pytest.mark.parametrize("name", sorted(SEPARABLE))
def test_jacobian_dense_and_sparse_equal_jax(name):
    f = SEPARABLE[name]
    expected = jax.jacobian(f)(X)
    dense = chainorder.jacobian(f)
    np.testing.assert_allclose(dense(X), expected, atol=1e-10)
    assert jax.jit(dense)(X).dtype == expected.dtype
    result = chainorder.jacobian(f, sparse=True)(X)
    assert isinstance(result, jax_sparse.BCOO)
    np.testing.assert_allclose(np.asarray(result.todense()).reshape(-1), np.asarray(expected).reshape(-1), atol=1e-10)


def test_the_per_example_strategy_costs_batch_times_one_examples_plan():
    f = jax.vmap(row)
    jf = chainorder.jacobian(f)
    jf(X)
    (signature,) = jf.strategies
    one = chainorder.analyze(separate(f, X).per_example, X[0], 0).plan  # the example as the batch's jaxpr has it
    assert one.chain.dims == chainorder.analyze(row, X[0]).chain.dims
    assert jf.strategies[signature].startswith(f"per-example plan: {B} x one example's {one.mode} plan")
    assert jf.costs[signature] == B * one.cost
    whole = chainorder.analyze(f, X).plan
    assert jf.costs[signature] < whole.cost


def test_analyze_reports_the_per_example_strategy_jacobian_takes():
    f = jax.vmap(row)
    jf = chainorder.jacobian(f)
    jf(X)
    (signature,) = jf.strategies
    report = chainorder.analyze(f, X)
    assert report.strategy == jf.strategies[signature] and report.strategy.startswith("per-example plan")
    assert report.strategy_cost == jf.costs[signature] < report.plan.cost
    assert f"chainorder.jacobian computes it by {report.strategy}" in str(report)
    assert report.structure is None  # 30 x 30: too small to look for a pattern
    given = chainorder.analyze(f, X, objective="fma")  # options given: the plan, as jacobian would run it
    assert given.strategy == "plan" and given.strategy_cost is None


def test_analyze_says_what_compression_would_do_where_it_is_not_taken():
    weights = jax.random.normal(KEY, (64, 16)) / 4
    f = jax.vmap(lambda v: jnp.tanh(weights.T @ jnp.tanh(weights @ v)))  # (32, 16): 512 x 512, 32 blocks: 3.1% dense
    X = jax.random.normal(KEY, (32, 16))
    report = chainorder.analyze(f, X)
    assert report.strategy.startswith("per-example plan")
    assert report.structure.startswith("compressed forward (density 3.12%): 16 JVPs (lower bound 16)")
    assert report.structure.endswith("(not taken: not 1.25x fewer)")
    assert f"the Jacobian's pattern: {report.structure}" in str(report)
    jf = chainorder.jacobian(f)
    jf(X)
    assert list(jf.structures.values()) == [report.structure]


def test_the_batched_bcoo_holds_the_blocks_in_jax_layout():
    f = jax.vmap(row)
    result = chainorder.jacobian(f, sparse=True)(X)
    assert result.shape == (B, N, B, N)
    assert (result.n_batch, result.n_sparse, result.n_dense) == (1, 2, 1)
    assert result.nse == N and result.data.shape == (B, N, N)  # the blocks themselves
    np.testing.assert_allclose(result.data, jax.vmap(jax.jacobian(row))(X), atol=1e-12)


def test_the_batched_bcoo_called_eagerly_is_prepared_once():
    traced = []

    def f(X):
        traced.append(1)
        return jax.vmap(row)(X)

    sparse_jacobian = chainorder.jacobian(f, sparse=True)
    sparse_jacobian(X)
    before = len(traced)
    result = sparse_jacobian(2 * X)
    assert len(traced) == before
    np.testing.assert_allclose(result.data, jax.vmap(jax.jacobian(row))(2 * X), atol=1e-12)


def test_sparse_blocks_inside_examples_are_compressed_instead():
    """Elementwise per example: the examples' Jacobians are diagonal, so the pattern wins (one color,
    the BCOO batched by rows: one entry per output entry)."""
    f = lambda X: jnp.sin(X) * 2.0  # noqa: E731
    X_wide = jnp.ones((3, 400))
    result = chainorder.jacobian(f, sparse=True)(X_wide)
    assert result.shape == (3, 400, 3, 400) and result.n_batch == 2 and result.data.shape == (3, 400, 1)
    np.testing.assert_allclose(result.todense(), jax.jacobian(f)(X_wide), rtol=0, atol=1e-12)


def test_per_example_under_jit_and_vmap():
    f = jax.vmap(row)
    jf = chainorder.jacobian(f)
    stacked = jnp.stack([X, 2 * X])
    np.testing.assert_allclose(jax.vmap(jf)(stacked), jax.vmap(jax.jacobian(f))(stacked), atol=1e-10)
    np.testing.assert_allclose(jax.jit(jf)(X), jax.jacobian(f)(X), atol=1e-10)


def test_other_arguments_stay_shared():
    def f(X, weights, scale=2.0):
        return scale * jnp.tanh(X @ weights)

    jf = chainorder.jacobian(f)
    np.testing.assert_allclose(jf(X, W, scale=3.0), jax.jacobian(f)(X, W, scale=3.0), atol=1e-10)
    (signature,) = jf.strategies
    assert jf.strategies[signature].startswith("per-example plan")
