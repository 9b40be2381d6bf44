"""Plans: steps that replay, exact costs, the printed table, JSON in and out."""

import json

import pytest
from bruteforce import all_plan_costs, plan_cost_by_hand

from chainorder import Chain, Layer, Plan, Step, optimize
from chainorder.core.checks import check_steps

AUTOENCODER = Chain.from_dims([784, 256, 32, 256, 784])


def test_steps_replay_in_order_and_add_up():
    plan = optimize(AUTOENCODER)
    produced = set()
    for step in plan.steps:
        for operand in step.operands:
            assert operand in produced
        produced.add((step.first, step.last))
    assert (plan.steps[-1].first, plan.steps[-1].last) == (0, len(AUTOENCODER) - 1)
    assert plan_cost_by_hand(AUTOENCODER, plan.steps) == plan.cost == 33038336
    assert plan.speedup == 327548928 / 33038336


def test_autoencoder_values():
    # forward = reverse = 784 * (784*256 + 256*32 + 32*256 + 256*784)
    plan = optimize(AUTOENCODER)
    assert plan.forward_cost == plan.reverse_cost == 784 * 417792
    assert plan.cost == min(all_plan_costs(AUTOENCODER))
    assert plan.mode == "mixed"
    assert optimize(AUTOENCODER, "forward").mode == "forward"
    assert optimize(AUTOENCODER, "reverse").mode == "reverse"


def test_print_shows_everything():
    plan = optimize(AUTOENCODER)
    text = str(plan)
    assert "784 -> 256 -> 32 -> 256 -> 784" in text
    assert f"{plan.forward_cost:,}" in text and f"{plan.reverse_cost:,}" in text
    assert f"{plan.cost:,}" in text
    assert f"{plan.speedup:.3g}x" in text
    step_lines = [line for line in text.splitlines() if line.strip()[:1].isdigit()]
    assert len(step_lines) == len(plan.steps)
    for line, step in zip(step_lines, plan.steps):
        assert f"{step.cost:,}" in line and f"{step.first}..{step.last}" in line


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(parallel=True),
        dict(matrix_free=False),
        dict(tape_limit=50000),
        dict(strategy="forward"),
        dict(strategy="reverse", tape_limit=300000),
    ],
)
def test_json_round_trip(options):
    plan = optimize(AUTOENCODER, **options)
    again = Plan.from_json(plan.to_json(), AUTOENCODER)
    assert again.steps == plan.steps
    assert (again.cost, again.strategy, again.tape_limit, again.parallel, again.matrix_free) == (
        plan.cost, plan.strategy, plan.tape_limit, plan.parallel, plan.matrix_free,
    )
    data = json.loads(plan.to_json())
    assert {"dims", "forward", "reverse", "optimal", "speedup", "steps"} <= set(data)
    assert set(data["steps"][0]) == {"kind", "first", "last", "split", "cost"}


def test_json_errors():
    plan = optimize(AUTOENCODER)
    text = plan.to_json()
    with pytest.raises(ValueError, match="malformed"):
        Plan.from_json(text[:-5], AUTOENCODER)
    with pytest.raises(ValueError, match="must be an object"):
        Plan.from_json("[1, 2]", AUTOENCODER)
    with pytest.raises(ValueError, match="another chain: it has 4 layers, this chain 2"):
        Plan.from_json(text, Chain.from_dims([784, 20, 784]))
    with pytest.raises(ValueError, match=r"layer 2 differs \(edges 8192 vs 9000"):
        other = Chain([*AUTOENCODER.layers[:2], Layer(32, 256, edges=9000), AUTOENCODER[3]])
        Plan.from_json(text, other)
    data = json.loads(text)
    data["steps"][0]["cost"] += 1
    with pytest.raises(ValueError, match="step 0 .* states cost"):
        Plan.from_json(json.dumps(data), AUTOENCODER)
    data = json.loads(text)
    data["steps"] = data["steps"][::-1]
    with pytest.raises(ValueError, match="before any step produced it"):
        Plan.from_json(json.dumps(data), AUTOENCODER)
    data = json.loads(text)
    data["steps"][0]["kind"] = "magic"
    with pytest.raises(ValueError, match="unknown kind 'magic'"):
        Plan.from_json(json.dumps(data), AUTOENCODER)
    data = json.loads(text)
    del data["steps"][-1]
    with pytest.raises(ValueError, match="leave .* alive"):
        Plan.from_json(json.dumps(data), AUTOENCODER)
    with pytest.raises(TypeError, match="needs the plan's Chain"):
        Plan.from_json(text, [784, 256])


def test_check_steps_enforces_options():
    chain = Chain.from_dims([4, 3, 2])
    steps = optimize(chain, "reverse").steps
    with pytest.raises(ValueError, match="over the tape limit 5"):
        check_steps(chain, steps, tape_limit=5)
    with pytest.raises(ValueError, match="dense-only plan"):
        check_steps(chain, optimize(chain, "forward").steps, matrix_free=False)
    with pytest.raises(ValueError, match="split 1 must lie in 0..0"):
        check_steps(chain, [Step("tangent_preaccumulation", 0, 0, None, 48), Step("tangent_step", 0, 1, 1, 0)])


def test_dims_of_a_billion_are_exact():
    chain = Chain.from_dims([10**9, 10**9, 1, 10**9, 7])
    for parallel in (False, True):
        plan = optimize(chain, parallel=parallel)
        assert plan.cost == min(all_plan_costs(chain, parallel=parallel))
        assert isinstance(plan.cost, int)
    assert optimize(chain, "forward").cost == 10**9 * (10**18 + 10**9 + 10**9 + 7 * 10**9)


def test_costs_above_2_to_the_63_are_exact():
    big = 2**64 + 3
    chain = Chain(
        [
            Layer(5, 3, edges=big, tangent_cost=big, adjoint_cost=2 * big + 1),
            Layer(3, 8, edges=17),
            Layer(8, 2, edges=2**70 + 1),
        ]
    )
    plan = optimize(chain)
    assert plan.cost == min(all_plan_costs(chain)) > 2**63
    assert plan.forward_cost == 5 * (big + 17 + 2**70 + 1)
    assert plan.reverse_cost == 2 * (2 * big + 1 + 17 + 2**70 + 1)
    assert Plan.from_json(plan.to_json(), chain).cost == plan.cost
    limited = optimize(chain, tape_limit=2**70 + 1)
    assert limited.cost == min(all_plan_costs(chain, tape_limit=2**70 + 1))


def test_a_long_chain_is_valid_and_beats_pure_modes():
    import random

    rng = random.Random(1)
    dims = [rng.randint(1, 300) for _ in range(301)]
    chain = Chain.from_dims(dims)
    plan = optimize(chain)  # 300 layers: no recursion limits when reading the plan
    check_steps(chain, plan.steps)
    assert plan.cost <= min(plan.forward_cost, plan.reverse_cost)
    assert len(plan.steps) <= 2 * len(chain) - 1
