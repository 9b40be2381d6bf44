"""Which entries of a Jacobian can be nonzero, found on the jaxpr without evaluating f at any point.

Every value of the jaxpr gets a boolean sparse matrix (``scipy.sparse``, one row per
entry of the value, one column per differentiated input entry) saying which inputs it
depends on. Each primitive maps its operands' rows to its outputs' rows:

* exactly, through index maps (:mod:`.indexmaps`): elementwise ops (operands of rank 0, or
  with dimensions of 1, broadcast), ``broadcast_in_dim``, ``reshape``/``squeeze``/``expand_dims``,
  ``transpose``, ``slice``, ``rev``, ``concatenate``, ``stack``, ``pad``, ``dot_general`` (batch dimensions
  included: an output entry depends on its row of the left and its column of the right
  operand), reductions (an entry depends on the entries it reduces), ``cumsum``/``cumprod``/
  ``cummax``/``cummin``, ``select_n`` (the predicate contributes nothing); nested
  ``jit``/``checkpoint`` calls are entered; ``optimization_barrier`` passes its operands through;
  ``stop_gradient`` depends on nothing;
* exactly, by running the primitive on codes (:mod:`.moves`): gathers, ``dynamic_slice``,
  ``dynamic_update_slice`` and scatters (add, mul, min, max, overwrite) whose index operands
  are known while tracing, and convolutions (any padding, strides, dilations, layouts and
  feature groups; both operands);
* with the known values' zeros and choices: a ``select_n`` whose predicate is known takes each
  entry from the case it chooses; a ``mul`` or ``dot_general`` with a known constant operand
  drops the products with its zeros (``jnp.where(mask, ...)``, ``mask * x``, a sparse matrix
  stored dense, ``L @ u``), as does a convolution with a known kernel;
* a ``custom_jvp`` function (``relu``, ``softplus``, ``logaddexp``) by the JVP its rule computes,
  a ``custom_vjp`` one by its pullback, transposed, both traced abstractly (:mod:`.customrules`):
  the rule decides what the derivative reads; a rule that cannot be traced without values gets
  the conservative rule below;
* integer and boolean values depend on nothing (their derivative is zero): an ``argmax``, a
  comparison, a one-hot made from them;
* conservatively, for every other primitive (sort, control flow, and the
  above with indices computed from the inputs): each output entry depends on every input any
  operand depends on. Never a missing nonzero; possibly extra ones.

Known values (:mod:`.knownvalues`) are the jaxpr's constants and literals and what is computed
from them alone, computed only where a rule reads one; a tracer closed over from an outer
``jax.jit`` is not known.

:func:`sparsity` returns the pattern of the flattened Jacobian as a
``jax.experimental.sparse.BCOO`` of ones (rows: the outputs' entries, raveled and
concatenated; columns: the differentiated inputs' entries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend
import numpy as np
import scipy.sparse as sparse
from jax.experimental import sparse as jax_sparse

from .customrules import inexact, jvp_jaxpr, pullback_jaxpr
from .indexmaps import (
    INDEX_RULES,
    broadcast_index,
    broadcasts,
    cumulative_map,
    dot_general_maps,
    dot_general_reads,
    index_rule,
    reduction_map,
    split_indices,
)
from .indexmaps import size as _size
from .knownvalues import concrete, deferred
from .moves import MOVES, TooManyDependencies, index_maps
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


def _moving(equation, operands: list) -> list[int]:
    """The operands that depend on an input and have derivatives."""
    pairs = enumerate(zip(operands, equation.invars))
    return [i for i, (matrix, var) in pairs if matrix is not None and inexact(var.aval)]


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

    def _through(self, maps: list, operands: list, out_size: int):
        """The union of ``map @ operand`` over the operands (maps of :mod:`.moves`)."""
        parts = []
        for map_, matrix in zip(maps, operands):
            if map_ is not None and matrix is not None:
                self._afford(map_.nnz, matrix)
                parts.append((map_ @ matrix).astype(bool))
        return _union(parts, out_size, self.columns) if parts else None

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

    def run(self, jaxpr, inputs: list, values: Sequence | None = None, consts: Sequence = ()):
        """The outputs' dependency matrices; ``values``: the inputs' values where known (numpy arrays,
        or None), ``consts``: the jaxpr's constants."""
        env: dict = {}
        known: dict = dict(zip(jaxpr.constvars, consts))  # as they are: computed only when read (:mod:`.knownvalues`)
        for var, value in zip(jaxpr.invars, values or [None] * len(jaxpr.invars)):
            if value is not None:
                known[var] = value

        def read(var):
            if isinstance(var, jax.extend.core.Literal):
                return None
            return env.get(var)

        def value_of(var):
            return np.asarray(var.val) if isinstance(var, jax.extend.core.Literal) else known.get(var)

        for var, value in zip(jaxpr.invars, inputs):
            env[var] = value
        for equation in jaxpr.eqns:
            operands = [read(var) for var in equation.invars]
            operand_values = [value_of(var) for var in equation.invars]
            if all(operand is None for operand in operands):
                for var, value in zip(equation.outvars, deferred(equation, operand_values)):
                    known[var] = value
                continue
            results = self.equation(equation, operands, operand_values)
            for var, value in zip(equation.outvars, self._check(results)):
                env[var] = value if inexact(var.aval) else None  # integers and booleans: zero derivative
        return [read(var) for var in jaxpr.outvars]

    def _custom_jvp(self, equation, operands: list, values: list) -> list:
        """A ``custom_jvp`` function (``relu``, ``softplus``, ``logaddexp``): the pattern of the JVP its
        rule computes (:func:`.customrules.jvp_jaxpr`), the primals depending on nothing."""
        moving = _moving(equation, operands)
        try:
            closed = jvp_jaxpr(equation, moving)
        except Exception:  # noqa: BLE001 - a rule that reads its primal's values (jax.jvp runs it eagerly)
            return self._conservative(equation, operands)
        inputs = [None] * len(operands) + [operands[i] for i in moving]
        return self.run(closed.jaxpr, inputs, list(values) + [None] * len(moving), closed.consts)

    def _custom_vjp(self, equation, operands: list, values: list) -> list:
        """A ``custom_vjp`` function: output entry ``o`` depends on the inputs whose cotangents the
        cotangent of ``o`` reaches through the pullback its rule computes
        (:func:`.customrules.pullback_jaxpr`, walked with one column per output entry), through what
        those inputs depend on."""
        outs = [var.aval for var in equation.outvars]
        moving, pulled = _moving(equation, operands), [k for k, aval in enumerate(outs) if inexact(aval)]
        try:
            closed = pullback_jaxpr(equation, moving, pulled)
        except Exception:  # noqa: BLE001 - as for a custom_jvp
            return self._conservative(equation, operands)
        offsets = np.cumsum([0] + [_size(outs[k]) for k in pulled])
        every = sparse.eye(offsets[-1], format="csr", dtype=bool)
        seeds = [every[start:stop] for start, stop in zip(offsets, offsets[1:])]
        reached = _Propagation(int(offsets[-1]), self.budget).run(
            closed.jaxpr, [None] * len(operands) + seeds, list(values) + [None] * len(pulled), closed.consts
        )
        results: list = [None] * len(outs)
        for k, start, stop in zip(pulled, offsets, offsets[1:]):
            parts = []
            for i, matrix in zip(moving, reached):
                if matrix is not None:
                    local = matrix[:, start:stop].T.tocsr()  # output entries by the input's entries
                    self._afford(local.nnz, operands[i])
                    parts.append((local @ operands[i]).astype(bool))
            results[k] = _union(parts, _size(outs[k]), self.columns) if parts else None
        return results

    def _elementwise(self, name: str, operands: list, avals: list, out, values: list):
        """An elementwise op: each output entry depends on what the operand entries broadcast to it
        depend on, except where a known value makes it not: the cases a known ``select_n`` predicate
        does not choose (the predicate itself is not differentiated), or where a known factor of a
        ``mul`` is zero."""
        counts = [None] * len(operands)  # per operand, the output entries it counts in (None: all)
        if name == "select_n":
            operands = [None, *operands[1:]]
            predicate = concrete(values[0])
            if predicate is not None:
                chosen = np.broadcast_to(predicate, out.shape).ravel()
                counts[1:] = [chosen == case for case in range(len(operands) - 1)]
        if name == "mul":
            for operand, other in ((0, 1), (1, 0)):
                factor = concrete(values[other]) if operands[other] is None else None
                if factor is not None and not np.all(factor != 0):  # `2 * x`: nothing to drop
                    counts[operand] = np.broadcast_to(factor != 0, out.shape).ravel()
        parts = []
        for matrix, aval, where in zip(operands, avals, counts):
            if matrix is None:
                continue
            if aval.shape == out.shape and where is None:
                parts.append(matrix)
                continue
            index = broadcast_index(aval, out)
            parts.append(_rows(matrix, index if where is None else np.where(where, index, -1), self.columns))
        return _union(parts, _size(out), self.columns) if parts else None

    def equation(self, equation, operands: list, values: list) -> list:
        name, params = equation.primitive.name, equation.params
        avals = [var.aval for var in equation.invars]
        outs = [var.aval for var in equation.outvars]
        out_size = _size(outs[0])
        if name in _CALLS and inner_jaxpr(params) is not None:
            jaxpr, consts = inner_jaxpr(params)
            return self.run(jaxpr, operands, values, consts)
        if name == "stop_gradient":  # its derivative is zero: it depends on no input
            return [None]
        if name == "optimization_barrier":  # each output is its operand
            return list(operands)
        if name == "custom_jvp_call":
            return self._custom_jvp(equation, operands, values)
        if name == "custom_vjp_call":
            return self._custom_vjp(equation, operands, values)
        if name in MOVES:
            limit = MAX_DEPENDENCIES if self.budget is None else 64 * self.budget
            try:
                maps = index_maps(name, params, avals, outs[0], [concrete(value) for value in values], limit)
            except TooManyDependencies as error:
                if self.budget is not None:
                    raise PatternTooDense(f"{name} would map {error.count:,} dependencies") from None
                raise _too_large(error.count) from None
            if maps is not None:
                return [self._through(maps, operands, out_size)]
        if name in ELEMENTWISE and all(broadcasts(aval.shape, outs[0].shape) for aval in avals):
            return [self._elementwise(name, operands, avals, outs[0], values)]
        if name in INDEX_RULES:
            index = index_rule(name, params, avals[0], outs[0])
            moved = None if operands[0] is None else _rows(operands[0], index, self.columns)
            if name == "pad" and operands[1] is not None:
                padding = _rows(operands[1], np.where(index < 0, 0, -1), self.columns)
                moved = padding if moved is None else _union([moved, padding], out_size, self.columns)
            return [moved]
        if name == "split":
            indices = split_indices(params, avals[0])
            return [None if operands[0] is None else _rows(operands[0], index, self.columns) for index in indices]
        if name in ("concatenate", "stack"):  # stack: jnp.stack's own primitive (jax >= 0.10)
            parts = [
                matrix if matrix is not None else sparse.csr_matrix((_size(aval), self.columns), dtype=bool)
                for matrix, aval in zip(operands, avals)
            ]
            join, axis = (np.concatenate, params["dimension"]) if name == "concatenate" else (np.stack, params["axis"])
            blocks = [np.arange(_size(aval)).reshape(aval.shape) + offset for aval, offset in
                      zip(avals, np.cumsum([0] + [_size(aval) for aval in avals[:-1]]))]  # fmt: skip
            index = join(blocks, axis=axis).ravel()
            return [_rows(sparse.vstack(parts, format="csr"), index, self.columns)]
        if name == "dot_general":
            factors = [concrete(value) if matrix is None else None for matrix, value in zip(operands, values)]
            reads = dot_general_reads(avals[0], avals[1], outs[0], params["dimension_numbers"], factors)
            for matrix, count in zip(operands, reads):
                self._afford(count, matrix)  # before the maps are built
            wanted = [matrix is not None for matrix in operands]
            maps = dot_general_maps(avals[0], avals[1], outs[0], params["dimension_numbers"], factors, wanted)
            parts = [(map_ @ matrix).astype(bool) for map_, matrix in zip(maps, operands) if matrix is not None]
            return [_union(parts, out_size, self.columns)]
        if name in REDUCTIONS and len(operands) == 1:
            map_ = reduction_map(avals[0].shape, params["axes"])
            self._afford(map_.nnz, operands[0])
            return [(map_ @ operands[0]).astype(bool)]
        if name in CUMULATIVE:
            map_ = cumulative_map(avals[0].shape, params["axis"], params.get("reverse", False))
            self._afford(map_.nnz, operands[0])
            return [(map_ @ operands[0]).astype(bool)]
        return self._conservative(equation, operands)

    def _conservative(self, equation, operands: list) -> list:
        """Every output entry depending on every input any operand depends on."""
        outs = [var.aval for var in equation.outvars]
        if self.budget is not None:
            every = sum(matrix.max(axis=0).nnz for matrix in operands if matrix is not None)
            if every * sum(_size(out) for out in outs) > self.budget:
                raise PatternTooDense(f"{equation.primitive.name} makes its outputs depend on {every:,} inputs each")
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
    outputs = _Propagation(columns, budget).run(closed.jaxpr, inputs, consts=closed.consts)
    rows = [
        matrix if matrix is not None else sparse.csr_matrix((_size(var.aval), columns), dtype=bool)
        for matrix, var in zip(outputs, closed.jaxpr.outvars)
    ]
    pattern = sparse.vstack(rows, format="coo") if rows else sparse.coo_matrix((0, columns), dtype=bool)
    return pattern.row.astype(np.int64), pattern.col.astype(np.int64), pattern.shape

