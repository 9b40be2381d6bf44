"""Scheduling on T threads: the exact schedule of one plan, the plan and schedule of least
makespan (against exhaustive search and the reference solver's ACDA'25 results), and
scheduled plans as values."""

import random
from functools import cache

import pytest
from bruteforce import all_plans
from conformance import chain_of, read_acda25, read_examples

from chainorder import Chain, Plan, optimize
from chainorder.core.schedule import Slot, TaskTree, check_schedule, list_schedule, task_tree
from chainorder.core.schedulebounds import energy_infeasible, pair_bound, tail_bound, window_bound
from chainorder.core.schedulesearch import least_makespan


def exhaustive_makespan(tree: TaskTree, threads: int) -> int:
    """Every order and every thread for every task, memoized on the state (an oracle)."""
    count = len(tree.durations)

    @cache
    def best(done: frozenset, free: tuple, ends: tuple) -> int:
        if len(done) == count:
            return max(free)
        finish = dict(ends)
        result = None
        for task in range(count):
            if task in done or any(child not in done for child in tree.children[task]):
                continue
            ready = max((finish[child] for child in tree.children[task]), default=0)
            for device in set(free):
                start = max(ready, device)
                slots = list(free)
                slots[slots.index(device)] = start + tree.durations[task]
                value = best(
                    done | {task},
                    tuple(sorted(slots)),
                    tuple(sorted({**finish, task: start + tree.durations[task]}.items())),
                )
                result = value if result is None else min(result, value)
        return result

    return best(frozenset(), (0,) * threads, ())


def random_tree(rng: random.Random, size: int) -> TaskTree:
    """A random in-tree: each task consumes up to two earlier results (one root at the end)."""
    while True:
        children: list[tuple[int, ...]] = []
        pending: list[int] = []
        for task in range(size):
            take = rng.choice([0, 1, 2]) if len(pending) >= 2 else rng.choice([0, 1]) if pending else 0
            rng.shuffle(pending)
            children.append(tuple(pending.pop() for _ in range(take)))
            pending.append(task)
        if len(pending) == 1:
            return TaskTree(tuple(rng.randint(0, 9) for _ in range(size)), tuple(children))


@pytest.mark.parametrize("seed", range(40))
def test_least_makespan_is_the_exhaustive_optimum(seed):
    rng = random.Random(seed)
    tree = random_tree(rng, rng.randint(1, 7))
    for threads in (1, 2, 3):
        makespan, slots = least_makespan(tree, threads)
        assert makespan == exhaustive_makespan(tree, threads)
        check_schedule(tree, threads, slots)
        assert max(slot.end for slot in slots) == makespan


@pytest.mark.parametrize("seed", range(60))
def test_list_schedule_is_valid_and_bounds_hold(seed):
    rng = random.Random(100 + seed)
    tree = random_tree(rng, rng.randint(2, 9))
    for threads in (1, 2, 4):
        slots = list_schedule(tree, threads)
        check_schedule(tree, threads, slots)
        optimum = least_makespan(tree, threads)[0]
        assert optimum <= max(slot.end for slot in slots)
        tails = tree.tails()
        heads = [0] * len(tree.durations)
        for task in tree.topological_order():
            heads[task] = max((heads[c] + tree.durations[c] for c in tree.children[task]), default=0)
        items = [(heads[t], tails[t], tree.durations[t]) for t in range(len(heads))]
        assert tail_bound([(tail, work) for _, tail, work in items], [0] * threads) <= optimum
        assert window_bound(items, [0] * threads) <= optimum
        assert pair_bound(tree, threads) <= optimum
        assert not energy_infeasible(tree, threads, optimum)  # never refutes a makespan that is reached


def test_check_schedule_names_what_is_wrong():
    tree = TaskTree((3, 4, 5), ((), (), (0, 1)))
    check_schedule(tree, 2, [Slot(0, 0, 3), Slot(1, 0, 4), Slot(0, 4, 9)])
    with pytest.raises(ValueError, match="before its operand"):
        check_schedule(tree, 2, [Slot(0, 0, 3), Slot(1, 0, 4), Slot(0, 3, 8)])
    with pytest.raises(ValueError, match="overlap on device 0"):
        check_schedule(tree, 2, [Slot(0, 0, 3), Slot(0, 1, 5), Slot(1, 5, 10)])
    with pytest.raises(ValueError, match="its cost is 5"):
        check_schedule(tree, 2, [Slot(0, 0, 3), Slot(1, 0, 4), Slot(0, 4, 8)])
    with pytest.raises(ValueError, match="not one of the 2 threads"):
        check_schedule(tree, 2, [Slot(2, 0, 3), Slot(1, 0, 4), Slot(0, 4, 9)])


def least_makespan_of_all_plans(chain: Chain, threads: int) -> int:
    return min(least_makespan(task_tree(steps), threads)[0] for steps in all_plans(chain))


@pytest.mark.parametrize("seed", range(12))
def test_optimize_threads_is_the_least_makespan_of_every_plan(seed):
    rng = random.Random(seed)
    dims = [rng.randint(2, 30) for _ in range(rng.randint(2, 5))]
    chain = chain_of([(n, m, rng.randint(10, 200)) for n, m in zip(dims, dims[1:])])
    for threads in (1, 2, 3):
        plan = optimize(chain, threads=threads)
        assert plan.proven
        assert plan.makespan == plan.cost == least_makespan_of_all_plans(chain, threads)
        check_schedule(task_tree(plan.steps), threads, plan.schedule)


def test_one_thread_is_the_sequential_optimum_and_many_the_critical_path():
    chain = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8, 300])
    assert optimize(chain, threads=1).makespan == optimize(chain).cost
    assert optimize(chain, threads=len(chain)).makespan == optimize(chain, parallel=True).cost


# -- the reference solver's results --------------------------------------------------------

ACDA25 = read_acda25()


def _acda_cases(lengths, every=1):
    cases = []
    for number, row in enumerate(ACDA25):
        length = len(row["layers"])
        if length in lengths and number % every == 0:
            cases += [(number, threads) for threads in range(2, length)]
    return cases


def _check_acda(number, threads):
    row = ACDA25[number]
    plan = optimize(chain_of(row["layers"]), threads=threads, time_limit=30)
    reference_dp, reference_bnb = row["dp_makespan"][threads - 1], row["bnb_makespan"][threads - 1]
    assert plan.makespan <= reference_dp
    assert plan.makespan <= reference_bnb
    if row["bnb_proven"][threads - 1]:
        assert plan.makespan == reference_bnb
    assert plan.proven
    return plan


def test_acda25_short_chains_all_threads():
    """Every chain of length 3 to 5, every T from 2 to L-1: proven, and equal to the reference's
    branch and bound (proven there too)."""
    for number, threads in _acda_cases({3, 4, 5}):
        _check_acda(number, threads)


@pytest.mark.slow
def test_acda25_length_6_to_8_sample():
    """One chain in 25 of lengths 6 to 8, every T: never worse than the reference, proven."""
    for number, threads in _acda_cases({6, 7, 8}, every=25):
        _check_acda(number, threads)


SCHEDULED_EXAMPLES = [
    pytest.param(block, expect, id=f"{block['name']}-T{expect['threads']}")
    for block in read_examples()
    for expect in block["expect"]
    if expect["threads"] >= 2 and "bnb" in expect
]


def test_example_chains_with_threads_are_read():
    assert len(SCHEDULED_EXAMPLES) >= 6


@pytest.mark.parametrize("block, expect", SCHEDULED_EXAMPLES)
def test_example_chain_on_threads(block, expect):
    chain = chain_of(block["layers"])
    plan = optimize(chain, threads=expect["threads"], time_limit=5)
    assert plan.makespan <= expect["dp"]
    assert plan.makespan <= expect["bnb"]
    if expect["proven"]:
        assert plan.makespan == expect["bnb"]
    assert plan.forward_cost == expect["forward"] and plan.reverse_cost == expect["reverse"]


# -- scheduled plans as values ---------------------------------------------------------------


def test_scheduled_plan_round_trips_and_compares_with_its_schedule():
    chain = Chain.from_dims([784, 256, 32, 256, 784])
    plan = optimize(chain, threads=2)
    assert Plan.from_json(plan.to_json(), chain) == plan
    data = plan.to_dict()
    assert data["threads"] == 2 and data["makespan"] == plan.makespan and data["proven"] is True
    listed = Plan(chain, plan.steps, threads=2)  # the same steps, list-scheduled
    assert listed.schedule == list_schedule(task_tree(plan.steps), 2)
    assert listed.proven is False
    moved = [Slot(1 - slot.device, slot.start, slot.end) for slot in plan.schedule]
    other = Plan(chain, plan.steps, threads=2, schedule=moved)
    assert other != plan and other.makespan == plan.makespan
    assert "Makespan:" in str(plan) and "proven optimal" in str(plan)


def test_bad_thread_options_are_named():
    chain = Chain.from_dims([784, 256, 32, 256, 784])
    for bad in (0, -1):
        with pytest.raises(ValueError, match="threads must be at least 1"):
            optimize(chain, threads=bad)
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError, match="threads must be a positive integer"):
            optimize(chain, threads=bad)
    with pytest.raises(ValueError, match="contradicts"):
        optimize(chain, threads=2, objective="fma")
    with pytest.raises(ValueError, match="contradicts"):
        optimize(chain, threads=2, parallel=True)
    with pytest.raises(ValueError, match="needs the number of threads"):
        optimize(chain, objective="makespan")
    with pytest.raises(TypeError, match="time_limit must be a number"):
        optimize(chain, threads=2, time_limit="1s")
    with pytest.raises(ValueError, match="time_limit must be >= 0"):
        optimize(chain, threads=2, time_limit=-1)
    with pytest.raises(ValueError, match="no plan and schedule on 2 threads was found within memory_limit 1,000"):
        optimize(chain, threads=2, memory_limit=1000)
    with pytest.raises(ValueError, match="peaks at .* elements on device 0, over memory_limit"):
        Plan(chain, optimize(chain, threads=2).steps, threads=2, memory_limit=700_000 - 100_000)
    plan = optimize(chain, threads=2)
    with pytest.raises(ValueError, match="needs threads=T"):
        Plan(chain, plan.steps, schedule=plan.schedule)
    with pytest.raises(ValueError, match="overlap"):
        Plan(chain, plan.steps, threads=2, schedule=[Slot(0, s.start, s.end) for s in plan.schedule])
    with pytest.raises(ValueError, match="schedule must be"):
        Plan.from_json(plan.to_json().replace('"schedule": [[', '"schedule": [["x", '), chain)


def test_time_limit_returns_the_best_found_unproven():
    # an ACDA'25 chain whose search visits thousands of partial plans on 5 threads
    layers = [(35, 21, 9164), (21, 33, 7687), (33, 30, 7508), (30, 30, 9266), (30, 38, 7854), (38, 48, 2363)]
    chain = chain_of(layers + [(48, 21, 7211), (21, 26, 3269)])
    plan = optimize(chain, threads=5, time_limit=0.0)
    assert plan.proven is False
    check_schedule(task_tree(plan.steps), 5, plan.schedule)
    assert plan.makespan <= min(optimize(chain).cost, Plan(chain, optimize(chain, parallel=True).steps, threads=5).cost)


def test_device_peaks_follow_the_memory_model():
    from chainorder.core.memory import MemoryModel, peak_memory
    from chainorder.core.steps import Step

    chain = Chain.from_dims([300, 120, 12, 120, 16, 140, 300])
    sequential = optimize(chain)
    assert Plan(chain, sequential.steps, threads=1).device_peaks == (peak_memory(chain, sequential.steps),)
    # two layers: each preaccumulated on its own device, the product on device 0
    chain = Chain.from_dims([30, 5, 40])
    model = MemoryModel(chain)
    first = Step("tangent_preaccumulation", 0, 0, None, 30 * 150)
    second = Step("adjoint_preaccumulation", 1, 1, None, 40 * 200)
    product = Step("product", 0, 1, 0, 40 * 5 * 30)
    schedule = [(0, 0, 4500), (1, 0, 8000), (0, 8000, 14000)]
    plan = Plan(chain, [first, second, product], threads=3, schedule=schedule)
    workspace = {step: model.workspace(step.kind, step.first, step.last, step.split) for step in plan.steps}
    assert plan.device_peaks == (
        max(workspace[first], workspace[product]) + model.primal,
        workspace[second] + model.primal,
        0,  # no step runs there
    )


def every_schedule(tree: TaskTree, threads: int):
    """Every semi-active schedule of the tree (each task at the earliest start on the thread chosen
    for it, in every order and on every thread): an oracle for small trees."""
    count = len(tree.durations)

    def extend(slots, free):
        if all(slot is not None for slot in slots):
            yield tuple(slots)
            return
        for task in range(count):
            if slots[task] is not None or any(slots[c] is None for c in tree.children[task]):
                continue
            ready = max((slots[c].end for c in tree.children[task]), default=0)
            for device in range(threads):
                start = max(ready, free[device])
                slots[task] = Slot(device, start, start + tree.durations[task])
                saved, free[device] = free[device], start + tree.durations[task]
                yield from extend(slots, free)
                free[device], slots[task] = saved, None

    yield from extend([None] * count, [0] * threads)


@pytest.mark.parametrize("seed", range(6))
def test_memory_limit_per_device_is_the_exhaustive_optimum(seed):
    from chainorder.core.memory import device_peaks

    rng = random.Random(seed)
    dims = [rng.randint(5, 40) for _ in range(4)]
    chain = chain_of([(n, m, rng.randint(10, 300)) for n, m in zip(dims, dims[1:])])
    best: dict[int, int] = {}  # least makespan of any plan and schedule, by its largest device peak
    for steps in all_plans(chain):
        tree = task_tree(steps)
        for slots in every_schedule(tree, 2):
            peak = max(device_peaks(chain, steps, slots, 2))
            makespan = max(slot.end for slot in slots)
            best[peak] = min(best.get(peak, makespan), makespan)
    peaks = sorted(best)
    answers = {min(best[peak] for peak in peaks if peak <= limit) for limit in peaks}
    assert seed != 0 or len(answers) > 1  # the limit changes the answer on this chain
    for limit in peaks + [peaks[0] - 1]:
        allowed = [best[peak] for peak in peaks if peak <= limit]
        if not allowed:
            with pytest.raises(ValueError, match="no plan and schedule on 2 threads"):
                optimize(chain, threads=2, memory_limit=limit)
            continue
        plan = optimize(chain, threads=2, memory_limit=limit)
        assert plan.proven and max(plan.device_peaks) <= limit
        assert plan.makespan == min(allowed), limit


def test_a_long_chain_returns_its_best_start_within_the_time_limit():
    """80 layers: the search's tables alone (q^3 / 2 steps) would outlast the limit; the best of
    the list-scheduled FMA-optimal and critical-path plans comes back, not proven."""
    rng = random.Random(80)
    chain = Chain.from_dims([rng.randint(5, 500) for _ in range(81)])
    plan = optimize(chain, threads=4, time_limit=0.0)
    assert plan.proven is False
    check_schedule(task_tree(plan.steps), 4, plan.schedule)
    starts = [optimize(chain).steps, optimize(chain, parallel=True).steps]
    assert plan.makespan == min(Plan(chain, steps, threads=4).makespan for steps in starts)

