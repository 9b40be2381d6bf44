"""Random valid plans: the background of the trade-off plot, and test material.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import random

from .chain import Chain
from .costs import CostModel
from .memory import order_for_memory
from .plan import Plan
from .steps import Step, StepKind

__all__ = ["random_plan"]


def random_plan(chain: Chain, rng: random.Random, *, tape_limit: int | None = None) -> Plan:
    """A random valid plan: a random bracketing with a random operation at each node,
    its steps in the order of least memory.

    >>> from chainorder import Chain
    >>> plan = random_plan(Chain.from_dims([5, 4, 3, 2]), random.Random(0))
    >>> plan.cost >= 0 and plan.steps[-1].span == (0, 2)
    True
    """
    model = CostModel(chain)

    def fits(first: int, last: int) -> bool:
        return tape_limit is None or model.edges(first, last) <= tape_limit

    def kinds(first: int, last: int, split: int | None) -> list[StepKind]:
        if split is None:
            return [StepKind.TANGENT_PREACCUMULATION] + (
                [StepKind.ADJOINT_PREACCUMULATION] if fits(first, first) else []
            )
        return [StepKind.PRODUCT, StepKind.TANGENT_STEP] + ([StepKind.ADJOINT_STEP] if fits(first, split) else [])

    steps: list[Step] = []
    pending = [(0, len(chain) - 1)]
    while pending:  # parents before children; reversed below
        first, last = pending.pop()
        split = None if first == last else rng.randrange(first, last)
        kind = rng.choice(kinds(first, last, split))
        steps.append(Step(kind, first, last, split, model.cost(kind, first, last, split)))
        pending.extend(kind.operands(first, last, split))
    return Plan(chain, order_for_memory(chain, steps[::-1]), tape_limit=tape_limit)
