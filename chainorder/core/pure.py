"""The pure modes as plans: forward (``jax.jacfwd``) and reverse (``jax.jacrev``) mode.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from .chain import Chain
from .costs import CostModel
from .steps import Step, StepKind

__all__ = ["forward_steps", "reverse_steps", "reverse_fits"]


def _step(model: CostModel, kind: StepKind, first: int, last: int, split: int | None) -> Step:
    return Step(kind, first, last, split, model.cost(kind, first, last, split))


def forward_steps(chain: Chain) -> list[Step]:
    """Pure tangent mode (``jax.jacfwd``): preaccumulate layer 0, push through the rest.

    Parameters
    ----------
    chain : Chain

    Returns
    -------
    list of Step

    Examples
    --------
    >>> [step.kind.value for step in forward_steps(Chain.from_dims([3, 4, 5]))]
    ['tangent_preaccumulation', 'tangent_step']
    """
    model, q = CostModel(chain), len(chain)
    steps = [_step(model, StepKind.TANGENT_PREACCUMULATION, 0, 0, None)]
    if q > 1:
        steps.append(_step(model, StepKind.TANGENT_STEP, 0, q - 1, 0))
    return steps


def reverse_steps(chain: Chain, tape_limit: int | None = None) -> list[Step]:
    """Pure adjoint mode (``jax.jacrev``); under a tape limit the adjoint is split
    into pieces that each fit on the tape (the cost is the same).

    Parameters
    ----------
    chain : Chain
    tape_limit : int or None

    Returns
    -------
    list of Step

    Raises
    ------
    ValueError
        When a single layer's tape is over the limit.

    Examples
    --------
    >>> [step.kind.value for step in reverse_steps(Chain.from_dims([3, 4, 5]))]
    ['adjoint_preaccumulation', 'adjoint_step']
    """
    model, q = CostModel(chain), len(chain)
    if tape_limit is not None:
        for index, layer in enumerate(chain):
            if layer.edges > tape_limit:  # type: ignore[operator]
                raise ValueError(
                    f"strategy='reverse' is impossible: layer {index} needs a tape of "
                    f"{layer.edges} edges, over the tape limit {tape_limit}"
                )
    steps = [_step(model, StepKind.ADJOINT_PREACCUMULATION, q - 1, q - 1, None)]
    end = q - 2  # pull back through layers start..end
    while end >= 0:
        start = end
        while start > 0 and (tape_limit is None or model.edges(start - 1, end) <= tape_limit):
            start -= 1
        steps.append(_step(model, StepKind.ADJOINT_STEP, start, q - 1, end))
        end = start - 1
    return steps


def reverse_fits(chain: Chain, tape_limit: int | None) -> bool:
    """Whether pure reverse mode is possible under ``tape_limit`` (every layer's tape fits).

    >>> reverse_fits(Chain.from_dims([3, 4, 5]), 15), reverse_fits(Chain.from_dims([3, 4, 5]), 20)  # tapes 12, 20
    (False, True)
    """
    return tape_limit is None or max(chain.edges) <= tape_limit  # type: ignore[type-var]
