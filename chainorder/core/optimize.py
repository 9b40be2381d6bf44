"""Choosing a plan: the cheapest one (ties broken by peak memory, then by the pure modes),
the cheapest one within a memory limit, the pure modes, and the Pareto front. The steps
are chosen in :mod:`chainorder.core.choose`; this module checks the options and makes plans.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from typing import Any

from .chain import Chain
from .checks import Options, check_options
from .choose import EXACT_CRITICAL_PATH_LAYERS, NoPlanFits, fastest_plan_steps, front, optimal_steps, pure_steps_within
from .engine import machine_profile
from .makespan import DEFAULT_TIME_LIMIT, scheduled_steps
from .plan import Plan
from .profile import MachineProfile
from .steps import Objective, Step

__all__ = [
    "optimize",
    "pareto",
    "optimize_measured_first",
    "NoPlanFits",
    "EXACT_CRITICAL_PATH_LAYERS",
    "TIME_MARGIN",
]


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
        steps = pure_steps_within(chain, options)
    elif options.objective is Objective.TIME:
        profile = profile or machine_profile()
        steps = fastest_plan_steps(chain, options, profile)
    else:
        steps = optimal_steps(chain, options)
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
    return [_plan(chain, steps, options) for _, _, steps in front(chain, options, chunked=chunked)]


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
        optimal_steps(chain, sequential),
        optimal_steps(chain, sequential._replace(objective=Objective.CRITICAL_PATH)),
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
            f"on one device is {front(chain, options._replace(objective=Objective.FMA))[0][1]:,} elements"
        )
    return _plan(chain, list(found.steps), options, profile, schedule=found.slots, proven=found.proven)
