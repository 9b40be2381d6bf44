"""The dynamic program for ``objective="time"``: the plan of least predicted seconds.

Same recursion as :mod:`chainorder.core.dp` (``T[i..j]`` is the least time of
``J[j..i]``; the candidates are a preaccumulation, a tangent step, an adjoint
step or a product at every split ``k``), with the step times of
:class:`~chainorder.core.timing.TimeModel` written in the separable form that
makes the FMA DP fast (``F_i``, ``G_j``: seconds per unit of through-cost of a
propagation with ``n_i`` columns or ``m_j`` rows; ``b``: seconds per element
moved; ``s``: per step; ``o_t``, ``o_a``: per layer; ``Tp_i``, ``Ap_j``: prefix sums
of the JVP and VJP costs, each layer weighted for a GEMM thinner than ``n_i`` or ``m_j``
seeds, :meth:`TimeModel.weighted_prefix <chainorder.core.timing.TimeModel.weighted_prefix>`):

* tangent step: ``[T[i..k] - F_i Tp_i[k+1] + b n_i m_k - o_t k] + F_i Tp_i[j+1] + b n_i m_j + s + o_t j``,
  a running minimum over ``k`` of the bracket as ``j`` grows;
* adjoint step: ``[T[k+1..j] + G_j Ap_j[k+1] + b m_j m_k + o_a k] - G_j Ap_j[i] + b m_j n_i + s + o_a (1 - i)``,
  a running minimum as ``i`` falls (with a tape limit, every split in the window the tape allows);
* product: ``T[i..k] + T[k+1..j] + m_j m_k n_i max(1/r(m_j), 1/r(m_k), 1/r(n_i)) + b (m_j m_k + m_k n_i + m_j n_i) + s``
  (the GEMM rate ``r`` is non-decreasing, so the rate of the smallest side is the least of the
  three), over every split: ``O(q^3)`` vectorized work as in the FMA DP.

Every candidate for ``T[i..j]`` writes the block ``J[j..i]``, so its fresh-write term
(:meth:`TimeModel.fresh_write <chainorder.core.timing.TimeModel.fresh_write>`, 0 below the profile's
``write_sizes``) is added to the cell once, after the candidates are compared (the
preaccumulations of length 1 are priced by :meth:`TimeModel.cost`, which includes it).

Float ties go to the first of tangent step, product, adjoint step. The test suite
checks the result against every plan of short chains priced by
:meth:`TimeModel.cost <chainorder.core.timing.TimeModel.cost>`.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .chain import Chain
from .costs import CostModel
from .profile import MachineProfile
from .steps import Step, StepKind
from .table import tape_reach
from .timing import TimeModel

__all__ = ["fastest_steps"]

_CANDIDATES = (StepKind.TANGENT_STEP, StepKind.PRODUCT, StepKind.ADJOINT_STEP)


class _TimeDP:
    def __init__(self, chain: Chain, profile: MachineProfile, matrix_free: bool, tape_limit: int | None) -> None:
        self.q = q = len(chain)
        self.model = model = TimeModel(chain, profile)
        self.matrix_free, self.tape_limit = matrix_free, tape_limit
        rates = model.rates()
        self.n, self.m = rates.n, rates.m
        self.tangent_prefix, self.adjoint_prefix = rates.tangent_prefix, rates.adjoint_prefix
        self.F, self.G, self.inverse_n, self.inverse_m = rates.F, rates.G, rates.inverse_n, rates.inverse_m
        self.b, self.s, self.o_t, self.o_a = rates.b, rates.s, rates.o_t, rates.o_a
        self.reach = None if tape_limit is None else tape_reach(chain, tape_limit)
        self.by_start = np.full((q, q + 1), np.inf)  # [first, length]
        self.by_end = np.full((q, q + 1), np.inf)  # [last, length]
        self.kind = np.zeros((q, q + 1), dtype=np.int8)
        self.split = np.full((q, q + 1), -1, dtype=np.int64)
        self.tangent_best = np.full(q, np.inf)  # running minima (see the module docstring)
        self.tangent_arg = np.zeros(q, dtype=np.int64)
        self.adjoint_best = np.full(q, np.inf)
        self.adjoint_arg = np.zeros(q, dtype=np.int64)

    def run(self) -> _TimeDP:
        layers = np.arange(self.q)
        tangent = self.model.cost(StepKind.TANGENT_PREACCUMULATION, layers, layers)
        adjoint = self.model.cost(StepKind.ADJOINT_PREACCUMULATION, layers, layers)
        if self.tape_limit is not None:
            adjoint = np.where(self.reach >= 1, adjoint, np.inf)
        use_adjoint = adjoint < tangent
        codes = (StepKind.ADJOINT_PREACCUMULATION.code, StepKind.TANGENT_PREACCUMULATION.code)
        self._store(1, np.where(use_adjoint, adjoint, tangent), np.where(use_adjoint, *codes), layers)
        for length in range(2, self.q + 1):
            self._fill(length)
        return self

    def _store(self, length: int, best, kind, split) -> None:
        cells = self.q - length + 1
        self.by_start[:cells, length] = best
        self.by_end[length - 1 :, length] = best
        self.kind[:cells, length] = kind
        self.split[:cells, length] = split

    def _fill(self, length: int) -> None:
        cells = self.q - length + 1
        first = np.arange(cells)
        candidates = [self._tangent(length, cells), self._products(length, cells), self._adjoint(length, cells)]
        if not self.matrix_free:
            candidates[0] = candidates[2] = (np.full(cells, np.inf), first)
        values = np.stack([value for value, _ in candidates])
        pick = np.argmin(values, axis=0)  # ties: the first kind
        codes = np.array([kind.code for kind in _CANDIDATES], dtype=np.int8)
        splits = np.stack([split for _, split in candidates])
        written = self.model.fresh_write(first, first + length - 1)
        self._store(length, values[pick, first] + written, codes[pick], splits[pick, first])

    def _tangent(self, length: int, cells: int):
        i = np.arange(cells)
        k, j = i + length - 2, i + length - 1
        n, F = self.n[:cells], self.F[:cells]
        operand = self.by_start[:cells, length - 1]  # T[i..k]
        term = operand - F * self.tangent_prefix[i, k + 1] + self.b * n * self.m[k] - self.o_t * k
        best, arg = self.tangent_best[:cells], self.tangent_arg[:cells]
        arg[:] = np.where(term < best, k, arg)
        best[:] = np.minimum(term, best)
        value = best + F * self.tangent_prefix[i, j + 1] + self.b * n * self.m[j] + self.s + self.o_t * j
        return value, arg.copy()

    def _adjoint(self, length: int, cells: int):
        if self.tape_limit is not None:
            return self._adjoint_within_tape(length, cells)
        i = np.arange(cells)
        j = i + length - 1
        m, G = self.m[length - 1 :], self.G[length - 1 :]
        operand = self.by_end[length - 1 :, length - 1]  # T[i+1..j]
        term = operand + G * self.adjoint_prefix[j, i + 1] + self.b * m * self.m[i] + self.o_a * i
        best, arg = self.adjoint_best[length - 1 :], self.adjoint_arg[length - 1 :]
        arg[:] = np.where(term < best, i, arg)
        best[:] = np.minimum(term, best)
        value = best - G * self.adjoint_prefix[j, i] + self.b * m * self.n[:cells] + self.s + self.o_a * (1 - i)
        return value, arg.copy()

    def _adjoint_within_tape(self, length: int, cells: int):
        i = np.arange(cells)[:, None]
        d = np.arange(length - 1)[None, :]
        k, j = i + d, i + length - 1
        later = self.by_end[length - 1 :, length - 1 : 0 : -1]  # T[k+1..j]
        value = (
            later
            + self.G[j] * (self.adjoint_prefix[j, k + 1] - self.adjoint_prefix[j, i])
            + self.b * self.m[j] * (self.m[k] + self.n[i])
            + self.s
            + self.o_a * (d + 1)
        )
        value = np.where(d < self.reach[i], value, np.inf)
        pick = np.argmin(value, axis=1)
        return value[i[:, 0], pick], i[:, 0] + pick

    def _products(self, length: int, cells: int):
        earlier = self.by_start[:cells, 1:length]  # T[i..k]
        later = self.by_end[length - 1 :, length - 1 : 0 : -1]  # T[k+1..j]
        m_k = sliding_window_view(self.m, length - 1)[:cells]
        inverse_k = sliding_window_view(self.inverse_m, length - 1)[:cells]
        m_j, n_i = self.m[length - 1 :, None], self.n[:cells, None]
        inverse = np.maximum(np.maximum(inverse_k, self.inverse_m[length - 1 :, None]), self.inverse_n[:cells, None])
        value = earlier + later + (m_j * n_i) * m_k * inverse + self.b * (m_k * (m_j + n_i) + m_j * n_i) + self.s
        pick = np.argmin(value, axis=1)
        return value[np.arange(cells), pick], np.arange(cells) + pick

    def steps(self, chain: Chain) -> list[Step]:
        costs = CostModel(chain)
        steps: list[Step] = []
        pending = [(0, self.q - 1)]
        while pending:  # parents first; reversed below
            first, last = pending.pop()
            length = last - first + 1
            kind = StepKind.from_code(self.kind[first, length])
            split = None if kind.is_preaccumulation else int(self.split[first, length])
            steps.append(Step(kind, first, last, split, costs.cost(kind, first, last, split)))
            pending.extend(kind.operands(first, last, split))
        return steps[::-1]


def fastest_steps(
    chain: Chain, profile: MachineProfile, *, matrix_free: bool = True, tape_limit: int | None = None
) -> tuple[list[Step], float]:
    """The steps of a plan of least predicted time (children before parents), and that time.

    Parameters
    ----------
    chain : Chain
    profile : MachineProfile
    matrix_free : bool
    tape_limit : int or None

    Returns
    -------
    steps : list of Step
        With their exact FMA costs.
    seconds : float
        The sum of the steps' predicted times.

    Examples
    --------
    >>> from chainorder.core.profile import default_profile
    >>> steps, seconds = fastest_steps(Chain.from_dims([784, 256, 32, 256, 784]), default_profile("cpu"))
    >>> len(steps), seconds > 0
    (5, True)
    """
    dp = _TimeDP(chain, profile, matrix_free, tape_limit).run()
    return dp.steps(chain), float(dp.by_start[0, len(chain)])
