"""Which entries of a Jacobian can be nonzero, found on the jaxpr without evaluating numbers.

Every value of the jaxpr gets a boolean sparse matrix (``scipy.sparse``, one row per
entry of the value, one column per differentiated input entry) saying which inputs it
depends on. Each primitive maps its operands' rows to its outputs' rows:

* exactly, through index maps: elementwise ops (operands of rank 0, or with dimensions
  of 1, broadcast), ``broadcast_in_dim``, ``reshape``/``squeeze``/``expand_dims``, ``transpose``,
  ``slice``, ``rev``, ``concatenate``, ``pad``, ``dot_general`` (batch dimensions included:
  an output entry depends on its row of the left and its column of the right operand),
  reductions (an entry depends on the entries it reduces), ``cumsum``/``cumprod``/
  ``cummax``/``cummin``, ``select_n`` (the predicate contributes nothing); nested
  ``jit``/``checkpoint`` calls are entered;
* conservatively, for every other primitive (gathers, scatters, convolutions, sort,
  control flow, custom rules): each output entry depends on every input any operand
  depends on. Never a missing nonzero; possibly extra ones.

:func:`sparsity` returns the pattern of the flattened Jacobian as a
``jax.experimental.sparse.BCOO`` of ones (rows: the outputs' entries, raveled and
concatenated; columns: the differentiated inputs' entries).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend
import numpy as np
import scipy.sparse as sparse
from jax.experimental import sparse as jax_sparse

from .primitives import CALLS, CUMULATIVE, ELEMENTWISE, REDUCTIONS, inner_jaxpr

__all__ = ["sparsity", "pattern_coordinates", "PatternTooDense", "MAX_DEPENDENCIES"]

#: The most dependencies (nonzeros) one value's pattern may hold: 2**28, about 3.2 GB as a
#: scipy matrix (int64 column indices and a bool each). Beyond it :func:`sparsity` raises a
#: ValueError naming the size rather than run out of memory.
MAX_DEPENDENCIES = 1 << 28
_BYTES_PER_DEPENDENCY = 12  # int64 index + bool, rounded up for the row pointers


class PatternTooDense(Exception):
    """The propagation passed its budget: the pattern is (nearly) dense, or too costly to find."""

_CALLS = CALLS | {"custom_lin"}


def _size(aval) -> int:
    return math.prod(aval.shape)


def _rows(matrix, index: np.ndarray, columns: int):
    """``matrix[index]`` where ``index`` may hold -1 (a row depending on nothing)."""
    empty = sparse.csr_matrix((1, columns), dtype=bool)
    padded = sparse.vstack([matrix, empty], format="csr")
    return padded[np.where(index < 0, matrix.shape[0], index)]


def _union(matrices: Sequence, rows: int, columns: int):
    total = sparse.csr_matrix((rows, columns), dtype=bool)
    for matrix in matrices:
        total = total + matrix
    return total.astype(bool)


def _dense(dependencies: Sequence, rows: int, columns: int):
    """Every row depending on everything any operand depends on (the conservative rule)."""
    every = _union([matrix.max(axis=0) for matrix in dependencies if matrix is not None], 1, columns)
    return sparse.csr_matrix(np.ones((rows, 1), dtype=bool)) @ every if every.nnz else None


def _reduction_map(shape: tuple[int, ...], axes: Sequence[int]):
    """``(out_size x in_size)``: which input entries each output entry of a reduction over ``axes`` reads."""
    kept = [axis for axis in range(len(shape)) if axis not in axes]
    grid = np.indices(shape).reshape(len(shape), -1)
    out_index = (
        np.ravel_multi_index(grid[kept], [shape[axis] for axis in kept]) if kept else np.zeros(grid.shape[1], int)
    )
    out_size = math.prod(shape[axis] for axis in kept)
    return sparse.csr_matrix(
        (np.ones(len(out_index), bool), (out_index, np.arange(len(out_index)))), (out_size, grid.shape[1])
    )


def _cumulative_map(shape: tuple[int, ...], axis: int, reverse: bool):
    grid = np.indices(shape).reshape(len(shape), -1)
    rows, columns = [], []
    for position in range(shape[axis]):
        targets = np.flatnonzero(grid[axis] == position)
        sources = grid[:, targets].copy()
        reach = range(position, shape[axis]) if reverse else range(position + 1)
        for source in reach:
            sources[axis] = source
            rows.append(targets)
            columns.append(np.ravel_multi_index(sources, shape))
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    size = math.prod(shape)
    return sparse.csr_matrix((np.ones(len(rows), bool), (rows, columns)), (size, size))


def _dot_general_maps(left, right, out, dimension_numbers):
    """``(out_size x left_size)`` and ``(out_size x right_size)``: the entries each output entry reads."""
    (left_contract, right_contract), (left_batch, right_batch) = dimension_numbers
    left_free = [d for d in range(left.ndim) if d not in left_contract and d not in left_batch]
    right_free = [d for d in range(right.ndim) if d not in right_contract and d not in right_batch]
    contract_shape = [left.shape[d] for d in left_contract]
    out_grid = np.indices(out.shape).reshape(out.ndim, -1)
    contract_grid = (
        np.indices(contract_shape).reshape(len(contract_shape), -1) if contract_shape else np.zeros((0, 1), int)
    )
    pairs = out_grid.shape[1] * contract_grid.shape[1]
    out_rows = np.repeat(np.arange(out_grid.shape[1]), contract_grid.shape[1])
    batch = len(left_batch)
    maps = []
    for operand, free, contract, batch_dims, offset in (
        (left, left_free, left_contract, left_batch, batch),
        (right, right_free, right_contract, right_batch, batch + len(left_free)),
    ):
        index = np.zeros((operand.ndim, pairs), dtype=np.int64)
        for k, d in enumerate(batch_dims):
            index[d] = np.repeat(out_grid[k], contract_grid.shape[1])
        for k, d in enumerate(free):
            index[d] = np.repeat(out_grid[offset + k], contract_grid.shape[1])
        for k, d in enumerate(contract):
            index[d] = np.tile(contract_grid[k], out_grid.shape[1])
        flat = np.ravel_multi_index(index, operand.shape) if operand.ndim else np.zeros(pairs, int)
        maps.append(sparse.csr_matrix((np.ones(pairs, bool), (out_rows, flat)), (out_grid.shape[1], _size(operand))))
    return maps


def _broadcasts(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether an operand of ``shape`` broadcasts elementwise to ``out_shape`` (rank 0, or the same
    rank with each dimension 1 or equal)."""
    if not shape:
        return True
    return len(shape) == len(out_shape) and all(d in (1, o) for d, o in zip(shape, out_shape))


def _broadcast_index(operand, out) -> np.ndarray:
    """For each output entry, the operand entry an elementwise op broadcasts to it."""
    if not operand.shape:
        return np.zeros(_size(out), int)
    return np.broadcast_to(np.arange(_size(operand)).reshape(operand.shape), out.shape).ravel()


def _index_rule(name: str, params: dict, operand, out) -> np.ndarray | None:
    """For the rules that move entries: for each output entry, the operand entry it copies."""
    index = np.arange(_size(operand)).reshape(operand.shape)
    if name in ("reshape", "squeeze", "expand_dims"):
        return index.ravel()
    if name == "transpose":
        return index.transpose(params["permutation"]).ravel()
    if name == "slice":
        strides = params["strides"] or (1,) * operand.ndim
        where = tuple(slice(s, e, t) for s, e, t in zip(params["start_indices"], params["limit_indices"], strides))
        return index[where].ravel()
    if name == "rev":
        return np.flip(index, axis=tuple(params["dimensions"])).ravel()
    if name == "broadcast_in_dim":
        grid = np.indices(out.shape)
        source = [
            np.zeros(out.shape, int) if operand.shape[k] == 1 else grid[d]
            for k, d in enumerate(params["broadcast_dimensions"])
        ]
        return index[tuple(source)].ravel() if operand.ndim else np.zeros(_size(out), int)
    if name == "pad":
        return _padded_index(index, params["padding_config"]).ravel()  # -1: a padding entry
    return None


def _padded_index(index: np.ndarray, config) -> np.ndarray:
    """``lax.pad`` of an index array with -1, in numpy (low, high and interior padding; negative
    low or high padding crops)."""
    for axis, (low, high, interior) in enumerate(config):
        low, high, interior = int(low), int(high), int(interior)
        length = index.shape[axis]
        grown = max(length + max(length - 1, 0) * interior, 0)
        shape = list(index.shape)
        shape[axis] = max(low, 0) + grown + max(high, 0)
        out = np.full(shape, -1, dtype=np.int64)
        where = [slice(None)] * index.ndim
        where[axis] = slice(max(low, 0), max(low, 0) + grown, interior + 1)
        out[tuple(where)] = index
        crop = [slice(None)] * index.ndim
        crop[axis] = slice(max(-low, 0), shape[axis] - max(-high, 0))
        index = out[tuple(crop)]
    return index



def _too_large(count: int) -> ValueError:
    return ValueError(
        f"the Jacobian's pattern is too large to hold: a value depends on {count:,} input entries in all "
        f"({count * _BYTES_PER_DEPENDENCY / 1e9:.1f} GB); the limit is {MAX_DEPENDENCIES:,} "
        f"({MAX_DEPENDENCIES * _BYTES_PER_DEPENDENCY / 1e9:.1f} GB, chainorder.backend.patterns.MAX_DEPENDENCIES)"
    )


class _Propagation:
    """Dependency matrices through a jaxpr; with ``budget``, :class:`PatternTooDense` as soon as a
    value's matrix holds more than ``budget`` nonzeros or (past 65,536) is more than half
    full, or a product would touch more than ``64 * budget`` of them, or make more than
    ``budget`` from rows of one each: a dense Jacobian is found dense in a fraction of a
    second, and only :func:`sparsity` itself tracks everything."""

    def __init__(self, columns: int, budget: int | None = None) -> None:
        self.columns = columns
        self.budget = budget

    def _afford(self, reads: int, matrix) -> None:
        """Raise unless a product reading ``reads`` rows of ``matrix`` is within the budget."""
        if self.budget is not None and matrix is not None and matrix.shape[0]:
            per_row = matrix.nnz / matrix.shape[0]
            work = reads * per_row
            if work > 64 * self.budget or (per_row <= 1 and work > self.budget):
                raise PatternTooDense(f"a product would touch about {work:.3g} dependencies")

    def _check(self, values: list) -> list:
        for value in values:
            if value is not None and value.nnz > MAX_DEPENDENCIES:
                raise _too_large(value.nnz)
        if self.budget is not None:
            for value in values:
                if value is None:
                    continue
                if value.nnz > self.budget:
                    raise PatternTooDense(f"a value depends on {value.nnz:,} input entries in all")
                if value.nnz >= 1 << 16 and 2 * value.nnz > value.shape[0] * value.shape[1]:
                    raise PatternTooDense("a value depends on more than half the inputs, entry by entry")
        return values

    def run(self, jaxpr, inputs: list):
        env: dict = {}

        def read(var):
            if isinstance(var, jax.extend.core.Literal):
                return None
            return env.get(var)

        for var, value in zip(jaxpr.invars, inputs):
            env[var] = value
        for equation in jaxpr.eqns:
            operands = [read(var) for var in equation.invars]
            if all(operand is None for operand in operands):
                continue
            for var, value in zip(equation.outvars, self._check(self.equation(equation, operands))):
                env[var] = value
        return [read(var) for var in jaxpr.outvars]

    def equation(self, equation, operands: list) -> list:
        name, params = equation.primitive.name, equation.params
        avals = [var.aval for var in equation.invars]
        outs = [var.aval for var in equation.outvars]
        out_size = _size(outs[0])
        if name in _CALLS and inner_jaxpr(params) is not None:
            return self.run(inner_jaxpr(params)[0], operands)
        if name in ELEMENTWISE and all(_broadcasts(aval.shape, outs[0].shape) for aval in avals):
            start = 1 if name == "select_n" else 0  # the predicate chooses; it is not differentiated
            parts = [
                matrix if aval.shape == outs[0].shape else _rows(matrix, _broadcast_index(aval, outs[0]), self.columns)
                for matrix, aval in zip(operands[start:], avals[start:])
                if matrix is not None
            ]
            return [_union(parts, out_size, self.columns) if parts else None]
        if name in ("reshape", "squeeze", "expand_dims", "transpose", "slice", "rev", "broadcast_in_dim", "pad"):
            index = _index_rule(name, params, avals[0], outs[0])
            moved = None if operands[0] is None else _rows(operands[0], index, self.columns)
            if name == "pad" and operands[1] is not None:
                padding = _rows(operands[1], np.where(index < 0, 0, -1), self.columns)
                moved = padding if moved is None else _union([moved, padding], out_size, self.columns)
            return [moved]
        if name == "concatenate":
            parts = [
                matrix if matrix is not None else sparse.csr_matrix((_size(aval), self.columns), dtype=bool)
                for matrix, aval in zip(operands, avals)
            ]
            axis = params["dimension"]
            blocks = [np.arange(_size(aval)).reshape(aval.shape) + offset for aval, offset in
                      zip(avals, np.cumsum([0] + [_size(aval) for aval in avals[:-1]]))]  # fmt: skip
            index = np.concatenate(blocks, axis=axis).ravel()
            return [_rows(sparse.vstack(parts, format="csr"), index, self.columns)]
        if name == "dot_general":
            contracted = math.prod(avals[0].shape[d] for d in params["dimension_numbers"][0][0])
            for matrix in operands:  # before the maps are built: they hold out_size * contracted entries
                self._afford(out_size * contracted, matrix)
            maps = _dot_general_maps(avals[0], avals[1], outs[0], params["dimension_numbers"])
            parts = [(map_ @ matrix).astype(bool) for map_, matrix in zip(maps, operands) if matrix is not None]
            return [_union(parts, out_size, self.columns)]
        if name in REDUCTIONS and len(operands) == 1:
            map_ = _reduction_map(avals[0].shape, params["axes"])
            self._afford(map_.nnz, operands[0])
            return [(map_ @ operands[0]).astype(bool)]
        if name in CUMULATIVE:
            map_ = _cumulative_map(avals[0].shape, params["axis"], params.get("reverse", False))
            self._afford(map_.nnz, operands[0])
            return [(map_ @ operands[0]).astype(bool)]
        if self.budget is not None:
            every = sum(matrix.max(axis=0).nnz for matrix in operands if matrix is not None)
            if every * sum(_size(out) for out in outs) > self.budget:
                raise PatternTooDense(f"{name} makes its outputs depend on {every:,} inputs each")
        return [_dense(operands, _size(out), self.columns) for out in outs]


def sparsity(f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0) -> jax_sparse.BCOO:
    """The nonzero pattern of the Jacobian of ``f`` at arguments shaped like ``args``.

    Parameters
    ----------
    f : callable
    *args
        Only their shapes and dtypes are used.
    argnums : int or sequence of int
        The differentiated arguments.

    Returns
    -------
    jax.experimental.sparse.BCOO
        Of ones, ``(m, n)``: rows are the entries of ``f``'s outputs (pytree leaves,
        raveled, concatenated), columns those of the differentiated arguments.
        Exact for the primitives listed in the module docstring; elsewhere a superset.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> pattern = sparsity(lambda x: x[1:] - x[:-1], jnp.ones(4))   # a difference stencil
    >>> pattern.todense().astype(int).tolist()
    [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    rows, columns, shape = pattern_coordinates(f, *args, argnums=argnums)
    indices = np.stack([rows, columns], axis=1).astype(np.int32)
    return jax_sparse.BCOO((np.ones(len(indices), np.float32), indices), shape=shape)


def pattern_coordinates(
    f: Callable[..., Any], *args: Any, argnums: int | Sequence[int] = 0, budget: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The nonzeros ``(rows, columns)`` of :func:`sparsity`'s pattern as numpy arrays, and its shape
    (usable while tracing: only shapes are read). With ``budget`` (nonzeros), raises
    :class:`PatternTooDense` rather than track more than that many dependencies of one value."""
    numbers = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    closed = jax.make_jaxpr(f)(*args)
    leaves_per_arg = [len(jax.tree_util.tree_leaves(arg)) for arg in args]
    starts = np.cumsum([0] + leaves_per_arg)
    differentiated = {leaf for number in numbers for leaf in range(starts[number], starts[number + 1])}
    sizes = [_size(var.aval) for var in closed.jaxpr.invars]
    columns = sum(size for leaf, size in enumerate(sizes) if leaf in differentiated)
    if columns > MAX_DEPENDENCIES:
        raise _too_large(columns)
    inputs, offset = [], 0
    for leaf, size in enumerate(sizes):
        if leaf in differentiated:
            inputs.append(
                sparse.csr_matrix((np.ones(size, bool), (np.arange(size), offset + np.arange(size))), (size, columns))
            )
            offset += size
        else:
            inputs.append(None)
    outputs = _Propagation(columns, budget).run(closed.jaxpr, inputs)
    rows = [
        matrix if matrix is not None else sparse.csr_matrix((_size(var.aval), columns), dtype=bool)
        for matrix, var in zip(outputs, closed.jaxpr.outvars)
    ]
    pattern = sparse.vstack(rows, format="coo") if rows else sparse.coo_matrix((0, columns), dtype=bool)
    return pattern.row.astype(np.int64), pattern.col.astype(np.int64), pattern.shape

