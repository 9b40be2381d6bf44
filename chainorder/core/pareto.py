"""Cost against memory: the exact Pareto front of plans, and memory-limited optimization.

:func:`pareto_steps` runs the Pareto DP (:class:`chainorder.core.paretodp.ParetoDP`)
three times. The known plans come from two fast runs (:func:`_known_plans`): one keeping a
single label of least peak per sub-chain, then one generating corners only. A
sub-plan costing ``c`` completes into plans costing at least ``c`` plus its
sub-chain's completion cost (:mod:`chainorder.core.completion`), so a known plan
that beats that bound and the sub-plan's peak dominates every plan using it.
The better the known plans, the more the exact run prunes: at 500 layers, it
took 3.0 s knowing the true front against 9.3 s knowing these.
Sub-plans peaking above a cost-optimal plan's peak are dropped as they appear
(complete plans using them are dominated by it); with a memory limit, so are
those whose peak is already over the limit.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .chain import Chain
from .completion import completion_costs
from .dp import cost_table
from .labels import Known, prune
from .memory import MemoryModel, peak_memory
from .memorysteps import merged_propagations, order_for_memory
from .paretodp import ParetoDP
from .steps import Objective, Step
from .table import CostTable
from .ties import break_ties

__all__ = ["pareto_steps"]


def _cost_optimal_peak(table: CostTable, memory: MemoryModel) -> int:
    """The peak of a cost-optimal plan (from the fast DP): a bound for every sub-plan.

    A sub-plan peaking above it is in complete plans that cost at least the optimum and
    peak above this plan's: dominated. The Pareto DP drops such labels as they appear,
    as it does under a memory limit, and its front is unchanged.
    """
    steps = break_ties(table)
    return peak_memory(table.costs.chain, order_for_memory(table.costs.chain, steps, memory), memory)


def _known_plans(dp_arguments: tuple, table: CostTable, cost_optimal_peak: int) -> Known | None:
    """Plans that bound the exact run (:class:`Known`), from two fast runs. The first keeps each
    sub-chain's least-peak label (the cheapest of those), pairing only the operands' least-peak
    labels: its plan peaks least of all plans (peaks grow with the operands' peaks). With it and a
    cost-optimal plan (the fast DP's, ``cost_optimal_peak`` without the primal values) as known
    plans, the second generates each row's corners only (its operands' cheapest labels paired,
    and their least-peak ones); its front fills in the plans between."""
    completion = completion_costs(table)
    if completion is None:
        return None
    q = len(dp_arguments[0])
    fronts = ParetoDP(*dp_arguments, rough="least_peak").run()
    if not fronts.size[0, q - 1]:  # no plan fits the budget
        return Known(completion, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    least_peak = int(fronts.start[0, q - 1])
    cost = [int(table.cost(0, q - 1)), int(fronts.cost[least_peak])]
    peak = [cost_optimal_peak, int(fronts.peak[least_peak])]
    fronts = ParetoDP(*dp_arguments, rough="corners", known=Known(completion, *_front_of_points(cost, peak))).run()
    start, size = int(fronts.start[0, q - 1]), int(fronts.size[0, q - 1])
    cost += [int(value) for value in fronts.cost[start : start + size]]
    peak += [int(value) for value in fronts.peak[start : start + size]]
    return Known(completion, *_front_of_points(cost, peak))


def _front_of_points(cost: list[int], peak: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The non-dominated points, cheapest first."""
    cost, peak = np.array(cost, dtype=np.int64), np.array(peak, dtype=np.int64)
    keep = prune(np.zeros(len(cost), dtype=np.int64), cost, peak, None)
    return cost[keep], peak[keep]


def pareto_steps(
    chain: Chain,
    *,
    objective: Objective = Objective.FMA,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    memory_limit: int | None = None,
    chunked: bool = False,
    cheapest: bool = False,
) -> list[tuple[int, int, list[Step]]]:
    """Every non-dominated ``(cost, peak_memory, steps)``, least memory first.

    With ``memory_limit``, only plans whose peak fits; an empty list when none does.
    With ``chunked``, peaks are the least over every chunk of each step (one seed at a
    time; :func:`chainorder.core.memorysteps.chunked_to_fit` then picks the chunks a limit needs).
    With ``cheapest``, only the cheapest of them (the last), and the run keeps no sub-plan
    whose completions all cost more than a known plan that fits (memory-limited ``optimize``
    with chunks at 500 layers, ``benchmarks/bench_memory.py``: 7.2 s against 15.6 s).
    """
    memory = MemoryModel(chain, chunked=chunked)
    table = cost_table(chain, Objective(objective), matrix_free=matrix_free, tape_limit=tape_limit)
    ceiling = _cost_optimal_peak(table, memory)
    limit = ceiling if memory_limit is None else min(memory_limit, ceiling)
    budget = limit - memory.primal
    if budget < 0:
        return []
    arguments = (chain, Objective(objective), matrix_free, tape_limit, budget, chunked)
    known = _known_plans(arguments, table, ceiling - memory.primal)
    if cheapest and known is not None:
        fitting = known.cost[known.peak <= budget]
        known = Known(known.completion, known.cost, known.peak, int(fitting.min()) if len(fitting) else None)
    dp = ParetoDP(*arguments, known=known)
    fronts = dp.run()
    q = len(chain)
    start, size = int(fronts.start[0, q - 1]), int(fronts.size[0, q - 1])
    if cheapest:  # fronts are stored cheapest first
        size = min(size, 1)
    plans = []
    for entry in range(start + size - 1, start - 1, -1):  # least memory first
        cost, peak = fronts.entry(entry)[:2]
        steps = merged_propagations(dp.steps(entry), memory, tape_limit)
        plans.append((int(cost), int(peak) + memory.primal, order_for_memory(chain, steps, memory)))
    return plans
