"""Plans: an ordered list of steps that accumulates a chain's Jacobian.

A :class:`Plan` is what :func:`chainorder.optimize` returns. Its steps are in
execution order (every step's operands are produced by earlier steps), and
``print(plan)`` shows a table in the spirit of opt_einsum's ``PathInfo``.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .chain import Chain
from .costs import (
    ADJOINT_PREACCUMULATION,
    ADJOINT_STEP,
    PREACCUMULATIONS,
    PRODUCT,
    STEP_KINDS,
    STEP_LABELS,
    TANGENT_PREACCUMULATION,
    TANGENT_STEP,
    CostModel,
)
from .memory import peak_memory

__all__ = ["Step", "Plan"]

JSON_VERSION = 1
STRATEGIES = ("optimal", "forward", "reverse")


@dataclass(frozen=True)
class Step:
    """One operation of a plan; it produces ``J[last..first]``.

    Attributes
    ----------
    kind : str
        ``"tangent_preaccumulation"``, ``"adjoint_preaccumulation"`` (of layer
        ``first == last``), ``"tangent_step"`` (push ``J[split..first]``'s
        columns through layers ``split+1..last``), ``"adjoint_step"`` (pull
        ``J[last..split+1]``'s rows back through layers ``first..split``) or
        ``"product"`` (``J[last..split+1] @ J[split..first]``).
    first, last : int
        The sub-chain of layers ``first..last`` (inclusive) whose Jacobian this
        step produces.
    split : int or None
        Where the operands meet; ``None`` for preaccumulations.
    cost : int
        Fused multiply-adds, from :class:`chainorder.costs.CostModel`.
    """

    kind: str
    first: int
    last: int
    split: int | None
    cost: int

    @property
    def operands(self) -> tuple[tuple[int, int], ...]:
        """The ``(first, last)`` sub-chains whose Jacobians this step consumes."""
        if self.kind in PREACCUMULATIONS:
            return ()
        if self.kind == TANGENT_STEP:
            return ((self.first, self.split),)  # type: ignore[return-value]
        if self.kind == ADJOINT_STEP:
            return ((self.split + 1, self.last),)  # type: ignore[operator]
        return ((self.split + 1, self.last), (self.first, self.split))  # type: ignore[operator, return-value]

    @property
    def layers_applied(self) -> tuple[int, int] | None:
        """Layers a tangent/adjoint step propagates through (``None`` otherwise)."""
        if self.kind == TANGENT_STEP:
            return (self.split + 1, self.last)  # type: ignore[operator]
        if self.kind == ADJOINT_STEP:
            return (self.first, self.split)  # type: ignore[return-value]
        if self.kind in PREACCUMULATIONS:
            return (self.first, self.last)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "first": self.first,
            "last": self.last,
            "split": self.split,
            "cost": self.cost,
        }


def _check_options(
    chain: Chain,
    strategy: str,
    matrix_free: bool,
    tape_limit: int | None,
    parallel: bool,
    memory_limit: int | None = None,
) -> tuple[int | None, int | None]:
    """Raise on bad options; return ``tape_limit`` and ``memory_limit`` as Python ints."""
    if not isinstance(chain, Chain):
        raise TypeError(f"expected a chainorder.Chain, got {type(chain).__name__}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    for name, flag in (("matrix_free", matrix_free), ("parallel", parallel)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if tape_limit is not None:
        if isinstance(tape_limit, bool) or not isinstance(tape_limit, numbers.Integral):
            raise TypeError(f"tape_limit must be an integer or None, got {tape_limit!r}")
        tape_limit = int(tape_limit)
        if tape_limit < 0:
            raise ValueError(f"tape_limit must be >= 0 (or None for no limit), got {tape_limit}")
    if memory_limit is not None:
        if isinstance(memory_limit, bool) or not isinstance(memory_limit, numbers.Integral):
            raise TypeError(f"memory_limit must be an integer number of elements or None, got {memory_limit!r}")
        memory_limit = int(memory_limit)
        if memory_limit <= 0:
            raise ValueError(f"memory_limit must be a positive number of elements, got {memory_limit}")
    return tape_limit, memory_limit


def check_steps(
    chain: Chain,
    steps: Sequence[Step],
    *,
    matrix_free: bool = True,
    tape_limit: int | None = None,
) -> None:
    """Replay ``steps`` and raise ValueError unless they form a valid plan.

    Each step must use only Jacobians produced (and not yet consumed) by earlier
    steps, respect ``matrix_free`` and ``tape_limit``, state its exact cost, and
    the last Jacobian standing must be the whole chain's.
    """
    model = CostModel(chain)
    q = len(chain)
    alive: set[tuple[int, int]] = set()
    for number, step in enumerate(steps):
        where = f"step {number} ({step.kind} of layers {step.first}..{step.last})"
        if step.kind not in STEP_KINDS:
            raise ValueError(f"step {number}: unknown kind {step.kind!r}; expected one of {STEP_KINDS}")
        for name in ("first", "last", "cost"):
            value = getattr(step, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{where}: {name} must be an integer, got {value!r}")
        if not 0 <= step.first <= step.last < q:
            raise ValueError(f"{where}: layers out of range for a chain of {q} layers")
        if step.kind in PREACCUMULATIONS:
            if step.first != step.last or step.split is not None:
                raise ValueError(f"{where}: a preaccumulation covers one layer and has no split")
        else:
            split = step.split
            if isinstance(split, bool) or not isinstance(split, int):
                raise ValueError(f"{where}: split must be an integer, got {split!r}")
            if not step.first <= split < step.last:
                raise ValueError(f"{where}: split {split} must lie in {step.first}..{step.last - 1}")
            if not matrix_free and step.kind != PRODUCT:
                raise ValueError(f"{where}: a dense-only plan (matrix_free=False) allows no {step.kind}")
        if tape_limit is not None:
            tape = model.step_tape(step.kind, step.first, step.split, step.last)
            if tape > tape_limit:
                raise ValueError(f"{where}: needs a tape of {tape} edges, over the tape limit {tape_limit}")
        for operand in step.operands:
            if operand not in alive:
                raise ValueError(
                    f"{where}: uses J[{operand[1]}..{operand[0]}] before any step produced it"
                )
            alive.remove(operand)
        expected = model.step_cost(step.kind, step.first, step.split, step.last)
        if step.cost != expected:
            raise ValueError(f"{where}: states cost {step.cost}, the cost model gives {expected}")
        produced = (step.first, step.last)
        if produced in alive:
            raise ValueError(f"{where}: J[{step.last}..{step.first}] is already alive")
        alive.add(produced)
    if alive != {(0, q - 1)}:
        raise ValueError(
            f"the steps leave {sorted(alive)} alive; a plan must end with the Jacobian of "
            f"layers 0..{q - 1} alone"
        )


def critical_path(steps: Sequence[Step]) -> int:
    """Finish time of the last step when independent operands run in parallel."""
    finish: dict[tuple[int, int], int] = {}
    for step in steps:
        start = max((finish.pop(op) for op in step.operands), default=0)
        finish[(step.first, step.last)] = start + step.cost
    return max(finish.values())


class Plan:
    """A way to accumulate the Jacobian of a chain, with its exact cost.

    Attributes
    ----------
    chain : Chain
    steps : tuple of Step
        In execution order.
    strategy, matrix_free, tape_limit, parallel
        The options :func:`chainorder.optimize` was called with.
    cost : int
        Sequential: the sum of the steps' costs. ``parallel=True``: the
        critical path (unlimited threads).
    forward_cost, reverse_cost : int
        Pure tangent and pure adjoint mode on the same chain.
    speedup : float
        ``min(forward_cost, reverse_cost) / cost``.
    peak_memory : int
        Elements alive at the peak of executing the steps in order (see
        :mod:`chainorder.memory`).
    """

    def __init__(
        self,
        chain: Chain,
        steps: Sequence[Step],
        *,
        strategy: str = "optimal",
        matrix_free: bool = True,
        tape_limit: int | None = None,
        parallel: bool = False,
        memory_limit: int | None = None,
    ) -> None:
        tape_limit, memory_limit = _check_options(chain, strategy, matrix_free, tape_limit, parallel, memory_limit)
        steps = tuple(steps)
        check_steps(chain, steps, matrix_free=matrix_free, tape_limit=tape_limit)
        self.peak_memory = peak_memory(chain, steps)
        if memory_limit is not None and self.peak_memory > memory_limit:
            raise ValueError(
                f"the plan's peak memory {self.peak_memory:,} elements is over memory_limit {memory_limit:,}"
            )
        self.memory_limit = memory_limit
        self.chain = chain
        self.steps = steps
        self.strategy = strategy
        self.matrix_free = matrix_free
        self.tape_limit = tape_limit
        self.parallel = parallel
        model = CostModel(chain)
        self.forward_cost = model.forward_cost
        self.reverse_cost = model.reverse_cost
        self.work = sum(step.cost for step in steps)
        self.critical_path = critical_path(steps)
        self.cost = self.critical_path if parallel else self.work

    @property
    def speedup(self) -> float:
        """How many times cheaper than the better pure mode (jacfwd or jacrev)."""
        best = min(self.forward_cost, self.reverse_cost)
        if self.cost == 0:
            return 1.0 if best == 0 else float("inf")
        return best / self.cost

    @property
    def mode(self) -> str:
        """``"forward"``, ``"reverse"`` or ``"mixed"``: what the steps amount to."""
        kinds = {step.kind for step in self.steps}
        if kinds <= {TANGENT_PREACCUMULATION, TANGENT_STEP} and all(
            step.first == 0 for step in self.steps
        ):
            return "forward"
        last = len(self.chain) - 1
        if kinds <= {ADJOINT_PREACCUMULATION, ADJOINT_STEP} and all(
            step.last == last for step in self.steps
        ):
            return "reverse"
        return "mixed"

    # -- execution (needs jax) ---------------------------------------------------
    def jacobian(self, x: Any) -> Any:
        """The chain's Jacobian at ``x``, computed with this plan (see execute)."""
        from .execute import plan_jacobian

        return plan_jacobian(self, x)

    def validate(self, x: Any) -> dict[str, Any]:
        """Compare :meth:`jacobian` with ``jax.jacobian``: max abs and rel error."""
        from .execute import validate_plan

        return validate_plan(self, x)

    # -- printing ----------------------------------------------------------------
    def _options_text(self) -> str:
        parts = [self.strategy]
        parts.append("matrix-free" if self.matrix_free else "dense products only")
        parts.append("unlimited threads (critical path)" if self.parallel else "sequential")
        parts.append("no tape limit" if self.tape_limit is None else f"tape limit {self.tape_limit:,}")
        if self.memory_limit is not None:
            parts.append(f"memory limit {self.memory_limit:,}")
        return f"{parts[0]} ({', '.join(parts[1:])})"

    def __str__(self) -> str:
        chain = self.chain
        dims = " -> ".join(str(d) for d in chain.dims)
        better = "forward" if self.forward_cost <= self.reverse_cost else "reverse"
        width = max(len(f"{v:,}") for v in (self.forward_cost, self.reverse_cost, self.cost))
        lines = [
            f"  Jacobian chain:  {len(chain)} layers, dims {dims}",
            f"  Jacobian shape:  {chain.out_dim} x {chain.in_dim}",
            f"  Strategy:        {self._options_text()}",
            f"  Forward cost:    {self.forward_cost:>{width},} FMAs  (jax.jacfwd, pure tangent)",
            f"  Reverse cost:    {self.reverse_cost:>{width},} FMAs  (jax.jacrev, pure adjoint)",
            f"  Plan cost:       {self.cost:>{width},} FMAs  ({self.mode})",
            f"  Speedup:         {self.speedup:.3g}x over {better} mode",
            f"  Peak memory:     {self.peak_memory:>{width},} elements",
        ]
        if self.parallel:
            lines.append(f"  Total work:      {self.work:>{width},} FMAs (all threads)")
        cost_width = max(width, 4)
        header = (
            f"  {'step':>4}  {'operation':<24} {'layers':>9} {'through':>9} {'result':>13} "
            f"{'cost':>{cost_width}} {'share':>6}"
        )
        lines.append("-" * max(len(header), 60))
        lines.append(header)
        lines.append("-" * max(len(header), 60))
        total = self.work or 1
        for number, step in enumerate(self.steps):
            through = step.layers_applied
            through_text = "-" if through is None else f"{through[0]}..{through[1]}"
            shape = f"{chain[step.last].out_dim}x{chain[step.first].in_dim}"
            lines.append(
                f"  {number:>4}  {STEP_LABELS[step.kind]:<24} {f'{step.first}..{step.last}':>9} "
                f"{through_text:>9} {shape:>13} {step.cost:>{cost_width},} {100 * step.cost / total:>5.1f}%"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<Plan {self.strategy} cost={self.cost} forward={self.forward_cost} "
            f"reverse={self.reverse_cost} steps={len(self.steps)}>"
        )

    # -- JSON --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "dims": list(self.chain.dims),
            "layers": self.chain.fingerprint(),
            "strategy": self.strategy,
            "matrix_free": self.matrix_free,
            "tape_limit": self.tape_limit,
            "parallel": self.parallel,
            "memory_limit": self.memory_limit,
            "peak_memory": self.peak_memory,
            "forward": self.forward_cost,
            "reverse": self.reverse_cost,
            "optimal": self.cost,
            "speedup": self.speedup,
            "steps": [step.to_dict() for step in self.steps],
        }

    def to_json(self, **kwargs: Any) -> str:
        """The plan as JSON text (integers stay exact); see :meth:`from_json`."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes, chain: Chain) -> Plan:
        """Read a plan written by :meth:`to_json` for ``chain``.

        Raises ValueError if the text is not such a plan, belongs to another
        chain, or its steps do not form a valid plan with the stated costs.
        """
        if not isinstance(chain, Chain):
            raise TypeError(f"from_json needs the plan's Chain, got {type(chain).__name__}")
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"plan JSON is malformed: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"plan JSON must be an object, got {type(data).__name__}")
        if data.get("version") != JSON_VERSION:
            raise ValueError(f"plan JSON version {data.get('version')!r} is not {JSON_VERSION}")
        missing = [key for key in ("layers", "steps", "strategy") if key not in data]
        if missing:
            raise ValueError(f"plan JSON lacks {', '.join(missing)}")
        layers = data["layers"]
        expected = chain.fingerprint()
        if not isinstance(layers, list) or len(layers) != len(expected):
            count = len(layers) if isinstance(layers, list) else layers
            raise ValueError(
                f"plan JSON belongs to another chain: it has {count} layers, this chain {len(expected)}"
            )
        names = ("in_dim", "out_dim", "edges", "tangent_cost", "adjoint_cost")
        for index, (theirs, ours) in enumerate(zip(layers, expected)):
            if theirs != ours:
                diffs = ", ".join(
                    f"{name} {a} vs {b}"
                    for name, a, b in zip(names, theirs if isinstance(theirs, list) else [theirs] * 5, ours)
                    if a != b
                )
                raise ValueError(f"plan JSON belongs to another chain: layer {index} differs ({diffs})")
        steps = []
        for number, item in enumerate(data["steps"] if isinstance(data["steps"], list) else [None]):
            if not isinstance(item, dict) or not {"kind", "first", "last", "split", "cost"} <= set(item):
                raise ValueError(f"plan JSON step {number} must have kind, first, last, split and cost")
            steps.append(Step(item["kind"], item["first"], item["last"], item["split"], item["cost"]))
        try:
            plan = cls(
                chain,
                steps,
                strategy=data["strategy"],
                matrix_free=data.get("matrix_free", True),
                tape_limit=data.get("tape_limit"),
                parallel=data.get("parallel", False),
                memory_limit=data.get("memory_limit"),
            )
        except TypeError as error:
            raise ValueError(f"plan JSON: {error}") from None
        if "optimal" in data and data["optimal"] != plan.cost:
            raise ValueError(f"plan JSON states cost {data['optimal']}, its steps cost {plan.cost}")
        return plan
