"""Random valid plans: the background of the trade-off plot, and test material.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import random

from .chain import Chain
from .costs import CostModel
from .memorysteps import order_for_memory
from .plan import Plan
from .steps import Step, StepKind

__all__ = ["random_plan"]


def random_plan(
    chain: Chain, seed: int | random.Random | None = None, *, tape_limit: int | None = None
) -> Plan:
    """A random valid plan: a random bracketing with a random operation at each node,
    its steps in the order of least memory.

    Parameters
    ----------
    chain : Chain
    seed : int or random.Random, optional
        The same seed gives the same plan.
    tape_limit : int or None
        Only adjoints whose tape fits.

    Returns
    -------
    Plan

    See Also
    --------
    chainorder.optimize, chainorder.plot_fidelity

    Examples
    --------
    >>> from chainorder import Chain
    >>> plan = random_plan(Chain.from_dims([5, 4, 3, 2]), seed=0)
    >>> plan == random_plan(plan.chain, seed=0), plan.steps[-1].span
    (True, (0, 2))
    """
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
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
