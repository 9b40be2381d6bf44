"""Cost against memory: the exact Pareto front of plans, and memory-limited optimization.

:func:`pareto_steps` runs the Pareto DP (:class:`chainorder.core.paretodp.ParetoDP`)
up to three times. The first run keeps a single label of least peak per sub-chain
(:func:`_least_peak_run`). Where its plan costs the optimum, or a cost-optimal plan
peaks as low, that plan dominates or equals every other and is the whole front
(:func:`_the_one_plan`): so for the autoencoders of the memory benchmark, and for
the random 300-layer chain of ``benchmarks/bench_memory.py`` (0.9-1.2 s against
2.5-2.7 s with all three runs). Elsewhere the known plans come from it and a second
fast run that generates corners only (:func:`_known_plans`). A
sub-plan costing ``c`` completes into plans costing at least ``c`` plus its
sub-chain's completion cost (:mod:`chainorder.core.completion`), so a known plan
that beats that bound and the sub-plan's peak dominates every plan using it.
The better the known plans, the more the exact run prunes: at 500 layers,
:func:`pareto_steps` took 8.2 s handed the true front (no fast runs) against 19.1 s
with the two fast runs.
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


def _cost_optimal(table: CostTable, memory: MemoryModel) -> tuple[list[Step], int]:
    """A cost-optimal plan (from the fast DP, ties broken by peak) and its peak: a bound for every
    sub-plan.

    A sub-plan peaking above it is in complete plans that cost at least the optimum and
    peak above this plan's: dominated. The Pareto DP drops such labels as they appear,
    as it does under a memory limit, and its front is unchanged.
    """
    chain = table.costs.chain
    steps = order_for_memory(chain, break_ties(table), memory)
    return steps, peak_memory(chain, steps, memory)


def _least_peak_run(dp_arguments: tuple) -> ParetoDP:
    """The run that keeps each sub-chain's least-peak label (the cheapest of those), pairing only
    the operands' least-peak labels: its plan peaks least of all plans (peaks grow with the
    operands' peaks)."""
    dp = ParetoDP(*dp_arguments, rough="least_peak")
    dp.run()
    return dp


def _the_one_plan(
    least_peak: ParetoDP, table: CostTable, cost_optimal: tuple[list[Step], int], memory: MemoryModel
) -> tuple[int, int, list[Step]] | None:
    """``(cost, peak, steps)`` of a plan that costs the least and peaks the least, where the least-peak
    run's plan costs the optimum or the cost-optimal plan peaks the least; None elsewhere. Such a
    plan dominates or equals every other: the front is that one point, and no further run is needed."""
    fronts, q = least_peak.fronts, least_peak.q
    if not fronts.size[0, q - 1]:
        return None
    entry = int(fronts.start[0, q - 1])
    cost, peak = int(fronts.cost[entry]), int(fronts.peak[entry]) + memory.primal
    if cost == int(table.cost(0, q - 1)):
        steps = merged_propagations(least_peak.steps(entry), memory, least_peak.tape_limit)
        return cost, peak, order_for_memory(table.costs.chain, steps, memory)
    if cost_optimal[1] == peak:
        return int(table.cost(0, q - 1)), peak, cost_optimal[0]
    return None


def _known_plans(
    dp_arguments: tuple, completion: np.ndarray, least_peak: ParetoDP, table: CostTable, cost_optimal_peak: int
) -> Known:
    """Plans that bound the exact run (:class:`Known`): the least-peak run's plan, a cost-optimal
    plan (the fast DP's, ``cost_optimal_peak`` without the primal values), and the front of a
    second fast run that, with those two as known plans, generates each row's corners only (its
    operands' cheapest labels paired, and their least-peak ones): it fills in the plans between."""
    q = len(dp_arguments[0])
    fronts = least_peak.fronts
    if not fronts.size[0, q - 1]:  # no plan fits the budget
        return Known(completion, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    least = int(fronts.start[0, q - 1])
    cost = [int(table.cost(0, q - 1)), int(fronts.cost[least])]
    peak = [cost_optimal_peak, int(fronts.peak[least])]
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
    cost_optimal = _cost_optimal(table, memory)
    ceiling = cost_optimal[1]
    limit = ceiling if memory_limit is None else min(memory_limit, ceiling)
    budget = limit - memory.primal
    if budget < 0:
        return []
    arguments = (chain, Objective(objective), matrix_free, tape_limit, budget, chunked)
    completion = completion_costs(table)
    known = None
    if completion is not None:
        least_peak = _least_peak_run(arguments)
        one = _the_one_plan(least_peak, table, cost_optimal, memory)
        if one is not None:
            return [one]
        known = _known_plans(arguments, completion, least_peak, table, ceiling - memory.primal)
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
