"""The least cost of completing a sub-chain's Jacobian into the whole chain's: an outside DP.

Given ``J[j..i]`` for free, the rest of a plan still has to produce ``J[q-1..0]``
from it. In a plan's tree the node ``J[j..i]`` has a parent that consumes it
(notation of :mod:`chainorder.core.costs`): a product with ``J[j'..j+1]``
(costing that sibling's least cost ``C[j+1..j']`` and ``m_{j'} m_j n_i``) or
with ``J[i-1..i']`` (``C[i'..i-1]`` and ``m_j m_{i-1} n_{i'}``), a tangent step
pushing it through layers ``j+1..j'`` (``n_i (t_{j+1} + ... + t_{j'})``), or an
adjoint step pulling it back through layers ``i'..i-1`` (``m_j (a_{i'} + ... +
a_{i-1})``, if that tape fits). So the completion cost ``G[i..j]`` is the
minimum over those parents of their cost plus the parent's own ``G``, with
``G[0..q-1] = 0``: a DP over sub-chains from the longest down, ``O(q^3)`` work,
each length a few numpy operations on rectangular slices (like
:mod:`chainorder.core.dp`, whose table ``C`` it reads).

``C[i..j] + G[i..j]`` is the least cost of a plan that computes ``J[j..i]``; any
sub-plan of ``J[j..i]`` costing ``c`` is part of plans costing at least
``c + G[i..j]``. The Pareto DP (:mod:`chainorder.core.pareto`) drops sub-plans
whose every completion a known plan dominates. Sums of costs only: with the
critical-path objective the bound is not computed.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .table import CostTable

__all__ = ["completion_costs"]


def _padded(values: np.ndarray, before: int, after: int, fill) -> np.ndarray:
    return np.concatenate(
        [np.full(before, fill, dtype=np.int64), values.astype(np.int64), np.full(after, fill, dtype=np.int64)]
    )


class _Completion:
    """Fills ``G`` by ``[first, length]`` and ``[last, length]``, longest sub-chains first."""

    def __init__(self, table: CostTable) -> None:
        self.table = table
        q = self.q = table.q
        costs = table.costs
        self.infeasible = table.numbers.infeasible
        self.by_start = np.full((q, q + 1), self.infeasible, dtype=np.int64)
        self.by_end = np.full((q, q + 1), self.infeasible, dtype=np.int64)
        self.by_start[0, q] = self.by_end[q - 1, q] = 0
        row = np.full((1, q + 1), self.infeasible, dtype=np.int64)
        self.least_by_start = np.vstack([table.cost_by_start, row])  # C[j+1..j+d], with a row past the end
        self.least_by_end = np.vstack([row, table.cost_by_end])  # C[i-d..i-1], with a row before the start
        n, m = costs.in_dims, costs.out_dims
        self.n, self.m = n.astype(np.int64), m.astype(np.int64)
        self.m_after = _padded(m, 0, q, 0)  # m[j + d]
        self.n_before = _padded(n, q, 0, 0)  # n[i - d], shifted by q
        self.m_previous = _padded(m, 1, 0, 0)  # m[i - 1]
        self.tangent_after = _padded(costs.tangent_prefix, 0, q, int(costs.tangent_prefix[-1]))
        self.adjoint_before = _padded(costs.adjoint_prefix, q, 0, 0)
        self.reach_before = _padded(table.reach, q, 0, 0)

    def fill(self, length: int) -> None:
        cells, width = self.q - length + 1, self.q - length
        first = np.arange(cells)
        last = first + length - 1
        right = self._right_parents(length, cells, width, first, last)
        best = np.minimum(right, self._left_parents(length, cells, width, first, last))
        best = np.minimum(best, self.infeasible)
        self.by_start[:cells, length] = best
        self.by_end[length - 1 :, length] = best

    def _right_parents(self, length, cells, width, first, last) -> np.ndarray:
        """Parents ``J[j+d..i]``, ``d = 1..width``: a product with ``J[j+d..j+1]``, or a tangent step."""
        parent = self.by_start[:cells, length + 1 :]  # G[i..j+d]
        after = sliding_window_view(self.m_after, width)[length : length + cells]  # m[j+d]
        product = (
            self.least_by_start[length : length + cells, 1 : width + 1]
            + after * (self.m[last] * self.n[first])[:, None]
        )
        best = product + parent
        if self.table.matrix_free:
            pushed = sliding_window_view(self.tangent_after, width)[length + 1 : length + 1 + cells]  # T[j+d+1]
            tangent = self.n[first, None] * (pushed - self.tangent_after[last + 1, None]) + parent
            best = np.minimum(best, tangent)
        return best.min(axis=1)

    def _left_parents(self, length, cells, width, first, last) -> np.ndarray:
        """Parents ``J[j..i-d]``, ``d = 1..width``: a product with ``J[i-1..i-d]``, or an adjoint step."""
        q = self.q
        parent = self.by_end[length - 1 :, length + 1 :]  # G[i-d..j]
        before = sliding_window_view(self.n_before, width)[q - width : q - width + cells, ::-1]  # n[i-d]
        sibling = self.least_by_end[:cells, 1 : width + 1]  # C[i-d..i-1]
        product = sibling + before * (self.m[last] * self.m_previous[first])[:, None]
        best = product + parent
        if self.table.matrix_free:
            pulled = sliding_window_view(self.adjoint_before, width)[q - width : q - width + cells, ::-1]  # A[i-d]
            adjoint = self.m[last, None] * (self.adjoint_before[q + first, None] - pulled) + parent
            if self.table.tape_limit is not None:
                reach = sliding_window_view(self.reach_before, width)[q - width : q - width + cells, ::-1]
                adjoint = np.where(np.arange(width)[None, :] < reach, adjoint, self.infeasible)
            best = np.minimum(best, adjoint)
        return best.min(axis=1)


def completion_costs(table: CostTable) -> np.ndarray | None:
    """``G[first, length]``: the least cost of the rest of a plan that computes the sub-chain's
    Jacobian, for every sub-chain (``int64``, ``(q, q + 1)``, like ``table.cost_by_start``);
    None where the table is not in ``int64`` or the objective is the critical path.

    >>> from chainorder.core.chain import Chain
    >>> from chainorder.core.dp import cost_table
    >>> from chainorder.core.steps import Objective
    >>> table = cost_table(Chain.from_dims([784, 256, 32, 256, 784]), Objective.FMA)
    >>> completion = completion_costs(table)
    >>> int(completion[0, 4]), int(table.cost(0, 3))   # the whole chain: nothing left to do
    (0, 33038336)
    >>> bool((table.cost_by_start[:4, 1] + completion[:4, 1] >= table.cost(0, 3)).all())
    True
    """
    if table.critical_path or not table.numbers.exact_int64:
        return None
    completion = _Completion(table)
    for length in range(table.q - 1, 0, -1):
        completion.fill(length)
    return completion.by_start
