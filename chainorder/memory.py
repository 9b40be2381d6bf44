"""The memory model: peak memory of executing a plan, in array elements.

What a step holds while it runs (its *workspace*; notation of :mod:`chainorder.costs`,
``|J[j..i]| = m_j * n_i``):

==========================================  ===================================================
step                                        workspace (elements)
==========================================  ===================================================
tangent preaccumulation of layer i          ``n_i * (n_i + m_i)``: the identity seed and the
                                            ``n_i`` tangents through the layer
tangent step through layers k+1..j          ``n_i * max_l (n_l + m_l)`` over those layers: the
                                            ``n_i`` tangents entering and leaving one layer
adjoint preaccumulation of layer i          ``m_i * (m_i + n_i) + E_i``: seed, cotangents, tape
adjoint step through layers i..k            ``m_j * max_l (n_l + m_l) + E_i + ... + E_k``:
                                            cotangents plus the tape of the layers pulled through
product ``J[j..k+1] @ J[k..i]``             ``m_j m_k + m_k n_i + m_j n_i``: operands and result
==========================================  ===================================================

While a step runs, every Jacobian produced earlier and not yet consumed stays alive;
the peak is the maximum over the steps of (alive Jacobians + workspace), plus the
primal values ``n_0 + m_0 + ... + m_{q-1}`` that every plan keeps (the executor runs
the primal pass once and keeps its intermediates).

The order of a product's two operands matters: computing ``A`` first keeps ``|A|``
alive while ``B`` is computed. For a sub-plan whose operands peak at ``peak(A)`` and
``peak(B)``, the peak is ``min(max(peak(A), |A| + peak(B)), max(peak(B), |B| + peak(A)))``
(and at least the product's workspace), which is Sethi and Ullman's rule; plans are
emitted in that order.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence

from .chain import Chain
from .costs import (
    ADJOINT_PREACCUMULATION,
    ADJOINT_STEP,
    PRODUCT,
    TANGENT_PREACCUMULATION,
    TANGENT_STEP,
    CostModel,
)

__all__ = ["MemoryModel", "peak_memory", "order_for_memory"]


class MemoryModel:
    """Exact integer workspace sizes of every step on a chain.

    >>> model = MemoryModel(Chain.from_dims([4, 3, 2]))
    >>> model.primal
    9
    >>> model.workspace("product", 0, 0, 1)  # 2x3 @ 3x4 -> 2x4
    26
    """

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.costs = CostModel(chain)
        self.in_dims = self.costs.in_dims
        self.out_dims = self.costs.out_dims
        self.primal = sum(chain.dims)
        widths = [n + m for n, m in zip(self.in_dims, self.out_dims)]
        self._widths = widths
        # widest[a][b - a] = max(widths[a..b]); built lazily per start
        self._widest: dict[int, list[int]] = {}

    def result_size(self, first: int, last: int) -> int:
        return self.out_dims[last] * self.in_dims[first]

    def widest(self, first: int, last: int) -> int:
        """``max (n_l + m_l)`` over layers ``first..last``."""
        row = self._widest.get(first)
        if row is None:
            row, best = [], 0
            for width in self._widths[first:]:
                best = max(best, width)
                row.append(best)
            self._widest[first] = row
        return row[last - first]

    def workspace(self, kind: str, first: int, split: int | None, last: int) -> int:
        """Elements a step holds while it runs (operands and result included)."""
        n, m = self.in_dims, self.out_dims
        if kind == TANGENT_PREACCUMULATION:
            return n[first] * (n[first] + m[first])
        if kind == ADJOINT_PREACCUMULATION:
            return m[first] * (m[first] + n[first]) + self.costs.tape(first, first)
        if kind == TANGENT_STEP:
            return n[first] * self.widest(split + 1, last)  # type: ignore[operator]
        if kind == ADJOINT_STEP:
            return m[last] * self.widest(first, split) + self.costs.tape(first, split)  # type: ignore[arg-type]
        if kind == PRODUCT:
            return m[last] * m[split] + m[split] * n[first] + m[last] * n[first]  # type: ignore[index]
        raise ValueError(f"unknown step kind {kind!r}")


def peak_memory(chain: Chain, steps: Sequence, model: MemoryModel | None = None) -> int:
    """Peak elements alive when ``steps`` run in their order (see the module's model)."""
    model = model or MemoryModel(chain)
    alive = 0
    peak = 0
    for step in steps:
        operands = sum(model.result_size(*operand) for operand in step.operands)
        workspace = model.workspace(step.kind, step.first, step.split, step.last)
        peak = max(peak, alive - operands + workspace)
        alive += model.result_size(step.first, step.last) - operands
    return peak + model.primal


def order_for_memory(chain: Chain, steps: Sequence, model: MemoryModel | None = None) -> list:
    """The same steps in the post-order of least peak memory (Sethi–Ullman at products)."""
    model = model or MemoryModel(chain)
    producer = {(step.first, step.last): step for step in steps}
    peak: dict[tuple[int, int], int] = {}
    first_operand: dict[tuple[int, int], tuple[int, int]] = {}
    for step in steps:  # children come before parents in any valid plan
        key = (step.first, step.last)
        workspace = model.workspace(step.kind, step.first, step.split, step.last)
        operands = step.operands
        if len(operands) == 2:
            a, b = operands
            size_a, size_b = model.result_size(*a), model.result_size(*b)
            a_first = max(peak[a], size_a + peak[b])
            b_first = max(peak[b], size_b + peak[a])
            first_operand[key] = a if a_first <= b_first else b
            peak[key] = max(min(a_first, b_first), workspace)
        elif operands:
            peak[key] = max(peak[operands[0]], workspace)
        else:
            peak[key] = workspace
    root = (0, len(chain) - 1)
    ordered = []
    stack: list[tuple[tuple[int, int], bool]] = [(root, False)]
    while stack:
        key, ready = stack.pop()
        step = producer[key]
        if ready or not step.operands:
            ordered.append(step)
            continue
        stack.append((key, True))
        operands = list(step.operands)
        if len(operands) == 2 and first_operand[key] == operands[1]:
            operands.reverse()
        for operand in reversed(operands):  # the first operand is popped first
            stack.append((operand, False))
    return ordered
