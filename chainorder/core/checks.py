"""Checks at the door: the optimizer's options, and a list of steps replayed as a plan.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

from .budget import budget_elements
from .chain import Chain
from .costs import CostModel
from .memory import MemoryModel
from .steps import Objective, Step, StepKind

__all__ = ["Options", "check_options", "check_steps", "STRATEGIES", "MAX_LAYERS"]

STRATEGIES = ("optimal", "forward", "reverse")
#: The longest chain :func:`chainorder.optimize` takes: its tables grow as q^2 (about 28 q^2
#: bytes) and its time as q^3 (4 s at q = 2,000 on a 2-core CPU).
MAX_LAYERS = 5000


class Options(NamedTuple):
    """The normalized options a plan was chosen under."""

    strategy: str
    objective: Objective
    matrix_free: bool
    tape_limit: int | None
    memory_limit: int | None
    threads: int | None = None


def _threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be a positive integer or None, got {threads!r}")
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {int(threads)}")
    return int(threads)


def _objective(objective: Any, parallel: Any, threads: int | None = None) -> Objective:
    if parallel is not None and not isinstance(parallel, bool):
        raise TypeError(f"parallel must be True or False, got {parallel!r}")
    if threads is not None:
        if parallel or objective not in (None, Objective.MAKESPAN, Objective.MAKESPAN.value):
            given = "parallel=True" if parallel else f"objective={objective!r}"
            raise ValueError(f"threads={threads} minimizes the makespan on {threads} threads; {given} contradicts it")
        return Objective.MAKESPAN
    if objective is None:
        return Objective.CRITICAL_PATH if parallel else Objective.FMA
    try:
        chosen = Objective(objective)
    except ValueError:
        names = ", ".join(repr(o.value) for o in Objective)
        raise ValueError(f"unknown objective {objective!r}; expected one of {names}") from None
    if parallel is not None and parallel != (chosen is Objective.CRITICAL_PATH):
        raise ValueError(f"parallel={parallel} contradicts objective={chosen.value!r}; give one of them")
    if chosen is Objective.MAKESPAN:
        raise ValueError("objective='makespan' needs the number of threads: give threads=T")
    return chosen


def check_options(
    chain: Chain,
    strategy: str = "optimal",
    *,
    objective: Any = None,
    matrix_free: bool = True,
    tape_limit: Any = None,
    parallel: Any = None,
    memory_limit: Any = None,
    dtype: Any = "float32",
    threads: Any = None,
) -> Options:
    """Raise on bad options; return them normalized (limits as Python ints).

    ``parallel=True`` is an alias of ``objective="critical_path"``; a ``memory_limit``
    given as bytes in text (``"512MB"``) becomes elements of ``dtype``
    (see :mod:`chainorder.core.budget`); ``threads=T`` sets ``objective="makespan"``.

    >>> check_options(Chain.from_dims([3, 4]), parallel=True).objective
    <Objective.CRITICAL_PATH: 'critical_path'>
    """
    if not isinstance(chain, Chain):
        raise TypeError(f"expected a chainorder.Chain, got {type(chain).__name__}")
    if len(chain) > MAX_LAYERS:
        raise ValueError(
            f"a chain of {len(chain):,} layers is over the limit of {MAX_LAYERS:,}: the optimizer's tables would "
            f"take about {28 * len(chain) ** 2 / 1e9:.1f} GB and its time grows as the cube of the length"
        )
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if not isinstance(matrix_free, bool):
        raise TypeError(f"matrix_free must be True or False, got {matrix_free!r}")
    if tape_limit is not None and (isinstance(tape_limit, bool) or not isinstance(tape_limit, numbers.Integral)):
        raise TypeError(f"tape_limit must be an integer or None, got {tape_limit!r}")
    if tape_limit is not None and int(tape_limit) < 0:
        raise ValueError(f"tape_limit must be >= 0 (or None for no limit), got {int(tape_limit)}")
    threads = _threads(threads)
    return Options(
        strategy,
        _objective(objective, parallel, threads),
        matrix_free,
        None if tape_limit is None else int(tape_limit),
        budget_elements(memory_limit, dtype),
        threads,
    )


def _check_fields(number: int, step: Step, q: int, where: str) -> None:
    for name in ("first", "last", "cost"):
        value = getattr(step, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
    if not 0 <= step.first <= step.last < q:
        raise ValueError(f"{where}: layers out of range for a chain of {q} layers")
    if step.kind.is_preaccumulation:
        if step.first != step.last or step.split is not None:
            raise ValueError(f"{where}: a preaccumulation covers one layer and has no split")
        return
    if isinstance(step.split, bool) or not isinstance(step.split, int):
        raise ValueError(f"{where}: split must be an integer, got {step.split!r}")
    if not step.first <= step.split < step.last:
        raise ValueError(f"{where}: split {step.split} must lie in {step.first}..{step.last - 1}")


def check_steps(
    chain: Chain, steps: Sequence[Step], *, matrix_free: bool = True, tape_limit: int | None = None
) -> None:
    """Replay ``steps`` and raise ValueError unless they form a valid plan.

    Each step must use only Jacobians produced (and not yet consumed) by earlier
    steps, respect ``matrix_free`` and ``tape_limit``, state its exact cost, and
    the last Jacobian standing must be the whole chain's.

    Raises
    ------
    ValueError
        Naming the first offending step and what is wrong with it.
    """
    model = CostModel(chain)
    q = len(chain)
    alive: set[tuple[int, int]] = set()
    for number, step in enumerate(steps):
        if not isinstance(step, Step):
            raise ValueError(f"step {number}: expected a chainorder.Step, got {type(step).__name__}")
        where = f"step {number} ({step.kind.value} of layers {step.first}..{step.last})"
        _check_fields(number, step, q, where)
        if not matrix_free and step.kind is not StepKind.PRODUCT and not step.kind.is_preaccumulation:
            raise ValueError(f"{where}: a dense-only plan (matrix_free=False) allows no {step.kind.value}")
        tape = model.tape(step.kind, step.first, step.last, step.split)
        if tape_limit is not None and tape > tape_limit:
            raise ValueError(f"{where}: needs a tape of {tape} edges, over the tape limit {tape_limit}")
        for operand in step.operands:
            if operand not in alive:
                raise ValueError(f"{where}: uses J[{operand[1]}..{operand[0]}] before any step produced it")
            alive.remove(operand)
        if step.chunk is not None and not MemoryModel(chain, model).chunkable(step.kind, step.first, step.last):
            raise ValueError(f"{where}: a layer written explicitly or by compression has no chunks; chunk must be None")
        expected = model.cost(step.kind, step.first, step.last, step.split)
        if step.cost != expected:
            raise ValueError(f"{where}: states cost {step.cost}, the cost model gives {expected}")
        if step.span in alive:
            raise ValueError(f"{where}: J[{step.last}..{step.first}] is already alive")
        alive.add(step.span)
    if alive != {(0, q - 1)}:
        raise ValueError(
            f"the steps leave {sorted(alive)} alive; a plan must end with the Jacobian of layers 0..{q - 1} alone"
        )
