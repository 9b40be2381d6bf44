"""The memory model, memory-limited optimization and the Pareto front, against brute force."""

import importlib
import itertools
from dataclasses import replace

import numpy as np
import pytest
from bruteforce import all_plan_points, all_plans
from conftest import chains, options
from hypothesis import given, settings
from hypothesis import strategies as st

from chainorder import Chain, Layer, optimize, pareto, peak_memory
from chainorder.core.memory import MemoryModel
from chainorder.core.memorysteps import chunked_to_fit
from chainorder.core.pareto import pareto_steps
from chainorder.core.steps import Objective

paretodp_module = importlib.import_module("chainorder.core.paretodp")
pareto_module = importlib.import_module("chainorder.core.pareto")
productrows_module = importlib.import_module("chainorder.core.productrows")


def _points(chain, parallel=False, chunked=False, **options):
    """(cost, peak) of every plan in every operand order; ``chunked``: each step's least
    workspace over its chunks (see test_least_chunked_peak_equals_brute_force_over_chunks)."""
    return all_plan_points(chain, parallel=parallel, chunked=chunked, **options)


def _front(points):
    front, best_peak = [], None
    for cost, peak in sorted(points):
        if best_peak is None or peak < best_peak:
            front.append((cost, peak))
            best_peak = peak
    return sorted(front, key=lambda point: point[1])


def test_peak_memory_by_hand():
    # dims 4 -> 3 -> 2, edges 12 and 6: primal values 4 + 3 + 2 = 9
    chain = Chain.from_dims([4, 3, 2])
    forward = optimize(chain, "forward")
    # tangent preaccumulation of layer 0: 4 * (4 + 3) = 28; tangent step: 4 * (3 + 2) = 20
    assert forward.peak_memory == 9 + 28
    reverse = optimize(chain, "reverse")
    # adjoint preaccumulation of layer 1: 2 * (2 + 3) + 6 = 16; adjoint step: 2 * (4 + 3) + 12 = 26
    assert reverse.peak_memory == 9 + 26
    # a sparse layer 0 with 2 column colors: the compressed seeds and tangents 2 * (4 + 3) = 14,
    # the Jacobian decompressed beside them 3 * 4 = 12
    sparse = Chain([Layer(4, 3, tangent_colors=2), Layer(3, 2)])
    assert optimize(sparse, "forward").peak_memory == 9 + max(14 + 12, 20)


@settings(max_examples=60, deadline=None)
@given(chains(max_length=5, max_dim=40, colors=True), options)
def test_front_equals_brute_force(chain, opts):
    points = _points(chain, parallel=opts["parallel"], matrix_free=opts["matrix_free"], tape_limit=opts["tape_limit"])
    front = pareto(chain, **opts)
    assert [(plan.cost, plan.peak_memory) for plan in front] == _front(points)
    # memory up, cost down, nobody dominated, the FMA-optimal and least-memory plans included
    assert front[-1].cost == optimize(chain, **opts).cost == min(cost for cost, _ in points)
    assert front[0].peak_memory == min(peak for _, peak in points)
    # the DP builds single-layer tangent and adjoint steps; a tangent step never consumes another's
    # result (joining them costs the same and peaks no higher)
    for plan in front:
        producer = {step.span: step for step in plan.steps}
        for step in plan.steps:
            if step.kind.value == "tangent_step":
                assert producer[step.operands[0]].kind.value != "tangent_step", plan.bracketing


@settings(max_examples=60, deadline=None)
@given(chains(max_length=5, max_dim=40, colors=True), options, st.floats(0, 1))
def test_memory_limited_optimum_equals_brute_force(chain, opts, where):
    """Under a memory limit steps may push their seeds in chunks: the cheapest plan whose least
    chunked peak fits, with the chunks that make it fit."""
    points = _points(chain, opts["parallel"], True, matrix_free=opts["matrix_free"], tape_limit=opts["tape_limit"])
    least = min(peak for _, peak in points)
    most = max(peak for _, peak in points)
    limit = int(least + where * (most - least))
    plan = optimize(chain, memory_limit=limit, **opts)
    assert plan.peak_memory <= limit
    assert plan.cost == min(cost for cost, peak in points if peak <= limit)
    front = pareto(chain, chunked=True, **opts)
    assert [(p.cost, p.peak_memory) for p in front] == _front(points)


@settings(max_examples=30, deadline=None)
@given(chains(max_length=12, max_dim=40, colors=True), options)
def test_chunked_fronts_do_not_need_steps_through_a_narrow_boundary(chain, opts):
    """Longer chains than brute force reaches: the chunked front is the same with a tangent and an
    adjoint step through every span as without those through a boundary as narrow as both ends."""
    pruned = pareto(chain, chunked=True, **opts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paretodp_module.ParetoDP, "_own_step", lambda self, first, last: np.ones(np.shape(first), bool))
        every = pareto(chain, chunked=True, **opts)
    assert [(p.cost, p.peak_memory) for p in pruned] == [(p.cost, p.peak_memory) for p in every]


@settings(max_examples=30, deadline=None)
@given(chains(max_length=12, max_dim=60, colors=True), options, st.booleans())
def test_product_rows_bounded_in_blocks_give_the_same_front(chain, opts, chunked):
    """ProductRows bounds a length's rows a block of cells at a time: blocks of about 3 rows (a
    cell alone past length 4) give the front of one block per length."""
    whole = pareto(chain, chunked=chunked, **opts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(productrows_module, "BLOCK", 3)
        blocks = pareto(chain, chunked=chunked, **opts)
    assert [(p.cost, p.peak_memory) for p in blocks] == [(p.cost, p.peak_memory) for p in whole]


def _cell_fronts(fronts, q):
    return {
        (first, last): [
            (int(fronts.cost[entry]), int(fronts.peak[entry]))
            for entry in range(fronts.start[first, last], fronts.start[first, last] + fronts.size[first, last])
        ]
        for first in range(q)
        for last in range(first, q)
    }


@settings(max_examples=60, deadline=None)
@given(chains(max_length=5, max_dim=40, max_cost=40), options)
def test_the_least_peak_run_finds_the_least_peak_of_every_plan(chain, opts):
    """The least-peak run (one label per sub-chain, each cell's best product row alone) peaks as
    low as the lowest of every plan: the pruning of the exact run rests on it."""
    arguments = (chain, Objective.FMA, opts["matrix_free"], opts["tape_limit"], None, False)
    fronts = paretodp_module.ParetoDP(*arguments, rough="least_peak").run()
    points = all_plan_points(chain, matrix_free=opts["matrix_free"], tape_limit=opts["tape_limit"])
    whole = fronts.start[0, len(chain) - 1]
    assert int(fronts.peak[whole]) + MemoryModel(chain).primal == min(peak for _, peak in points)


@settings(max_examples=40, deadline=None)
@given(chains(max_length=12, max_dim=60, colors=True), st.booleans(), st.booleans())
def test_the_corners_run_drops_only_corners_its_cell_keeps_better(chain, chunked, matrix_free):
    """ProductRows drops a row's corner where one of its cell's two reference corners matches or
    beats it, and keeps those: every sub-chain's front of corners is the same as from every corner."""
    arguments = (chain, Objective.FMA, matrix_free, None, None, chunked)
    kept = paretodp_module.ParetoDP(*arguments, rough="corners").run()
    with pytest.MonkeyPatch.context() as patch:
        nothing = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        patch.setattr(productrows_module.ProductRows, "_references", lambda self, valid, columns: ([], [nothing] * 2))
        every = paretodp_module.ParetoDP(*arguments, rough="corners").run()
    assert _cell_fronts(kept, len(chain)) == _cell_fronts(every, len(chain))


def _runs(chain, **options):
    """The front, and the Pareto DP runs it took (their ``rough``: "least_peak", "corners", None)."""
    runs, run = [], paretodp_module.ParetoDP.run
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paretodp_module.ParetoDP, "run", lambda self: runs.append(self.rough) or run(self))
        front = pareto(chain, **options)
    return [(plan.cost, plan.peak_memory) for plan in front], runs


@settings(max_examples=40, deadline=None)
@given(chains(max_length=12, max_dim=40, colors=True), options, st.booleans())
def test_a_plan_both_cheapest_and_least_peak_is_the_whole_front(chain, opts, chunked):
    """Where the least-peak run's plan costs the optimum, or a cost-optimal plan peaks the least,
    pareto returns that plan alone after the least-peak run: the front of all three runs."""
    front, runs = _runs(chain, chunked=chunked, **opts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pareto_module, "_the_one_plan", lambda *arguments: None)
        assert _runs(chain, chunked=chunked, **opts)[0] == front
    if runs == ["least_peak"]:
        assert len(front) == 1


@pytest.mark.parametrize("dims", [[784, 256, 32, 256, 784], [10, 200, 10, 200, 10], [4, 3, 2]])
def test_one_run_finds_the_front_of_one_plan(dims):
    chain = Chain.from_dims(dims)
    front, runs = _runs(chain)
    assert runs == ["least_peak"]
    assert front == _front(_points(chain))  # one point
    assert len(front) == 1


@settings(max_examples=40, deadline=None)
@given(chains(max_length=12, max_dim=40, colors=True), options, st.floats(0, 1), st.booleans())
def test_the_cheapest_plan_within_a_limit_is_the_fronts_cheapest(chain, opts, where, chunked):
    """Asked for the cheapest plan that fits alone, the DP drops sub-plans whose completions all cost
    more than a known plan that fits; what it returns is the whole front's cheapest point."""
    objective = Objective.CRITICAL_PATH if opts.pop("parallel") else Objective.FMA
    opts = dict(opts, objective=objective)
    front = pareto_steps(chain, chunked=chunked, **opts)
    limit = int(front[0][1] + where * (front[-1][1] - front[0][1]))
    within = pareto_steps(chain, chunked=chunked, memory_limit=limit, **opts)
    cheapest = pareto_steps(chain, chunked=chunked, memory_limit=limit, cheapest=True, **opts)
    assert [plan[:2] for plan in cheapest] == [within[-1][:2]]


@settings(max_examples=40, deadline=None)
@given(chains(max_length=3, max_dim=6, colors=True))
def test_least_chunked_peak_equals_brute_force_over_chunks(chain):
    """The chunked memory model's peak of a plan (each step at its least workspace) is the least
    peak over every assignment of chunks 1..seeds (or none) to its chunkable steps; and
    chunked_to_fit meets every limit down to it."""
    model = MemoryModel(chain)
    for steps in all_plans(chain):
        choices = []
        for step in steps:
            chunkable = step.kind.value != "product" and model.chunkable(step.kind, step.first, step.last)
            seeds = int(model.costs.step_seeds(step.kind, step.first, step.last))
            choices.append([None] + (list(range(1, seeds + 1)) if chunkable else []))
        least = min(
            peak_memory(chain, [replace(step, chunk=chunk) for step, chunk in zip(steps, chunks)])
            for chunks in itertools.product(*choices)
        )
        assert peak_memory(chain, steps, MemoryModel(chain, chunked=True)) == least
        for limit in (least, least + 7, peak_memory(chain, steps)):
            fitted = chunked_to_fit(chain, steps, limit)
            assert fitted is not None and peak_memory(chain, fitted) <= limit
            assert [step.cost for step in fitted] == [step.cost for step in steps]
        assert chunked_to_fit(chain, steps, least - 1) is None


def test_merged_propagations_join_only_where_the_peak_does_not_rise():
    from chainorder.core.memory import MemoryModel
    from chainorder.core.memorysteps import merged_propagations
    from chainorder.core.steps import Step

    # reverse mode through 8 -> 8 -> 8 -> 2 as single-layer adjoint steps; layer 0's tape is large
    chain = Chain([Layer(8, 8, edges=1000), Layer(8, 8, edges=10), Layer(8, 2, edges=10)])
    memory = MemoryModel(chain)
    steps = [
        Step("adjoint_preaccumulation", 2, 2, None, memory.costs.cost("adjoint_preaccumulation", 2, 2)),
        Step("adjoint_step", 1, 2, 1, memory.costs.cost("adjoint_step", 1, 2, 1)),
        Step("adjoint_step", 0, 2, 0, memory.costs.cost("adjoint_step", 0, 2, 0)),
    ]
    merged = merged_propagations(steps, memory)
    # joining the last two would hold both tapes: 2 * 8 + 1010 > 2 * 8 + 1000, the most either holds
    assert merged == steps
    # where layer 2's own preaccumulation holds more than both, joining costs no memory
    cheap = Chain([Layer(8, 8, edges=1000), Layer(8, 8, edges=10), Layer(8, 2, edges=5000)])
    memory = MemoryModel(cheap)
    steps = [Step(s.kind, s.first, s.last, s.split, memory.costs.cost(s.kind, s.first, s.last, s.split)) for s in steps]
    (preaccumulation, joined) = merged_propagations(steps, memory)
    assert (joined.first, joined.last, joined.split) == (0, 2, 1)
    assert joined.cost == steps[1].cost + steps[2].cost
    assert peak_memory(cheap, [preaccumulation, joined]) == peak_memory(cheap, steps)
    # a tape limit that each layer fits but not both together: not joined
    assert merged_propagations(steps, memory, tape_limit=1009) == steps


def test_limit_below_the_least_peak_names_it():
    chain = Chain.from_dims([50, 10, 60, 5])
    least = pareto(chain, chunked=True)[0].peak_memory
    with pytest.raises(ValueError, match=f"least achievable peak memory is {least:,} elements"):
        optimize(chain, memory_limit=least - 1)
    assert optimize(chain, memory_limit=least).peak_memory == least
    with pytest.raises(ValueError, match="memory_limit must be a positive number of elements, got 0"):
        optimize(chain, memory_limit=0)
    with pytest.raises(ValueError, match="memory_limit must be a positive number of elements, got -5"):
        optimize(chain, memory_limit=-5)
    with pytest.raises(TypeError, match="memory_limit must be an integer"):
        optimize(chain, memory_limit=1.5)
    with pytest.raises(ValueError, match="strategy='reverse' needs a peak of"):
        optimize(chain, "reverse", memory_limit=least)


@settings(max_examples=20, deadline=None)
@given(chains(max_length=5, max_dim=40))
def test_steps_come_in_the_order_of_least_memory(chain):
    # among every order of the same steps (Sethi-Ullman at products), ours peaks least
    plans = pareto(chain) + [optimize(chain), optimize(chain, matrix_free=False)]
    trees = {tuple(sorted(map(repr, plan.steps))) for plan in plans}
    least, model = {}, MemoryModel(chain)
    for steps in all_plans(chain):
        tree = tuple(sorted(map(repr, steps)))
        if tree in trees:
            least[tree] = min(least.get(tree, peak_memory(chain, steps, model)), peak_memory(chain, steps, model))
    for plan in plans:
        assert plan.peak_memory == least[tuple(sorted(map(repr, plan.steps)))]


def test_json_keeps_memory():
    from chainorder import Plan

    chain = Chain.from_dims([300, 20, 300, 20])
    front = pareto(chain)
    plan = optimize(chain, memory_limit=front[0].peak_memory)
    again = Plan.from_json(plan.to_json(), chain)
    assert again.peak_memory == plan.peak_memory and again.memory_limit == plan.memory_limit


def test_huge_dims_stay_exact():
    chain = Chain.from_dims([10**9, 3, 10**9, 2])
    points = _points(chain)
    assert [(p.cost, p.peak_memory) for p in pareto(chain)] == _front(points)


@settings(max_examples=60, deadline=None)
@given(chains(max_length=5, max_dim=40), options)
def test_completion_costs_equal_brute_force(chain, opts):
    """C[i..j] + G[i..j] is the least cost of a plan with a step producing J[j..i]."""
    from chainorder.core.completion import completion_costs
    from chainorder.core.dp import cost_table

    options = {"matrix_free": opts["matrix_free"], "tape_limit": opts["tape_limit"]}
    table = cost_table(chain, **options)
    completion = completion_costs(table)
    least = {}
    for steps in all_plans(chain, **options):
        cost = sum(step.cost for step in steps)
        for step in steps:
            node = (step.first, step.last)
            least[node] = min(least.get(node, cost), cost)
    q = len(chain)
    for first in range(q):
        for last in range(first, q):
            bound = int(table.cost(first, last)) + int(completion[first, last - first + 1])
            expected = least.get((first, last))
            if expected is None:  # no plan of the whole computes this Jacobian (the tape)
                assert bound >= 2**61
            else:
                assert bound == expected, (first, last)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_covered_by_one_search_equals_the_bisection_and_a_scan(data):
    """``covered``'s one search on a combined (cell, cost) key (int64) against its binary search
    (any numbers: the same points as Python integers) and a plain scan of each cell's front."""
    import numpy as np

    from chainorder.core.labels import covered, prune

    cells = data.draw(st.integers(1, 5))
    points = data.draw(st.lists(st.tuples(st.integers(0, cells - 1), st.integers(0, 50), st.integers(0, 50))))
    cell = np.array([p[0] for p in points], dtype=np.int64)
    cost = np.array([p[1] for p in points], dtype=np.int64)
    peak = np.array([p[2] for p in points], dtype=np.int64)
    keep = prune(cell, cost, peak, None) if len(points) else np.zeros(0, dtype=np.int64)
    size = np.bincount(cell[keep], minlength=cells)
    front = (np.cumsum(size) - size, size, cost[keep], peak[keep])
    queries = data.draw(st.lists(st.tuples(st.integers(0, cells - 1), st.integers(0, 60), st.integers(0, 60))))
    query = [np.array([q[k] for q in queries], dtype=np.int64) for k in range(3)]
    budget = data.draw(st.one_of(st.none(), st.integers(0, 60)))
    fast = covered(*query, front, budget)
    as_integers = (front[0], front[1], front[2].astype(object), front[3].astype(object))
    exact = covered(query[0], query[1].astype(object), query[2].astype(object), as_integers, budget)
    scan = [
        any(c == qc and fc <= qcost and fp <= qpeak for c, fc, fp in zip(cell[keep], cost[keep], peak[keep]))
        or (budget is not None and qpeak > budget)
        for qc, qcost, qpeak in queries
    ]
    assert list(fast) == list(exact) == scan
