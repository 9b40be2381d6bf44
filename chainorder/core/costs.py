"""The cost model: what each step costs, in FMAs (fused multiply-adds), as exact integers.

This is Naumann's generalized (matrix-free) Jacobian chain product, as used by the
reference solver (STCE-at-RWTH/Jacobian-Chaining).

Notation. Layer ``i`` maps ``R^{n_i}`` to ``R^{m_i}`` (``n_{i+1} = m_i``) and has
``E_i`` (``edges``, the tape an adjoint through it records), ``t_i``
(``tangent_cost``, one JVP) and ``a_i`` (``adjoint_cost``, one VJP).
``J[j..i] = F'_j ... F'_i`` is the ``m_j x n_i`` Jacobian of the layers ``i..j``.

======================================  ==============  ==============================
step                                    produces        cost (FMAs)
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

A layer whose Jacobian is sparse preaccumulates with one JVP (VJP) per color of its
columns (rows), ``c_i`` (``tangent_colors``) instead of ``n_i`` (and ``m_i``): its
preaccumulation costs ``c_i * t_i``. Steps keep their seeds: the columns of
``J[k..i]`` they push are dense. An *explicit* layer (an affine map followed by an
elementwise one, ``s(Wx + b)``) writes its Jacobian ``diag(s'(Wx + b)) W`` directly
in its tangent preaccumulation, ``m_i * n_i`` FMAs, where that is less than its JVPs
(:attr:`chainorder.Layer.preaccumulates_explicitly`).

Two formulas cover the table: a tangent or adjoint kind costs its seeds (``n_i``
columns or ``m_j`` rows) times the JVP or VJP cost of the layers it goes through
(:func:`propagation_cost`); a product costs :func:`product_cost`. ``M`` is the
tape limit (``None``: unlimited). Pure forward mode (``jax.jacfwd``) costs
``n_0 * sum(t)``; pure reverse mode (``jax.jacrev``) ``m_{q-1} * sum(a)``.

:class:`CostModel` evaluates them for one step (Python integers) and, given index
arrays, for many at once (the optimizers' array form).

This module imports neither jax nor matplotlib.

References
----------
Naumann, U. (2008). Optimal Jacobian accumulation is NP-complete. Math. Program. 112.
Naumann, U. (2020s). The generalized Jacobian chain product; STCE-at-RWTH/Jacobian-Chaining.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from .chain import Chain
from .numbers import Numbers, numbers_for, value_bound
from .steps import ADJOINT, TANGENT, StepKind

__all__ = ["CostModel", "forward_cost", "reverse_cost", "propagation_cost", "product_cost"]


def propagation_cost(seeds, through_cost):
    """FMAs of pushing (pulling) ``seeds`` tangents (adjoints) through layers whose
    JVPs (VJPs) cost ``through_cost`` in all. Scalars or numpy arrays.

    >>> propagation_cost(4, 12 + 6)
    72
    """
    return seeds * through_cost


def product_cost(rows, inner, columns, out=None):
    """FMAs of a dense ``rows x inner`` times ``inner x columns`` product (into ``out`` if given).

    >>> product_cost(2, 3, 4)
    24
    """
    if out is not None:
        return np.multiply(inner, rows * columns, out=out)
    return inner * (rows * columns)


class CostModel:
    """Exact integer costs of every step on a chain (prefix sums, O(1) each).

    Parameters
    ----------
    chain : Chain
    numbers : Numbers, optional
        The dtype of the arrays (``in_dims``, ``out_dims``, prefix sums): Python
        integers by default, which makes every scalar result a Python ``int``;
        the optimizers pass ``int64`` when :func:`numbers_for` proves it safe.
        Every method takes scalar indices or numpy index arrays.

    Examples
    --------
    >>> model = CostModel(Chain.from_dims([4, 3, 2]))
    >>> model.forward_cost, model.reverse_cost
    (72, 36)
    >>> model.cost("product", 0, 1, 0)  # J[1..1] @ J[0..0]: 2 x 3 times 3 x 4
    24
    """

    def __init__(self, chain: Chain, numbers: Numbers | None = None) -> None:
        self.chain = chain
        self.numbers = numbers or Numbers(object, 0)
        array = self.numbers.array
        self.in_dims = array(layer.in_dim for layer in chain)
        self.out_dims = array(layer.out_dim for layer in chain)
        self.edges_prefix = array([0, *accumulate(chain.edges)])
        self.tangent_costs = array(chain.tangent_costs)
        self.adjoint_costs = array(chain.adjoint_costs)
        self.tangent_colors = array(layer.tangent_seeds for layer in chain)
        self.adjoint_colors = array(layer.adjoint_seeds for layer in chain)
        self.explicit = np.array([layer.preaccumulates_explicitly for layer in chain], dtype=bool)
        self.preaccumulation_costs = {  # each layer's, by direction, from exact Python integers
            TANGENT: array(
                layer.explicit_cost
                if layer.preaccumulates_explicitly
                else propagation_cost(layer.tangent_seeds, layer.tangent_cost)
                for layer in chain
            ),
            ADJOINT: array(propagation_cost(layer.adjoint_seeds, layer.adjoint_cost) for layer in chain),
        }
        self.tangent_prefix = array([0, *accumulate(chain.tangent_costs)])
        self.adjoint_prefix = array([0, *accumulate(chain.adjoint_costs)])

    @classmethod
    def exact(cls, chain: Chain) -> CostModel:
        """The model in the fastest dtype that is exact for every value on this chain."""
        bound = value_bound(
            chain.dims, sum(chain.tangent_costs), sum(chain.adjoint_costs), sum(chain.edges), len(chain)
        )
        return cls(chain, numbers_for(bound))

    def __len__(self) -> int:
        return len(self.chain)

    # sums over layers a..b inclusive
    def edges(self, first, last):
        """Tape ``E_first + ... + E_last`` of an adjoint through those layers."""
        return self.edges_prefix[last + 1] - self.edges_prefix[first]

    def through_cost(self, direction: str, first, last):
        """JVP (``direction="tangent"``) or VJP cost of the layers ``first..last`` in all."""
        prefix = self.tangent_prefix if direction == TANGENT else self.adjoint_prefix
        return prefix[last + 1] - prefix[first]

    def seeds(self, direction: str, first, last):
        """Columns (tangent: ``n_first``) or rows (adjoint: ``m_last``) a propagation carries."""
        return self.in_dims[first] if direction == TANGENT else self.out_dims[last]

    def step_seeds(self, kind: StepKind | str, first, last):
        """JVPs (VJPs) a step runs: a preaccumulation's colors (``n_i`` / ``m_i`` for a dense
        layer), a tangent (adjoint) step's :meth:`seeds`."""
        kind = StepKind(kind)
        if kind.is_preaccumulation:
            return (self.tangent_colors if kind.direction == TANGENT else self.adjoint_colors)[first]
        return self.seeds(kind.direction, first, last)

    def explicit_step(self, kind: StepKind | str, first):
        """Whether a step writes its layer's Jacobian directly (an explicit layer's tangent
        preaccumulation; see :attr:`chainorder.Layer.preaccumulates_explicitly`): a bool, or a
        bool array for index arrays."""
        if StepKind(kind) is not StepKind.TANGENT_PREACCUMULATION:
            return np.zeros(np.shape(first), dtype=bool) if np.ndim(first) else False
        return self.explicit[first]

    def result_size(self, first, last):
        """Entries of ``J[last..first]``: ``m_last * n_first``."""
        return self.out_dims[last] * self.in_dims[first]

    def cost(self, kind: StepKind | str, first, last, split=None):
        """FMAs of one step (or, with index arrays, of many steps of one kind)."""
        kind = StepKind(kind)
        if kind.is_preaccumulation:
            return self.preaccumulation_costs[kind.direction][first]
        through = kind.through(first, last, split)
        if through is None:
            return product_cost(self.out_dims[last], self.out_dims[split], self.in_dims[first])
        return propagation_cost(self.step_seeds(kind, first, last), self.through_cost(kind.direction, *through))

    def tape(self, kind: StepKind | str, first, last, split=None):
        """Tape a step records (adjoint kinds; 0 for tangent kinds and products)."""
        kind = StepKind(kind)
        if kind.direction == TANGENT or kind.direction is None:
            return 0
        return self.edges(*kind.through(first, last, split))

    @property
    def forward_cost(self) -> int:
        """Pure tangent mode: ``n_0 * sum(t)``."""
        return int(propagation_cost(self.in_dims[0], self.tangent_prefix[-1]))

    @property
    def reverse_cost(self) -> int:
        """Pure adjoint mode: ``m_{q-1} * sum(a)``."""
        return int(propagation_cost(self.out_dims[-1], self.adjoint_prefix[-1]))


def forward_cost(chain: Chain) -> int:
    """FMAs of pure forward mode (``jax.jacfwd``): ``n_0 * sum(tangent_cost)``.

    Parameters
    ----------
    chain : Chain

    Returns
    -------
    int
        Exact.

    See Also
    --------
    reverse_cost, chainorder.optimize

    Examples
    --------
    >>> forward_cost(Chain.from_dims([4, 3, 2]))  # 4 JVPs through layers of 12 and 6 FMAs
    72
    """
    return CostModel(chain).forward_cost


def reverse_cost(chain: Chain) -> int:
    """FMAs of pure reverse mode (``jax.jacrev``): ``m_{q-1} * sum(adjoint_cost)``.

    Parameters
    ----------
    chain : Chain

    Returns
    -------
    int
        Exact.

    See Also
    --------
    forward_cost, chainorder.optimize

    Examples
    --------
    >>> reverse_cost(Chain.from_dims([4, 3, 2]))  # 2 VJPs through layers of 12 and 6 FMAs
    36
    """
    return CostModel(chain).reverse_cost
