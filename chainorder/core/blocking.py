"""Blocks: a Jacobian computed ``b`` columns (or rows) at a time, as chains of their own.

Columns ``c`` of ``J`` are the Jacobian of the chain whose first input is narrowed
to ``|c|`` (``z -> F(x + E_c z)``), rows ``r`` that of the chain whose last output
is narrowed to ``|r|``; the layers' costs per JVP and VJP are unchanged. So a block
is priced and planned like any chain. This is where the block size and orientation
for a budget are chosen (:func:`choose_blocking`), and where the points of blocked
computations on the cost/memory plane come from (:func:`blocked_points`); the JAX
backend (:mod:`chainorder.backend.blocks`) runs them.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .chain import Chain
from .optimize import optimize

__all__ = ["narrowed", "largest_block", "choose_blocking", "blocked_points"]


def narrowed(chain: Chain, orientation: str, size: int) -> Chain:
    """The chain with its first input (``"columns"``) or last output (``"rows"``) narrowed to ``size``.

    >>> narrowed(Chain.from_dims([300, 4, 300]), "columns", 50).dims
    (50, 4, 300)
    """
    layers = list(chain)  # for pricing only: the functions, shapes, the narrowed layer's colors and explicit form go
    dropped = dict(
        fn=None, in_shape=None, out_shape=None, tangent_colors=None, adjoint_colors=None, pattern=None, explicit=False
    )
    if orientation == "columns":
        layers[0] = dataclasses.replace(layers[0], in_dim=size, nonzeros=None, **dropped)
    else:
        layers[-1] = dataclasses.replace(layers[-1], out_dim=size, nonzeros=None, **dropped)
    return Chain(layers)


def largest_block(chain: Chain, orientation: str, budget: int | None, options: dict[str, Any]) -> tuple[int, int]:
    """The largest block size whose plan fits ``budget`` (halving from the size the budget
    allows until one fits, then bisecting up to the first that does not; a block's least
    peak grows with its size), and the FMAs of all the blocks.

    Raises
    ------
    ValueError
        When not even a block of one fits.
    """
    full = chain.in_dim if orientation == "columns" else chain.out_dim
    other = chain.out_dim if orientation == "columns" else chain.in_dim
    size = full if budget is None else max(1, min(full, budget // max(other, 1)))

    def plan_of(size: int):
        try:
            return optimize(narrowed(chain, orientation, size), memory_limit=budget, **options)
        except ValueError:
            if size == 1:
                raise
            return None

    too_big, plan = None, plan_of(size)
    while plan is None:
        too_big, size = size, max(1, size // 2)
        plan = plan_of(size)
    while too_big is not None and too_big - size > 1:
        middle = (size + too_big) // 2
        found = plan_of(middle)
        if found is None:
            too_big = middle
        else:
            size, plan = middle, found
    return size, math.ceil(full / size) * plan.cost


def choose_blocking(chain: Chain, budget: int | None, options: dict[str, Any] | None = None) -> tuple[str, int]:
    """``(orientation, size)``: of the largest column and row blocks that fit, the one of fewer FMAs.

    >>> choose_blocking(Chain.from_dims([300, 4, 300]), 20_000)
    ('columns', 64)

    Raises
    ------
    ValueError
        When neither one column nor one row at a time fits (naming both reasons).
    """
    found, errors = {}, []
    for orientation in ("columns", "rows"):
        try:
            found[orientation] = largest_block(chain, orientation, budget, options or {})
        except ValueError as error:
            errors.append(str(error))
    if not found:
        raise ValueError(
            f"memory_limit {budget:,} elements is below what even one column or one row at a time needs: "
            + "; ".join(errors)
        )
    orientation = min(found, key=lambda name: found[name][1])
    return orientation, found[orientation][0]


def blocked_points(chain: Chain, options: dict[str, Any] | None = None) -> list[tuple[int, int, str, int]]:
    """``(peak, cost, orientation, size)`` of computing the Jacobian in blocks of 1, 2, 4, ...
    columns or rows into a result held whole (peak: the Jacobian + the block plan's peak;
    cost: all the blocks' FMAs), for the sizes below the full width.

    >>> points = blocked_points(Chain.from_dims([64, 8, 64]))
    >>> min(peak for peak, *_ in points) > 64 * 64
    True
    """
    points = []
    whole = chain.out_dim * chain.in_dim
    for orientation, full in (("columns", chain.in_dim), ("rows", chain.out_dim)):
        size = 1
        while size < full:
            plan = optimize(narrowed(chain, orientation, size), **(options or {}))
            points.append((whole + plan.peak_memory, math.ceil(full / size) * plan.cost, orientation, size))
            size *= 2
    return points
