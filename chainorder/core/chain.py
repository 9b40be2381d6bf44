"""Chains: the compositions of layers whose Jacobian chainorder accumulates.

A chain ``F = F_{q-1} o ... o F_1 o F_0`` is a list of
:class:`~chainorder.core.layer.Layer` objects (each with its dimensions and its
costs), applied first to last; as a networkx graph, its nodes are the values
between layers and its edges the layers.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .engine import backend
from .layer import Layer, check_int

__all__ = ["Chain"]


class Chain(Sequence[Layer]):
    """A composition of layers ``F_{q-1} o ... o F_0``, applied first to last.

    Parameters
    ----------
    layers : iterable of Layer
        ``layers[i].out_dim`` must equal ``layers[i+1].in_dim``.

    Examples
    --------
    >>> chain = Chain.from_dims([784, 256, 32, 256, 784])
    >>> len(chain), chain.dims
    (4, (784, 256, 32, 256, 784))
    >>> chain.graph.nodes[2]["size"]
    32
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
            raise TypeError(f"Chain needs a list of Layer objects, got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("a chain needs at least one layer; got an empty list")
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"layer {index}: expected a chainorder.Layer, got {type(layer).__name__}"
                )
        for index in range(1, len(layers)):
            before, after = layers[index - 1], layers[index]
            if after.in_dim != before.out_dim:
                raise ValueError(
                    f"layer {index}: in_dim {after.in_dim} does not match "
                    f"layer {index - 1}'s out_dim {before.out_dim}"
                )
        self._layers: tuple[Layer, ...] = tuple(layers)
        self._graph = None

    # -- construction ------------------------------------------------------------
    @classmethod
    def from_dims(cls, dims: Sequence[int]) -> Chain:
        """A chain of dense layers ``dims[i] -> dims[i+1]`` (``edges = in * out``).

        >>> Chain.from_dims([3, 5, 2]).layers[1]
        Layer(in_dim=5, out_dim=2, edges=10, tangent_cost=10, adjoint_cost=10)
        """
        if isinstance(dims, (str, bytes)) or not isinstance(dims, Iterable):
            raise TypeError(f"dims must be a sequence of integers, got {type(dims).__name__}")
        dims = list(dims)
        if len(dims) < 2:
            raise ValueError(
                f"dims needs at least two entries (input and output size), got {dims!r}"
            )
        checked = [check_int(d, f"dims[{i}]", minimum=1) for i, d in enumerate(dims)]
        return cls(Layer(checked[i], checked[i + 1]) for i in range(len(checked) - 1))

    @classmethod
    def from_functions(cls, functions: Sequence[Callable[..., Any]], x0: Any) -> Chain:
        """A chain of JAX functions applied in order to an example input ``x0``.

        Dimensions come from the functions' output shapes and costs from their
        jaxprs (see :mod:`chainorder.backend.opcount`). Needs jax.

        Raises
        ------
        TypeError, ValueError
            Naming the layer whose function is not callable, fails on its
            input, or returns something other than an array.
        ImportError
            Without JAX.
        """
        return backend().chain_from_functions(functions, x0)

    # -- sequence protocol -------------------------------------------------------
    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Chain(self._layers[index])
        return self._layers[index]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chain) and self._layers == other._layers

    def __hash__(self) -> int:
        return hash(self._layers)

    def __repr__(self) -> str:
        return f"Chain(dims={list(self.dims)}, edges={list(self.edges)})"

    # -- the composed function (needs layers with fn) -----------------------------
    def __call__(self, x: Any) -> Any:
        """Apply the layers' functions in order: ``F_{q-1}(... F_0(x))`` (needs jax)."""
        return backend().apply_chain(self, x)

    # -- data --------------------------------------------------------------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        return self._layers

    @property
    def dims(self) -> tuple[int, ...]:
        """``(n_0, m_0 = n_1, ..., m_{q-1})``: the sizes of the q+1 variables."""
        return (self._layers[0].in_dim,) + tuple(layer.out_dim for layer in self._layers)

    @property
    def edges(self) -> tuple[int, ...]:
        return tuple(layer.edges for layer in self._layers)  # type: ignore[misc]

    @property
    def tangent_costs(self) -> tuple[int, ...]:
        return tuple(layer.tangent_cost for layer in self._layers)  # type: ignore[misc]

    @property
    def adjoint_costs(self) -> tuple[int, ...]:
        return tuple(layer.adjoint_cost for layer in self._layers)  # type: ignore[misc]

    @property
    def in_dim(self) -> int:
        return self._layers[0].in_dim

    @property
    def out_dim(self) -> int:
        return self._layers[-1].out_dim

    def without_structure(self) -> Chain:
        """The chain with every layer's colors and explicit forms dropped: what
        ``jax.jacfwd``/``jax.jacrev`` cost on it.

        >>> Chain([Layer(4, 4, tangent_colors=1)]).without_structure()[0].tangent_colors is None
        True
        """
        if not any(layer.compressed or layer.explicit for layer in self._layers):
            return self
        return Chain(
            dataclasses.replace(
                layer, tangent_colors=None, adjoint_colors=None, nonzeros=None, pattern=None, explicit=False
            )
            for layer in self._layers
        )

    def fingerprint(self) -> list[list[int]]:
        """The layers' ``[in_dim, out_dim, edges, tangent_cost, adjoint_cost]`` (and their colors'
        counts where compressed: :meth:`Layer.cost_tuple`), for JSON."""
        return [list(layer.cost_tuple()) for layer in self._layers]

    @property
    def graph(self):
        """The chain as a ``networkx.DiGraph``.

        Nodes ``0..q`` are the variables between layers (attribute ``size``);
        edge ``(i, i+1)`` is layer ``i`` with attributes ``layer`` (the index),
        ``in_dim``, ``out_dim``, ``edges``, ``tangent_cost``, ``adjoint_cost``,
        ``tangent_colors``, ``adjoint_colors`` (None: dense), ``explicit``, ``conv_cost``,
        ``reduction_cost`` and ``name``.
        """
        if self._graph is None:
            import networkx as nx

            graph = nx.DiGraph()
            for node, size in enumerate(self.dims):
                graph.add_node(node, size=size)
            for index, layer in enumerate(self._layers):
                graph.add_edge(
                    index,
                    index + 1,
                    layer=index,
                    in_dim=layer.in_dim,
                    out_dim=layer.out_dim,
                    edges=layer.edges,
                    tangent_cost=layer.tangent_cost,
                    adjoint_cost=layer.adjoint_cost,
                    tangent_colors=layer.tangent_colors,
                    adjoint_colors=layer.adjoint_colors,
                    explicit=layer.explicit,
                    conv_cost=layer.conv_cost,
                    reduction_cost=layer.reduction_cost,
                    name=layer.name,
                )
            self._graph = graph
        return self._graph

    @classmethod
    def from_graph(cls, graph) -> Chain:
        """Rebuild a chain from a path graph as produced by :attr:`graph`."""
        nodes = list(graph.nodes)
        order = sorted(nodes)
        layers = []
        for node in order[:-1]:
            successors = list(graph.successors(node))
            if len(successors) != 1:
                raise ValueError(f"node {node}: a chain graph is a path; it has {len(successors)} successors")
            data = graph.edges[node, successors[0]]
            layers.append(
                Layer(
                    data["in_dim"],
                    data["out_dim"],
                    edges=data.get("edges"),
                    tangent_cost=data.get("tangent_cost"),
                    adjoint_cost=data.get("adjoint_cost"),
                    tangent_colors=data.get("tangent_colors"),
                    adjoint_colors=data.get("adjoint_colors"),
                    explicit=data.get("explicit", False),
                    conv_cost=data.get("conv_cost", 0),
                    reduction_cost=data.get("reduction_cost", 0),
                    name=data.get("name"),
                )
            )
        return cls(layers)
