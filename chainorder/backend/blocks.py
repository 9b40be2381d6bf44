"""Out-of-core Jacobians: column or row blocks that fit a memory budget, written into a host array.

A Jacobian larger than the device's memory is computed ``b`` columns (or rows)
at a time. Columns ``c`` of ``J = f'(x)`` are the Jacobian of
``z -> f(x + E_c z)`` at ``z = 0`` (``E_c`` scatters ``z`` into the entries ``c``),
rows ``r`` the Jacobian of ``v -> f(v)[r]``: each block is a Jacobian problem of
its own, optimized and run by :func:`chainorder.jacobian` under the budget, so
each block's plan is the cheapest that fits. The block size is the largest the
block chain (the traced chain with its first input or last output narrowed to
``b``) admits a plan within the budget for; the orientation is the one of fewer
total FMAs. Blocks are written into ``out`` (a numpy array or ``np.memmap``) as
they come back (:func:`jacobian_into`), or, when no plan of the whole fits the
budget but the Jacobian itself does, into a device buffer allocated once and
updated in place (:func:`jacobian_in_blocks`: chunked seeds at the level of the
whole function); a progress bar shows on a terminal.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.blocking import choose_blocking
from ..core.budget import budget_elements
from .devices import resolve_budget
from .tracing import analyze_chain

__all__ = ["jacobian_into", "jacobian_in_blocks"]

_PLAN_OPTIONS = ("strategy", "objective", "matrix_free", "tape_limit", "parallel")


def _check_out(out: Any, shape: tuple[int, ...], dtype) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array or np.memmap, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}; this Jacobian has shape {shape}")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype}; this Jacobian's dtype is {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError("out is read-only; give a writeable array (or an np.memmap opened with mode 'w+' or 'r+')")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (blocks are written into its rows x columns view)")


def jacobian_into(
    fun: Callable[[Any], Any],
    x: Any,
    out: Any,
    options: dict[str, Any],
    make_jacobian: Callable[..., Callable],
    *,
    progress: bool | None = None,
) -> np.ndarray:
    """``jax.jacobian(fun)(x)`` written into ``out`` block by block, each block's plan within
    ``options["memory_limit"]`` (elements, bytes as text, or ``"auto"``).

    Parameters
    ----------
    fun : callable
        One array in, one array out.
    x : array
    out : numpy.ndarray or numpy.memmap
        Of the Jacobian's shape (``fun(x).shape + x.shape``) and dtype, writeable,
        C-contiguous. Nothing is written when a check fails.
    options : dict
        :func:`chainorder.optimize`'s options (``memory_limit`` among them).
    make_jacobian : callable
        :func:`chainorder.jacobian` (passed in: the drop-in imports this module).
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Returns
    -------
    out

    Raises
    ------
    TypeError, ValueError
        For a bad ``out`` (naming what is wrong), a function under ``jax.jit``, or a
        budget below what one column or row at a time needs (naming both).
    """
    expected = _expected(fun, x, "out= writes a host array")
    _check_out(out, expected.shape, expected.dtype)
    options, budget = _budget(options, expected.dtype)
    blocks = _Blocks.plan(fun, x, expected, budget, options, make_jacobian)
    view = out.reshape(blocks.m, blocks.n)
    for start, end, block in blocks.computed(jnp.ravel(jnp.asarray(x)), progress):
        if blocks.orientation == "columns":
            view[:, start:end] = np.asarray(block)
        else:
            view[start:end, :] = np.asarray(block)
    return out


def jacobian_in_blocks(
    fun: Callable[[Any], Any],
    x: Any,
    options: dict[str, Any],
    make_jacobian: Callable[..., Callable],
    *,
    progress: bool | None = None,
) -> Callable[[Any], jax.Array]:
    """A function computing ``jax.jacobian(fun)`` on the device at arguments shaped like ``x``
    when no plan of the whole fits ``memory_limit``: the result (``m x n`` elements) is allocated
    once and filled in blocks whose plans fit the rest of the budget (chunked seeds, at the level
    of the whole function). The analysis runs here, once; each call only runs the blocks.

    Raises
    ------
    ValueError
        When the Jacobian alone is over the budget (naming both; ``out=`` then helps), or
        the rest of the budget is below what one column or row at a time needs.
    """
    expected = _expected(fun, x, "a Jacobian no plan fits is computed")
    options, budget = _budget(options, expected.dtype)
    n = int(np.size(x))
    m = math.prod(expected.shape) // max(n, 1)
    itemsize = np.dtype(expected.dtype).itemsize
    if budget is None or m * n >= budget:
        raise ValueError(
            f"the {m} x {n} Jacobian alone is {m * n:,} elements ({m * n * itemsize / 1e9:.3g} GB), at or over "
            f"memory_limit {budget:,} elements; give out= (a numpy array or np.memmap) to compute it in blocks "
            "into host memory"
        )
    blocks = _Blocks.plan(fun, x, expected, budget - m * n, options, make_jacobian)
    column_axis = blocks.orientation == "columns"

    def place(result, block, start):
        return jax.lax.dynamic_update_slice(result, block, (0, start) if column_axis else (start, 0))

    write = jax.jit(place, donate_argnums=0)  # in place: the result buffer is reused

    def blocked(at: Any) -> jax.Array:
        result = jnp.zeros((m, n), expected.dtype)
        for start, _, block in blocks.computed(jnp.ravel(jnp.asarray(at)), progress):
            result = write(result, block, start)
        return result.reshape(expected.shape)

    return blocked


def _expected(fun: Callable, x: Any, purpose: str) -> jax.ShapeDtypeStruct:
    if isinstance(x, jax.core.Tracer):
        raise TypeError(f"{purpose} block by block from Python: it cannot run under jax.jit or jax.vmap")
    expected = jax.eval_shape(jax.jacobian(fun), jnp.asarray(x))
    if not isinstance(expected, jax.ShapeDtypeStruct):
        raise TypeError(f"{purpose}: it takes a function of one array that returns one array")
    return expected


def _budget(options: dict[str, Any], dtype) -> tuple[dict[str, Any], int | None]:
    """The options for the block plans, and the budget in elements."""
    options = resolve_budget(dict(options), dtype)
    budget = budget_elements(options.pop("memory_limit", None), options.pop("dtype", dtype))
    return {name: value for name, value in options.items() if name in _PLAN_OPTIONS}, budget


@dataclasses.dataclass
class _Blocks:
    """The block Jacobian function, its orientation and size, and the Jacobian's ``m x n``."""

    block_jacobian: Callable
    orientation: str
    size: int
    m: int
    n: int

    @classmethod
    def plan(cls, fun, x, expected, budget, options, make_jacobian) -> _Blocks:
        x = jnp.asarray(x)
        n = x.size
        m = math.prod(expected.shape) // max(n, 1)

        def flat(v):
            return jnp.ravel(fun(v.reshape(x.shape)))

        vector = jnp.ravel(x)
        chain = analyze_chain(flat, vector, objective="fma").chain
        orientation, size = choose_blocking(chain, budget, options)
        block = _block_function(flat, orientation)
        size = _fitting_size(block, vector, orientation, size, n if orientation == "columns" else m, budget, options)
        return cls(make_jacobian(block, memory_limit=budget, **options), orientation, size, m, n)

    def computed(self, vector: jax.Array, progress: bool | None):
        """``(start, end, block)`` for each block, the block cut to ``end - start`` columns or rows."""
        from tqdm.auto import tqdm  # noqa: PLC0415 - only blocked work shows a bar

        full = self.n if self.orientation == "columns" else self.m
        show = progress if progress is not None else sys.stderr.isatty()
        label = f"Jacobian in {self.size}-{self.orientation[:-1]} blocks"
        for start in tqdm(range(0, full, self.size), desc=label, disable=not show, leave=False):
            end = min(start + self.size, full)
            block = self.block_jacobian(*_block_arguments(vector, self.orientation, start, self.size, full))
            yield start, end, block[:, : end - start] if self.orientation == "columns" else block[: end - start]


def _block_arguments(vector, orientation: str, start: int, size: int, full: int) -> tuple:
    index = jnp.minimum(jnp.arange(start, start + size), full - 1)  # the last block repeats its last index
    if orientation == "columns":
        return jnp.zeros(size, vector.dtype), vector, index
    return vector, index


def _fitting_size(block: Callable, vector, orientation: str, size: int, full: int, budget, options) -> int:
    """``size``, halved until the block function itself (its traced chain has the scatter or the
    selection as one more layer than the estimate) has a plan within ``budget``."""
    while True:
        try:
            analyze_chain(block, *_block_arguments(vector, orientation, 0, size, full), memory_limit=budget, **options)
            return size
        except ValueError:
            if size == 1:
                raise
            size = max(1, size // 2)


def _block_function(flat: Callable, orientation: str) -> Callable:
    if orientation == "columns":
        return lambda z, base, index: flat(base.at[index].add(z))
    return lambda v, index: flat(v)[index]
