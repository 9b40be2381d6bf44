"""Breaking cost ties by peak memory, then by a fixed preference: the plan read out of a cost table.

Among the plans of least cost, :func:`break_ties` finds one of least peak memory
(the rule of :mod:`chainorder.core.subplans`). Both the cost and the peak of a
sub-plan grow with its operands' costs and peaks, so with the ``"fma"`` objective
a least (cost, peak) plan is built from least (cost, peak) sub-plans, and only
the cheapest candidates of each sub-chain matter. The walk starts at the whole
chain and visits only the sub-chains some cheapest plan can use: a cell the
cost DP solved in one way has one candidate; a tied cell has every (kind,
split) that reaches its least cost, found from one row of costs. Each visited
cell's least peak is computed once, children first.

Equal (cost, peak) candidates are taken in this order: tangent step, product,
adjoint step (preaccumulation: tangent first), then the smallest split.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .memory import MemoryModel
from .steps import Step, StepKind
from .subplans import sub_plan_peak
from .table import CostTable
from .tree import post_order

__all__ = ["break_ties"]

_PREFERENCE = [
    StepKind.TANGENT_PREACCUMULATION,
    StepKind.ADJOINT_PREACCUMULATION,
    StepKind.TANGENT_STEP,
    StepKind.PRODUCT,
    StepKind.ADJOINT_STEP,
]
_KINDS = [StepKind.TANGENT_STEP, StepKind.PRODUCT, StepKind.ADJOINT_STEP]
Span = tuple[int, int]


class _TieBreak:
    def __init__(self, table: CostTable) -> None:
        self.table = table
        self.memory = MemoryModel(table.costs.chain, table.costs)
        self.choice: dict[Span, tuple[StepKind, int | None, int]] = {}  # kind, split, peak

    def candidates(self, span: Span) -> dict[StepKind, list[int | None]]:
        """The splits, by kind, that reach the least cost of ``span`` and may differ in peak."""
        first, last = span
        length = last - first + 1
        table = self.table
        if not table.tied[first, length]:
            kind = StepKind.from_code(table.kind[first, length])
            return {kind: [None if length == 1 else int(table.split[first, length])]}
        best = table.cost(first, last)
        if length == 1:
            costs = table.single_layer_costs(np.array([first]))
            return {StepKind.from_code(code): [None] for code, cost in costs.items() if cost[0] == best}
        found = {}
        for kind in _KINDS if table.matrix_free else [StepKind.PRODUCT]:
            splits = first + np.flatnonzero(table.cost_rows(kind, np.array([first]), length)[0] == best)
            splits = self._distinct(kind, first, last, splits)
            if len(splits):
                found[kind] = splits.tolist()
        return found

    def _distinct(self, kind: StepKind, first: int, last: int, splits: np.ndarray) -> np.ndarray:
        """Drop the splits whose plan another split's equals or beats (see :mod:`chainorder.core.dp`):
        a tangent step from k whose operand is uniquely pushed from k' is the step from k';
        an adjoint step from k' loses to the step from k whose operand is uniquely pulled from k'."""
        table = self.table
        if kind is StepKind.TANGENT_STEP:
            operand = first, splits - first + 1  # J[k..i]
            composed = (table.kind[operand] == StepKind.TANGENT_STEP.code) & ~table.tied[operand]
            return splits[~composed]
        if kind is StepKind.ADJOINT_STEP:
            operand = splits + 1, last - splits  # J[j..k+1]
            composed = (table.kind[operand] == StepKind.ADJOINT_STEP.code) & ~table.tied[operand]
            return splits[~np.isin(splits, table.split[operand][composed])]
        return splits

    @staticmethod
    def _operand_spans(name: str, first: int, last: int, splits: list) -> list[Span]:
        """The ``later`` (``J[last..k+1]``) or ``earlier`` (``J[k..first]``) operand of each split k."""
        return [(split + 1, last) for split in splits] if name == "later" else [(first, split) for split in splits]

    def _operands(self, kind: StepKind, first: int, last: int, splits: list) -> list[Span]:
        return [span for name in kind.operand_names for span in self._operand_spans(name, first, last, splits)]

    def peaks(self, span: Span, kind: StepKind, splits: list) -> np.ndarray:
        """Peaks of the sub-plans of ``span`` ending with ``kind`` at each split."""
        first, last = span
        if kind.is_preaccumulation:
            return np.array([sub_plan_peak(kind, first, last, None, memory=self.memory)])
        operands = {
            name: np.array([self.choice[span][2] for span in self._operand_spans(name, first, last, splits)])
            for name in kind.operand_names
        }
        return np.atleast_1d(sub_plan_peak(kind, first, last, np.array(splits), memory=self.memory, **operands))

    def choose(self, span: Span, candidates: dict[StepKind, list]) -> tuple[StepKind, int | None, int]:
        """The candidate of least peak, then of the preferred kind, then of the smallest split."""
        best = None
        for kind in _PREFERENCE:
            if kind not in candidates:
                continue
            splits = candidates[kind]
            peaks = self.peaks(span, kind, splits)
            index = int(np.argmin(peaks))
            if best is None or peaks[index] < best[2]:
                best = (kind, splits[index], peaks[index])
        return best  # type: ignore[return-value]

    def resolve(self, root: Span) -> None:
        """Choose every sub-chain a cheapest plan of ``root`` can use (iteratively, children first)."""
        pending: dict[Span, dict[StepKind, list]] = {}
        stack = [root]
        while stack:
            span = stack[-1]
            if span in self.choice:
                stack.pop()
                continue
            if span not in pending:
                pending[span] = self.candidates(span)
            missing = [
                operand
                for kind, splits in pending[span].items()
                for operand in self._operands(kind, span[0], span[1], splits)
                if operand not in self.choice
            ]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            self.choice[span] = self.choose(span, pending.pop(span))

    def steps(self) -> list[Step]:
        root = (0, self.table.q - 1)
        self.resolve(root)
        costs = self.table.costs

        def children(span: Span):
            kind, split, _ = self.choice[span]
            return kind.operands(span[0], span[1], split)

        steps = []
        for first, last in post_order(root, children):
            kind, split, _ = self.choice[(first, last)]
            steps.append(Step(kind, first, last, split, int(costs.cost(kind, first, last, split))))
        return steps


def break_ties(table: CostTable) -> list[Step]:
    """A plan of least cost and, among those, least peak memory, from a filled cost table.

    Parameters
    ----------
    table : CostTable
        Filled by :func:`chainorder.core.dp.cheapest_steps`'s DP.

    Returns
    -------
    list of Step
        Children before parents (any valid order; :func:`order_for_memory` picks the best).

    Examples
    --------
    >>> from chainorder.core.chain import Chain
    >>> from chainorder.core.dp import cheapest_steps
    >>> [step.kind.value for step in cheapest_steps(Chain.from_dims([9, 7, 12, 1]))]
    ['adjoint_preaccumulation', 'adjoint_step', 'adjoint_step']
    """
    return _TieBreak(table).steps()
