"""The house rules, checked: layered imports without cycles, a core without jax or matplotlib,
plans as values, one table of step kinds, cost ties broken by memory."""

import ast
import json
import pickle
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from bruteforce import all_plan_points
from conftest import chains, options
from hypothesis import given, settings

import chainorder
from chainorder import Chain, Layer, Objective, Plan, StepKind, optimize, pareto
from chainorder.backend.steprun import EXECUTORS

PACKAGE = Path(chainorder.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions, resolved to full names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> nx.DiGraph:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for imported in _imports(path):
            if imported in modules and imported != name:
                graph.add_edge(name, imported)
    return graph


def test_the_import_graph_has_no_cycles():
    graph = _graph()
    # the package's __init__ files re-export (and register the backend): leave them out
    inner = graph.subgraph(name for name in graph if not name.endswith(("chainorder", ".core", ".backend", ".front")))
    assert list(nx.simple_cycles(inner)) == []
    assert inner.number_of_edges() > 30  # the scan does see the imports


def test_layers_import_only_downwards():
    for path in (PACKAGE / "core").glob("*.py"):
        imported = _imports(path)
        assert not {name for name in imported if name.split(".")[0] in ("jax", "matplotlib")}, path.name
        assert not {name for name in imported if name.startswith(("chainorder.backend", "chainorder.front"))}, path
    for path in (PACKAGE / "backend").glob("*.py"):
        imported = _imports(path)
        assert not {name for name in imported if name.startswith(("chainorder.front", "matplotlib"))}, path.name


def test_the_core_runs_without_jax_and_matplotlib():
    code = (
        "import sys; sys.modules['jax'] = None; sys.modules['matplotlib'] = None\n"
        "import chainorder as co\n"
        "plan = co.optimize(co.Chain.from_dims([784, 256, 32, 256, 784]))\n"
        "front = co.pareto(co.Chain.from_dims([50, 10, 60, 5]))\n"
        "print(plan.cost, len(front), co.Plan.from_json(plan.to_json(), plan.chain) == plan)\n"
        "assert not [m for m in sys.modules if m.startswith(('chainorder.backend', 'chainorder.front'))]\n"
        "try:\n    plan.jacobian([1.0])\nexcept ImportError as error:\n    print('ImportError', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "33038336 2 True"
    assert lines[1].startswith("ImportError executing plans needs JAX: pip install 'chainorder[jax]'")


def test_every_step_kind_has_one_row_everywhere():
    assert set(EXECUTORS) == set(StepKind)
    assert [kind.value for kind in StepKind] == [
        "tangent_preaccumulation",
        "adjoint_preaccumulation",
        "tangent_step",
        "adjoint_step",
        "product",
    ]
    assert sorted(kind.code for kind in StepKind) == list(range(5))
    assert len({kind.label for kind in StepKind}) == 5
    assert {kind.direction for kind in StepKind} == {"tangent", "adjoint", None}


def test_plans_are_values():
    chain = Chain.from_dims([784, 256, 32, 256, 784])
    plan = optimize(chain)
    again = Plan.from_json(plan.to_json(), chain)
    assert again == plan and hash(again) == hash(plan) and again is not plan
    assert {plan: "a", again: "b"} == {plan: "b"}
    assert pickle.loads(pickle.dumps(plan)) == plan
    assert optimize(chain, "forward") != plan
    assert optimize(chain, parallel=True) != Plan(chain, plan.steps)  # another objective
    with pytest.raises(AttributeError, match="immutable"):
        plan.cost = 0
    with pytest.raises(AttributeError, match="immutable"):
        del plan.steps
    assert isinstance(plan.steps, tuple)
    assert plan.bracketing == "(t(2) >> t(3..3)) @ (a(0..0) << a(1))"
    assert json.loads(plan.to_json())["bracketing"] == plan.bracketing


def test_objective_is_a_value_and_parallel_its_alias():
    chain = Chain.from_dims([30, 5, 40, 3, 50])
    assert optimize(chain, parallel=True) == optimize(chain, objective="critical_path")
    assert optimize(chain, parallel=True).objective is Objective.CRITICAL_PATH
    assert optimize(chain).objective is Objective.FMA and not optimize(chain).parallel
    with pytest.raises(ValueError, match="contradicts"):
        optimize(chain, objective="fma", parallel=True)
    with pytest.raises(ValueError, match="unknown objective 'seconds'"):
        optimize(chain, objective="seconds")
    with pytest.raises(ValueError, match="contradicts"):
        optimize(chain, objective="time", parallel=True)
    data = json.loads(optimize(chain, parallel=True).to_json())
    assert data["objective"] == "critical_path" and data["parallel"] is True


def test_a_plan_can_be_handed_back_to_jacobian():
    import jax
    import jax.numpy as jnp

    w1, w2 = jnp.ones((4, 40)) / 40, jnp.ones((40, 4)) / 4
    f = lambda v: jnp.tanh(w2 @ jnp.sin(w1 @ v))  # noqa: E731
    x = jnp.linspace(-1, 1, 40)
    forward = optimize(chainorder.analyze(f, x).chain, "forward")
    jacobian = chainorder.jacobian(f, plan=forward)
    assert jnp.allclose(jacobian(x), jax.jacobian(f)(x), atol=1e-12)
    (used,) = jacobian.plans.values()
    assert used is forward
    with pytest.raises(ValueError, match="the plan was made for a chain with dims"):
        chainorder.jacobian(f, plan=optimize(Chain.from_dims([40, 4, 40])))(x)
    with pytest.raises(TypeError, match="either plan= or optimize options"):
        chainorder.jacobian(f, plan=forward, strategy="reverse")(x)


def _least(chain, parallel, **opts):
    return min(all_plan_points(chain, parallel=parallel, **opts))


def test_equal_cost_goes_to_the_plan_of_least_memory():
    chain = Chain.from_dims([9, 7, 12, 1])
    plan = optimize(chain)
    assert (plan.cost, plan.peak_memory) == _least(chain, False) == (159, 132)


@settings(max_examples=150, deadline=None)
@given(chains(max_length=5, max_dim=12, max_cost=40), options)
def test_cost_then_memory_equals_brute_force(chain, opts):
    plan = optimize(chain, **opts)
    least = _least(chain, opts["parallel"], matrix_free=opts["matrix_free"], tape_limit=opts["tape_limit"])
    assert (plan.cost, plan.peak_memory) == least


def test_costs_beyond_floats_stay_exact():
    from bruteforce import all_plan_costs

    big = 10**400
    chain = Chain([Layer(5, 3, edges=big, adjoint_cost=2 * big), Layer(3, 8, edges=17), Layer(8, 2, edges=big + 1)])
    plan = optimize(chain)
    assert plan.cost == min(all_plan_costs(chain))
    assert f"{plan.cost:,}" in str(plan)
    assert pareto(chain)[-1].cost == plan.cost


@settings(max_examples=60, deadline=None)
@given(chains(max_length=4, max_dim=10**9, max_cost=2**66), options)
def test_cost_then_memory_is_exact_past_int64(chain, opts):
    # costs past 2**60: Python integers, screened in float64 and compared exactly
    opts = dict(opts, tape_limit=None if opts["tape_limit"] is None else opts["tape_limit"] * 2**54)
    plan = optimize(chain, **opts)
    least = _least(chain, opts["parallel"], matrix_free=opts["matrix_free"], tape_limit=opts["tape_limit"])
    assert (plan.cost, plan.peak_memory) == least


def test_long_chains_past_int64_match_the_int64_tables():
    # the same chain with dims scaled by 2**20 (costs past 2**60) picks plans of the same shape
    import random

    rng = random.Random(5)
    dims = [rng.randint(1, 60) for _ in range(41)]
    small = optimize(Chain.from_dims(dims))
    big = optimize(Chain.from_dims([d * 2**20 for d in dims]))
    assert big.cost > 2**60
    assert [(s.kind, s.first, s.last, s.split) for s in big.steps] == [
        (s.kind, s.first, s.last, s.split) for s in small.steps
    ]
