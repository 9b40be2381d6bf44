"""``Plan.jacobian``: a plan's Jacobian at a point; with ``out=``, written into a host array in blocks
whose plans fit a budget; with ``devices=``, its seeds sharded over devices, or a plan scheduled on T
threads run step by step on them. The blocks' and shards' plans come from :func:`chainorder.jacobian`.
"""

from __future__ import annotations

import functools
from typing import Any

from ..core.plan import Plan
from ..core.steps import Objective
from . import execute
from .blocks import jacobian_into
from .dropin import jacobian
from .scheduled import scheduled_jacobian
from .sharding import sharded_jacobian

__all__ = ["plan_jacobian"]


def plan_jacobian(plan: Plan, x: Any, out: Any = None, memory_limit: Any = None, devices: Any = None) -> Any:
    """``plan``'s Jacobian of ``plan.chain`` at ``x``; with ``out``, written into it in blocks whose
    plans (made under ``plan``'s options) fit ``memory_limit`` (default ``plan.memory_limit``); with
    ``devices``, one block of seeds per device, the result sharded over them, or, for a plan
    scheduled on T threads, each step on its thread's device."""
    if out is None and devices is None:
        return execute.plan_jacobian(plan, x)
    if out is not None and devices is not None:
        raise TypeError("give out= or devices=, not both")
    if devices is not None and plan.threads is not None:
        return scheduled_jacobian(plan, x, devices)
    options = {
        "strategy": plan.strategy,
        "objective": Objective.FMA if plan.objective is Objective.MAKESPAN else plan.objective,
        "matrix_free": plan.matrix_free,
        "tape_limit": plan.tape_limit,
        "memory_limit": plan.memory_limit if memory_limit is None else memory_limit,
    }
    chain_function = functools.partial(execute.apply_chain, plan.chain)
    if devices is not None:
        return sharded_jacobian(chain_function, x, devices, options, jacobian)
    return jacobian_into(chain_function, x, out, options, jacobian)
