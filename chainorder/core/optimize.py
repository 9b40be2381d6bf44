"""Choosing a plan: the cheapest one (ties broken by peak memory, then by the pure modes),
the cheapest one within a memory limit, the pure modes, and the Pareto front.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from typing import Any

from .chain import Chain
from .checks import Options, check_options
from .dp import cheapest_steps
from .engine import machine_profile
from .makespan import DEFAULT_TIME_LIMIT, scheduled_steps
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
    "optimize",
    "pareto",
    "optimize_measured_first",
    "NoPlanFits",
    "EXACT_CRITICAL_PATH_LAYERS",
    "TIME_MARGIN",
]

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


def optimize(
    chain: Chain,
    strategy: str = "optimal",
    *,
    objective: str | Objective | None = None,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    parallel: bool | None = None,
    memory_limit: int | str | None = None,
    profile: MachineProfile | None = None,
    dtype: Any = "float32",
    threads: int | None = None,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> Plan:
    """Find the cheapest plan to accumulate ``chain``'s Jacobian.

    Among plans of least cost the one of least peak memory is returned, and
    among those a pure mode (which then runs as ``jax.jacfwd``/``jax.jacrev``).

    Parameters
    ----------
    chain : Chain
    strategy : {"optimal", "forward", "reverse"}
        ``"optimal"`` searches every bracketing and every choice of tangent
        steps, adjoint steps and dense products; ``"forward"`` is pure tangent
        mode (``jax.jacfwd``), ``"reverse"`` pure adjoint mode (``jax.jacrev``).
    objective : {"fma", "critical_path", "time"}, optional
        What is minimized (see :class:`Objective`): total FMAs (default), FMAs
        on the critical path with unlimited threads, or predicted seconds on
        ``profile``'s machine.
    matrix_free : bool
        ``False`` allows only preaccumulation of single layers and dense
        products (the classic matrix-chain problem).
    tape_limit : int or None
        The largest tape (sum of ``edges``) any adjoint may hold; ``None`` for
        no limit.
    parallel : bool, optional
        Alias: ``True`` is ``objective="critical_path"``.
    memory_limit : int, str or None
        The largest peak memory the plan may reach: elements (see
        :mod:`chainorder.core.memory`) or bytes as text (``"512MB"``, ``"2GiB"``,
        converted with ``dtype``); the cheapest plan that fits is returned (with
        ``objective="time"``: the fastest of the cost/memory Pareto front that fits).
    profile : MachineProfile, optional
        The machine times are predicted for; by default the device JAX runs on
        (its ``chainorder.calibrate()`` profile, or an analytic default).
    dtype : numpy or JAX dtype, or its name
        Of the Jacobian's entries: converts a ``memory_limit`` in bytes (default float32).
    threads : int, optional
        Minimize the makespan on this many threads (devices) instead
        (``objective="makespan"``, see :mod:`chainorder.core.makespan`): the plan
        carries ``schedule``, ``makespan`` and ``proven``.
    time_limit : float
        Seconds the makespan search may take (with ``threads``); past it, the
        best plan found is returned with ``proven=False``.

    Returns
    -------
    Plan

    Raises
    ------
    TypeError, ValueError
        For bad options, or when no plan fits ``memory_limit`` (the message
        gives the least achievable peak).

    See Also
    --------
    pareto : every plan that is best in cost for its memory.
    chainorder.jacobian : trace a JAX function, optimize and execute.

    References
    ----------
    Naumann, U. (2008). Optimal Jacobian accumulation is NP-complete. Math.
    Program. 112, 427-441 (the Jacobian chain product). Lieberum, S., Märtens,
    M., Naumann, U. (2025). Scheduled Jacobian Chaining. ACDA'25.

    Examples
    --------
    >>> from chainorder import Chain
    >>> plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]))
    >>> plan.forward_cost, plan.reverse_cost, plan.cost
    (327548928, 327548928, 33038336)
    >>> [step.kind.value for step in plan.steps]
    ['adjoint_preaccumulation', 'adjoint_step', 'tangent_preaccumulation', 'tangent_step', 'product']
    >>> chain = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])
    >>> optimize(chain).cost
    6651904
    >>> limited = optimize(chain, memory_limit=150_000)
    >>> limited.peak_memory, limited.cost
    (142808, 38371328)
    >>> optimize(chain, memory_limit="600kB", dtype="float32").memory_limit  # 600,000 bytes
    150000
    >>> on_two = optimize(Chain.from_dims([784, 256, 32, 256, 784]), threads=2)
    >>> on_two.makespan, on_two.proven, on_two.work   # 33,038,336 FMAs on one thread
    (26353664, True, 33038336)
    >>> [(slot.device, slot.start) for slot in on_two.schedule]
    [(0, 0), (1, 0), (0, 262144), (1, 262144), (0, 6684672)]
    """
    options = check_options(
        chain,
        strategy,
        objective=objective,
        matrix_free=matrix_free,
        tape_limit=tape_limit,
        parallel=parallel,
        memory_limit=memory_limit,
        dtype=dtype,
        threads=threads,
    )
    if profile is not None and not isinstance(profile, MachineProfile):
        raise TypeError(f"profile must be a chainorder MachineProfile or None, got {type(profile).__name__}")
    if options.threads is not None and strategy == "optimal":
        if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)):
            raise TypeError(f"time_limit must be a number of seconds, got {time_limit!r}")
        if not time_limit >= 0:
            raise ValueError(f"time_limit must be >= 0 seconds, got {time_limit!r}")
        return _scheduled_plan(chain, options, profile, time_limit)
    if strategy != "optimal":
        steps = _pure_steps_within(chain, options)
    elif options.objective is Objective.TIME:
        profile = profile or machine_profile()
        steps = _fastest_steps(chain, options, profile)
    else:
        steps = _optimal_steps(chain, options)
    return _plan(chain, steps, options, profile)


#: How much faster than the FMA-optimal plan the time-optimal one must be predicted before
#: :func:`optimize_measured_first` takes it: the time model's error on this project's zoo
#: (predicted against measured speedups, ``benchmarks/bench_fidelity.py``) reaches 25-50%.
TIME_MARGIN = 1.5


def optimize_measured_first(chain: Chain, profile: MachineProfile | None = None, **options) -> Plan:
    """The FMA-optimal plan, unless the time-optimal plan is predicted :data:`TIME_MARGIN`
    times faster on ``profile``'s machine: what :func:`chainorder.jacobian` and
    :func:`chainorder.analyze` do when no objective is given.

    FMAs are exact, and on the zoo the FMA-optimal plans measured as fast as or faster
    than the time-optimal ones wherever the two differed by less than the model's error;
    the time model wins where FMAs are blind by a wide margin (fixed costs on tiny
    Jacobians, thin products).

    Parameters
    ----------
    chain : Chain
    profile : MachineProfile, optional
    **options
        As for :func:`optimize` (no ``objective``).

    Returns
    -------
    Plan

    Examples
    --------
    >>> from chainorder.core.profile import default_profile
    >>> optimize_measured_first(Chain.from_dims([784, 256, 32, 256, 784]), default_profile()).objective.value
    'fma'
    """
    profile = profile or machine_profile()
    by_fma = optimize(chain, objective=Objective.FMA, profile=profile, **options)
    by_time = optimize(chain, objective=Objective.TIME, profile=profile, **options)
    return by_time if by_time.predicted_time * TIME_MARGIN < by_fma.predicted_time else by_fma


def pareto(
    chain: Chain,
    *,
    objective: str | Objective | None = None,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    parallel: bool | None = None,
    chunked: bool = False,
) -> list[Plan]:
    """Every Pareto-optimal plan: peak memory going up, cost going down.

    The first plan needs the least memory of all plans; the last is a
    cost-optimal plan of least memory. No plan of the list is beaten in both
    cost and memory by any plan.

    Parameters
    ----------
    chain : Chain
    objective, matrix_free, tape_limit, parallel
        As for :func:`optimize`.
    chunked : bool
        Let steps push their seeds in chunks (``Step.chunk``: the same FMAs, less
        memory, a loop's iterations more time): each plan of the front peaks at
        its least over every chunk, and its steps carry the chunks that reach it.
        :func:`optimize` with ``memory_limit`` chooses from this front.

    Returns
    -------
    list of Plan
        Least memory first.

    Raises
    ------
    TypeError, ValueError
        For bad options.

    See Also
    --------
    optimize : with ``memory_limit``, the cheapest plan within a budget.

    Examples
    --------
    >>> from chainorder import Chain
    >>> front = pareto(Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8]))
    >>> [(plan.peak_memory, plan.cost) for plan in front]
    [(100824, 46383104), (139736, 45252608), (142808, 38371328), (539096, 6651904)]
    >>> wide = Chain.from_dims([64, 64, 4096, 64])   # 64 tangents across 4096: 270,528 elements
    >>> [(plan.peak_memory, [step.chunk for step in plan.steps]) for plan in pareto(wide, chunked=True)]
    [(16640, [None, 1])]
    """
    options = check_options(
        chain, objective=objective, matrix_free=matrix_free, tape_limit=tape_limit, parallel=parallel
    )
    if options.objective is Objective.TIME:
        raise ValueError(
            "pareto() trades FMAs against memory; objective='time' is not supported there "
            "(optimize(chain, objective='time', memory_limit=...) picks the fastest plan of that front)"
        )
    if not isinstance(chunked, bool):
        raise TypeError(f"chunked must be True or False, got {chunked!r}")
    return [_plan(chain, steps, options) for _, _, steps in _front(chain, options, chunked=chunked)]


def _plan(chain: Chain, steps: list[Step], options: Options, profile: MachineProfile | None = None, **schedule) -> Plan:
    return Plan(
        chain,
        steps,
        strategy=options.strategy,
        objective=options.objective,
        matrix_free=options.matrix_free,
        tape_limit=options.tape_limit,
        memory_limit=options.memory_limit,
        threads=options.threads,
        profile=profile,
        **schedule,
    )


def _scheduled_plan(chain: Chain, options: Options, profile: MachineProfile | None, time_limit: float) -> Plan:
    """The plan and schedule of least makespan; the search starts from the FMA-optimal
    plan and the plan of least critical path."""
    sequential = options._replace(objective=Objective.FMA, threads=None, memory_limit=None)
    starts = [
        _optimal_steps(chain, sequential),
        _optimal_steps(chain, sequential._replace(objective=Objective.CRITICAL_PATH)),
    ]
    found = scheduled_steps(
        chain,
        options.threads,
        matrix_free=options.matrix_free,
        tape_limit=options.tape_limit,
        starts=starts,
        time_limit=time_limit,
        memory_limit=options.memory_limit,
    )
    if found is None:
        raise ValueError(
            f"no plan and schedule on {options.threads} threads was found within memory_limit "
            f"{options.memory_limit:,} elements per device (in {time_limit:g} s); the least peak of any plan "
            f"on one device is {_front(chain, options._replace(objective=Objective.FMA))[0][1]:,} elements"
        )
    return _plan(chain, list(found.steps), options, profile, schedule=found.slots, proven=found.proven)


def _front(
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


def _optimal_steps(chain: Chain, options: Options) -> list[Step]:
    memory = MemoryModel(chain)
    if options.objective is Objective.CRITICAL_PATH and len(chain) <= EXACT_CRITICAL_PATH_LAYERS:
        steps = _front(chain, options)[-1][2]
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


def _fastest_steps(chain: Chain, options: Options, profile: MachineProfile) -> list[Step]:
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
        candidates = [plan for _, _, plan in _front(chain, fma, limit)]  # those that fit whole, and chunked
        candidates += [chunked_to_fit(chain, plan, limit) for _, _, plan in _front(chain, fma, limit, chunked=True)]
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
    plans = _front(chain, options, options.memory_limit, chunked=True, cheapest=True)
    if not plans:
        raise NoPlanFits(options.memory_limit, _front(chain, options, chunked=True)[0][1])
    return chunked_to_fit(chain, plans[-1][2], options.memory_limit)


def _prefer_pure_mode(chain: Chain, steps: list[Step], options: Options, memory: MemoryModel) -> list[Step]:
    """On a tie in cost and memory with pure forward or reverse mode, take the pure
    mode: it runs as ``jax.jacfwd``/``jax.jacrev`` with no bookkeeping."""
    key = (Plan.cost_of(steps, options.objective), peak_memory(chain, steps, memory))
    for pure in _pure_candidates(chain, options):
        if (Plan.cost_of(pure, options.objective), peak_memory(chain, pure, memory)) <= key:
            return pure
    return steps


def _pure_steps_within(chain: Chain, options: Options) -> list[Step]:
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
