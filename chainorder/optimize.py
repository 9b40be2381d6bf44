"""Finding the cheapest plan: dynamic programming over sub-chains.

``C[i..j]``, the least cost of ``J[j..i]``, is the minimum of (notation of
:mod:`chainorder.costs`; ``k`` ranges over ``i..j-1``)

* ``i == j``: ``n_i t_i`` (tangent) or ``m_i a_i`` (adjoint, if ``E_i <= M``);
* tangent step: ``C[i..k] + n_i (t_{k+1} + ... + t_j)``;
* adjoint step: ``C[k+1..j] + m_j (a_i + ... + a_k)`` (if ``E_i + ... + E_k <= M``);
* product: ``C[i..k] (+ or max) C[k+1..j] + m_j m_k n_i``.

The table is filled by sub-chain length; each length is a handful of numpy
operations over all its cells and splits at once:

* products need every split: a ``cells x (length - 1)`` array per length, read
  as slices of two copies of the table, one indexed by a sub-chain's first
  layer and one by its last layer (``O(q^3)`` work, vectorized);
* tangent steps are ``n_i T[j+1] + min_k (C[i..k] - n_i T[k+1])`` with prefix
  sums ``T``: the inner minimum is a running minimum over ``k`` that grows by
  one term per length (``O(q^2)`` in all); adjoint steps likewise, running in
  the other direction; with a tape limit, adjoint steps use a window of at most
  the longest run of layers that fits on the tape.

The table holds ``int64`` values whenever every possible plan cost is below
``2**60``; beyond that (dimensions near 10^9, costs above 2^63) it holds Python
integers in numpy object arrays: slower, never rounded. Either way the optimum is
exact, and the plan's cost is recomputed from its steps with Python integers.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import bisect
from itertools import accumulate

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
from .memory import MemoryModel, order_for_memory, peak_memory
from .pareto import pareto_steps
from .plan import Plan, Step, _check_options, critical_path

__all__ = ["optimize", "pareto"]

# codes of the choice table
_TANGENT_PRE = STEP_CODES[TANGENT_PREACCUMULATION]
_ADJOINT_PRE = STEP_CODES[ADJOINT_PREACCUMULATION]
_TANGENT = STEP_CODES[TANGENT_STEP]
_ADJOINT = STEP_CODES[ADJOINT_STEP]
_PRODUCT = STEP_CODES[PRODUCT]
_INT64_SAFE = 2**60
_INT64_INFEASIBLE = 2**61


def optimize(
    chain: Chain,
    strategy: str = "optimal",
    *,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    parallel: bool = False,
    memory_limit: int | None = None,
) -> Plan:
    """Find the cheapest plan to accumulate ``chain``'s Jacobian.

    Parameters
    ----------
    chain : Chain
    strategy : {"optimal", "forward", "reverse"}
        ``"optimal"`` searches every bracketing and every choice of tangent
        steps, adjoint steps and dense products; ``"forward"`` is pure tangent
        mode (``jax.jacfwd``), ``"reverse"`` pure adjoint mode (``jax.jacrev``).
    matrix_free : bool
        ``False`` allows only preaccumulation of single layers and dense
        products (the classic matrix-chain problem).
    tape_limit : int or None
        The largest tape (sum of ``edges``) any adjoint may hold; ``None`` for
        no limit.
    parallel : bool
        Minimize the critical path with unlimited threads (the two operands of
        a product are computed at the same time) instead of the total work.
    memory_limit : int or None
        The largest peak memory, in elements (see :mod:`chainorder.memory`),
        the plan may reach; the cheapest plan that fits is returned.

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        For bad options, or when no plan fits ``memory_limit`` (the message
        gives the least achievable peak).

    Examples
    --------
    >>> from chainorder import Chain
    >>> plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]))
    >>> plan.forward_cost, plan.reverse_cost, plan.cost
    (327548928, 327548928, 33038336)
    >>> [step.kind for step in plan.steps]
    ['adjoint_preaccumulation', 'adjoint_step', 'tangent_preaccumulation', 'tangent_step', 'product']
    >>> chain = Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8])
    >>> optimize(chain).cost
    6651904
    >>> limited = optimize(chain, memory_limit=150_000)
    >>> limited.peak_memory, limited.cost
    (142808, 38371328)
    """
    tape_limit, memory_limit = _check_options(chain, strategy, matrix_free, tape_limit, parallel, memory_limit)
    options = dict(
        strategy=strategy,
        matrix_free=matrix_free,
        tape_limit=tape_limit,
        parallel=parallel,
        memory_limit=memory_limit,
    )
    memory = MemoryModel(chain)
    if strategy == "optimal":
        steps = order_for_memory(chain, _optimal_steps(chain, matrix_free, tape_limit, parallel), memory)
        if matrix_free:
            steps = _prefer_pure_mode(chain, steps, tape_limit, parallel, memory_limit, memory)
        if memory_limit is not None and peak_memory(chain, steps, memory) > memory_limit:
            steps = _cheapest_within(chain, matrix_free, tape_limit, parallel, memory_limit)
        return Plan(chain, steps, **options)
    if not matrix_free:
        raise ValueError(
            f"strategy={strategy!r} is a matrix-free mode; matrix_free=False allows only "
            "strategy='optimal'"
        )
    steps = _forward_steps(chain) if strategy == "forward" else _reverse_steps(chain, tape_limit)
    if memory_limit is not None and peak_memory(chain, steps, memory) > memory_limit:
        raise ValueError(
            f"strategy={strategy!r} needs a peak of {peak_memory(chain, steps, memory):,} elements, "
            f"over memory_limit {memory_limit:,}"
        )
    return Plan(chain, steps, **options)


def pareto(
    chain: Chain,
    *,
    matrix_free: bool = True,
    tape_limit: int | None = None,
    parallel: bool = False,
) -> list[Plan]:
    """Every Pareto-optimal plan: peak memory going up, cost going down.

    The first plan needs the least memory of all plans; the last is a
    cost-optimal plan. No plan of the list is beaten in both cost and memory
    by any plan.

    >>> from chainorder import Chain
    >>> front = pareto(Chain.from_dims([64, 512, 1024, 128, 16, 512, 256, 8]))
    >>> [(plan.peak_memory, plan.cost) for plan in front]
    [(100824, 46383104), (139736, 45252608), (142808, 38371328), (539096, 6651904)]
    """
    tape_limit, _ = _check_options(chain, "optimal", matrix_free, tape_limit, parallel)
    plans = pareto_steps(chain, matrix_free=matrix_free, tape_limit=tape_limit, parallel=parallel)
    return [
        Plan(chain, steps, strategy="optimal", matrix_free=matrix_free, tape_limit=tape_limit, parallel=parallel)
        for _, _, steps in plans
    ]


def _cheapest_within(
    chain: Chain, matrix_free: bool, tape_limit: int | None, parallel: bool, memory_limit: int
) -> list[Step]:
    options = dict(matrix_free=matrix_free, tape_limit=tape_limit, parallel=parallel)
    plans = pareto_steps(chain, memory_limit=memory_limit, **options)  # type: ignore[arg-type]
    if not plans:
        least = pareto_steps(chain, **options)[0][1]  # type: ignore[arg-type]
        raise ValueError(
            f"no plan fits memory_limit {memory_limit:,} elements; the least achievable peak "
            f"memory is {least:,} elements"
        )
    return plans[-1][2]


def _prefer_pure_mode(
    chain: Chain,
    steps: list[Step],
    tape_limit: int | None,
    parallel: bool,
    memory_limit: int | None,
    memory: MemoryModel,
) -> list[Step]:
    """On a tie with pure forward or reverse mode, take the pure mode (if it fits
    the memory limit): it runs as ``jax.jacfwd``/``jax.jacrev`` with no
    bookkeeping. A pure mode's sequential cost is also its critical path, so
    this holds for ``parallel`` too."""
    cost = critical_path(steps) if parallel else sum(step.cost for step in steps)
    candidates = [_forward_steps(chain)]
    if tape_limit is None or max(chain.edges) <= tape_limit:  # type: ignore[type-var]
        candidates.append(_reverse_steps(chain, tape_limit))
    for pure in candidates:
        fits = memory_limit is None or peak_memory(chain, pure, memory) <= memory_limit
        if fits and sum(step.cost for step in pure) <= cost:
            return pure
    return steps


def _forward_steps(chain: Chain) -> list[Step]:
    q = len(chain)
    steps = [Step(TANGENT_PREACCUMULATION, 0, 0, None, chain[0].in_dim * chain[0].tangent_cost)]
    if q > 1:
        rest = sum(chain.tangent_costs[1:])
        steps.append(Step(TANGENT_STEP, 0, q - 1, 0, chain[0].in_dim * rest))
    return steps


def _reverse_steps(chain: Chain, tape_limit: int | None) -> list[Step]:
    """Pure adjoint mode; under a tape limit, the adjoint is split into pieces
    that each fit on the tape (the cost is the same)."""
    q = len(chain)
    rows = chain.out_dim
    if tape_limit is not None:
        for index, layer in enumerate(chain):
            if layer.edges > tape_limit:  # type: ignore[operator]
                raise ValueError(
                    f"strategy='reverse' is impossible: layer {index} needs a tape of "
                    f"{layer.edges} edges, over the tape limit {tape_limit}"
                )
    last = chain[q - 1]
    steps = [Step(ADJOINT_PREACCUMULATION, q - 1, q - 1, None, rows * last.adjoint_cost)]
    end = q - 2  # pull back through layers start..end
    while end >= 0:
        start, tape = end, chain[end].edges
        while start > 0 and (tape_limit is None or tape + chain[start - 1].edges <= tape_limit):
            start -= 1
            tape += chain[start].edges
        cost = rows * sum(chain.adjoint_costs[start : end + 1])
        steps.append(Step(ADJOINT_STEP, start, q - 1, end, cost))
        end = start - 1
    return steps


def _cost_bound(chain: Chain) -> int:
    """An upper bound on any candidate value the DP computes."""
    biggest = max(chain.dims)
    per_step = biggest * max(sum(chain.tangent_costs), sum(chain.adjoint_costs)) + biggest**3
    return 4 * len(chain) * per_step


def _optimal_steps(
    chain: Chain, matrix_free: bool, tape_limit: int | None, parallel: bool
) -> list[Step]:
    q = len(chain)
    bound = _cost_bound(chain)
    fits_int64 = bound < _INT64_SAFE
    # int64 when nothing can overflow; else numpy arrays of Python ints (exact, slower)
    dtype = np.int64 if fits_int64 else object
    infeasible = _INT64_INFEASIBLE if fits_int64 else 4 * bound

    n = np.array([layer.in_dim for layer in chain], dtype=dtype)
    m = np.array([layer.out_dim for layer in chain], dtype=dtype)
    tangent_prefix = np.array([0, *accumulate(chain.tangent_costs)], dtype=dtype)
    adjoint_prefix = np.array([0, *accumulate(chain.adjoint_costs)], dtype=dtype)

    # reach[i]: the longest run of layers i..i+reach[i]-1 whose tape fits (exact ints)
    if tape_limit is None:
        reach = np.full(q, q, dtype=np.int64)
    else:
        edges_prefix = [0, *accumulate(chain.edges)]
        reach = np.array(
            [bisect.bisect_right(edges_prefix, edges_prefix[i] + tape_limit) - 1 - i for i in range(q)],
            dtype=np.int64,
        )
    window = int(reach.max())

    # by_start[i, L] = C[i..i+L-1]; by_end[j, L] = C[j-L+1..j]. Sub-chain length is
    # the last axis, so every split of a cell lies in one contiguous row.
    by_start = np.full((q, q + 1), infeasible, dtype=dtype)
    by_end = np.full((q, q + 1), infeasible, dtype=dtype)
    choice = np.zeros((q, q + 1), dtype=np.int8)
    split = np.zeros((q, q + 1), dtype=np.int64)

    tangent_pre = n * (tangent_prefix[1:] - tangent_prefix[:-1])
    adjoint_pre = np.where(reach >= 1, m * (adjoint_prefix[1:] - adjoint_prefix[:-1]), infeasible)
    use_adjoint = adjoint_pre < tangent_pre
    by_start[:, 1] = np.where(use_adjoint, adjoint_pre, tangent_pre)
    by_end[:, 1] = by_start[:, 1]
    choice[:, 1] = np.where(use_adjoint, _ADJOINT_PRE, _TANGENT_PRE)

    # running minima for tangent steps (per first layer i) and unlimited adjoint
    # steps (per last layer j), with the split that attains them
    tangent_best = np.full(q, infeasible, dtype=dtype)
    tangent_arg = np.zeros(q, dtype=np.int64)
    adjoint_best = np.full(q, infeasible, dtype=dtype)
    adjoint_arg = np.zeros(q, dtype=np.int64)
    positions = np.arange(q)
    buffer = np.empty((q // 2 + 1) * (q - q // 2 + 1), dtype=dtype)

    for length in range(2, q + 1):
        cells = q - length + 1
        first = positions[:cells]
        last = first + length - 1
        left = by_start[:cells, 1:length]  # left[i, d] = C[i..i+d]
        right = by_end[length - 1 :, length - 1 : 0 : -1]  # right[i, d] = C[i+d+1..j]

        # dense products over every split k = i + d
        product = buffer[: cells * (length - 1)].reshape(cells, length - 1)
        np.multiply(
            sliding_window_view(m, length - 1)[:cells],
            (m[length - 1 :] * n[:cells])[:, None],
            out=product,
        )
        if parallel:
            product += np.maximum(left, right)
        else:
            product += left
            product += right
        best_d = np.argmin(product, axis=1)
        best = product[first, best_d]
        kind = np.full(cells, _PRODUCT, dtype=np.int8)
        best_split = first + best_d

        if matrix_free:
            # tangent: the new split is k = j - 1
            term = by_start[:cells, length - 1] - n[:cells] * tangent_prefix[length - 1 : q]
            better = term < tangent_best[:cells]
            tangent_best[:cells] = np.where(better, term, tangent_best[:cells])
            tangent_arg[:cells] = np.where(better, last - 1, tangent_arg[:cells])
            candidate = tangent_best[:cells] + n[:cells] * tangent_prefix[length:]
            better = candidate <= best
            best = np.where(better, candidate, best)
            kind[better] = _TANGENT
            best_split = np.where(better, tangent_arg[:cells], best_split)

            if tape_limit is None:
                # adjoint: the new split is k = i, i.e. C[i+1..j] of length L-1
                term = by_end[length - 1 :, length - 1] + m[length - 1 :] * adjoint_prefix[1 : cells + 1]
                better = term < adjoint_best[length - 1 :]
                adjoint_best[length - 1 :] = np.where(better, term, adjoint_best[length - 1 :])
                adjoint_arg[length - 1 :] = np.where(better, first, adjoint_arg[length - 1 :])
                candidate = adjoint_best[length - 1 :] - m[length - 1 :] * adjoint_prefix[:cells]
                arg = adjoint_arg[length - 1 :]
            else:
                # adjoint through layers i..i+d, for the d whose tape fits
                width = min(length - 1, window)
                if width > 0:
                    pulled = sliding_window_view(adjoint_prefix[1:], width)[:cells] - adjoint_prefix[:cells, None]
                    options = right[:, :width] + m[length - 1 :, None] * pulled
                    fits = np.arange(width)[None, :] < reach[:cells, None]
                    options = np.where(fits, options, infeasible)
                    adjoint_d = np.argmin(options, axis=1)
                    candidate = options[first, adjoint_d]
                    arg = first + adjoint_d
                else:
                    candidate = np.full(cells, infeasible, dtype=dtype)
                    arg = first
            better = candidate < best
            best = np.where(better, candidate, best)
            kind[better] = _ADJOINT
            best_split = np.where(better, arg, best_split)

        if fits_int64:
            best = np.minimum(best, infeasible)
        by_start[:cells, length] = best
        by_end[length - 1 :, length] = best
        choice[:cells, length] = kind
        split[:cells, length] = best_split

    return _steps_from_table(chain, choice, split)


def _steps_from_table(chain: Chain, choice: np.ndarray, split: np.ndarray) -> list[Step]:
    """Read the plan for the whole chain out of the choice table (post-order,
    iterative so that long chains need no deep recursion)."""
    model = CostModel(chain)
    steps: list[Step] = []
    stack: list[tuple[int, int, bool]] = [(0, len(chain) - 1, False)]
    while stack:
        first, last, ready = stack.pop()
        length = last - first + 1
        code = int(choice[first, length])
        k = None if length == 1 else int(split[first, length])
        if ready or length == 1:
            kind = STEP_KINDS[code]
            steps.append(Step(kind, first, last, k, model.step_cost(kind, first, k, last)))
            continue
        stack.append((first, last, True))
        # pushed in reverse: J[last..k+1] is computed before J[k..first]
        if code in (_TANGENT, _PRODUCT):
            stack.append((first, k, False))  # type: ignore[arg-type]
        if code in (_ADJOINT, _PRODUCT):
            stack.append((k + 1, last, False))  # type: ignore[operator]
    return steps
