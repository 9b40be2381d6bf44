"""Sparse Jacobians by compression: the pattern from the jaxpr, colors, one JVP (or VJP) per color.

:func:`chainorder.backend.patterns.sparsity` gives the pattern; :mod:`chainorder.core.coloring`
colors its columns (for JVPs) and its rows (for VJPs); the fewer colors win (columns on a
tie). The compressed Jacobian, ``J S`` for the ``n x colors`` one-hot seed matrix ``S`` (or
``R J``), is computed with ``jax.vmap`` of ``jax.jvp`` (or of the ``jax.vjp`` pullback) and
each nonzero is read back from it: entry ``(i, j)`` is ``(J S)[i, color(j)]``. The pattern
and the colors are found from shapes alone, at trace time, so it composes with ``jax.jit``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jax_sparse

from ..core.chain import Chain
from ..core.coloring import Coloring, LayerPattern, color_columns, color_rows, lower_bound
from ..core.plan import Plan
from .patterns import MAX_DEPENDENCIES, PatternTooDense, pattern_coordinates
from .ravel import ravel

__all__ = [
    "compression", "sparse_jacobian", "sparse_jacobian_function", "compressed_strategy", "CompressedStrategy",
    "DETECTION_BUDGET", "COMPRESSION_MARGIN", "layer_pattern", "sparse_layer_pattern", "compressed_preaccumulation",
    "one_hot_seeds", "nonzero_positions", "slot_indices", "STORED_WHOLE", "compressed_values", "runnable_modes",
    "compressed_matrix", "stored_whole",
]  # fmt: skip

#: Dependencies the dense path's detection tracks per value before it calls the pattern dense
#: (at least this, or 16 per Jacobian row and column; see :func:`pattern_coordinates`).
DETECTION_BUDGET = 1 << 20
#: How much cheaper (FMAs) compression must be than the chain plan before the dense path takes it:
#: compression adds reading the nonzeros out of the compressed Jacobian (a gather, where it is not
#: stored whole: :data:`STORED_WHOLE`) and a scatter into the dense result.
COMPRESSION_MARGIN = 1.25
#: A sparse result stores the compressed Jacobian whole, padded where an entry holds no nonzero
#: (:func:`slot_indices`), where that stores at most this many entries per nonzero: reading the
#: nonzeros out (a gather) cost more than the padding (40x40 residual: 56.8 us against 62.4 us).
STORED_WHOLE = 1.25


def compression(
    fun: Callable[[Any], Any], x: Any, budget: int | None = None
) -> tuple[np.ndarray, np.ndarray, Coloring, int, int]:
    """The nonzeros ``(rows, columns)`` of ``fun``'s flattened Jacobian at arguments shaped like
    ``x`` (an array or a pytree of them), the coloring of fewer colors among the modes JAX can run
    through ``fun`` (:func:`runnable_modes`: a ``custom_vjp`` refuses JVPs, a ``while_loop`` VJPs),
    and ``(m, n)`` (``budget``: see :func:`chainorder.backend.patterns.pattern_coordinates`)."""
    shapes = shapes_of(x)
    rows, columns, (m, n) = pattern_coordinates(fun, shapes, budget=budget)
    modes = runnable_modes(fun, shapes)
    colorings: list[Coloring] = []
    for mode, color in _COLORS.items():
        if mode in modes and not (colorings and lower_bound(rows, columns, mode) >= colorings[0].count):
            colorings.append(color(rows, columns, (m, n)))  # rows need at least their bound; columns win ties
    return rows, columns, min(colorings, key=lambda coloring: coloring.count), m, n


#: How each mode's colors are found, columns first: the fewer colors win, columns on a tie.
_COLORS = {"columns": color_columns, "rows": color_rows}


def runnable_modes(fun: Callable[..., Any], shapes: Any, *others: Any) -> tuple[str, ...]:
    """``"columns"`` where JAX runs JVPs through ``fun`` in its first argument, at arguments shaped like
    ``shapes, *others`` (``jax.ShapeDtypeStruct`` objects), and ``"rows"`` where it runs VJPs; both traced
    abstractly. Where it runs neither, both: the chosen mode's own error is raised when the Jacobian
    is computed. Complex inputs get rows only: ``jax.jacobian`` of their real output is reverse mode's,
    which JVPs do not give where the function is not holomorphic."""
    if any(jnp.issubdtype(leaf.dtype, jnp.complexfloating) for leaf in jax.tree_util.tree_leaves(shapes)):
        return ("rows",)

    # as the Jacobian runs them, vmapped over seeds: a custom_vjp's JVP traces alone, and fails under vmap
    def forward(v, flat):
        return jax.vmap(lambda seed: jax.jvp(flat, (v,), (seed,))[1])(v[None])

    def reverse(v, flat):
        output, pullback = jax.vjp(flat, v)
        return jax.vmap(pullback)(output[None])

    tries = {"columns": forward, "rows": reverse}
    modes = []
    for mode, attempt in tries.items():
        try:
            jax.eval_shape(
                lambda x, *rest, attempt=attempt: attempt(*_flat_of(lambda x: fun(x, *rest), x)), shapes, *others
            )
        except Exception:  # noqa: BLE001 - JAX refuses this mode through fun
            continue
        modes.append(mode)
    return tuple(modes) or tuple(tries)


def sparse_jacobian(fun: Callable[[Any], Any], x: Any, found: tuple | None = None) -> jax_sparse.BCOO:
    """``jax.jacobian(fun)(x)``, flattened to ``(m, n)``, as a BCOO holding the pattern's entries.

    Parameters
    ----------
    fun : callable
        One array in, one array out (or a pytree of arrays: flattened and concatenated).
    x : array
    found : tuple, optional
        :func:`compression`'s result for these shapes (it is computed otherwise).

    See Also
    --------
    sparse_jacobian_function : the same, prepared once for every argument shaped like ``x``.

    Examples
    --------
    >>> J = sparse_jacobian(lambda v: jnp.sin(v[1:]) - v[:-1], jnp.linspace(0.0, 1.0, 5))
    >>> J.shape, J.nse
    ((4, 5), 8)
    """
    return sparse_jacobian_function(fun, x, found)(x)


def sparse_jacobian_function(
    fun: Callable[[Any], Any], x: Any, found: tuple | None = None
) -> Callable[[Any], jax_sparse.BCOO]:
    """:func:`sparse_jacobian` for arguments shaped like ``x``: the seeds and the nonzeros'
    positions are built once, the values are computed by one jitted function (called eagerly, the
    Jacobian is one dispatch, as under ``jax.jit``) and the indices stay on the device.

    Where the compressed Jacobian holds at most :data:`STORED_WHOLE` entries per nonzero, the BCOO
    stores it whole: its ``nse`` counts the padding, whose indices are out of bounds (JAX's
    convention: ``todense`` and every BCOO operation drop them; ``sum_duplicates()`` removes them).

    See Also
    --------
    chainorder.backend.sparseresult.sparse_result_function : the same values in ``jax.jacobian``'s layout.

    >>> jacobian = sparse_jacobian_function(lambda v: v[1:] * v[:-1], jnp.ones(4))
    >>> jacobian(jnp.arange(4.0)).todense().tolist()
    [[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 1.0, 0.0], [0.0, 0.0, 3.0, 2.0]]
    """
    found = found if found is not None else compression(fun, x)
    values, indices = compressed_values(fun, x, found)
    shape = found[3:]
    device_indices = jnp.asarray(indices)

    def jacobian(x: Any) -> jax_sparse.BCOO:
        return jax_sparse.BCOO((values(x), device_indices), shape=shape)

    return jacobian


def compressed_values(fun: Callable[[Any], Any], x: Any, found: tuple) -> tuple[Callable[[Any], Any], np.ndarray]:
    """The jitted function of the stored entries of ``fun``'s flattened ``(m, n)`` Jacobian at arguments
    shaped like ``x`` (one JVP or VJP per color of ``found``, :func:`compression`'s), and their
    ``(nse, 2)`` indices: the compressed Jacobian whole, padding at ``(m, n)``
    (:func:`slot_indices`), where :func:`stored_whole`; the nonzeros alone elsewhere."""
    rows, columns, coloring, m, n = found
    dtype = jax.eval_shape(lambda x: _called(*_flat_of(fun, x)), shapes_of(x)).dtype
    matrix = compressed_matrix(fun, coloring)
    where = nonzero_positions(coloring, rows, columns, (m, n))
    whole = stored_whole(found)

    @jax.jit
    def values(x: Any) -> Any:
        if not len(rows):
            return jnp.zeros(0, dtype)
        return jnp.ravel(matrix(x)) if whole else jnp.ravel(matrix(x))[where]

    if whole:
        return values, slot_indices(where, rows, columns, _compressed_size(found), (m, n))
    return values, np.stack([rows, columns], axis=1).astype(np.int32)


def compressed_matrix(fun: Callable[[Any], Any], coloring: Coloring) -> Callable[[Any], Any]:
    """The compressed Jacobian of ``fun`` flattened: ``(colors, m)``, the JVP of each color's seed
    (``coloring.mode == "columns"``), or ``(colors, n)``, the VJPs (``"rows"``), as ``vmap`` over the
    seeds gives them. Entry ``(i, j)`` of the Jacobian is at ``[color(j), i]`` (``[color(i), j]``)."""
    seeds = one_hot_seeds(coloring)

    def matrix(x: Any) -> Any:
        vector, flat = _flat_of(fun, x)
        if coloring.mode == "columns":
            return jax.vmap(lambda seed: jax.jvp(flat, (vector,), (seed,))[1])(jnp.asarray(seeds, vector.dtype))
        output, pullback = jax.vjp(flat, vector)
        return jax.vmap(lambda seed: pullback(seed)[0])(jnp.asarray(seeds, output.dtype))

    return matrix


def stored_whole(found: tuple) -> bool:
    """Whether a sparse result stores the compressed Jacobian of ``found`` (:func:`compression`'s)
    whole, padding included: where that is at most :data:`STORED_WHOLE` entries per nonzero."""
    return bool(len(found[0])) and _compressed_size(found) <= STORED_WHOLE * len(found[0])


def _compressed_size(found: tuple) -> int:
    """Entries of the compressed Jacobian of ``found``: colors x ``m`` (JVPs) or x ``n`` (VJPs)."""
    _, _, coloring, m, n = found
    return coloring.count * (m if coloring.mode == "columns" else n)


def one_hot_seeds(coloring: Coloring) -> np.ndarray:
    """``(colors, columns)`` (or ``(colors, rows)``): each seed the sum of one color's unit vectors."""
    seeds = np.zeros((coloring.count, len(coloring.colors)), dtype=np.float64)
    seeds[coloring.colors, np.arange(len(coloring.colors))] = 1.0
    return seeds


def nonzero_positions(coloring: Coloring, rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Where each nonzero ``(rows[k], columns[k])`` lies in the flattened compressed Jacobian, colors
    first (``(colors, m)`` for JVPs, ``(colors, n)`` for VJPs, as ``vmap`` over the seeds gives it).
    One flat index each: a transpose and a 2-D gather took 40.7 us against 29.5 us on a 40x40
    residual, of which the JVPs are 21.9 us."""
    m, n = shape
    if coloring.mode == "columns":
        where = coloring.colors[columns] * m + rows
    else:
        where = coloring.colors[rows] * n + columns
    return where.astype(np.int32 if coloring.count * max(m, n) < 2**31 else np.int64)


def slot_indices(
    where: np.ndarray, rows: np.ndarray, columns: np.ndarray, slots: int, shape: tuple[int, int]
) -> np.ndarray:
    """``(slots, 2)``: the ``(row, column)`` of the nonzero each entry of the flattened compressed
    Jacobian holds (``where``: :func:`nonzero_positions`), or ``shape`` itself, out of bounds, where it
    holds none: JAX's padding of a BCOO's stored entries, which ``todense`` and every BCOO operation
    drop.

    >>> slot_indices(np.array([0, 3]), np.array([0, 1]), np.array([0, 1]), 4, (2, 2)).tolist()
    [[0, 0], [2, 2], [2, 2], [1, 1]]
    """
    indices = np.empty((slots, 2), dtype=np.int32)
    indices[:] = shape
    indices[where, 0] = rows
    indices[where, 1] = columns
    return indices


def layer_pattern(function: Callable[[Any], Any], in_dim: int, dtype: Any, smallest: int = 0) -> LayerPattern | None:
    """The pattern of a flat layer function's Jacobian with its colorings, or None where it is more
    than half dense (found within that many dependencies, or not at all) or has fewer than
    ``smallest`` entries."""
    vector = jax.ShapeDtypeStruct((in_dim,), dtype)
    out_dim = math.prod(jax.eval_shape(function, vector).shape)
    if in_dim * out_dim < smallest:
        return None
    budget = max(1, out_dim * in_dim // 2)
    try:
        rows, columns, shape = pattern_coordinates(function, vector, budget=min(budget, MAX_DEPENDENCIES))
    except PatternTooDense:
        return None
    return LayerPattern(rows, columns, shape) if 2 * len(rows) < out_dim * in_dim else None


#: Layers of fewer Jacobian entries are priced dense: compressing them saves next to nothing.
SMALLEST_SPARSE_LAYER = 64


def sparse_layer_pattern(function: Callable[[Any], Any], in_dim: int, dtype: Any) -> LayerPattern | None:
    """:func:`layer_pattern` where it may pay (:data:`SMALLEST_SPARSE_LAYER`), None elsewhere and
    wherever finding it fails: the layer is then priced dense, never an error."""
    try:
        return layer_pattern(function, in_dim, dtype, SMALLEST_SPARSE_LAYER)
    except Exception:  # noqa: BLE001 - an analysis that fails prices the layer dense
        return None


def compressed_preaccumulation(
    propagate: Callable[[Any], Any], pattern: LayerPattern, direction: str, dtype: Any
) -> Any:
    """One layer's dense Jacobian from one JVP (``direction="tangent"``) or VJP per color:
    ``propagate`` maps the ``(colors, n)`` (or ``(colors, m)``) seeds to the compressed Jacobian,
    colors first; each nonzero is read back and scattered into zeros."""
    coloring = pattern.coloring(direction)
    m, n = pattern.shape
    compressed = propagate(jnp.asarray(one_hot_seeds(coloring), dtype))
    values = jnp.ravel(compressed)[nonzero_positions(coloring, pattern.rows, pattern.columns, (m, n))]
    flat = (pattern.rows * n + pattern.columns).astype(np.int32 if m * n < 2**31 else np.int64)
    return jnp.zeros(m * n, dtype).at[flat].set(values, unique_indices=True).reshape(m, n)


def shapes_of(x: Any) -> Any:
    """``x``'s leaves as ``jax.ShapeDtypeStruct`` objects, in its pytree."""
    return jax.tree_util.tree_map(lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf), jnp.result_type(leaf)), x)


def _flat_of(fun: Callable[[Any], Any], x: Any) -> tuple[Any, Callable[[Any], Any]]:
    """``x`` (an array or a pytree of them) as one flat vector, and ``fun`` as a function of such
    vectors (:func:`_flat`)."""
    vector, unravel = ravel(x)
    return vector, functools.partial(_flat, fun, unravel)


def _called(vector: Any, flat: Callable[[Any], Any]) -> Any:
    return flat(vector)


def _flat(fun: Callable[[Any], Any], unravel: Callable[[Any], Any], vector: Any) -> Any:
    """``fun`` of a flat vector, its outputs flattened and concatenated."""
    leaves = jax.tree_util.tree_leaves(fun(unravel(vector)))
    return jnp.concatenate([jnp.ravel(leaf) for leaf in leaves]) if leaves else jnp.zeros(0, vector.dtype)


def colors_and_density(found: tuple) -> dict[str, Any]:
    """What a report shows: density, colors, the lower bound, JVPs or VJPs."""
    rows, _, coloring, m, n = found
    return {
        "density": len(rows) / max(m * n, 1),
        "colors": coloring.count,
        "lower_bound": coloring.lower_bound,
        "mode": coloring.mode,
    }


class CompressedStrategy(NamedTuple):
    """Compression as the dense path's strategy: ``what`` it is (density, colors against their lower
    bound, FMAs against the best other strategy's), ``compute(vector, leaves)`` the dense ``(m, n)``
    Jacobian, ``cost`` its FMAs, whether it ``pays`` (:data:`COMPRESSION_MARGIN` fewer FMAs), and the
    pattern's ``density``."""

    what: str
    compute: Callable[..., Any]
    cost: int
    pays: bool
    density: float


def compressed_strategy(
    flat: Callable[..., Any], vector: Any, shapes: list[Any], chain: Chain, plan: Plan, against: int | None = None
) -> CompressedStrategy | None:
    """Compression as the dense path's strategy, and whether it costs less than ``plan`` (or than
    ``against`` FMAs: the best other strategy's cost).

    The pattern of ``flat(vector, *leaves)`` (differentiating ``vector``; ``vector`` and
    ``shapes``, the leaves', are ``jax.ShapeDtypeStruct``) is found within
    :data:`DETECTION_BUDGET`; compressed forward (reverse) costs the colors times one
    JVP (VJP) through the whole chain, ``sum(tangent_cost)`` (``sum(adjoint_cost)``).
    None where the Jacobian is small (under 4,096 entries) or found dense within the budget.
    """
    m, n = chain.out_dim, chain.in_dim
    if m * n < 4096:
        return None
    budget = max(DETECTION_BUDGET, 16 * (m + n))
    if budget > MAX_DEPENDENCIES:
        return None
    try:
        rows, columns, (m, n) = pattern_coordinates(flat, vector, *shapes, argnums=0, budget=budget)
    except PatternTooDense:
        return None
    modes = runnable_modes(flat, vector, *shapes)
    colorings = [color(rows, columns, (m, n)) for mode, color in _COLORS.items() if mode in modes]
    sweeps = {"columns": sum(chain.tangent_costs), "rows": sum(chain.adjoint_costs)}
    coloring = min(colorings, key=lambda found: found.count * sweeps[found.mode])
    cost = coloring.count * sweeps[coloring.mode]
    against = plan.cost if against is None else against
    pays = cost * COMPRESSION_MARGIN < against
    found = (rows, columns, coloring, m, n)
    density = len(rows) / (m * n)
    what = (
        f"compressed {'forward' if coloring.mode == 'columns' else 'reverse'} (density {density:.2%}): "
        f"{coloring.count} "
        f"{'JVPs' if coloring.mode == 'columns' else 'VJPs'} (lower bound {coloring.lower_bound}), "
        f"{cost:,} FMAs against {against:,}" + ("" if pays else f" (not taken: not {COMPRESSION_MARGIN}x fewer)")
    )

    def compute(vector: Any, leaves: list[Any]) -> Any:
        return sparse_jacobian(lambda v: flat(v, *leaves), vector, found).todense()

    return CompressedStrategy(what, compute, cost, pays, density)
