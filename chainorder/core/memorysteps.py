"""A plan's steps rearranged under the memory model (:mod:`chainorder.core.memory`).

* :func:`order_for_memory`: the same steps in the order of least peak (Sethi and
  Ullman's rule at each product);
* :func:`merged_propagations`: runs of single-layer tangent (adjoint) steps, as the
  Pareto DP builds them, joined into one step where that peaks no higher;
* :func:`chunked_to_fit`: a chunk on each step that needs one to fit a limit.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .chain import Chain
from .memory import MemoryModel, peak_memory  # noqa: F401 - peak_memory: the doctests
from .steps import Step, StepKind
from .tree import post_order

__all__ = ["order_for_memory", "merged_propagations", "chunked_to_fit"]


def order_for_memory(chain: Chain, steps: Sequence[Step], model: MemoryModel | None = None) -> list[Step]:
    """The same steps in the post-order of least peak memory (Sethi-Ullman at products).

    Parameters
    ----------
    chain : Chain
    steps : sequence of Step
        A valid plan's steps in any valid order.
    model : MemoryModel, optional

    Returns
    -------
    list of Step

    Examples
    --------
    >>> from chainorder.core.optimize import optimize
    >>> chain = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])
    >>> steps = optimize(chain).steps  # already in this order
    >>> order_for_memory(chain, steps) == list(steps)
    True
    """
    model = model or MemoryModel(chain)
    producer = {step.span: step for step in steps}
    peak: dict[tuple[int, int], int] = {}
    later_first: dict[tuple[int, int], bool] = {}
    for step in steps:  # children come before parents in any valid plan
        operands = {name: peak[span] for name, span in zip(step.kind.operand_names, step.operands)}
        peak[step.span] = model.sub_plan_peak(
            step.kind, step.first, step.last, step.split, chunk=step.chunk, **operands
        )
        later_first[step.span] = len(step.operands) < 2 or model.later_first(step, peak)

    def children(span: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        operands = producer[span].operands
        return operands if later_first[span] else operands[::-1]

    return [producer[span] for span in post_order((0, len(chain) - 1), children)]


def merged_propagations(steps: list[Step], memory: MemoryModel, tape_limit: int | None = None) -> list[Step]:
    """``steps`` (children first) with each tangent (adjoint) step that consumes another's result
    joined with it into one step through the layers of both, where the joined step peaks no higher
    than the two did (and its tape fits ``tape_limit``). It costs what they cost together; a tangent
    step's peak never rises (its workspace is the seeds across the widest layer), an adjoint step's
    may (it holds both tapes).

    >>> memory = MemoryModel(Chain.from_dims([4, 3, 2, 2]))
    >>> steps = [Step("tangent_preaccumulation", 0, 0, None, 12), Step("tangent_step", 0, 1, 0, 24),
    ...          Step("tangent_step", 0, 2, 1, 16)]
    >>> [(step.kind.value, step.first, step.last, step.split, step.cost) for step in merged_propagations(steps, memory)]
    [('tangent_preaccumulation', 0, 0, None, 12), ('tangent_step', 0, 2, 0, 40)]
    """
    kept: dict[tuple[int, int], Step] = {}
    peak: dict[tuple[int, int], int] = {}

    def peak_of(step: Step, operands: dict[str, tuple[int, int]]) -> int:
        names = {name: peak[span] for name, span in operands.items()}
        return memory.sub_plan_peak(step.kind, step.first, step.last, step.split, **names)

    for step in steps:
        operands = dict(zip(step.kind.operand_names, step.operands))
        inner = kept.get(step.operands[0]) if step.kind in (StepKind.TANGENT_STEP, StepKind.ADJOINT_STEP) else None
        if inner is not None and inner.kind is step.kind:
            ((name, span),) = operands.items()
            joined = Step(step.kind, step.first, step.last, inner.split, inner.cost + step.cost)
            tape = memory.costs.tape(joined.kind, joined.first, joined.last, joined.split)
            fits = tape_limit is None or tape <= tape_limit
            if fits and peak_of(joined, {name: inner.operands[0]}) <= peak_of(step, operands):
                del kept[span]
                step, operands = joined, {name: inner.operands[0]}
        peak[step.span] = peak_of(step, operands)
        kept[step.span] = step
    return list(kept.values())


def chunked_to_fit(
    chain: Chain, steps: Sequence[Step], limit: int, model: MemoryModel | None = None
) -> list[Step] | None:
    """``steps`` with a chunk on each step that needs one to fit ``limit`` (elements, primal values
    included): the largest chunk whose workspace fits beside the Jacobians alive when it runs (the
    fewest loop iterations), spread evenly over them; None where a step does not fit even one seed
    at a time. Chunks ``steps`` carry are chosen anew. A step's chunk changes no other step's room:
    results keep their sizes.

    >>> chain = Chain.from_dims([64, 64, 4096, 64])
    >>> from chainorder.core.optimize import optimize
    >>> steps = optimize(chain, "forward").steps
    >>> peak_memory(chain, steps)   # 64 tangents across the 4096-wide layer
    270528
    >>> fitted = chunked_to_fit(chain, steps, 50_000)
    >>> [step.chunk for step in fitted], peak_memory(chain, fitted)   # 8 at a time
    ([None, 8], 45760)
    """
    model = model if model is not None and not model.chunked else MemoryModel(chain, model.costs if model else None)
    room = limit - model.primal
    alive = 0
    fitted = []
    for step in steps:
        step = replace(step, chunk=None)
        operands = sum(model.result_size(*operand) for operand in step.operands)
        free = room - (alive - operands)
        if model.workspace(step.kind, step.first, step.last, step.split) > free:
            chunk = _largest_chunk(model, step, free)
            if chunk is None:
                return None
            step = replace(step, chunk=chunk)
        fitted.append(step)
        alive += model.result_size(step.first, step.last) - operands
    return fitted


def _largest_chunk(model: MemoryModel, step: Step, free: int) -> int | None:
    """The largest chunk, spread evenly over the loop's iterations, whose workspace is at most ``free``."""
    if step.kind is StepKind.PRODUCT or not model.chunkable(step.kind, step.first, step.last):
        return None
    seeds = int(model.costs.step_seeds(step.kind, step.first, step.last))
    one = int(model.workspace(step.kind, step.first, step.last, step.split, 1))
    widest = int(model.widest(*step.layers_applied))
    if one > free:
        return None
    largest = min(seeds, 1 + (free - one) // widest)
    iterations = -(-seeds // largest)
    return -(-seeds // iterations)
