"""The dynamic program for ``objective="time"``: the plan of least predicted seconds.

Same recursion as :mod:`chainorder.core.dp` (``T[i..j]`` is the least time of
``J[j..i]``; the candidates are a preaccumulation, a tangent step, an adjoint
step or a product at every split), with :class:`~chainorder.core.timing.TimeModel`
pricing each step. A step's time is not linear in the prefix sums the FMA DP's
running minima rely on (its rate depends on its shape), so every split of every
cell is priced: ``O(q^3)`` work, one numpy expression per step kind and
sub-chain length. Float ties are broken by the order tangent, product, adjoint.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .chain import Chain
from .costs import CostModel
from .profile import MachineProfile
from .steps import Step, StepKind
from .timing import TimeModel

__all__ = ["fastest_steps"]

_CANDIDATES = (StepKind.TANGENT_STEP, StepKind.PRODUCT, StepKind.ADJOINT_STEP)


class _TimeDP:
    def __init__(self, chain: Chain, profile: MachineProfile, matrix_free: bool, tape_limit: int | None) -> None:
        self.q = q = len(chain)
        self.model = TimeModel(chain, profile)
        self.matrix_free, self.tape_limit = matrix_free, tape_limit
        self.best = np.full((q, q + 1), np.inf)  # [first, length]
        self.kind = np.zeros((q, q + 1), dtype=np.int8)
        self.split = np.full((q, q + 1), -1, dtype=np.int64)

    def _fits(self, kind: StepKind, first, last, split=None):
        if self.tape_limit is None:
            return True
        return self.model.costs.tape(kind, first, last, split) <= self.tape_limit

    def run(self) -> _TimeDP:
        layers = np.arange(self.q)
        tangent = self.model.cost(StepKind.TANGENT_PREACCUMULATION, layers, layers)
        adjoint = self.model.cost(StepKind.ADJOINT_PREACCUMULATION, layers, layers)
        adjoint = np.where(self._fits(StepKind.ADJOINT_PREACCUMULATION, layers, layers), adjoint, np.inf)
        use_adjoint = adjoint < tangent
        self.best[:, 1] = np.where(use_adjoint, adjoint, tangent)
        self.kind[:, 1] = np.where(
            use_adjoint, StepKind.ADJOINT_PREACCUMULATION.code, StepKind.TANGENT_PREACCUMULATION.code
        )
        for length in range(2, self.q + 1):
            self._fill(length)
        return self

    def _fill(self, length: int) -> None:
        cells = self.q - length + 1
        first = np.arange(cells)[:, None]
        offset = np.arange(length - 1)[None, :]
        last, split = first + length - 1, first + offset
        earlier = self.best[first, offset + 1]  # T[i..k]
        later = self.best[split + 1, length - offset - 1]  # T[k+1..j]
        rows = []
        for kind in _CANDIDATES:
            if kind is not StepKind.PRODUCT and not self.matrix_free:
                rows.append(np.full((cells, length - 1), np.inf))
                continue
            operands = {StepKind.TANGENT_STEP: earlier, StepKind.ADJOINT_STEP: later}.get(kind, earlier + later)
            row = operands + self.model.cost(kind, first, last, split)
            if kind is StepKind.ADJOINT_STEP:
                row = np.where(self._fits(kind, first, last, split), row, np.inf)
            rows.append(row)
        stacked = np.stack(rows, axis=1).reshape(cells, -1)  # per cell: kinds in preference order, then splits
        pick = np.argmin(stacked, axis=1)
        cell = np.arange(cells)
        self.best[cell, length] = stacked[cell, pick]
        codes = np.array([kind.code for kind in _CANDIDATES], dtype=np.int8)
        self.kind[cell, length] = codes[pick // (length - 1)]
        self.split[cell, length] = cell + pick % (length - 1)

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
    return dp.steps(chain), float(dp.best[0, len(chain)])
