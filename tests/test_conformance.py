"""optimize() reproduces every sequential and unlimited-threads value of the
reference solver (tests/data/reference_solver.json, a copy of ../shared/conformance/)."""

import pytest
from conformance import chain_of, read_acda25, read_examples, read_shared_acda25, read_shared_examples, shared_dir

from chainorder import optimize

EXAMPLES = read_examples()
CASES = [
    pytest.param(
        block,
        expect,
        id=f"{block['name']}-T{expect['threads']}-M{expect['tape_limit']}-mf{expect['matrix_free']}",
    )
    for block in EXAMPLES
    for expect in block["expect"]
    if expect["threads"] in (0, 1)  # sequential and unlimited threads; 2 <= T < q is scheduling
]


def test_examples_are_all_read():
    assert len(EXAMPLES) == 6
    assert len(CASES) == 26


@pytest.mark.parametrize("block, expect", CASES)
def test_example_chain(block, expect):
    chain = chain_of(block["layers"])
    plan = optimize(
        chain,
        matrix_free=bool(expect["matrix_free"]),
        tape_limit=expect["tape_limit"] or None,  # 0 means no limit in the reference
        parallel=expect["threads"] == 0,
    )
    assert plan.cost == expect["dp"]
    if "forward" in expect:
        assert plan.forward_cost == expect["forward"]
        assert plan.reverse_cost == expect["reverse"]
    if expect.get("proven") == 1:
        assert plan.cost == expect["bnb"]


def test_pure_modes_match_reference():
    for block in EXAMPLES:
        chain = chain_of(block["layers"])
        for expect in block["expect"]:
            if "forward" not in expect:
                continue
            assert optimize(chain, "forward").cost == expect["forward"]
            limit = expect["tape_limit"] or None
            if limit is None or max(chain.edges) <= limit:
                assert optimize(chain, "reverse", tape_limit=limit).cost == expect["reverse"]
            else:
                with pytest.raises(ValueError, match="tape limit"):
                    optimize(chain, "reverse", tape_limit=limit)


@pytest.mark.slow
def test_acda25_sequential_and_unlimited_threads():
    rows = read_acda25()
    assert len(rows) == 2000
    mismatches = []
    for number, row in enumerate(rows):
        chain = chain_of(row["layers"])
        sequential = optimize(chain).cost
        # with as many threads as layers the reference DP is the unlimited-threads DP
        unlimited = optimize(chain, parallel=True).cost
        if sequential != row["optimum"] or unlimited != row["dp_makespan"][-1]:
            mismatches.append((number, sequential, row["optimum"], unlimited, row["dp_makespan"][-1]))
    assert mismatches == []


@pytest.mark.skipif(
    not (shared_dir() / "jcdp_examples.txt").exists(), reason="no ../shared/conformance beside the clone"
)
def test_the_copy_agrees_with_shared_conformance():
    assert read_examples() == read_shared_examples(shared_dir())
    assert read_acda25() == read_shared_acda25(shared_dir())
