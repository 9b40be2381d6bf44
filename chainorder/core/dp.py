"""The dynamic program: the least cost of every sub-chain, and whether it is reached in more than one way.

``C[i..j]``, the least cost of ``J[j..i]``, is the minimum of (notation of
:mod:`chainorder.core.costs`; ``k`` ranges over ``i..j-1``)

* ``i == j``: a tangent or (if ``E_i <= M``) an adjoint preaccumulation;
* tangent step: ``C[i..k] + n_i (t_{k+1} + ... + t_j)``;
* adjoint step: ``C[k+1..j] + m_j (a_i + ... + a_k)`` (if ``E_i + ... + E_k <= M``);
* product: ``C[i..k] (+ or max) C[k+1..j] + m_j m_k n_i``.

Each cell records one cheapest step and whether another (kind, split) reaches
the same cost; :mod:`chainorder.core.ties` then breaks those ties by peak memory,
looking only at the sub-chains a cheapest plan can use.

The table is filled by sub-chain length; each length is a handful of numpy
operations over all its cells at once:

* products need every split: a ``cells x (length - 1)`` array, read as slices of
  two copies of the table, one indexed by a sub-chain's first layer and one by
  its last layer (``O(q^3)`` work, vectorized);
* tangent steps are ``n_i T[j+1] + min_k (C[i..k] - n_i T[k+1])`` with prefix
  sums ``T``: the inner minimum is a running minimum over ``k`` that grows by one
  term per length (``O(q^2)`` in all); adjoint steps likewise, running in the
  other direction; with a tape limit, adjoint steps use a window of at most the
  longest run of layers that fits on the tape;
* a tie is flagged when a second split reaches a cell's least cost; a tangent
  step from ``k`` whose operand ``C[i..k]`` is itself (uniquely) a tangent step
  from ``k'`` is the same plan as the tangent step from ``k'`` and makes no tie;
  likewise an adjoint step whose operand is pulled from the best split, which
  holds less tape at once and replaces it.

Values are exact integers in the dtype :mod:`chainorder.core.numbers` chooses.

This module imports neither jax nor matplotlib.

References
----------
Naumann, U. (2008). Optimal Jacobian accumulation is NP-complete. Math. Program. 112.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .chain import Chain
from .costs import product_cost, propagation_cost
from .steps import Objective, Step, StepKind
from .table import SCREEN_TOLERANCE, CostTable
from .ties import break_ties

__all__ = ["cheapest_steps", "cost_table"]

_ADJOINT_PRE = StepKind.ADJOINT_PREACCUMULATION.code
_TANGENT_PRE = StepKind.TANGENT_PREACCUMULATION.code
_TANGENT = StepKind.TANGENT_STEP.code
_ADJOINT = StepKind.ADJOINT_STEP.code
_PRODUCT = StepKind.PRODUCT.code


class _CostDP:
    """One run of the DP: fills a :class:`CostTable` length by length."""

    def __init__(self, table: CostTable) -> None:
        self.table = table
        self.q = q = table.q
        self.costs = table.costs
        self.numbers = table.numbers
        self.tangent_best = self.numbers.full(q)  # running minima, see the module docstring
        self.tangent_arg = np.zeros(q, dtype=np.int64)
        self.tangent_tie = np.zeros(q, dtype=bool)
        self.adjoint_best = self.numbers.full(q)
        self.adjoint_arg = np.zeros(q, dtype=np.int64)
        self.adjoint_tie = np.zeros(q, dtype=bool)
        self.buffer = np.empty((q // 2 + 1) * (q - q // 2 + 1), dtype=self.numbers.dtype)  # the products of a length

    def run(self) -> CostTable:
        self._fill_single_layers()
        fill = self._fill_length if self.table.screen is None else self._fill_length_screened
        for length in range(2, self.q + 1):
            fill(length)
        return self.table

    def _fill_single_layers(self) -> None:
        layers = np.arange(self.q)
        costs = self.table.single_layer_costs(layers)
        tangent, adjoint = costs[_TANGENT_PRE], costs[_ADJOINT_PRE]
        use_adjoint = adjoint < tangent
        self.table.store(
            1,
            np.where(use_adjoint, adjoint, tangent),
            np.where(use_adjoint, _ADJOINT_PRE, _TANGENT_PRE),
            layers,
            adjoint == tangent,
        )

    def _fill_length(self, length: int) -> None:
        cells = self.q - length + 1
        first = np.arange(cells)
        products = self._products(length, cells)
        least = np.argmin(products, axis=1)
        best = products_best = products[first, least]
        products_tied = _second_least_ties(products, least)
        kind = np.full(cells, _PRODUCT, dtype=np.int8)
        split = first + least
        others = []
        if self.table.matrix_free:
            others = [(_TANGENT, *self._tangent_steps(length, cells)), (_ADJOINT, *self._adjoint_steps(length, cells))]
        for code, candidate, arg, _ in others:
            better = candidate < best
            best = np.where(better, candidate, best)
            kind = np.where(better, code, kind)
            split = np.where(better, arg, split)
        # how many (kind, split) candidates reach the least cost: more than one is a tie
        reaching = (products_best == best) * (1 + products_tied)
        for _, candidate, _, tied in others:
            reaching += (candidate == best) * (1 + tied)
        self.table.store(length, best, kind, split, reaching > 1)

    def _fill_length_screened(self, length: int) -> None:
        """The same for Python integers: every candidate in float64, then exactly those within
        :data:`SCREEN_TOLERANCE` of each cell's float minimum (float64 errs by a few 1e-16 here)."""
        table, cells = self.table, self.q - length + 1
        rows = self._screen_rows(length, cells)
        least = {kind: row.min(axis=1) for kind, row in rows.items()}
        threshold = np.min(list(least.values()), axis=0) * (1 + SCREEN_TOLERANCE)
        parts = []
        for kind in (StepKind.TANGENT_STEP, StepKind.PRODUCT, StepKind.ADJOINT_STEP):  # preference on ties
            if kind not in rows:
                continue
            near = np.flatnonzero(least[kind] <= threshold)  # the cells where this kind is in the running
            row_index, d = np.nonzero(rows[kind][near] <= threshold[near, None])
            cell = near[row_index]
            cell, split = self._distinct_pairs(kind, length, cell, cell + d)
            exact = table.pair_costs(kind, cell, cell + length - 1, split)
            parts.append((cell, np.full(len(cell), kind.code), split, exact))
        cell, code, split, exact = (np.concatenate(column) for column in zip(*parts))
        order = np.argsort(cell, kind="stable")
        cell, code, split, exact = cell[order], code[order], split[order], exact[order]
        starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
        best = np.minimum.reduceat(exact, starts)
        reaching = exact == best[np.searchsorted(starts, np.arange(len(cell)), side="right") - 1]
        count = np.add.reduceat(reaching.astype(np.int64), starts)
        winners = np.flatnonzero(reaching)
        pick = winners[np.r_[True, cell[winners][1:] != cell[winners][:-1]]]
        table.store(length, best, code[pick], split[pick], count > 1)

    def _through_sums(self, length: int, cells: int, costs) -> tuple[np.ndarray, np.ndarray]:
        """``t_{k+1} + ... + t_j`` and ``a_i + ... + a_k`` for every cell and split, in float64 without
        cancellation: exact int64 prefix differences where the totals fit, else sums of window entries."""
        if self.table.prefix64 is not None:
            tangent, adjoint = self.table.prefix64
            pushed = tangent[length:, None] - sliding_window_view(tangent[1:], length - 1)[:cells]
            pulled = sliding_window_view(adjoint[1:], length - 1)[:cells] - adjoint[:cells, None]
            return pushed.astype(np.float64), pulled.astype(np.float64)
        pushed = np.cumsum(sliding_window_view(costs.tangent_costs, length - 1)[1 : cells + 1, ::-1], axis=1)[:, ::-1]
        pulled = np.cumsum(sliding_window_view(costs.adjoint_costs, length - 1)[:cells], axis=1)
        return pushed, pulled

    def _distinct_pairs(self, kind: StepKind, length: int, cell: np.ndarray, split: np.ndarray):
        """Drop the candidates another one equals or beats in (cost, peak), as the running minima
        do: a tangent step whose operand is uniquely a tangent step, an adjoint step from k' where
        another candidate pulls its operand from k' (see the module docstring)."""
        table = self.table
        if kind is StepKind.TANGENT_STEP:
            operand = cell, split - cell + 1
            keep = ~((table.kind[operand] == _TANGENT) & ~table.tied[operand])
            return cell[keep], split[keep]
        if kind is StepKind.ADJOINT_STEP:
            operand = split + 1, length - (split - cell) - 1
            composed = (table.kind[operand] == _ADJOINT) & ~table.tied[operand]
            dominated = cell[composed] * self.q + table.split[operand][composed]
            keep = ~np.isin(cell * self.q + split, dominated)
            return cell[keep], split[keep]
        return cell, split

    # -- candidates of one length ----------------------------------------------------
    def _products(self, length: int, cells: int, screen: bool = False) -> np.ndarray:
        """``cells x (length - 1)``: every split's product cost plus its operands' (exact, or float64)."""
        costs, earlier, later = self._operand_rows(length, cells, screen)
        m = costs.out_dims
        inner = sliding_window_view(m, length - 1)[:cells]
        buffer = None if screen else self.buffer[: cells * (length - 1)].reshape(cells, length - 1)
        result = product_cost(m[length - 1 :, None], inner, costs.in_dims[:cells, None], out=buffer)
        if self.table.critical_path:
            result += np.maximum(earlier, later)
        else:
            result += earlier
            result += later
        return result

    def _operand_rows(self, length: int, cells: int, screen: bool):
        """The model and, as views, ``C[i..i+d]`` and ``C[i+d+1..j]`` for every cell and split."""
        table = self.table
        by_start, by_end = (
            (table.screen_by_start, table.screen_by_end) if screen else (table.cost_by_start, table.cost_by_end)
        )
        earlier = by_start[:cells, 1:length]
        later = by_end[length - 1 :, length - 1 : 0 : -1]
        return (table.screen if screen else self.costs), earlier, later

    def _screen_rows(self, length: int, cells: int) -> dict[StepKind, np.ndarray]:
        """Every candidate of every cell in float64, by kind (``cells x (length - 1)`` each)."""
        rows = {StepKind.PRODUCT: self._products(length, cells, screen=True)}
        if not self.table.matrix_free:
            return rows
        costs, earlier, later = self._operand_rows(length, cells, screen=True)
        pushed, pulled = self._through_sums(length, cells, costs)
        tangent_row = propagation_cost(costs.in_dims[:cells, None], pushed)
        tangent_row += earlier
        rows[StepKind.TANGENT_STEP] = tangent_row
        adjoint_row = propagation_cost(costs.out_dims[length - 1 :, None], pulled)
        adjoint_row += later
        if self.table.tape_limit is not None:
            fits = np.arange(length - 1)[None, :] < self.table.reach[:cells, None]
            adjoint_row = np.where(fits, adjoint_row, np.inf)
        rows[StepKind.ADJOINT_STEP] = adjoint_row
        return rows

    def _tangent_steps(self, length: int, cells: int):
        """Best tangent step per cell, its split, and whether another split ties."""
        n, prefix = self.costs.in_dims[:cells], self.costs.tangent_prefix
        # the new split is k = j - 1: C[i..k] - n_i T[k+1]
        term = self.table.cost_by_start[:cells, length - 1] - propagation_cost(n, prefix[length - 1 : self.q])
        best, arg, tie = self.tangent_best[:cells], self.tangent_arg[:cells], self.tangent_tie[:cells]
        # C[i..k] pushed from k' gives term_k == term_k' and the same peak: the same plan, no new tie
        composed = (self.table.kind[:cells, length - 1] == _TANGENT) & ~self.table.tied[:cells, length - 1]
        tie[:] = np.where(term < best, False, tie | ((term == best) & ~composed))
        arg[:] = np.where(term < best, np.arange(cells) + length - 2, arg)
        best[:] = np.minimum(term, best)
        return best + propagation_cost(n, prefix[length:]), arg, tie

    def _adjoint_steps(self, length: int, cells: int):
        """Best adjoint step per cell, its split, and how many other splits tie."""
        if self.table.tape_limit is not None:
            return self._adjoint_steps_within_tape(length, cells)
        m, prefix = self.costs.out_dims[length - 1 :], self.costs.adjoint_prefix
        # the new split is k = i: C[i+1..j] + m_j A[i+1]
        term = self.table.cost_by_end[length - 1 :, length - 1] + propagation_cost(m, prefix[1 : cells + 1])
        best, arg, tie = self.adjoint_best[length - 1 :], self.adjoint_arg[length - 1 :], self.adjoint_tie[length - 1 :]
        # C[i+1..j] pulled from the best split k' gives term_i == term_k'; pulling in two steps holds
        # less tape at once, so its peak is no larger: it replaces k' without making a tie
        operand = slice(1, cells + 1), length - 1  # C[i+1..j]
        composed = (
            (self.table.kind[operand] == _ADJOINT) & ~self.table.tied[operand] & (self.table.split[operand] == arg)
        )
        tie[:] = np.where(term < best, False, tie | ((term == best) & ~composed))
        arg[:] = np.where((term < best) | ((term == best) & composed), np.arange(cells), arg)
        best[:] = np.minimum(term, best)
        return best - propagation_cost(m, prefix[:cells]), arg, tie

    def _adjoint_steps_within_tape(self, length: int, cells: int):
        width = min(length - 1, int(self.table.reach.max()))
        first = np.arange(cells)
        if width == 0:
            return self.numbers.full(cells), first, np.zeros(cells, dtype=bool)
        m, prefix = self.costs.out_dims[length - 1 :, None], self.costs.adjoint_prefix
        later = self.table.cost_by_end[length - 1 :, length - 1 : length - 1 - width : -1]  # C[i+d+1..j]
        pulled = sliding_window_view(prefix[1:], width)[:cells] - prefix[:cells, None]
        options = later + propagation_cost(m, pulled)
        options = np.where(np.arange(width)[None, :] < self.table.reach[:cells, None], options, self.numbers.infeasible)
        d = np.argmin(options, axis=1)
        best = options[first, d]
        return best, first + d, self._window_ties(length, options == best[:, None])

    def _window_ties(self, length: int, reaching: np.ndarray) -> np.ndarray:
        """Whether two splits of a cell reach its least adjoint cost, not counting a split k'
        that a reaching split k < k' only composes (C[k+1..j] pulled from k': no less peak)."""
        cell, d = np.nonzero(reaching)
        operand = cell + d + 1, length - d - 1  # C[i+d+1..j] by start and length
        other = self.table.split[operand] - cell  # the split k' - i it was pulled from
        composed = (self.table.kind[operand] == _ADJOINT) & ~self.table.tied[operand] & (other < reaching.shape[1])
        dominated = np.zeros_like(reaching)
        dominated[cell[composed], other[composed]] = True
        return (reaching & ~dominated).sum(axis=1) > 1


def _second_least_ties(products: np.ndarray, least: np.ndarray) -> np.ndarray:
    """Whether a second split of each row reaches the row's least product cost."""
    rows = np.arange(len(products))
    value = products[rows, least]
    if products.shape[1] == 1:
        return np.zeros(len(products), dtype=bool)
    products[rows, least] = np.iinfo(np.int64).max if products.dtype == np.int64 else value + 1
    second = products.min(axis=1)
    products[rows, least] = value
    return second == value


def cheapest_steps(
    chain: Chain, objective: Objective = Objective.FMA, *, matrix_free: bool = True, tape_limit: int | None = None
) -> list[Step]:
    """The steps of a plan of least cost and, among those, least peak memory (children first).

    Exact for ``objective="fma"``. With ``"critical_path"`` a cost tie can hide an
    operand that is cheaper in memory but not in cost on the shorter side, which
    this DP does not see; :func:`chainorder.optimize` handles that objective
    exactly through the Pareto DP on chains of up to
    :data:`chainorder.core.optimize.EXACT_CRITICAL_PATH_LAYERS` layers.

    >>> steps = cheapest_steps(Chain.from_dims([784, 256, 32, 256, 784]))
    >>> sum(step.cost for step in steps)
    33038336
    """
    return break_ties(cost_table(chain, objective, matrix_free=matrix_free, tape_limit=tape_limit))


def cost_table(
    chain: Chain, objective: Objective = Objective.FMA, *, matrix_free: bool = True, tape_limit: int | None = None
) -> CostTable:
    """The least cost of every sub-chain (:class:`chainorder.core.table.CostTable`), filled.

    >>> int(cost_table(Chain.from_dims([784, 256, 32, 256, 784])).cost(0, 3))
    33038336
    """
    return _CostDP(CostTable(chain, Objective(objective), matrix_free, tape_limit)).run()
