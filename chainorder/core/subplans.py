"""Cost and peak memory of a sub-plan from its last step and its operands' sub-plans.

Both optimizers (:mod:`chainorder.core.dp`, :mod:`chainorder.core.pareto`) build
plans bottom-up; this is the one rule they share. A sub-plan ending with a step
costs the step plus its operands (summed, or their maximum on the critical path)
and peaks at the step's workspace or its operands' peaks, whichever is larger;
for a product, the operand order of least peak is taken (Sethi-Ullman,
:func:`chainorder.core.memory.operand_peaks`). Peaks exclude the primal values.
Every argument may be a scalar or a numpy array.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from .costs import CostModel
from .memory import MemoryModel, maximum
from .steps import TANGENT, StepKind

__all__ = ["sub_plan", "sub_plan_cost", "sub_plan_peak"]


def _operand(kind: StepKind, later, earlier):
    return earlier if kind.direction == TANGENT else later


def sub_plan_cost(
    kind: StepKind, first, last, split, *, costs: CostModel, critical_path: bool, later=None, earlier=None
):
    """Cost of sub-plans ending with ``kind``, given the operands' sub-plan costs
    (``later``: ``J[last..split+1]``, ``earlier``: ``J[split..first]``; None where
    the kind has no such operand)."""
    step_cost = costs.cost(kind, first, last, split)
    if kind is StepKind.PRODUCT:
        return (maximum(later, earlier) if critical_path else later + earlier) + step_cost
    operand = _operand(kind, later, earlier)
    return step_cost if operand is None else operand + step_cost


def sub_plan_peak(kind: StepKind, first, last, split, *, memory: MemoryModel, later=None, earlier=None):
    """Peak of sub-plans ending with ``kind``: :meth:`MemoryModel.sub_plan_peak`."""
    return memory.sub_plan_peak(kind, first, last, split, later=later, earlier=earlier)


def sub_plan(
    kind: StepKind,
    first,
    last,
    split,
    *,
    costs: CostModel,
    memory: MemoryModel,
    critical_path: bool,
    later=None,
    earlier=None,
):
    """``(cost, peak)`` of sub-plans ending with steps of ``kind``.

    ``later`` and ``earlier`` are the ``(cost, peak)`` of the operands' sub-plans
    ``J[last..split+1]`` and ``J[split..first]`` (None where the kind has no such
    operand).

    >>> from chainorder.core.chain import Chain
    >>> chain = Chain.from_dims([4, 3, 2])
    >>> costs = CostModel(chain); memory = MemoryModel(chain, costs)
    >>> sub_plan(StepKind.PRODUCT, 0, 1, 0, costs=costs, memory=memory, critical_path=False,
    ...          later=(12, 16), earlier=(36, 28))   # 2x3 @ 3x4; the earlier operand first peaks least
    (72, 28)
    """
    later_cost, later_peak = later if later is not None else (None, None)
    earlier_cost, earlier_peak = earlier if earlier is not None else (None, None)
    cost = sub_plan_cost(
        kind, first, last, split, costs=costs, critical_path=critical_path, later=later_cost, earlier=earlier_cost
    )
    peak = sub_plan_peak(kind, first, last, split, memory=memory, later=later_peak, earlier=earlier_peak)
    return cost, peak
