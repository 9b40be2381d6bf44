"""Which steps: the cheapest plan's (ties broken by peak memory, then by the pure modes), the
fastest plan's, the cheapest within a memory limit, the pure modes, and the Pareto front's.

:func:`chainorder.core.optimize.optimize` and :func:`~chainorder.core.optimize.pareto` make
plans of them.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from .chain import Chain
from .checks import Options
from .dp import cheapest_steps
from .memory import MemoryModel, peak_memory
from .memorysteps import chunked_to_fit, order_for_memory
from .pareto import pareto_steps
from .plan import Plan
from .profile import MachineProfile
from .pure import forward_steps, reverse_fits, reverse_steps
from .steps import Objective, Step
from .timedp import fastest_steps
from .timing import plan_time

__all__ = [
    "NoPlanFits", "EXACT_CRITICAL_PATH_LAYERS", "front", "optimal_steps", "fastest_plan_steps", "pure_steps_within",
]  # fmt: skip

#: Up to this many layers, ``objective="critical_path"`` breaks cost ties by memory
#: exactly, through the Pareto DP; beyond, through the faster lexicographic DP
#: (exact in cost; see :mod:`chainorder.core.dp`).
EXACT_CRITICAL_PATH_LAYERS = 40


class NoPlanFits(ValueError):
    """No plan of the chain fits the memory limit; ``least`` is the least achievable peak (elements)."""

    def __init__(self, limit: int, least: int) -> None:
        super().__init__(
            f"no plan fits memory_limit {limit:,} elements; the least achievable peak memory is {least:,} elements "
            "(pushing seeds one at a time where that helps)"
        )
        self.limit, self.least = limit, least


def front(
    chain: Chain, options: Options, memory_limit: int | None = None, *, chunked: bool = False, cheapest: bool = False
) -> list:
    """``(cost, peak, steps)`` of the Pareto front, least peak first; ``chunked``: with the
    least chunks (the same FMAs), each plan's steps given the largest chunks that reach its peak;
    ``cheapest``: its cheapest plan alone."""
    front = pareto_steps(
        chain,
        objective=options.objective,
        matrix_free=options.matrix_free,
        tape_limit=options.tape_limit,
        memory_limit=memory_limit,
        chunked=chunked,
        cheapest=cheapest,
    )
    if chunked:
        front = [(cost, peak, chunked_to_fit(chain, steps, peak)) for cost, peak, steps in front]
    return front


def optimal_steps(chain: Chain, options: Options) -> list[Step]:
    memory = MemoryModel(chain)
    if options.objective is Objective.CRITICAL_PATH and len(chain) <= EXACT_CRITICAL_PATH_LAYERS:
        steps = front(chain, options)[-1][2]
    else:
        steps = order_for_memory(
            chain,
            cheapest_steps(chain, options.objective, matrix_free=options.matrix_free, tape_limit=options.tape_limit),
            memory,
        )
    if options.memory_limit is not None and peak_memory(chain, steps, memory) > options.memory_limit:
        # the cost-optimal plan with chunks where they fit (no DP), else the cheapest plan that fits
        ordered = order_for_memory(chain, steps, MemoryModel(chain, chunked=True))
        steps = chunked_to_fit(chain, ordered, options.memory_limit) or _cheapest_within(chain, options)
    if options.matrix_free:
        steps = _prefer_pure_mode(chain, steps, options, memory)
    return steps


def fastest_plan_steps(chain: Chain, options: Options, profile: MachineProfile) -> list[Step]:
    """The plan of least predicted time; under a memory limit, the fastest plan of the
    FMA/memory Pareto fronts (whole steps, and chunked) that fits; a pure mode when it is no
    slower and no bigger."""
    memory = MemoryModel(chain)
    steps, _ = fastest_steps(chain, profile, matrix_free=options.matrix_free, tape_limit=options.tape_limit)
    steps = order_for_memory(chain, steps, memory)
    candidates = [steps]
    if options.memory_limit is not None and peak_memory(chain, steps, memory) > options.memory_limit:
        fma = options._replace(objective=Objective.FMA)
        limit = options.memory_limit
        candidates = [plan for _, _, plan in front(chain, fma, limit)]  # those that fit whole, and chunked
        candidates += [chunked_to_fit(chain, plan, limit) for _, _, plan in front(chain, fma, limit, chunked=True)]
        candidates = candidates or [_cheapest_within(chain, fma)]
    if options.matrix_free:
        candidates += _pure_candidates(chain, options)
    return min(candidates, key=lambda plan: (plan_time(chain, plan, profile), peak_memory(chain, plan, memory)))


def _pure_candidates(chain: Chain, options: Options) -> list[list[Step]]:
    """The pure modes allowed under the options' tape and memory limits."""
    candidates = [forward_steps(chain)]
    if reverse_fits(chain, options.tape_limit):
        candidates.append(reverse_steps(chain, options.tape_limit))
    limit = options.memory_limit
    return [steps for steps in candidates if limit is None or peak_memory(chain, steps) <= limit]


def _cheapest_within(chain: Chain, options: Options) -> list[Step]:
    """The cheapest plan whose peak fits the memory limit where its steps push their seeds in
    chunks (the same FMAs), each step's chunk the largest that fits (none where all seeds fit)."""
    plans = front(chain, options, options.memory_limit, chunked=True, cheapest=True)
    if not plans:
        raise NoPlanFits(options.memory_limit, front(chain, options, chunked=True)[0][1])
    return chunked_to_fit(chain, plans[-1][2], options.memory_limit)


def _prefer_pure_mode(chain: Chain, steps: list[Step], options: Options, memory: MemoryModel) -> list[Step]:
    """On a tie in cost and memory with pure forward or reverse mode, take the pure
    mode: it runs as ``jax.jacfwd``/``jax.jacrev`` with no bookkeeping."""
    key = (Plan.cost_of(steps, options.objective), peak_memory(chain, steps, memory))
    for pure in _pure_candidates(chain, options):
        if (Plan.cost_of(pure, options.objective), peak_memory(chain, pure, memory)) <= key:
            return pure
    return steps


def pure_steps_within(chain: Chain, options: Options) -> list[Step]:
    if not options.matrix_free:
        raise ValueError(
            f"strategy={options.strategy!r} is a matrix-free mode; matrix_free=False allows only strategy='optimal'"
        )
    steps = forward_steps(chain) if options.strategy == "forward" else reverse_steps(chain, options.tape_limit)
    peak = peak_memory(chain, steps)
    if options.memory_limit is not None and peak > options.memory_limit:
        raise ValueError(
            f"strategy={options.strategy!r} needs a peak of {peak:,} elements, "
            f"over memory_limit {options.memory_limit:,}"
        )
    return steps
