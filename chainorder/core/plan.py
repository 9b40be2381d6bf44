"""Plans: an immutable value, an ordered list of steps that accumulates a chain's Jacobian.

A :class:`Plan` is what :func:`chainorder.optimize` returns. Its steps are in
execution order (every step's operands are produced by earlier steps). Plans
are values: immutable, equal when their chain, steps and objective are equal,
hashable, serializable to JSON and back, and can be handed back to
``chainorder.jacobian(f, plan=...)``. ``print(plan)`` shows a table in the spirit
of opt_einsum's ``PathInfo``.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .chain import Chain
from .checks import check_options, check_steps
from .costs import CostModel
from .engine import backend, machine_profile
from .memory import device_peaks, peak_memory
from .planjson import JSON_VERSION, plan_arguments, plan_dict
from .profile import MachineProfile
from .pure import forward_steps, reverse_steps
from .report import bracketing, plan_table
from .schedule import Slot, check_schedule, critical_path, list_schedule, task_tree
from .steps import Objective, Step
from .timing import TimeModel, plan_time, step_times

__all__ = ["Plan", "JSON_VERSION"]


class Plan:
    """A way to accumulate the Jacobian of a chain, with its exact cost: an immutable value.

    Parameters
    ----------
    chain : Chain
    steps : sequence of Step
        In execution order; checked (operands alive, exact costs, options).
    strategy : {"optimal", "forward", "reverse"}
    objective : {"fma", "critical_path", "time"}, optional
    matrix_free : bool
    tape_limit, memory_limit : int or None
        With ``threads``, ``memory_limit`` bounds the peak on each device.
    parallel : bool, optional
        Alias of ``objective="critical_path"``.
    threads : int, optional
        Schedule the steps on this many threads (devices): ``objective="makespan"``.
    schedule : sequence of (device, start, end), optional
        With ``threads``: where and when each step runs, in step order (checked);
        by default the steps are list-scheduled
        (:func:`chainorder.core.schedule.list_schedule`).
    proven : bool
        Whether the schedule's makespan is proven the least of any plan and schedule.
    profile : MachineProfile, optional
        The machine its times are predicted for; by default the profile of the
        device JAX runs on (``chainorder.calibrate()``), or an analytic default.

    Attributes
    ----------
    cost : int
        FMAs: the sum of the steps' (``objective="fma"`` or ``"time"``), the
        critical path with unlimited threads (``"critical_path"``), or the
        makespan on ``threads`` threads (``"makespan"``).
    threads, schedule, makespan, proven, device_peaks
        With ``threads``: the schedule (a :class:`~chainorder.core.schedule.Slot`
        ``(device, start, end)`` per step, in step order), when its last step ends,
        whether that is proven optimal, and the peak elements on each device
        (:func:`chainorder.core.memory.device_peaks`); ``None`` (``proven``: False)
        without. ``peak_memory`` stays the peak of running the steps in order on one device.
    work : int
        The sum of the steps' FMAs, whatever the objective.
    forward_cost, reverse_cost : int
        Pure tangent and pure adjoint mode on the same chain.
    peak_memory : int
        Elements alive at the peak of executing the steps in order (see
        :mod:`chainorder.core.memory`).
    predicted_time, primal_time, step_times, predicted_speedup
        Predicted seconds of the plan, of its primal pass and of each step (the
        plan's is the primal pass's plus the steps'), and the better pure
        mode's predicted time over the plan's (see :mod:`chainorder.core.timing`).

    Raises
    ------
    ValueError
        When the steps do not form a valid plan, or the plan peaks over ``memory_limit``.

    Examples
    --------
    >>> from chainorder import Chain, optimize
    >>> chain = Chain.from_dims([784, 256, 32, 256, 784])
    >>> plan = optimize(chain)
    >>> plan == Plan.from_json(plan.to_json(), chain), plan.mode
    (True, 'mixed')
    >>> plan.bracketing
    '(t(2) >> t(3..3)) @ (a(0..0) << a(1))'
    """

    __slots__ = (
        "chain",
        "steps",
        "strategy",
        "objective",
        "matrix_free",
        "tape_limit",
        "memory_limit",
        "peak_memory",
        "forward_cost",
        "reverse_cost",
        "work",
        "critical_path",
        "cost",
        "threads",
        "schedule",
        "makespan",
        "proven",
        "device_peaks",
        "profile",
        "__weakref__",
    )

    def __init__(
        self,
        chain: Chain,
        steps: Sequence[Step],
        *,
        strategy: str = "optimal",
        objective: str | Objective | None = None,
        matrix_free: bool = True,
        tape_limit: int | None = None,
        parallel: bool | None = None,
        memory_limit: int | None = None,
        threads: int | None = None,
        schedule: Sequence[Sequence[int]] | None = None,
        proven: bool = False,
        profile: MachineProfile | None = None,
    ) -> None:
        if profile is not None and not isinstance(profile, MachineProfile):
            raise TypeError(f"profile must be a chainorder MachineProfile or None, got {type(profile).__name__}")
        options = check_options(
            chain,
            strategy,
            objective=objective,
            matrix_free=matrix_free,
            tape_limit=tape_limit,
            parallel=parallel,
            memory_limit=memory_limit,
            threads=threads,
        )
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
            raise TypeError(f"steps must be a sequence of chainorder.Step, got {type(steps).__name__}")
        steps = tuple(steps)
        check_steps(chain, steps, matrix_free=options.matrix_free, tape_limit=options.tape_limit)
        peak = peak_memory(chain, steps)
        scheduled = _scheduled(chain, steps, options.threads, schedule, proven)
        _check_memory(peak, scheduled["device_peaks"], options.memory_limit)
        model = CostModel(chain)
        values = dict(
            chain=chain,
            steps=steps,
            strategy=options.strategy,
            objective=options.objective,
            matrix_free=options.matrix_free,
            tape_limit=options.tape_limit,
            memory_limit=options.memory_limit,
            peak_memory=peak,
            forward_cost=model.forward_cost,
            reverse_cost=model.reverse_cost,
            work=sum(step.cost for step in steps),
            critical_path=critical_path(steps),
            profile=profile,
            **scheduled,
        )
        values["cost"] = values["makespan"] if options.threads is not None else self.cost_of(steps, options.objective)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @staticmethod
    def cost_of(steps: Sequence[Step], objective: Objective | str) -> int:
        """The cost of ``steps`` under ``objective``: total FMAs or the critical path."""
        if Objective(objective) is Objective.CRITICAL_PATH:
            return critical_path(steps)
        return sum(step.cost for step in steps)

    # -- a value -------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a Plan is immutable; cannot set {name!r} (make a new Plan)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Plan is immutable; cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return (self.chain, self.steps, self.objective, self.threads, self.schedule)

    def __reduce__(self):
        return (_from_json, (json.dumps(self.to_dict(timed=False)), self.chain, self.profile))

    # -- derived -------------------------------------------------------------------
    @property
    def parallel(self) -> bool:
        """Whether ``cost`` is the critical path with unlimited threads."""
        return self.objective is Objective.CRITICAL_PATH

    @property
    def speedup(self) -> float:
        """How many times cheaper than the better pure mode (jacfwd or jacrev)."""
        best = min(self.forward_cost, self.reverse_cost)
        if self.cost == 0:
            return 1.0 if best == 0 else math.inf
        try:
            return best / self.cost
        except OverflowError:
            return math.inf

    @property
    def machine(self) -> MachineProfile:
        """The profile times are predicted with: the plan's own, else the current device's."""
        return self.profile if self.profile is not None else machine_profile()

    @property
    def step_times(self) -> tuple[float, ...]:
        """Predicted seconds of each step, in order (see :mod:`chainorder.core.timing`)."""
        return tuple(step_times(self.chain, self.steps, self.machine))

    @property
    def primal_time(self) -> float:
        """Predicted seconds of the primal pass (every layer once), the same for every plan of the chain."""
        return TimeModel(self.chain, self.machine).primal_time()

    @property
    def predicted_time(self) -> float:
        """Predicted seconds of the whole plan on :attr:`machine`: :attr:`primal_time` plus the sum of
        :attr:`step_times`."""
        return plan_time(self.chain, self.steps, self.machine)

    @property
    def predicted_speedup(self) -> float:
        """The better pure mode's predicted time over this plan's."""
        machine = self.machine
        dense = self.chain.without_structure()  # jax.jacfwd / jax.jacrev
        pure = min(plan_time(dense, steps, machine) for steps in (forward_steps(dense), reverse_steps(dense)))
        time = self.predicted_time
        if not math.isfinite(time) or time == 0:
            return math.nan
        return pure / time

    @property
    def mode(self) -> str:
        """``"forward"``, ``"reverse"`` or ``"mixed"``: what the steps amount to (a compressed or
        explicit preaccumulation of the first or last layer makes tangent-only or adjoint-only steps
        mixed: they are not ``jax.jacfwd``/``jax.jacrev``)."""
        directions = {step.kind.direction for step in self.steps}
        last = len(self.chain) - 1
        if directions == {"tangent"} and all(step.first == 0 for step in self.steps):
            first = self.chain[0]
            return "forward" if first.tangent_colors is None and not first.preaccumulates_explicitly else "mixed"
        if directions == {"adjoint"} and all(step.last == last for step in self.steps):
            return "reverse" if self.chain[last].adjoint_colors is None else "mixed"
        return "mixed"

    @property
    def bracketing(self) -> str:
        """The plan as one expression (see :func:`chainorder.core.report.bracketing`)."""
        return bracketing(self.steps)

    # -- execution (needs jax, through chainorder.core.engine) ----------------------
    def jacobian(self, x: Any, out: Any = None, memory_limit: int | str | None = None, devices: Any = None) -> Any:
        """The chain's Jacobian at ``x``, computed with this plan (needs jax).

        Equal to ``jax.jacobian(plan.chain)(x)`` in value, shape and dtype;
        composes with ``jax.jit`` and ``jax.vmap``. With ``out`` (a numpy array
        or ``np.memmap`` of the Jacobian's shape and dtype), it is computed out of
        core instead: in column or row blocks whose plans, made under this plan's
        options, fit ``memory_limit`` (elements, bytes as text or ``"auto"``;
        default: the plan's), written into ``out``, which is returned. With
        ``devices`` (a list of ``jax.Device`` or a ``jax.sharding.Mesh``), each device
        computes one block of columns or rows (its own plan, under this plan's
        options); the result is sharded over them.
        """
        if out is None and memory_limit is not None:
            raise TypeError("memory_limit= applies to out-of-core blocks: give out= too")
        return backend().plan_jacobian(self, x, out, memory_limit, devices)

    def validate(self, x: Any) -> dict[str, Any]:
        """Compare :meth:`jacobian` with ``jax.jacobian``: max abs and rel error (needs jax)."""
        return backend().validate_plan(self, x)

    # -- printing ------------------------------------------------------------------
    def __str__(self) -> str:
        return plan_table(self)

    def __repr__(self) -> str:
        return (
            f"<Plan {self.strategy} {self.mode} cost={self.cost} forward={self.forward_cost} "
            f"reverse={self.reverse_cost} steps={len(self.steps)}>"
        )

    # -- JSON ----------------------------------------------------------------------
    def to_dict(self, timed: bool = True) -> dict[str, Any]:
        """The plan as plain data (what :meth:`to_json` writes); ``timed`` adds the predicted
        milliseconds of the plan and its steps and the profile's device
        (:func:`chainorder.core.planjson.plan_dict`)."""
        return plan_dict(self, timed)

    def to_json(self, **kwargs: Any) -> str:
        """The plan as JSON text (integers stay exact); see :meth:`from_json`."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes, chain: Chain) -> Plan:
        """Read a plan written by :meth:`to_json` for ``chain`` (or for ``chain.without_structure()``, the
        chain priced without its sparse layers' colors and explicit forms: the plan is then that
        chain's, as ``chainorder.jacobian`` runs it where they save too little).

        Raises
        ------
        TypeError
            When ``chain`` is not a Chain.
        ValueError
            If the text is not such a plan, belongs to another chain, or its
            steps do not form a valid plan with the stated costs.
        """
        if not isinstance(chain, Chain):
            raise TypeError(f"from_json needs the plan's Chain, got {type(chain).__name__}")
        return _from_json(text, chain)


def _check_memory(peak: int, device_peaks: tuple[int, ...] | None, limit: int | None) -> None:
    """A plan's peak (a scheduled plan's: on each device) within ``memory_limit``."""
    if limit is None:
        return
    if device_peaks is not None:
        device, most = max(enumerate(device_peaks), key=lambda pair: pair[1])
        if most > limit:
            raise ValueError(f"the schedule peaks at {most:,} elements on device {device}, over memory_limit {limit:,}")
    elif peak > limit:
        raise ValueError(f"the plan's peak memory {peak:,} elements is over memory_limit {limit:,}")


def _scheduled(
    chain: Chain, steps: tuple[Step, ...], threads: int | None, schedule: Any, proven: Any
) -> dict[str, Any]:
    """The schedule attributes: checked, or list-scheduled when none is given."""
    if not isinstance(proven, bool):
        raise TypeError(f"proven must be True or False, got {proven!r}")
    if threads is None:
        if schedule is not None or proven:
            raise ValueError("a schedule (or proven=True) needs threads=T, the number of threads it runs on")
        return dict(threads=None, schedule=None, makespan=None, proven=False, device_peaks=None)
    tree = task_tree(steps)
    if schedule is None:
        slots = list_schedule(tree, threads)
    else:
        if isinstance(schedule, (str, bytes)) or not isinstance(schedule, Sequence):
            raise TypeError(f"schedule must be a sequence of (device, start, end), got {type(schedule).__name__}")
        try:
            slots = tuple(Slot(*slot) for slot in schedule)
        except TypeError:
            raise ValueError("schedule must hold one (device, start, end) triple per step") from None
        check_schedule(tree, threads, slots)
    return dict(
        threads=threads,
        schedule=slots,
        makespan=max(slot.end for slot in slots),
        proven=proven,
        device_peaks=device_peaks(chain, steps, slots, threads),
    )


def _from_json(text: str | bytes, chain: Chain, profile: MachineProfile | None = None) -> Plan:
    chain, arguments, stated = plan_arguments(text, chain)
    try:
        plan = Plan(chain, profile=profile, **arguments)
    except TypeError as error:
        raise ValueError(f"plan JSON: {error}") from None
    if stated is not None and stated != plan.cost:
        raise ValueError(f"plan JSON states cost {stated}, its steps cost {plan.cost}")
    return plan
