"""Chains and layers: construction, the networkx graph, and bad input."""

import math

import networkx as nx
import numpy as np
import pytest

from chainorder import Chain, Layer, optimize


def test_from_dims_builds_dense_layers():
    chain = Chain.from_dims([784, 256, 32, 256, 784])
    assert chain.dims == (784, 256, 32, 256, 784)
    assert chain.edges == (784 * 256, 256 * 32, 32 * 256, 256 * 784)
    assert chain.tangent_costs == chain.edges == chain.adjoint_costs


def test_explicit_costs_and_defaults():
    layer = Layer(56, 195, edges=44366, tangent_cost=44366, adjoint_cost=88732)
    assert (layer.edges, layer.tangent_cost, layer.adjoint_cost) == (44366, 44366, 88732)
    assert Layer(3, 4, edges=7).adjoint_cost == 7
    assert Layer(np.int64(3), np.int32(4)).edges == 12


def test_graph_nodes_and_edges():
    chain = Chain([Layer(168, 56, edges=63834), Layer(56, 195, edges=44366, adjoint_cost=88732, name="b")])
    graph = chain.graph
    assert isinstance(graph, nx.DiGraph)
    assert [graph.nodes[i]["size"] for i in graph.nodes] == [168, 56, 195]
    assert list(graph.edges) == [(0, 1), (1, 2)]
    data = graph.edges[1, 2]
    assert (data["in_dim"], data["out_dim"], data["edges"], data["tangent_cost"], data["adjoint_cost"]) == (
        56, 195, 44366, 44366, 88732,
    )
    assert data["name"] == "b" and data["layer"] == 1
    assert nx.is_directed_acyclic_graph(graph)
    assert Chain.from_graph(graph) == chain


def test_slicing_and_equality():
    chain = Chain.from_dims([5, 4, 3, 2])
    assert chain[1:].dims == (4, 3, 2)
    assert chain[0] == Layer(5, 4)
    assert chain == Chain.from_dims([5, 4, 3, 2])
    assert len(chain) == 3


@pytest.mark.parametrize(
    "dims, error, words",
    [
        ([3, 0, 2], ValueError, "dims[1] must be >= 1, got 0"),
        ([3, -4, 2], ValueError, "dims[1] must be >= 1, got -4"),
        ([3, 2.5, 2], TypeError, "dims[1] must be an integer, got 2.5"),
        ([3, 2.0, 2], TypeError, "dims[1] must be an integer"),
        ([3, True, 2], TypeError, "dims[1] must be an integer, got True"),
        ([3, math.nan, 2], ValueError, "dims[1] is NaN"),
        ([3, None, 2], TypeError, "dims[1] must be an integer, got None"),
        ([3, "4", 2], TypeError, "dims[1] must be an integer, got '4'"),
        ([3], ValueError, "at least two entries"),
        ([], ValueError, "at least two entries"),
        ("345", TypeError, "sequence of integers"),
    ],
)
def test_bad_dims(dims, error, words):
    with pytest.raises(error) as info:
        Chain.from_dims(dims)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(in_dim=0, out_dim=3), ValueError, "in_dim must be >= 1"),
        (dict(in_dim=3, out_dim=-1), ValueError, "out_dim must be >= 1"),
        (dict(in_dim=3, out_dim=2, edges=-5), ValueError, "edges must be >= 0, got -5"),
        (dict(in_dim=3, out_dim=2, tangent_cost=-1), ValueError, "tangent_cost must be >= 0"),
        (dict(in_dim=3, out_dim=2, adjoint_cost=1.5), TypeError, "adjoint_cost must be an integer"),
        (dict(in_dim=3, out_dim=2, edges=math.nan), ValueError, "edges is NaN"),
        (dict(in_dim=3, out_dim=2, name="dense1", edges=-1), ValueError, "layer 'dense1': edges"),
        (dict(in_dim=3, out_dim=2, fn=5), TypeError, "fn must be callable"),
        (dict(in_dim=6, out_dim=2, in_shape=(2, 2)), ValueError, "in_shape (2, 2) has 4 entries"),
    ],
)
def test_bad_layers(kwargs, error, words):
    with pytest.raises(error) as info:
        Layer(**kwargs)
    assert words in str(info.value)


def test_bad_chains():
    with pytest.raises(ValueError, match="at least one layer"):
        Chain([])
    with pytest.raises(ValueError, match="layer 2: in_dim 5 does not match layer 1's out_dim 4"):
        Chain([Layer(2, 3), Layer(3, 4), Layer(5, 1)])
    with pytest.raises(TypeError, match="layer 1: expected a chainorder.Layer, got tuple"):
        Chain([Layer(2, 3), (3, 4)])
    with pytest.raises(TypeError, match="list of Layer"):
        Chain(5)


def test_bad_options():
    chain = Chain.from_dims([4, 3, 2])
    with pytest.raises(ValueError, match="unknown strategy 'fastest'"):
        optimize(chain, "fastest")
    with pytest.raises(ValueError, match="tape_limit must be >= 0"):
        optimize(chain, tape_limit=-1)
    with pytest.raises(TypeError, match="tape_limit must be an integer"):
        optimize(chain, tape_limit=2.5)
    with pytest.raises(TypeError, match="matrix_free must be True or False"):
        optimize(chain, matrix_free="no")
    with pytest.raises(ValueError, match="matrix-free mode"):
        optimize(chain, "forward", matrix_free=False)
    with pytest.raises(ValueError, match="layer 0 needs a tape of 12 edges, over the tape limit 10"):
        optimize(chain, "reverse", tape_limit=10)
    with pytest.raises(TypeError, match="expected a chainorder.Chain"):
        optimize([4, 3, 2])


def test_numpy_integers_are_accepted_as_limits():
    chain = Chain.from_dims([40, 8, 40])
    plan = optimize(chain, tape_limit=np.int64(400), memory_limit=np.int32(10**6))
    assert plan.tape_limit == 400 and type(plan.tape_limit) is int
    assert plan.cost == optimize(chain, tape_limit=400).cost
