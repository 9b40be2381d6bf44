"""The memory model: peak memory of executing a plan, in array elements.

What a step holds while it runs (its *workspace*; notation of
:mod:`chainorder.core.costs`, ``|J[j..i]| = m_j * n_i``, ``w_l = n_l + m_l``):

==========================================  ===================================================
step                                        workspace (elements)
==========================================  ===================================================
tangent preaccumulation of layer i          ``n_i * w_i``: the identity seed and the
                                            ``n_i`` tangents through the layer; with
                                            ``c_i < n_i`` colors, ``c_i * w_i + m_i n_i``:
                                            the compressed seeds and tangents, and the
                                            Jacobian they are decompressed into; an
                                            explicit layer ``m_i n_i + m_i``: its Jacobian
                                            and the elementwise derivative scaling ``W``
tangent step through layers k+1..j          ``n_i * max_l w_l`` over those layers: the
                                            ``n_i`` tangents entering and leaving one layer
adjoint preaccumulation of layer i          ``m_i * w_i + E_i``: seed, cotangents, tape
                                            (colors: as for tangents, plus ``E_i``)
adjoint step through layers i..k            ``m_j * max_l w_l + E_i + ... + E_k``:
                                            cotangents plus the tape of the layers pulled through
product ``J[j..k+1] @ J[k..i]``             ``m_j m_k + m_k n_i + m_j n_i``: operands and result
==========================================  ===================================================

(:func:`propagation_workspace` and :func:`product_workspace`.) A tangent or adjoint
step, or a dense preaccumulation, may push its seeds ``chunk`` at a time in a loop
(``Step.chunk``): it then holds its operand and its whole result, and ``chunk``
seeds across the widest layer (:func:`chunked_workspace`; preaccumulations make
each chunk of the identity in the loop); the same FMAs. While a step runs,
every Jacobian produced earlier and not yet consumed stays alive; the peak is the
maximum over the steps of (alive Jacobians + workspace), plus the primal values
``n_0 + m_0 + ... + m_{q-1}`` that every plan keeps (the executor runs the primal
pass once and keeps its intermediates).

The order of a product's two operands matters: computing ``A`` first keeps ``|A|``
alive while ``B`` is computed. For a sub-plan whose operands peak at ``peak(A)`` and
``peak(B)``, the peak is ``min(max(peak(A), |A| + peak(B)), max(peak(B), |B| + peak(A)))``
(and at least the product's workspace): Sethi and Ullman's rule,
:func:`operand_peaks`, written here once and used by the optimizers, which
therefore know every sub-plan's peak, and by
:func:`chainorder.core.memorysteps.order_for_memory`.

This module imports neither jax nor matplotlib.

References
----------
Sethi, R., Ullman, J. D. (1970). The generation of optimal code for arithmetic
expressions. J. ACM 17(4), 715-728.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .chain import Chain
from .costs import CostModel
from .numbers import RangeMax
from .steps import Step, StepKind

__all__ = [
    "MemoryModel",
    "peak_memory",
    "device_peaks",
    "operand_peaks",
    "propagation_workspace",
    "product_workspace",
    "explicit_workspace",
    "chunked_workspace",
]


def maximum(a, b):
    """Elementwise maximum of scalars (exact Python integers stay Python integers) or arrays."""
    return np.maximum(a, b) if np.ndim(a) or np.ndim(b) else max(a, b)


def _minimum(a, b):
    return np.minimum(a, b) if np.ndim(a) or np.ndim(b) else min(a, b)


def propagation_workspace(seeds, widest, tape):
    """Elements a tangent/adjoint kind holds: ``seeds`` vectors entering and leaving
    the widest layer it goes through, plus the tape it records (0 for tangents)."""
    return seeds * widest + tape


def chunked_workspace(held, chunk, widest, tape):
    """Elements a tangent/adjoint kind holds when it pushes its seeds ``chunk`` at a time:
    ``held`` (its operand and its whole result, written chunk by chunk), ``chunk`` vectors
    entering and leaving the widest layer, and its tape (0 for tangents)."""
    return held + chunk * widest + tape


def explicit_workspace(rows, columns):
    """Elements an explicit preaccumulation holds: the Jacobian it writes and the ``rows``
    derivatives of the elementwise map that scale the affine map's rows."""
    return rows * columns + rows


def product_workspace(rows, inner, columns):
    """Elements of a product: both operands and the result."""
    return rows * inner + inner * columns + rows * columns


def operand_peaks(peak_later, size_later, peak_earlier, size_earlier):
    """Sethi-Ullman: the peak of computing the later operand first, and of the earlier first.

    ``later`` is ``J[j..k+1]``, ``earlier`` is ``J[k..i]``; each operand's result
    stays alive while the other is computed. Scalars or numpy arrays. The
    product's peak is ``max(min(both), its workspace)``; on a tie the later
    operand goes first.

    >>> operand_peaks(10, 4, 7, 5)   # later first: max(10, 4 + 7); earlier first: max(7, 5 + 10)
    (11, 15)
    """
    later_first = maximum(peak_later, size_later + peak_earlier)
    earlier_first = maximum(peak_earlier, size_earlier + peak_later)
    return later_first, earlier_first


def product_peak(peak_later, size_later, peak_earlier, size_earlier, workspace):
    """Least peak of a product over both operand orders (:func:`operand_peaks`)."""
    later_first, earlier_first = operand_peaks(peak_later, size_later, peak_earlier, size_earlier)
    return maximum(_minimum(later_first, earlier_first), workspace)


class MemoryModel:
    """Exact integer workspace sizes of every step on a chain.

    Parameters
    ----------
    chain : Chain
    costs : CostModel, optional
        Whose arrays (and so dtype) to use; Python integers by default. Every
        method takes scalar indices or numpy index arrays.

    Examples
    --------
    >>> model = MemoryModel(Chain.from_dims([4, 3, 2]))
    >>> model.primal
    9
    >>> model.workspace("product", 0, 1, 0)  # 2x3 @ 3x4 -> 2x4
    26
    """

    def __init__(self, chain: Chain, costs: CostModel | None = None, *, chunked: bool = False) -> None:
        self.chain = chain
        self.costs = costs or CostModel(chain)
        self.primal = sum(chain.dims)
        self.widest = RangeMax(self.costs.in_dims + self.costs.out_dims)
        self.chunked = chunked  # steps without a chunk: the least workspace of any chunk (one seed at a time)

    def result_size(self, first, last):
        return self.costs.result_size(first, last)

    def workspace(self, kind: StepKind | str, first, last, split=None, chunk=None):
        """Elements a step holds while it runs (operands and result included); ``chunk``: seeds
        at a time (``Step.chunk``), and with ``chunked=True`` the least over every chunk."""
        kind = StepKind(kind)
        n, m = self.costs.in_dims, self.costs.out_dims
        through = kind.through(first, last, split)
        if through is None:
            return product_workspace(m[last], m[split], n[first])
        tape = self.costs.tape(kind, first, last, split)
        seeds = self.costs.step_seeds(kind, first, last)
        widest = self.widest(*through)
        workspace = propagation_workspace(seeds, widest, tape)
        if kind.is_preaccumulation:  # compressed: the Jacobian decompressed beside it
            compressed = seeds < self.costs.seeds(kind.direction, first, last)
            workspace = workspace + compressed * self.result_size(first, last)
            explicit = self.costs.explicit_step(kind, first)
            if np.ndim(explicit):
                workspace = np.where(explicit, explicit_workspace(m[last], n[first]), workspace)
            elif explicit:
                workspace = explicit_workspace(m[last], n[first])
        if chunk is None and not self.chunked:
            return workspace
        chunkable = self.chunkable(kind, first, last)
        held = self.result_size(first, last)
        for operand in kind.operands(first, last, split):
            held = held + self.result_size(*operand)
        if chunk is not None:
            if not chunkable:
                raise ValueError(f"a {kind.value} of layer {first} written explicitly or by compression has no chunks")
            return workspace if chunk >= seeds else chunked_workspace(held, chunk, widest, tape)  # as it runs
        least = _minimum(workspace, chunked_workspace(held, 1, widest, tape))
        return np.where(chunkable, least, workspace) if np.ndim(chunkable) else (least if chunkable else workspace)

    def chunkable(self, kind: StepKind, first, last):
        """Whether a step may push its seeds in chunks: every tangent or adjoint step, and a
        preaccumulation of a dense layer (not written explicitly, not by compression); a bool, or
        a bool array for index arrays."""
        if not kind.is_preaccumulation:
            return np.ones(np.shape(first), dtype=bool) if np.ndim(first) else True
        dense = self.costs.step_seeds(kind, first, last) == self.costs.seeds(kind.direction, first, last)
        explicit = self.costs.explicit_step(kind, first)
        return dense & ~explicit if np.ndim(dense) or np.ndim(explicit) else bool(dense and not explicit)

    def sub_plan_peak(self, kind: StepKind, first, last, split, *, later=None, earlier=None, chunk=None):
        """Peak of sub-plans ending with ``kind`` given their operands' sub-plan peaks (``later``:
        ``J[last..split+1]``, ``earlier``: ``J[split..first]``; None where the kind has none);
        scalars or arrays, primal values excluded. The one rule both optimizers and
        :func:`order_for_memory` use.

        >>> MemoryModel(Chain.from_dims([4, 3, 2])).sub_plan_peak(StepKind.PRODUCT, 0, 1, 0, later=16, earlier=28)
        28
        """
        workspace = self.workspace(kind, first, last, split, chunk)
        if kind is StepKind.PRODUCT:
            sizes = self.result_size(split + 1, last), self.result_size(first, split)
            return product_peak(later, sizes[0], earlier, sizes[1], workspace)
        operand = earlier if "earlier" in kind.operand_names else later
        return workspace if operand is None else maximum(operand, workspace)

    def later_first(self, step: Step, operand_peak: dict[tuple[int, int], int]) -> bool:
        """Whether a product's later operand goes first (Sethi-Ullman; ties: later first)."""
        later, earlier = step.operands
        later_first, earlier_first = operand_peaks(
            operand_peak[later], self.result_size(*later), operand_peak[earlier], self.result_size(*earlier)
        )
        return later_first <= earlier_first


def peak_memory(chain: Chain, steps: Sequence[Step], model: MemoryModel | None = None) -> int:
    """Peak elements alive when ``steps`` run in their order (see the module's model).

    Parameters
    ----------
    chain : Chain
    steps : sequence of Step
        A valid plan's steps, in execution order.
    model : MemoryModel, optional
        Reused when given.

    Returns
    -------
    int
        Elements, primal values included.

    See Also
    --------
    order_for_memory : the order of the same steps that peaks least.

    References
    ----------
    Sethi, R., Ullman, J. D. (1970). The generation of optimal code for arithmetic
    expressions. J. ACM 17(4).

    Examples
    --------
    >>> from chainorder.core.optimize import optimize
    >>> peak_memory(Chain.from_dims([4, 3, 2]), optimize(Chain.from_dims([4, 3, 2]), "forward").steps)
    37
    """
    model = model or MemoryModel(chain)
    alive = 0
    peak = 0
    for step in steps:
        operands = sum(model.result_size(*operand) for operand in step.operands)
        workspace = model.workspace(step.kind, step.first, step.last, step.split, step.chunk)
        peak = max(peak, alive - operands + workspace)
        alive += model.result_size(step.first, step.last) - operands
    return peak + model.primal


def device_peaks(
    chain: Chain, steps: Sequence[Step], slots: Sequence[tuple[int, int, int]], threads: int
) -> tuple[int, ...]:
    """Peak elements on each device when ``steps`` run as ``slots`` (``(device, start, end)``) say.

    The same model as :func:`peak_memory`, over time on each device: a step holds
    its workspace (operands and result included) while it runs; its result then
    waits on its device until the step consuming it starts (and is moved there,
    if that runs elsewhere); every device that runs a step holds the primal
    values. With one thread, back to back, this is :func:`peak_memory`.

    >>> from chainorder.core.optimize import optimize
    >>> plan = optimize(Chain.from_dims([784, 256, 32, 256, 784]), threads=2)
    >>> device_peaks(plan.chain, plan.steps, plan.schedule, 2)
    (666944, 35392)
    """
    model = MemoryModel(chain)
    consumer_start: dict[tuple[int, int], int] = {}
    for step, (_, start, _) in zip(steps, slots):
        for operand in step.operands:
            consumer_start[operand] = start
    events: list[list[tuple[int, int]]] = [[] for _ in range(threads)]
    for step, (device, start, end) in zip(steps, slots):
        workspace = model.workspace(step.kind, step.first, step.last, step.split, step.chunk)
        waits_until = consumer_start.get(step.span, end + 1)  # the last result: until the end
        size = model.result_size(step.first, step.last)
        events[device] += [(start, workspace), (end, size - workspace), (waits_until, -size)]
    peaks = []
    for timeline in events:
        level = peak = 0
        for _, change in sorted(timeline):  # at equal times releases (negative) come first
            level += change
            peak = max(peak, level)
        peaks.append(peak + model.primal if timeline else 0)
    return tuple(peaks)
