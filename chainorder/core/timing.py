"""Predicted seconds: a step's FMAs at the rate its shape runs at, its bytes at the bandwidth, its kernels.

For a step producing the ``rows x columns`` block ``J[last..first]`` (notation of
:mod:`chainorder.core.costs`, rates of :class:`~chainorder.core.profile.MachineProfile`):

=====================  ============================================  =================================
step                   arithmetic                                    bytes read + written, kernels
=====================  ============================================  =================================
tangent/adjoint kinds  ``factor(seeds) * sum_l FMAs_l / rate_l``,    its operand + its result;
                       ``rate_l = gemm_rate(min(seeds, n_l, m_l))``  ``step_overhead`` plus the
                       (``seeds``: the columns pushed or rows        tangent or adjoint overhead per
                       pulled, in chunks the chunk's width; the      layer it goes through, per chunk
                       JVP or VJP factor at ``seeds``; ``l``: the
                       layers it goes through, whose GEMM is thin
                       where the layer is narrower than the seeds;
                       a layer's convolution (reduction) share
                       of ``FMAs_l`` counts ``family_factor(seeds)``
                       times)
product                ``FMAs / gemm_rate(min(rows, inner, cols))``  both operands + the result;
                                                                     ``step_overhead``
explicit tangent       none: scaling ``W``'s rows streams at the     ``W`` read, the result written;
preaccumulation        bandwidth                                     ``step_overhead`` plus one
                                                                     tangent overhead
=====================  ============================================  =================================

plus ``itemsize * bytes / bandwidth``, and the result (a fresh block) ``write_factor(its bytes) - 1``
times its bytes at the bandwidth more (:meth:`TimeModel.fresh_write`). The FMAs
are :class:`~chainorder.core.costs.CostModel`'s, so the formulas of the cost
model are not written twice. A plan's time (:func:`plan_time`) is the sum of its
steps' (one device runs them one after another) plus the primal pass every plan
runs once: each layer's JVP FMAs (what one evaluation costs) at the
matrix-vector rate ``gemm_rate(1)``, plus ``primal_overhead`` per layer. The
primal pass is the same for every plan of a chain, so it never changes which
plan is fastest; it changes how much faster one is than another.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from .chain import Chain
from .costs import CostModel
from .layer import OP_FAMILIES
from .numbers import Numbers
from .profile import MachineProfile
from .steps import Step, StepKind

__all__ = ["TimeModel", "step_times", "plan_time"]

_FLOATS = Numbers(np.float64, np.inf)


class TimeModel:
    """Predicted seconds of every step on a chain (scalar or numpy index arrays, like CostModel).

    Parameters
    ----------
    chain : Chain
    profile : MachineProfile

    Examples
    --------
    >>> from chainorder.core.profile import MachineProfile
    >>> profile = MachineProfile("cpu", "example", (1, 4), (1e9, 2e9), bandwidth=1e9, step_overhead=0.0)
    >>> model = TimeModel(Chain.from_dims([4, 3, 2]), profile)
    >>> product = model.cost("product", 0, 1, 0)  # 24 FMAs at 1.5e9 (smallest side 2), (6 + 12 + 8) * 4 bytes at 1e9
    >>> round(float(product) * 1e9, 6)
    120.0
    """

    def __init__(self, chain: Chain, profile: MachineProfile) -> None:
        if not isinstance(profile, MachineProfile):
            raise TypeError(f"expected a chainorder MachineProfile, got {type(profile).__name__}")
        self.chain = chain
        self.profile = profile
        self.costs = CostModel(chain, _FLOATS)
        self.family_shares = {
            family: np.array([layer.family_share(family) for layer in chain], dtype=np.float64)
            for family in OP_FAMILIES
        }

    def _size(self, first, last):
        return self.costs.result_size(first, last)

    def cost(self, kind: StepKind | str, first, last, split=None, chunk=None):
        """Seconds of one step (or, with index arrays, of many steps of one kind); ``chunk``: its
        seeds pushed that many at a time (``Step.chunk``)."""
        with np.errstate(invalid="ignore", over="ignore"):  # costs past float64: inf seconds
            seconds = self._seconds(StepKind(kind), first, last, split, chunk)
        return np.where(np.isnan(seconds), np.inf, seconds)

    def _seconds(self, kind: StepKind, first, last, split, chunk=None):
        costs, profile = self.costs, self.profile
        fmas = costs.cost(kind, first, last, split)
        through = kind.through(first, last, split)
        if through is None:
            smallest = np.minimum(np.minimum(costs.out_dims[last], costs.out_dims[split]), costs.in_dims[first])
            arithmetic = fmas / profile.gemm_rate(smallest)
            fixed = profile.step_overhead
        else:
            seeds = costs.step_seeds(kind, first, last)
            iterations, at_once = 1, seeds
            if chunk is not None:  # a loop: each iteration a chunk's JVPs (VJPs) at its width's rate
                at_once = np.minimum(chunk, seeds)
                iterations = -(-seeds // at_once)
            thin = self._thin_share(kind.direction, at_once, *through)
            arithmetic = profile.mode_factor(kind.direction, at_once) * fmas * thin / profile.gemm_rate(at_once)
            per_layer = profile.tangent_overhead if kind.direction == "tangent" else profile.adjoint_overhead
            fixed = iterations * (profile.step_overhead + per_layer * (through[1] - through[0] + 1))
        moved = self._size(first, last) + sum(self._size(*span) for span in kind.operands(first, last, split))
        seconds = arithmetic + profile.itemsize * moved / profile.bandwidth + fixed
        explicit = costs.explicit_step(kind, first)
        if np.any(explicit):  # W read and the Jacobian written: 2 m n elements, no GEMM
            written = 2 * profile.itemsize * self._size(first, last) / profile.bandwidth
            seconds = np.where(explicit, written + profile.step_overhead + profile.tangent_overhead, seconds)
        return seconds + self.fresh_write(first, last)

    def fresh_write(self, first, last):
        """Seconds that writing the block ``J[last..first]`` as a step's result takes beyond its
        bytes at the bandwidth: ``write_factor(bytes) - 1`` times that (0 for a block below the
        profile's ``write_sizes``). Every step writes its result once, whatever its kind, so the time
        DP adds it to each block once."""
        profile = self.profile
        nbytes = profile.itemsize * self._size(first, last)
        factor = profile.write_factor(nbytes)
        with np.errstate(invalid="ignore", over="ignore"):
            return np.where(factor == 1.0, 0.0, nbytes * (factor - 1.0) / profile.bandwidth)

    def weighted_prefix(self, direction: str, seeds) -> np.ndarray:
        """Prefix sums over the layers of their JVP (``direction="tangent"``) or VJP costs, each
        weighted by how much slower its GEMM runs with ``seeds`` columns (rows) than a product as
        wide as the seeds: ``gemm_rate(seeds) / gemm_rate(min(seeds, n_l, m_l))``. A layer narrower
        than the seeds makes a thin GEMM (a 512 -> 16 layer with 512 seeds runs at the rate of
        16); a layer at least as wide weighs 1. A layer's convolutions and reductions (its
        :meth:`~chainorder.core.layer.Layer.family_share` of each of
        :data:`~chainorder.core.layer.OP_FAMILIES`) weigh the profile's ``family_factor`` at the
        seeds more. ``seeds``: an array; the result has a row of ``q + 1`` prefix sums per seed count."""
        costs, profile = self.costs, self.profile
        per_layer = np.diff(costs.tangent_prefix if direction == "tangent" else costs.adjoint_prefix)
        narrowest = np.minimum(costs.in_dims, costs.out_dims)
        widths, inverse = np.unique(np.asarray(seeds, dtype=np.float64), return_inverse=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = profile.gemm_rate(widths)[:, None] / profile.gemm_rate(np.minimum(widths[:, None], narrowest))
            families = sum(
                shares * (profile.family_factor(family, direction, widths)[:, None] - 1.0)
                for family, shares in self.family_shares.items()
            )
            weight = weight * (1.0 + families)
        weighted = np.cumsum(np.where(per_layer == 0, 0.0, per_layer * weight), axis=1)
        table = np.concatenate([np.zeros((len(widths), 1)), weighted], axis=1)
        return table[inverse.reshape(np.shape(seeds))]

    def _thin_share(self, direction: str, seeds, first, last):
        """The weighted JVP (VJP) cost of layers ``first..last`` over the plain one
        (:meth:`weighted_prefix`; 1 where they cost nothing)."""
        seeds, first, last = np.broadcast_arrays(*(np.asarray(value) for value in (seeds, first, last)))
        table = self.weighted_prefix(direction, seeds)
        prefix = self.costs.tangent_prefix if direction == "tangent" else self.costs.adjoint_prefix
        end, start = (np.take_along_axis(table, index[..., None], -1)[..., 0] for index in (last + 1, first))
        plain = prefix[last + 1] - prefix[first]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(plain > 0, (end - start) / plain, 1.0)

    def rates(self) -> SimpleNamespace:
        """The per-layer coefficients of :meth:`cost` in separable form, for the time DP
        (:mod:`chainorder.core.timedp`): ``n``, ``m``, the JVP/VJP cost prefix sums weighted
        for thin layers with ``n_i`` seeds (row ``i`` of ``tangent_prefix``) and ``m_j`` seeds
        (row ``j`` of ``adjoint_prefix``; :meth:`weighted_prefix`),
        ``F``/``G`` (seconds per unit of through-cost with ``n_i`` columns / ``m_j`` rows),
        the inverse GEMM rates of each ``n_i`` and ``m_i``, ``b`` (seconds per element
        moved), ``s`` (per step), ``o_t``/``o_a`` (per layer)."""
        costs, profile = self.costs, self.profile
        n, m = costs.in_dims, costs.out_dims
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return SimpleNamespace(
                n=n,
                m=m,
                tangent_prefix=self.weighted_prefix("tangent", n),
                adjoint_prefix=self.weighted_prefix("adjoint", m),
                F=profile.mode_factor("tangent", n) * n / profile.gemm_rate(n),
                G=profile.mode_factor("adjoint", m) * m / profile.gemm_rate(m),
                inverse_n=1.0 / profile.gemm_rate(n),
                inverse_m=1.0 / profile.gemm_rate(m),
                b=profile.itemsize / profile.bandwidth,
                s=profile.step_overhead,
                o_t=profile.tangent_overhead,
                o_a=profile.adjoint_overhead,
            )

    def primal_time(self) -> float:
        """Seconds of the primal pass: every layer evaluated once (see the module docstring)."""
        profile = self.profile
        return float(self.costs.tangent_prefix[-1] / profile.gemm_rate(1) + len(self.chain) * profile.primal_overhead)

    def steps_time(self, steps: Sequence[Step]) -> list[float]:
        """Seconds of each step, in order."""
        return [float(self.cost(step.kind, step.first, step.last, step.split, step.chunk)) for step in steps]


def step_times(chain: Chain, steps: Sequence[Step], profile: MachineProfile) -> list[float]:
    """Predicted seconds of each of ``steps`` on ``chain`` (their sum is the plan's time).

    Parameters
    ----------
    chain : Chain
    steps : sequence of Step
    profile : MachineProfile

    Returns
    -------
    list of float
        Positive, one per step.

    See Also
    --------
    chainorder.Plan.predicted_time

    Examples
    --------
    >>> from chainorder import optimize
    >>> from chainorder.core.profile import default_profile
    >>> chain = Chain.from_dims([784, 256, 32, 256, 784])
    >>> times = step_times(chain, optimize(chain).steps, default_profile("cpu"))
    >>> len(times), all(t > 0 for t in times)
    (5, True)
    """
    return TimeModel(chain, profile).steps_time(steps)


def plan_time(chain: Chain, steps: Sequence[Step], profile: MachineProfile) -> float:
    """Predicted seconds of a whole plan: its primal pass plus its steps.

    >>> from chainorder import optimize
    >>> from chainorder.core.profile import default_profile
    >>> chain = Chain.from_dims([784, 256, 32, 256, 784])
    >>> steps, profile = optimize(chain).steps, default_profile("cpu")
    >>> plan_time(chain, steps, profile) > sum(step_times(chain, steps, profile))
    True
    """
    model = TimeModel(chain, profile)
    return model.primal_time() + sum(model.steps_time(steps))
