"""The cost model: what each way of accumulating a sub-chain's Jacobian costs.

This is Naumann's generalized (matrix-free) Jacobian chain product, as used by the
reference solver (STCE-at-RWTH/Jacobian-Chaining); costs are fused multiply-adds
(FMAs) and are exact Python integers.

Notation. Layer ``i`` maps ``R^{n_i}`` to ``R^{m_i}`` (``n_{i+1} = m_i``) and has
``E_i`` (``edges``, its tape size), ``t_i`` (``tangent_cost``, one JVP) and
``a_i`` (``adjoint_cost``, one VJP). ``J[j..i] = F'_j ... F'_i`` is the
``m_j x n_i`` Jacobian of the sub-chain of layers ``i..j``.

======================================  ==============  ==============================
operation                               produces        cost (FMAs)
======================================  ==============  ==============================
tangent preaccumulation of layer i      ``J[i..i]``     ``n_i * t_i`` (``n_i`` JVPs)
adjoint preaccumulation of layer i      ``J[i..i]``     ``m_i * a_i`` (``m_i`` VJPs);
                                                        needs ``E_i <= M``
tangent step: push the ``n_i`` columns  ``J[j..i]``     ``n_i * (t_{k+1} + ... + t_j)``
of ``J[k..i]`` through layers k+1..j
adjoint step: pull the ``m_j`` rows     ``J[j..i]``     ``m_j * (a_i + ... + a_k)``;
of ``J[j..k+1]`` back through i..k                      needs ``E_i + ... + E_k <= M``
product ``J[j..k+1] @ J[k..i]``         ``J[j..i]``     ``m_j * m_k * n_i``
======================================  ==============  ==============================

``M`` is the tape limit (``None``: unlimited). Pure forward mode (``jax.jacfwd``)
costs ``n_0 * sum(t)``; pure reverse mode (``jax.jacrev``) ``m_{q-1} * sum(a)``.
With ``matrix_free=False`` only preaccumulations and products are allowed.

A plan's sequential cost is the sum of its steps' costs. With unlimited threads
the two operands of a product are computed in parallel, so a product costs
``max(left, right) + m_j * m_k * n_i`` on the critical path.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from itertools import accumulate

from .chain import Chain

__all__ = [
    "TANGENT_PREACCUMULATION",
    "ADJOINT_PREACCUMULATION",
    "TANGENT_STEP",
    "ADJOINT_STEP",
    "PRODUCT",
    "STEP_KINDS",
    "STEP_LABELS",
    "STEP_CODES",
    "CostModel",
    "forward_cost",
    "reverse_cost",
]

TANGENT_PREACCUMULATION = "tangent_preaccumulation"
ADJOINT_PREACCUMULATION = "adjoint_preaccumulation"
TANGENT_STEP = "tangent_step"
ADJOINT_STEP = "adjoint_step"
PRODUCT = "product"
STEP_KINDS = (
    TANGENT_PREACCUMULATION,
    ADJOINT_PREACCUMULATION,
    TANGENT_STEP,
    ADJOINT_STEP,
    PRODUCT,
)
PREACCUMULATIONS = (TANGENT_PREACCUMULATION, ADJOINT_PREACCUMULATION)
# what tables and figures call each kind
STEP_LABELS = {
    TANGENT_PREACCUMULATION: "tangent preaccumulation",
    ADJOINT_PREACCUMULATION: "adjoint preaccumulation",
    TANGENT_STEP: "tangent step (JVPs)",
    ADJOINT_STEP: "adjoint step (VJPs)",
    PRODUCT: "dense product",
}
# the small-integer code of each kind in the optimizers' numpy tables
STEP_CODES = {kind: code for code, kind in enumerate(STEP_KINDS)}


class CostModel:
    """Exact integer costs of every operation on a chain (prefix sums, O(1) each).

    >>> model = CostModel(Chain.from_dims([4, 3, 2]))
    >>> model.forward_cost, model.reverse_cost
    (72, 36)
    >>> model.product(0, 0, 1)  # J[1..1] @ J[0..0]: 2 x 3 times 3 x 4
    24
    """

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.in_dims = [layer.in_dim for layer in chain]
        self.out_dims = [layer.out_dim for layer in chain]
        self.edges_prefix = [0, *accumulate(chain.edges)]
        self.tangent_prefix = [0, *accumulate(chain.tangent_costs)]
        self.adjoint_prefix = [0, *accumulate(chain.adjoint_costs)]

    def __len__(self) -> int:
        return len(self.in_dims)

    # sums over layers i..k inclusive
    def tape(self, first: int, last: int) -> int:
        """Tape size ``E_first + ... + E_last`` of an adjoint through those layers."""
        return self.edges_prefix[last + 1] - self.edges_prefix[first]

    def tangent_sum(self, first: int, last: int) -> int:
        return self.tangent_prefix[last + 1] - self.tangent_prefix[first]

    def adjoint_sum(self, first: int, last: int) -> int:
        return self.adjoint_prefix[last + 1] - self.adjoint_prefix[first]

    # the five operations
    def tangent_preaccumulation(self, layer: int) -> int:
        return self.in_dims[layer] * self.tangent_sum(layer, layer)

    def adjoint_preaccumulation(self, layer: int) -> int:
        return self.out_dims[layer] * self.adjoint_sum(layer, layer)

    def tangent_step(self, first: int, split: int, last: int) -> int:
        """Push ``J[split..first]``'s columns through layers ``split+1..last``."""
        return self.in_dims[first] * self.tangent_sum(split + 1, last)

    def adjoint_step(self, first: int, split: int, last: int) -> int:
        """Pull ``J[last..split+1]``'s rows back through layers ``first..split``."""
        return self.out_dims[last] * self.adjoint_sum(first, split)

    def product(self, first: int, split: int, last: int) -> int:
        """``J[last..split+1] @ J[split..first]``."""
        return self.out_dims[last] * self.out_dims[split] * self.in_dims[first]

    def step_tape(self, kind: str, first: int, split: int | None, last: int) -> int:
        """Tape an operation needs (0 for tangent operations and products)."""
        if kind == ADJOINT_PREACCUMULATION:
            return self.tape(first, last)
        if kind == ADJOINT_STEP:
            return self.tape(first, split)  # type: ignore[arg-type]
        return 0

    def step_cost(self, kind: str, first: int, split: int | None, last: int) -> int:
        """Cost of one plan step, dispatched on its kind."""
        if kind == TANGENT_PREACCUMULATION:
            return self.tangent_preaccumulation(first)
        if kind == ADJOINT_PREACCUMULATION:
            return self.adjoint_preaccumulation(first)
        if kind == TANGENT_STEP:
            return self.tangent_step(first, split, last)  # type: ignore[arg-type]
        if kind == ADJOINT_STEP:
            return self.adjoint_step(first, split, last)  # type: ignore[arg-type]
        if kind == PRODUCT:
            return self.product(first, split, last)  # type: ignore[arg-type]
        raise ValueError(f"unknown step kind {kind!r}; expected one of {STEP_KINDS}")

    @property
    def forward_cost(self) -> int:
        """Pure tangent mode: ``n_0 * sum(t)``."""
        return self.in_dims[0] * self.tangent_prefix[-1]

    @property
    def reverse_cost(self) -> int:
        """Pure adjoint mode: ``m_{q-1} * sum(a)``."""
        return self.out_dims[-1] * self.adjoint_prefix[-1]


def forward_cost(chain: Chain) -> int:
    """Cost of pure forward mode (``jax.jacfwd``): ``n_0 * sum(tangent_cost)``."""
    return CostModel(chain).forward_cost


def reverse_cost(chain: Chain) -> int:
    """Cost of pure reverse mode (``jax.jacrev``): ``m_{q-1} * sum(adjoint_cost)``."""
    return CostModel(chain).reverse_cost
