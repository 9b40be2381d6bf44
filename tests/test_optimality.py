"""The DP equals exhaustive enumeration on random short chains."""

from bruteforce import all_plan_costs, plan_cost_by_hand
from conftest import chains, options
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chainorder import Chain, Layer, optimize
from chainorder.core.checks import check_steps


@settings(max_examples=300, deadline=None)
@given(chains(colors=True), options)
def test_dp_equals_brute_force(chain, opts):
    plan = optimize(chain, **opts)
    assert plan.cost == min(all_plan_costs(chain, **opts))
    # the plan's steps are valid and, priced by hand, cost what the plan says
    check_steps(chain, plan.steps, matrix_free=opts["matrix_free"], tape_limit=opts["tape_limit"])
    assert plan_cost_by_hand(chain, plan.steps, parallel=opts["parallel"]) == plan.cost


@settings(max_examples=100, deadline=None)
@given(chains(max_length=5, colors=True))
def test_pure_modes_are_plans_the_dp_could_pick(chain):
    """On sparse and explicit layers too: the pure modes' baselines stay jax.jacfwd/jax.jacrev (dense)."""
    # tangent-only (adjoint-only) plans are then not jacfwd/jacrev
    if chain[0].compressed or chain[0].explicit or chain[-1].compressed:
        dense = chain.without_structure()
        assert optimize(chain, "forward").forward_cost == optimize(dense, "forward").cost
        assert optimize(chain, "reverse").reverse_cost == optimize(dense, "reverse").cost
        assert optimize(chain).cost <= min(optimize(dense, "forward").cost, optimize(dense, "reverse").cost)
        return
    everything = all_plan_costs(chain)
    forward = optimize(chain, "forward")
    reverse = optimize(chain, "reverse")
    assert forward.cost == forward.forward_cost in everything
    assert reverse.cost == reverse.reverse_cost in everything
    assert optimize(chain).cost <= min(forward.cost, reverse.cost)


@settings(max_examples=100, deadline=None)
@given(chains(), st.integers(0, 12000))
def test_reverse_under_a_tape_limit_splits_the_adjoint(chain, limit):
    assume(max(chain.edges) <= limit)
    plan = optimize(chain, "reverse", tape_limit=limit)
    assert plan.cost == plan.reverse_cost
    assert plan.mode == "reverse"
    for step in plan.steps:
        first, last = step.layers_applied
        assert sum(chain.edges[first : last + 1]) <= limit


def test_a_longer_chain_against_brute_force():
    # 8 layers: ~10^6 plans; the set-based enumeration keeps it quick
    chain = Chain(
        [
            Layer(n, m, edges=e, tangent_cost=t, adjoint_cost=a)
            for n, m, e, t, a in [
                (30, 7, 900, 800, 2100),
                (7, 45, 300, 350, 700),
                (45, 2, 90, 100, 200),
                (2, 60, 120, 100, 260),
                (60, 60, 3600, 3600, 7000),
                (60, 5, 300, 310, 620),
                (5, 33, 165, 170, 300),
                (33, 12, 396, 400, 800),
            ]
        ]
    )
    for limit in (None, 1000, 4000):
        for parallel in (False, True):
            expected = min(all_plan_costs(chain, tape_limit=limit, parallel=parallel))
            assert optimize(chain, tape_limit=limit, parallel=parallel).cost == expected


@settings(max_examples=60, deadline=None)
@given(chains(max_length=5, max_dim=10**9, max_cost=2**66), options)
def test_dp_is_exact_with_huge_dims_and_costs(chain, opts):
    opts = dict(opts, tape_limit=None if opts["tape_limit"] is None else opts["tape_limit"] * 2**54)
    assert optimize(chain, **opts).cost == min(all_plan_costs(chain, **opts))
