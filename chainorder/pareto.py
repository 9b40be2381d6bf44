"""Cost against memory: the exact Pareto front of plans, and memory-limited optimization.

A dynamic program over sub-chains, like :mod:`chainorder.optimize`, but each
sub-chain keeps every non-dominated pair (cost, peak memory) of its sub-plans
rather than the single cheapest. Both the cost (a sum, or a max of the operands
with ``parallel``) and the peak (see :mod:`chainorder.memory`: a max of the
operands' peaks shifted by the operand computed first) are monotone in the
operands' values, so a sub-plan dominated in both can never be part of a
non-dominated plan, and pruning it loses nothing. With a memory limit, sub-plans
whose peak is already over the limit are dropped as they appear.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .chain import Chain
from .costs import (
    ADJOINT_PREACCUMULATION,
    ADJOINT_STEP,
    PRODUCT,
    STEP_CODES,
    STEP_KINDS,
    TANGENT_PREACCUMULATION,
    TANGENT_STEP,
    CostModel,
)
from .memory import MemoryModel, order_for_memory
from .plan import Step

__all__ = ["pareto_steps"]

_SAFE = 2**60


class _Fronts:
    """Every sub-chain's front, stored flat: entry ``e`` has ``cost[e]``,
    ``peak[e]`` (workspace peak, without the primal values), ``kind[e]``,
    ``split[e]`` and the entries of its operands, ``later[e]`` (``J[j..k+1]``)
    and ``earlier[e]`` (``J[k..i]``), -1 where there is none. The entries of
    sub-chain ``i..j`` are ``start[i, j] : start[i, j] + size[i, j]``, cheapest
    first."""

    def __init__(self, q: int, dtype) -> None:
        self.dtype = dtype
        self.start = np.zeros((q, q), dtype=np.int64)
        self.size = np.zeros((q, q), dtype=np.int64)
        self.columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("cost", "peak", "kind", "split", "later", "earlier")
        }
        self.count = 0
        self.cost = self.peak = np.zeros(0, dtype=dtype)

    def add(self, first: int, last: int, **columns: np.ndarray) -> None:
        self.start[first, last] = self.count
        self.size[first, last] = len(columns["cost"])
        self.count += len(columns["cost"])
        for name, values in columns.items():
            self.columns[name].append(values)

    def freeze_level(self) -> None:
        """Make the entries added so far readable through ``cost`` and ``peak``."""
        self.cost = np.concatenate(self.columns["cost"])
        self.peak = np.concatenate(self.columns["peak"])
        self.columns["cost"], self.columns["peak"] = [self.cost], [self.peak]

    def entry(self, index: int) -> tuple:
        if not hasattr(self, "_flat"):
            self._flat = {name: np.concatenate(values) for name, values in self.columns.items()}
        flat = self._flat
        return tuple(flat[name][index] for name in ("cost", "peak", "kind", "split", "later", "earlier"))


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the indices starts[i] .. starts[i] + sizes[i] - 1, concatenated,
    and which i each index came from."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    offsets = np.cumsum(sizes) - sizes
    return starts[owner] + np.arange(int(sizes.sum())) - offsets[owner], owner


def _prune(cost: np.ndarray, peak: np.ndarray, keep_also: dict, budget, dtype) -> dict:
    """The non-dominated candidates, cheapest first (so peaks decrease)."""
    if budget is not None:
        fits = peak <= budget
        cost, peak = cost[fits], peak[fits]
        keep_also = {name: values[fits] for name, values in keep_also.items()}
    order = np.lexsort((peak, cost))
    cost, peak = cost[order], peak[order]
    if len(peak):
        best_before = np.minimum.accumulate(peak)
        keep = np.empty(len(peak), dtype=bool)
        keep[0] = True
        keep[1:] = peak[1:] < best_before[:-1]
    else:
        keep = np.zeros(0, dtype=bool)
    result = {"cost": cost[keep], "peak": peak[keep]}
    for name, values in keep_also.items():
        result[name] = values[order][keep]
    return result


def _fronts(chain: Chain, matrix_free: bool, tape_limit: int | None, parallel: bool, budget: int | None) -> _Fronts:
    q = len(chain)
    costs = CostModel(chain)
    biggest = max(chain.dims)
    bound = 4 * q * (biggest * max(costs.tangent_prefix[-1], costs.adjoint_prefix[-1]) + 5 * biggest**2)
    bound += 4 * q * costs.edges_prefix[-1] + biggest**3
    dtype = np.int64 if bound < _SAFE else object  # Python ints when int64 could overflow

    def array(values) -> np.ndarray:
        return np.array(list(values), dtype=dtype)

    n, m = array(costs.in_dims), array(costs.out_dims)
    tangent_prefix, adjoint_prefix = array(costs.tangent_prefix), array(costs.adjoint_prefix)
    edges_prefix = array(costs.edges_prefix)
    widths = n + m
    fronts = _Fronts(q, dtype)
    index_type = np.int64

    for i in range(q):
        cost = [costs.tangent_preaccumulation(i)]
        peak = [int(n[i]) * int(widths[i])]
        kind = [STEP_CODES[TANGENT_PREACCUMULATION]]
        if tape_limit is None or costs.tape(i, i) <= tape_limit:
            cost.append(costs.adjoint_preaccumulation(i))
            peak.append(int(m[i]) * int(widths[i]) + costs.tape(i, i))
            kind.append(STEP_CODES[ADJOINT_PREACCUMULATION])
        none = np.full(len(cost), -1, dtype=index_type)
        fronts.add(
            i, i, **_prune(array(cost), array(peak), {"kind": np.array(kind, dtype=np.int8),
                                                      "split": none, "later": none, "earlier": none}, budget, dtype)
        )
    fronts.freeze_level()

    for length in range(2, q + 1):
        for i in range(q - length + 1):
            j = i + length - 1
            splits = np.arange(i, j)
            later_start, later_size = fronts.start[splits + 1, j], fronts.size[splits + 1, j]
            earlier_start, earlier_size = fronts.start[i, splits], fronts.size[i, splits]
            parts = []

            # products: every pair of an entry of J[j..k+1] and one of J[k..i]
            pairs = later_size * earlier_size
            owner = np.repeat(np.arange(len(splits)), pairs)
            offset = np.arange(int(pairs.sum())) - (np.cumsum(pairs) - pairs)[owner]
            later = later_start[owner] + offset // earlier_size[owner]
            earlier = earlier_start[owner] + offset % earlier_size[owner]
            later_result = (m[j] * m[i:j])[owner]
            earlier_result = (m[i:j] * n[i])[owner]
            cost_a, cost_b = fronts.cost[later], fronts.cost[earlier]
            peak_a, peak_b = fronts.peak[later], fronts.peak[earlier]
            cost = (np.maximum(cost_a, cost_b) if parallel else cost_a + cost_b) + later_result * n[i]
            peak = np.minimum(
                np.maximum(peak_a, later_result + peak_b), np.maximum(peak_b, earlier_result + peak_a)
            )
            peak = np.maximum(peak, later_result + earlier_result + m[j] * n[i])
            parts.append((cost, peak, PRODUCT, splits[owner], later, earlier))

            if matrix_free:
                # tangent steps: an entry of J[k..i] pushed through layers k+1..j
                earlier, owner = _ranges(earlier_start, earlier_size)
                through = np.maximum.accumulate(widths[i + 1 : j + 1][::-1])[::-1]  # widest of k+1..j
                cost = fronts.cost[earlier] + (n[i] * (tangent_prefix[j + 1] - tangent_prefix[i + 1 : j + 1]))[owner]
                peak = np.maximum(fronts.peak[earlier], (n[i] * through)[owner])
                parts.append((cost, peak, TANGENT_STEP, splits[owner], np.full(len(cost), -1), earlier))

                # adjoint steps: an entry of J[j..k+1] pulled back through layers i..k
                tape = edges_prefix[i + 1 : j + 1] - edges_prefix[i]
                fits = np.ones(len(splits), dtype=bool) if tape_limit is None else tape <= tape_limit
                sizes = np.where(fits, later_size, 0)
                later, owner = _ranges(later_start, sizes)
                through = np.maximum.accumulate(widths[i:j])  # widest of i..k
                cost = fronts.cost[later] + (m[j] * (adjoint_prefix[i + 1 : j + 1] - adjoint_prefix[i]))[owner]
                peak = np.maximum(fronts.peak[later], (m[j] * through + tape)[owner])
                parts.append((cost, peak, ADJOINT_STEP, splits[owner], later, np.full(len(cost), -1)))

            kept = _prune(
                np.concatenate([part[0] for part in parts]),
                np.concatenate([part[1] for part in parts]),
                {
                    "kind": np.concatenate(
                        [np.full(len(part[0]), STEP_CODES[part[2]], dtype=np.int8) for part in parts]
                    ),
                    "split": np.concatenate([part[3] for part in parts]).astype(index_type),
                    "later": np.concatenate([part[4] for part in parts]).astype(index_type),
                    "earlier": np.concatenate([part[5] for part in parts]).astype(index_type),
                },
                budget,
                dtype,
            )
            fronts.add(i, j, **kept)
        fronts.freeze_level()
    return fronts


def _steps(chain: Chain, fronts: _Fronts, root: int) -> list[Step]:
    """The steps of front entry ``root`` (of the whole chain), in post-order."""
    costs = CostModel(chain)
    steps: list[Step] = []
    stack: list[tuple[int, int, int, bool]] = [(0, len(chain) - 1, root, False)]
    while stack:
        first, last, entry, ready = stack.pop()
        _, _, code, split, later, earlier = fronts.entry(entry)
        kind = STEP_KINDS[int(code)]
        split = None if first == last else int(split)
        if ready or split is None:
            steps.append(Step(kind, first, last, split, costs.step_cost(kind, first, split, last)))
            continue
        stack.append((first, last, entry, True))
        if earlier >= 0:
            stack.append((first, split, int(earlier), False))
        if later >= 0:
            stack.append((split + 1, last, int(later), False))
    return steps


def pareto_steps(
    chain: Chain,
    *,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    parallel: bool = False,
    memory_limit: int | None = None,
) -> list[tuple[int, int, list[Step]]]:
    """Every non-dominated ``(cost, peak_memory, steps)``, least memory first.

    With ``memory_limit``, only plans whose peak fits; an empty list when none does.
    """
    memory = MemoryModel(chain)
    budget = None if memory_limit is None else memory_limit - memory.primal
    if budget is not None and budget < 0:
        return []
    fronts = _fronts(chain, matrix_free, tape_limit, parallel, budget)
    q = len(chain)
    start, size = int(fronts.start[0, q - 1]), int(fronts.size[0, q - 1])
    plans = []
    for entry in range(start + size - 1, start - 1, -1):  # least memory first
        steps = order_for_memory(chain, _steps(chain, fronts, entry), memory)
        cost, peak = fronts.entry(entry)[:2]
        plans.append((int(cost), int(peak) + memory.primal, steps))
    return plans
