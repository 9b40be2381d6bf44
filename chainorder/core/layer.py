"""Layers: one elemental function of a chain, its dimensions and its costs.

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
written directly, one multiply per entry, instead of by ``in_dim`` JVPs. Layers
compose into a :class:`chainorder.core.chain.Chain`.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Layer", "OP_FAMILIES", "check_int"]

#: Families of operations the time model prices apart from the rest of a layer's JVP and VJP FMAs,
#: because XLA runs them far from its GEMM rate: convolutions (below it on CPU) and reductions (a
#: pass over memory each, where elementwise operations fuse). Each has a :class:`Layer` field
#: ``{family}_cost`` and, in :class:`chainorder.core.profile.MachineProfile`, the tables
#: ``{family}_dims``, ``{family}_tangent_factors`` and ``{family}_adjoint_factors``.
OP_FAMILIES = {"conv": "convolution", "reduction": "reduction"}  # name: what one is


def check_int(value: Any, what: str, *, minimum: int) -> int:
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
    conv_cost, reduction_cost : int, optional
        FMAs of its convolutions, and of its reductions (sums, maxima, cumulative sums: one per
        element reduced), in one evaluation (0: none; counted by :func:`chainorder.trace` and
        :meth:`Chain.from_functions`). Not costs of their own: the time model prices these shares
        of its JVP and VJP FMAs at the profile's factors for each family (:data:`OP_FAMILIES`,
        :meth:`family_share`). Each at most ``tangent_cost``.

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
    conv_cost: int = 0
    reduction_cost: int = 0

    def __post_init__(self) -> None:
        label = f"layer {self.name!r}" if self.name else "layer"
        set_ = object.__setattr__
        set_(self, "in_dim", check_int(self.in_dim, f"{label}: in_dim", minimum=1))
        set_(self, "out_dim", check_int(self.out_dim, f"{label}: out_dim", minimum=1))
        edges = self.in_dim * self.out_dim if self.edges is None else self.edges
        set_(self, "edges", check_int(edges, f"{label}: edges", minimum=0))
        for attr in ("tangent_cost", "adjoint_cost"):
            value = getattr(self, attr)
            value = self.edges if value is None else value
            set_(self, attr, check_int(value, f"{label}: {attr}", minimum=0))
        for family in OP_FAMILIES:
            attr = f"{family}_cost"
            set_(self, attr, check_int(getattr(self, attr), f"{label}: {attr}", minimum=0))
            if getattr(self, attr) > self.tangent_cost:
                raise ValueError(
                    f"{label}: {attr} {getattr(self, attr):,} is more than its tangent_cost {self.tangent_cost:,}"
                )
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
            shape = tuple(check_int(s, f"{label}: {attr}", minimum=0) for s in shape)
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
            value = check_int(value, f"{label}: {attr}", minimum=1)
            if value > dim:
                raise ValueError(f"{label}: {attr} {value} is more than its {dim} {what}")
            set_(self, attr, None if value == dim else value)
        if not self.compressed:
            set_(self, "pattern", None)  # nothing to decompress
        if self.nonzeros is not None:
            nonzeros = check_int(self.nonzeros, f"{label}: nonzeros", minimum=0)
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

    def family_share(self, family: str) -> float:
        """The share of its JVP (and VJP) FMAs done by one family of :data:`OP_FAMILIES`:
        ``{family}_cost / tangent_cost`` (0 when it costs nothing).

        >>> Layer(8, 8, tangent_cost=40, conv_cost=30).family_share("conv")
        0.75
        """
        return getattr(self, f"{family}_cost") / self.tangent_cost if self.tangent_cost else 0.0

    def __repr__(self) -> str:
        text = (
            f"Layer(in_dim={self.in_dim}, out_dim={self.out_dim}, edges={self.edges}, "
            f"tangent_cost={self.tangent_cost}, adjoint_cost={self.adjoint_cost}"
        )
        if self.compressed:
            text += f", tangent_colors={self.tangent_colors}, adjoint_colors={self.adjoint_colors}"
        if self.explicit:
            text += ", explicit=True"
        for family in OP_FAMILIES:
            if getattr(self, f"{family}_cost"):
                text += f", {family}_cost={getattr(self, f'{family}_cost')}"
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
