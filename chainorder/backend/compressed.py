"""Sparse Jacobians by compression: the pattern from the jaxpr, colors, one JVP (or VJP) per color.

:func:`chainorder.backend.patterns.sparsity` gives the pattern; :mod:`chainorder.core.coloring`
colors its columns (for JVPs) and its rows (for VJPs); the fewer colors win (columns on a
tie). The compressed Jacobian, ``J S`` for the ``n x colors`` one-hot seed matrix ``S`` (or
``R J``), is computed with ``jax.vmap`` of ``jax.jvp`` (or of the ``jax.vjp`` pullback) and
each nonzero is read back from it: entry ``(i, j)`` is ``(J S)[i, color(j)]``. The pattern
and the colors are found from shapes alone, at trace time, so it composes with ``jax.jit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jax_sparse

from ..core.coloring import Coloring, color_columns, color_rows
from .patterns import pattern_coordinates

__all__ = ["compression", "sparse_jacobian"]


def compression(fun: Callable[[Any], Any], x: Any) -> tuple[np.ndarray, np.ndarray, Coloring, int, int]:
    """The nonzeros ``(rows, columns)`` of ``fun``'s flattened Jacobian at arguments shaped like
    ``x``, the coloring of fewer colors, and ``(m, n)``."""
    shape = jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))
    rows, columns, (m, n) = pattern_coordinates(fun, shape)
    by_columns = color_columns(rows, columns, (m, n))
    by_rows = color_rows(rows, columns, (m, n))
    return rows, columns, by_rows if by_rows.count < by_columns.count else by_columns, m, n


def sparse_jacobian(fun: Callable[[Any], Any], x: Any, found: tuple | None = None) -> jax_sparse.BCOO:
    """``jax.jacobian(fun)(x)``, flattened to ``(m, n)``, as a BCOO holding the pattern's entries.

    Parameters
    ----------
    fun : callable
        One array in, one array out (or a pytree of arrays: flattened and concatenated).
    x : array
    found : tuple, optional
        :func:`compression`'s result for these shapes (it is computed otherwise).

    Examples
    --------
    >>> J = sparse_jacobian(lambda v: jnp.sin(v[1:]) - v[:-1], jnp.linspace(0.0, 1.0, 5))
    >>> J.shape, J.nse
    ((4, 5), 8)
    """
    rows, columns, coloring, m, n = found if found is not None else compression(fun, x)
    x = jnp.asarray(x)

    def flat(v):
        leaves = jax.tree_util.tree_leaves(fun(v.reshape(x.shape)))
        return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves]) if leaves else jnp.zeros(0, v.dtype)

    vector = jnp.ravel(x)
    dtype = jax.eval_shape(flat, vector).dtype
    seeds = np.zeros((coloring.count, n if coloring.mode == "columns" else m), dtype=np.float64)
    seeds[coloring.colors, np.arange(len(coloring.colors))] = 1.0
    seeds = jnp.asarray(seeds, dtype)
    if coloring.mode == "columns":
        compressed = jax.vmap(lambda seed: jax.jvp(flat, (vector,), (seed.astype(vector.dtype),))[1], out_axes=1)(seeds)
        values = compressed[rows, coloring.colors[columns]] if len(rows) else jnp.zeros(0, dtype)
    else:
        _, pullback = jax.vjp(flat, vector)
        compressed = jax.vmap(lambda seed: pullback(seed)[0])(seeds)
        values = compressed[coloring.colors[rows], columns] if len(rows) else jnp.zeros(0, dtype)
    indices = jnp.asarray(np.stack([rows, columns], axis=1).astype(np.int32))
    return jax_sparse.BCOO((values, indices), shape=(m, n))


def colors_and_density(found: tuple) -> dict[str, Any]:
    """What a report shows: density, colors, the lower bound, JVPs or VJPs."""
    rows, _, coloring, m, n = found
    return {
        "density": len(rows) / max(m * n, 1),
        "colors": coloring.count,
        "lower_bound": coloring.lower_bound,
        "mode": coloring.mode,
    }
