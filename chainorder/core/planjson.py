"""Plans as JSON: the data a :class:`~chainorder.core.plan.Plan` writes, and reading it back.

:func:`plan_dict` is what :meth:`Plan.to_dict` (and so :meth:`Plan.to_json`) returns;
:meth:`Plan.from_json` builds the plan from :func:`plan_arguments`, which checks the
text and gives the arguments of the plan it describes (this module does not import
the plan module, which imports it).

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .chain import Chain
from .schedule import Slot
from .steps import Objective, Step

__all__ = ["JSON_VERSION", "LAYER_FIELDS", "plan_arguments", "plan_dict"]

JSON_VERSION = 1
LAYER_FIELDS = (
    "in_dim", "out_dim", "edges", "tangent_cost", "adjoint_cost", "tangent_seeds", "adjoint_seeds", "explicit_cost"
)  # fmt: skip
_JSON_STEP_KEYS = {"kind", "first", "last", "split", "cost"}


def plan_dict(plan: Any, timed: bool = True) -> dict[str, Any]:
    """A :class:`~chainorder.core.plan.Plan` as plain data, what :meth:`Plan.to_json` writes;
    ``timed`` adds the predicted milliseconds of the plan and its steps and the profile's device."""
    data = {
        "version": JSON_VERSION,
        "dims": list(plan.chain.dims),
        "layers": plan.chain.fingerprint(),
        "strategy": plan.strategy,
        "objective": plan.objective.value,
        "matrix_free": plan.matrix_free,
        "tape_limit": plan.tape_limit,
        "parallel": plan.parallel,
        "memory_limit": plan.memory_limit,
        "peak_memory": plan.peak_memory,
        "forward": plan.forward_cost,
        "reverse": plan.reverse_cost,
        "optimal": plan.cost,
        "speedup": plan.speedup if math.isfinite(plan.speedup) else None,
        "speedup_ratio": [min(plan.forward_cost, plan.reverse_cost), plan.cost],
        "bracketing": plan.bracketing,
        "steps": [step.to_dict() for step in plan.steps],
    }
    if plan.threads is not None:
        data.update(
            threads=plan.threads,
            schedule=[list(slot) for slot in plan.schedule],
            makespan=plan.makespan,
            proven=plan.proven,
            device_peaks=list(plan.device_peaks),
        )
    if timed:
        machine = plan.machine
        data["predicted_ms"] = _finite_or_none(plan.predicted_time * 1e3)
        data["step_predicted_ms"] = [_finite_or_none(seconds * 1e3) for seconds in plan.step_times]
        data["primal_predicted_ms"] = _finite_or_none(plan.primal_time * 1e3)
        data["profile"] = {"device_kind": machine.device_kind, "calibrated": machine.calibrated}
    return data


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_object(text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (TypeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"plan JSON is malformed: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"plan JSON must be an object, got {type(data).__name__}")
    if data.get("version") != JSON_VERSION:
        raise ValueError(f"plan JSON version {data.get('version')!r} is not {JSON_VERSION}")
    missing = [key for key in ("layers", "steps", "strategy") if key not in data]
    if missing:
        raise ValueError(f"plan JSON lacks {', '.join(missing)}")
    return data


def _plan_chain(layers: Any, chain: Chain) -> Chain:
    """The chain the plan was made for: ``chain``, or ``chain.without_structure()`` for a plan priced
    without its sparse layers' colors and explicit forms (what ``chainorder.jacobian`` runs where
    they save too little); else a ValueError naming the first layer that differs."""
    plain = chain.without_structure()
    if plain is not chain and layers == plain.fingerprint():
        return plain
    _check_same_chain(layers, chain)
    return chain


def _check_same_chain(layers: Any, chain: Chain) -> None:
    expected = chain.fingerprint()
    if not isinstance(layers, list) or len(layers) != len(expected):
        count = len(layers) if isinstance(layers, list) else layers
        raise ValueError(f"plan JSON belongs to another chain: it has {count} layers, this chain {len(expected)}")
    for index, (theirs, ours) in enumerate(zip(layers, expected)):
        if theirs != ours:
            values = theirs if isinstance(theirs, list) else [theirs] * len(LAYER_FIELDS)
            values, ours = (list(entry) + [None] * (len(LAYER_FIELDS) - len(entry)) for entry in (values, ours))
            diffs = ", ".join(f"{name} {a} vs {b}" for name, a, b in zip(LAYER_FIELDS, values, ours) if a != b)
            raise ValueError(f"plan JSON belongs to another chain: layer {index} differs ({diffs})")


def _json_steps(items: Any) -> list[Step]:
    if not isinstance(items, list):
        raise ValueError(f"plan JSON steps must be a list, got {type(items).__name__}")
    steps = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not _JSON_STEP_KEYS <= set(item):
            raise ValueError(f"plan JSON step {number} must have kind, first, last, split and cost")
        try:
            steps.append(
                Step(item["kind"], item["first"], item["last"], item["split"], item["cost"], item.get("chunk"))
            )
        except ValueError as error:
            raise ValueError(f"plan JSON step {number}: {error}") from None
    return steps


def _json_schedule(data: dict[str, Any]) -> tuple[Slot, ...] | None:
    items = data.get("schedule")
    if items is None:
        return None
    if not isinstance(items, list) or not all(
        isinstance(item, list) and len(item) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
        for item in items
    ):
        raise ValueError("plan JSON schedule must be a list of [device, start, end] integer triples")
    return tuple(Slot(*item) for item in items)


def plan_arguments(text: str | bytes, chain: Chain) -> tuple[Chain, dict[str, Any], Any]:
    """The chain the JSON text's plan was made for (``chain``, or ``chain.without_structure()`` for a plan
    priced without its structure), the keyword arguments of ``Plan(that_chain, **arguments)`` it
    describes, and the cost it states (None if it states none).

    Raises
    ------
    ValueError
        If the text is not such a plan or belongs to another chain.
    """
    data = _json_object(text)
    chain = _plan_chain(data["layers"], chain)
    objective = data.get("objective")
    if objective is None:  # written before objectives had names
        objective = Objective.CRITICAL_PATH if data.get("parallel") else Objective.FMA
    arguments = dict(
        steps=_json_steps(data["steps"]),
        strategy=data["strategy"],
        objective=objective,
        matrix_free=data.get("matrix_free", True),
        tape_limit=data.get("tape_limit"),
        memory_limit=data.get("memory_limit"),
        threads=data.get("threads"),
        schedule=_json_schedule(data),
        proven=data.get("proven", False),
    )
    return chain, arguments, data.get("optimal")
