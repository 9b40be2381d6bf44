"""The table the cost DP fills: least cost per sub-chain, one cheapest step, and whether it tied.

Shared by :mod:`chainorder.core.dp` (which fills it) and :mod:`chainorder.core.ties`
(which reads a plan of least memory out of it).

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import bisect
from itertools import accumulate

import numpy as np

from .chain import Chain
from .costs import CostModel
from .numbers import Numbers
from .steps import Objective, StepKind
from .subplans import sub_plan_cost

__all__ = ["CostTable", "tape_reach", "SCREEN_LIMIT", "SCREEN_TOLERANCE"]

#: Python-integer tables are screened in float64 when every value is below this (far from overflow);
#: candidates within SCREEN_TOLERANCE (relative) of a cell's float minimum are then compared exactly.
SCREEN_LIMIT = 10**300
SCREEN_TOLERANCE = 1e-9
_TANGENT_PRE = StepKind.TANGENT_PREACCUMULATION.code
_ADJOINT_PRE = StepKind.ADJOINT_PREACCUMULATION.code


def tape_reach(chain: Chain, tape_limit: int | None) -> np.ndarray:
    """``reach[i]``: how many layers ``i, i+1, ...`` an adjoint can pull through on the tape."""
    q = len(chain)
    if tape_limit is None:
        return np.full(q, q, dtype=np.int64)
    edges_prefix = [0, *accumulate(chain.edges)]
    return np.array(
        [bisect.bisect_right(edges_prefix, edges_prefix[i] + tape_limit) - 1 - i for i in range(q)], dtype=np.int64
    )


class CostTable:
    """The least cost of every sub-chain, stored twice: ``[first, length]`` and
    ``[last, length]``, so that every split of a cell lies in one contiguous row;
    one cheapest ``kind`` (code) and ``split`` per cell, and whether it ``tied``.

    Parameters
    ----------
    chain : Chain
    objective : Objective
    matrix_free : bool
    tape_limit : int or None

    Examples
    --------
    >>> from chainorder.core.dp import _CostDP
    >>> table = _CostDP(CostTable(Chain.from_dims([784, 256, 32, 256, 784]), Objective.FMA, True, None)).run()
    >>> int(table.cost(0, 3))
    33038336
    """

    def __init__(self, chain: Chain, objective: Objective, matrix_free: bool, tape_limit: int | None) -> None:
        self.q = q = len(chain)
        self.costs = CostModel.exact(chain)
        self.numbers = self.costs.numbers
        self.critical_path = objective is Objective.CRITICAL_PATH
        self.matrix_free = matrix_free
        self.tape_limit = tape_limit
        self.reach = tape_reach(chain, tape_limit)
        self.cost_by_start = self.numbers.full((q, q + 1))
        self.cost_by_end = self.numbers.full((q, q + 1))
        self.kind = np.zeros((q, q + 1), dtype=np.int8)
        self.split = np.zeros((q, q + 1), dtype=np.int64)
        self.tied = np.zeros((q, q + 1), dtype=bool)
        # Python integers: the same table in float64, to screen candidates at numpy speed
        self.screen = None
        if not self.numbers.exact_int64 and self.numbers.infeasible < SCREEN_LIMIT:
            self.screen = CostModel(chain, Numbers(np.float64, np.inf))
            # sums of JVP/VJP costs over runs of layers, exact in int64 when the totals allow it
            self.prefix64 = None
            if max(sum(chain.tangent_costs), sum(chain.adjoint_costs)) < 2**62:
                self.prefix64 = (
                    np.array(self.costs.tangent_prefix, np.int64),
                    np.array(self.costs.adjoint_prefix, np.int64),
                )
            self.screen_by_start = np.full((q, q + 1), np.inf)
            self.screen_by_end = np.full((q, q + 1), np.inf)

    def store(self, length: int, cost, kind, split, tied) -> None:
        cells = len(cost)
        self.cost_by_start[:cells, length] = cost
        self.cost_by_end[length - 1 :, length] = cost
        self.kind[:cells, length] = kind
        self.split[:cells, length] = split
        self.tied[:cells, length] = tied
        if self.screen is not None:
            self.screen_by_start[:cells, length] = self.screen_by_end[length - 1 :, length] = np.asarray(cost, float)

    def cost(self, first, last):
        return self.cost_by_start[first, last - first + 1]

    def cost_rows(self, kind: StepKind, cells: np.ndarray, length: int, *, screen: bool = False) -> np.ndarray:
        """The cost of every split of the given cells for steps of ``kind``: ``(len(cells), length - 1)``;
        exact, or in float64 with ``screen=True``."""
        first, last = cells[:, None], cells[:, None] + length - 1
        split = first + np.arange(length - 1)[None, :]
        by_start, by_end = (
            (self.screen_by_start, self.screen_by_end) if screen else (self.cost_by_start, self.cost_by_end)
        )
        earlier = by_start[cells, 1:length]  # C[i..i+d]
        later = by_end[cells + length - 1, length - 1 : 0 : -1]  # C[i+d+1..j]
        costs = self.screen if screen else self.costs
        cost = sub_plan_cost(
            kind, first, last, split, costs=costs, critical_path=self.critical_path, later=later, earlier=earlier
        )
        return self._within_tape(kind, first, split, cost, np.inf if screen else self.numbers.infeasible)

    def pair_costs(self, kind: StepKind, first: np.ndarray, last: np.ndarray, split: np.ndarray) -> np.ndarray:
        """Exact costs of single candidates (arrays of the same length)."""
        cost = sub_plan_cost(
            kind,
            first,
            last,
            split,
            costs=self.costs,
            critical_path=self.critical_path,
            later=self.cost(split + 1, last),
            earlier=self.cost(first, split),
        )
        return self._within_tape(kind, first, split, cost, self.numbers.infeasible)

    def _within_tape(self, kind: StepKind, first, split, cost, infeasible):
        if kind is StepKind.ADJOINT_STEP and self.tape_limit is not None:
            return np.where(split - first < self.reach[first], cost, infeasible)
        return cost

    def single_layer_costs(self, layers) -> dict[int, np.ndarray]:
        """Tangent and adjoint preaccumulation costs of the given layers (adjoint infeasible
        where the layer's tape is over the limit)."""
        tangent = self.costs.cost(StepKind.TANGENT_PREACCUMULATION, layers, layers)
        adjoint = self.costs.cost(StepKind.ADJOINT_PREACCUMULATION, layers, layers)
        return {
            _TANGENT_PRE: tangent,
            _ADJOINT_PRE: np.where(self.reach[layers] >= 1, adjoint, self.numbers.infeasible),
        }
