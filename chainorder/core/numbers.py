"""Exact integers at numpy speed: which dtype the optimizers' tables use, and range maxima.

Costs and memory sizes are exact integers. The dynamic programs hold them in
``int64`` arrays when a bound proves that no value they compute (costs, peaks,
and sums of two "infeasible" sentinels plus one step) can overflow, and in numpy
object arrays of Python integers otherwise (never rounded, slower). This module
is the one place that decides.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Numbers", "numbers_for", "RangeMax"]

INT64_SAFE = 2**60  # every value below this, so that INF + INF + a step stays below 2**63
INT64_INFEASIBLE = 2**61


_FLOAT_MAX = float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class Numbers:
    """The dtype of a chain's optimizer tables and the value that marks "infeasible".

    Attributes
    ----------
    dtype : numpy.dtype or type
        ``numpy.int64`` or ``object`` (Python integers); ``numpy.float64`` for
        the time model's seconds.
    infeasible : int
        Larger than any real value, and still exact when two are added.
    """

    dtype: Any
    infeasible: int

    @property
    def exact_int64(self) -> bool:
        return self.dtype is np.int64

    def array(self, values) -> np.ndarray:
        values = list(values)
        if self.dtype is np.float64:  # integers past float64's range become inf, not OverflowError
            values = [np.inf if value > _FLOAT_MAX else value for value in values]
        return np.array(values, dtype=self.dtype)

    def full(self, shape, value=None) -> np.ndarray:
        return np.full(shape, self.infeasible if value is None else value, dtype=self.dtype)


def value_bound(dims, tangent_total: int, adjoint_total: int, edges_total: int, layers: int) -> int:
    """An upper bound on every cost and every peak memory of any plan of the chain."""
    biggest = max(dims)
    step = biggest * max(tangent_total, adjoint_total) + biggest**3
    cost = 2 * layers * step
    peak = (layers + 5) * biggest**2 + edges_total
    return max(cost, peak)


def numbers_for(bound: int) -> Numbers:
    """int64 when every value is below ``bound < 2**60``, else Python integers.

    >>> numbers_for(10**12).dtype is np.int64, numbers_for(10**30).dtype
    (True, <class 'object'>)
    """
    if bound < INT64_SAFE:
        return Numbers(np.int64, INT64_INFEASIBLE)
    return Numbers(object, 4 * bound + 4)


class RangeMax:
    """``max(values[a..b])`` for any inclusive range in O(1), scalar or numpy index arrays.

    A sparse table: row ``l`` holds the maxima of the windows of ``2**l`` values.
    Values keep the given dtype.

    >>> widest = RangeMax(np.array([3, 9, 4, 1]))
    >>> int(widest(1, 3)), int(widest(2, 3)), widest(np.array([0, 2]), np.array([0, 3])).tolist()
    (9, 4, [3, 4])
    """

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values)
        levels = max(1, len(values).bit_length())
        self._table = np.zeros((levels, len(values)), dtype=values.dtype)
        self._table[0] = values
        for level in range(1, levels):
            width = 1 << (level - 1)
            row = self._table[level - 1]
            self._table[level, : len(values) - 2 * width + 1] = np.maximum(row[: -width], row[width:])[
                : len(values) - 2 * width + 1
            ]

    def __call__(self, first, last):
        if np.ndim(first) == 0 and np.ndim(last) == 0:
            level = (int(last) - int(first) + 1).bit_length() - 1
            row = self._table[level]
            return max(row[first], row[last - (1 << level) + 1])
        first, last = np.broadcast_arrays(np.asarray(first), np.asarray(last))
        level = np.floor(np.log2(last - first + 1)).astype(np.int64)
        return np.maximum(self._table[level, first], self._table[level, last - (1 << level) + 1])
