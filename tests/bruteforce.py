"""Exhaustive enumeration of every plan of a short chain (an oracle for tests).

Every bracketing and every choice of operation at every node is enumerated;
the sets below hold every distinct cost some complete plan of a sub-chain
reaches. No minimum is taken before the end, so this is not the DP.
"""

from __future__ import annotations

from functools import cache

from chainorder import Chain


def all_plan_costs(
    chain: Chain, *, matrix_free: bool = True, tape_limit: int | None = None, parallel: bool = False
) -> set[int]:
    n = [layer.in_dim for layer in chain]
    m = [layer.out_dim for layer in chain]
    # a sparse layer preaccumulates with one JVP (VJP) per color of its columns (rows)
    tangent_seeds = [layer.tangent_colors or layer.in_dim for layer in chain]
    adjoint_seeds = [layer.adjoint_colors or layer.out_dim for layer in chain]
    edges, tangent, adjoint = chain.edges, chain.tangent_costs, chain.adjoint_costs
    # an explicit layer writes its Jacobian at one FMA per entry where that is cheaper than its JVPs
    tangent_preaccumulation = [
        min(s * t, i * o) if layer.explicit else s * t
        for layer, s, t, i, o in zip(chain, tangent_seeds, tangent, n, m)
    ]

    def fits(first: int, last: int) -> bool:
        return tape_limit is None or sum(edges[first : last + 1]) <= tape_limit

    @cache
    def costs(first: int, last: int) -> frozenset[int]:
        found: set[int] = set()
        if first == last:
            found.add(tangent_preaccumulation[first])
            if fits(first, first):
                found.add(adjoint_seeds[first] * adjoint[first])
            return frozenset(found)
        for k in range(first, last):
            left, right = costs(first, k), costs(k + 1, last)
            dense = m[last] * m[k] * n[first]
            for a in left:
                for b in right:
                    found.add((max(a, b) if parallel else a + b) + dense)
            if matrix_free:
                push = n[first] * sum(tangent[k + 1 : last + 1])
                found.update(a + push for a in left)
                if fits(first, k):
                    pull = m[last] * sum(adjoint[first : k + 1])
                    found.update(b + pull for b in right)
        return frozenset(found)

    return set(costs(0, len(chain) - 1))


def count_plans(length: int, matrix_free: bool = True) -> int:
    """How many distinct plans (trees with operation labels) a chain of that length has."""

    @cache
    def count(size: int) -> int:
        if size == 1:
            return 2
        total = 0
        for left in range(1, size):
            total += count(left) * count(size - left)
            if matrix_free:
                total += count(left) + count(size - left)
        return total

    return count(length)


def all_plans(chain: Chain, *, matrix_free: bool = True, tape_limit: int | None = None):
    """Every plan of a short chain as a list of Steps, in every valid operand order."""
    from chainorder.core.costs import CostModel
    from chainorder.core.steps import Step

    model = CostModel(chain)

    def fits(first: int, last: int) -> bool:
        return tape_limit is None or model.edges(first, last) <= tape_limit

    def step(kind, first, split, last):
        return Step(kind, first, last, split, model.cost(kind, first, last, split))

    def plans(first: int, last: int):
        if first == last:
            yield [step("tangent_preaccumulation", first, None, first)]
            if fits(first, first):
                yield [step("adjoint_preaccumulation", first, None, first)]
            return
        for k in range(first, last):
            for earlier in plans(first, k):
                for later in plans(k + 1, last):
                    product = step("product", first, k, last)
                    yield earlier + later + [product]
                    yield later + earlier + [product]
            if matrix_free:
                for earlier in plans(first, k):
                    yield earlier + [step("tangent_step", first, k, last)]
                if fits(first, k):
                    for later in plans(k + 1, last):
                        yield later + [step("adjoint_step", first, k, last)]

    return plans(0, len(chain) - 1)


def all_plan_points(
    chain: Chain, *, parallel: bool = False, chunked: bool = False, **options
) -> set[tuple[int, int]]:
    """``(cost, peak_memory)`` of every plan (``all_plans``), in every operand order: ``peak_memory``
    of each, with each distinct step's sizes asked of the memory model once (plans share most of
    their steps); ``chunked``: each step's least workspace over its chunks."""
    from chainorder.core.memory import MemoryModel, peak_memory
    from chainorder.core.schedule import critical_path

    class Remembered(MemoryModel):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.known = {}

        def workspace(self, *step):
            key = ("workspace",) + step
            if key not in self.known:
                self.known[key] = int(super().workspace(*step))
            return self.known[key]

        def result_size(self, first, last):
            key = ("size", first, last)
            if key not in self.known:
                self.known[key] = int(super().result_size(first, last))
            return self.known[key]

    model = Remembered(chain, chunked=chunked)
    points = set()
    for steps in all_plans(chain, **options):
        cost = critical_path(steps) if parallel else sum(step.cost for step in steps)
        points.add((cost, peak_memory(chain, steps, model)))
    return points


def all_plan_times(chain: Chain, profile, *, tape_limit: int | None = None) -> list[float]:
    """The predicted seconds of every plan's steps (``all_plans``; the primal pass left out), each
    distinct step priced once by the time model (plans share most of their steps)."""
    from chainorder.core.timing import TimeModel

    model, priced = TimeModel(chain, profile), {}

    def seconds(step) -> float:
        key = (step.kind, step.first, step.last, step.split)
        if key not in priced:
            priced[key] = float(model.steps_time([step])[0])
        return priced[key]

    return [sum(seconds(step) for step in steps) for steps in all_plans(chain, tape_limit=tape_limit)]


def step_cost_by_hand(chain: Chain, step) -> int:
    """A step's FMAs from the cost table of the README, written out again (independent of CostModel)."""
    n = [layer.in_dim for layer in chain]
    m = [layer.out_dim for layer in chain]
    first, last, split = step.first, step.last, step.split
    kind = str(step.kind)
    if kind == "tangent_preaccumulation":  # one JVP per color of a sparse layer's columns
        by_jvps = (chain[first].tangent_colors or n[first]) * chain[first].tangent_cost
        return min(by_jvps, m[first] * n[first]) if chain[first].explicit else by_jvps
    if kind == "adjoint_preaccumulation":
        return (chain[first].adjoint_colors or m[first]) * chain[first].adjoint_cost
    if kind == "tangent_step":
        return n[first] * sum(chain.tangent_costs[split + 1 : last + 1])
    if kind == "adjoint_step":
        return m[last] * sum(chain.adjoint_costs[first : split + 1])
    return m[last] * m[split] * n[first]


def plan_cost_by_hand(chain: Chain, steps, parallel: bool = False) -> int:
    """Sum of the steps' costs, or (parallel) the finish time of the last step when a step starts
    as soon as its operands are done."""
    if not parallel:
        return sum(step_cost_by_hand(chain, step) for step in steps)
    finish = {}
    for step in steps:
        start = max((finish.pop(operand) for operand in step.operands), default=0)
        finish[(step.first, step.last)] = start + step_cost_by_hand(chain, step)
    return finish[(0, len(chain) - 1)]
