"""Layers and chains: the objects whose Jacobian chainorder accumulates.

A chain ``F = F_{q-1} o ... o F_1 o F_0`` is a list of :class:`Layer` objects.
Layer ``i`` maps ``R^{in_dim}`` to ``R^{out_dim}`` and carries three costs, all in
FMAs (fused multiply-adds; see :mod:`chainorder.core.costs`):

``edges``
    the size of the layer's computational graph, i.e. what an adjoint (VJP) of the
    layer must keep on its tape; checked against ``tape_limit``.
``tangent_cost``
    the cost of one JVP through the layer (default: ``edges``).
``adjoint_cost``
    the cost of one VJP through the layer (default: ``edges``).

A layer whose Jacobian is sparse may also carry ``tangent_colors`` and
``adjoint_colors``: how many JVPs (VJPs) preaccumulate it by compression, one per
color of its columns (rows), instead of ``in_dim`` (``out_dim``); see
:mod:`chainorder.core.coloring`. A layer that is an affine map followed by an
elementwise one may be ``explicit``: its Jacobian ``diag(s'(Wx + b)) W`` is then
written directly, one multiply per entry, instead of by ``in_dim`` JVPs.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine import backend

__all__ = ["Layer", "Chain"]


def _check_int(value: Any, what: str, *, minimum: int) -> int:
    """Return ``value`` as a Python int, or raise a clear TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value):
            raise ValueError(f"{what} is NaN; it must be an integer >= {minimum}")
        raise TypeError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Layer:
    """One elemental function ``F_i : R^in_dim -> R^out_dim`` of a chain.

    Parameters
    ----------
    in_dim, out_dim : int
        Number of input and output entries (arrays are flattened).
    edges : int, optional
        Size of the layer's computational graph (its tape). Defaults to
        ``in_dim * out_dim``, the edge count of a dense linear layer.
    tangent_cost, adjoint_cost : int, optional
        Cost of one JVP / one VJP through the layer. Default to ``edges``.
    fn : callable, optional
        The function itself (used by :mod:`chainorder.backend.execute`).
    name : str, optional
        A label shown in plan tables.
    in_shape, out_shape : tuple of int, optional
        The unflattened shapes of the function's input and output.
    tangent_colors, adjoint_colors : int, optional
        For a sparse layer: the JVPs (colors of its columns) and VJPs (colors of its rows)
        that preaccumulate its Jacobian by compression. None (or ``in_dim``/``out_dim``): dense.
    nonzeros : int, optional
        The nonzeros of its Jacobian, where known (shown as its density).
    pattern : chainorder.core.coloring.LayerPattern, optional
        Its Jacobian's pattern and colorings, found from ``fn`` (by
        :func:`chainorder.trace` and :meth:`Chain.from_functions`); gives the colors and
        nonzeros not given, and is what the executor decompresses with (it finds the
        pattern again where a layer has colors but none).
    explicit : bool, optional
        Whether its Jacobian can be written directly: the layer is an affine map followed by
        an elementwise one (``s(Wx + b)``, or ``s(Wx + b, x)`` as in a residual block),
        whose Jacobian ``diag(s'(Wx + b)) W`` (plus a diagonal) costs
        :attr:`explicit_cost`, one multiply per entry (found from ``fn`` by
        :func:`chainorder.trace` and :meth:`Chain.from_functions`). Its tangent
        preaccumulation then writes it so where that is cheaper than its JVPs
        (:attr:`preaccumulates_explicitly`).

    Examples
    --------
    >>> Layer(168, 56, edges=63834)
    Layer(in_dim=168, out_dim=56, edges=63834, tangent_cost=63834, adjoint_cost=63834)
    >>> Layer(4, 3).edges
    12
    >>> Layer(100, 100, tangent_colors=3, adjoint_colors=3).tangent_seeds   # a band: 3 JVPs, not 100
    3
    >>> Layer(100, 50, edges=5050, explicit=True).preaccumulates_explicitly   # 5,000 FMAs, not 100 JVPs
    True
    """

    in_dim: int
    out_dim: int
    edges: int | None = None
    tangent_cost: int | None = None
    adjoint_cost: int | None = None
    fn: Callable[..., Any] | None = field(default=None, compare=False)
    name: str | None = field(default=None, compare=False)
    in_shape: tuple[int, ...] | None = field(default=None, compare=False)
    out_shape: tuple[int, ...] | None = field(default=None, compare=False)
    tangent_colors: int | None = None
    adjoint_colors: int | None = None
    nonzeros: int | None = field(default=None, compare=False)
    pattern: Any = field(default=None, compare=False, repr=False)
    explicit: bool = False

    def __post_init__(self) -> None:
        label = f"layer {self.name!r}" if self.name else "layer"
        set_ = object.__setattr__
        set_(self, "in_dim", _check_int(self.in_dim, f"{label}: in_dim", minimum=1))
        set_(self, "out_dim", _check_int(self.out_dim, f"{label}: out_dim", minimum=1))
        edges = self.in_dim * self.out_dim if self.edges is None else self.edges
        set_(self, "edges", _check_int(edges, f"{label}: edges", minimum=0))
        for attr in ("tangent_cost", "adjoint_cost"):
            value = getattr(self, attr)
            value = self.edges if value is None else value
            set_(self, attr, _check_int(value, f"{label}: {attr}", minimum=0))
        if not isinstance(self.explicit, (bool, np.bool_)):
            raise TypeError(f"{label}: explicit must be True or False, got {self.explicit!r}")
        set_(self, "explicit", bool(self.explicit))
        if self.fn is not None and not callable(self.fn):
            raise TypeError(f"{label}: fn must be callable, got {type(self.fn).__name__}")
        for attr, dim in (("in_shape", self.in_dim), ("out_shape", self.out_dim)):
            shape = getattr(self, attr)
            if shape is None:
                continue
            if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
                raise TypeError(f"{label}: {attr} must be a tuple of ints, got {shape!r} ({type(shape).__name__})")
            shape = tuple(_check_int(s, f"{label}: {attr}", minimum=0) for s in shape)
            if math.prod(shape) != dim:
                raise ValueError(
                    f"{label}: {attr} {shape} has {math.prod(shape)} entries, "
                    f"but the dimension is {dim}"
                )
            set_(self, attr, shape)
        self._check_structure(label)

    def _check_structure(self, label: str) -> None:
        """Colors (from the pattern where one is given) within ``1..in_dim`` / ``1..out_dim``; as
        many colors as columns (rows) is no compression and is stored as None."""
        set_ = object.__setattr__
        if self.pattern is not None:
            for attr in ("tangent_colors", "adjoint_colors", "nonzeros"):
                if getattr(self, attr) is None:
                    set_(self, attr, getattr(self.pattern, attr))
        for attr, dim, what in (("tangent_colors", self.in_dim, "columns"), ("adjoint_colors", self.out_dim, "rows")):
            value = getattr(self, attr)
            if value is None:
                continue
            value = _check_int(value, f"{label}: {attr}", minimum=1)
            if value > dim:
                raise ValueError(f"{label}: {attr} {value} is more than its {dim} {what}")
            set_(self, attr, None if value == dim else value)
        if not self.compressed:
            set_(self, "pattern", None)  # nothing to decompress
        if self.nonzeros is not None:
            nonzeros = _check_int(self.nonzeros, f"{label}: nonzeros", minimum=0)
            entries = self.in_dim * self.out_dim
            if nonzeros > entries:
                raise ValueError(f"{label}: nonzeros {nonzeros:,} is more than its {entries:,} entries")
            set_(self, "nonzeros", nonzeros)

    @property
    def tangent_seeds(self) -> int:
        """JVPs that preaccumulate its Jacobian: its columns' colors, or ``in_dim`` (dense)."""
        return self.tangent_colors or self.in_dim

    @property
    def adjoint_seeds(self) -> int:
        """VJPs that preaccumulate its Jacobian: its rows' colors, or ``out_dim`` (dense)."""
        return self.adjoint_colors or self.out_dim

    @property
    def compressed(self) -> bool:
        """Whether coloring preaccumulates it with fewer JVPs or VJPs than its dimensions."""
        return self.tangent_colors is not None or self.adjoint_colors is not None

    @property
    def explicit_cost(self) -> int | None:
        """FMAs of writing its Jacobian directly, one multiply per entry (``in_dim * out_dim``), where
        it is ``explicit``; None elsewhere."""
        return self.in_dim * self.out_dim if self.explicit else None

    @property
    def preaccumulates_explicitly(self) -> bool:
        """Whether its tangent preaccumulation writes the Jacobian directly: it is ``explicit``, and
        that costs less than its JVPs (``tangent_seeds * tangent_cost``). The one rule the cost,
        memory and time models and the executor read."""
        return self.explicit and self.explicit_cost < self.tangent_seeds * self.tangent_cost

    def __repr__(self) -> str:
        text = (
            f"Layer(in_dim={self.in_dim}, out_dim={self.out_dim}, edges={self.edges}, "
            f"tangent_cost={self.tangent_cost}, adjoint_cost={self.adjoint_cost}"
        )
        if self.compressed:
            text += f", tangent_colors={self.tangent_colors}, adjoint_colors={self.adjoint_colors}"
        if self.explicit:
            text += ", explicit=True"
        if self.name:
            text += f", name={self.name!r}"
        return text + ")"

    def cost_tuple(self) -> tuple[int, ...]:
        """``(in_dim, out_dim, edges, tangent_cost, adjoint_cost)``, then ``(tangent_seeds,
        adjoint_seeds)`` where coloring compresses it or it is explicit, then its explicit cost where it
        is: everything its steps' costs depend on."""
        dense = (self.in_dim, self.out_dim, self.edges, self.tangent_cost, self.adjoint_cost)
        if not (self.compressed or self.explicit):
            return dense  # type: ignore[return-value]
        seeds = (self.tangent_seeds, self.adjoint_seeds)
        return dense + seeds + ((self.explicit_cost,) if self.explicit else ())  # type: ignore[return-value]


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
        checked = [_check_int(d, f"dims[{i}]", minimum=1) for i, d in enumerate(dims)]
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
        ``tangent_colors``, ``adjoint_colors`` (None: dense), ``explicit`` and ``name``.
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
                    name=data.get("name"),
                )
            )
        return cls(layers)
