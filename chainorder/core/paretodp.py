"""The Pareto DP itself: every sub-chain's front of (cost, peak) labels, a length at a time.

A dynamic program over sub-chains, like :mod:`chainorder.core.dp`, but each
sub-chain keeps every non-dominated pair (cost, peak memory) of its sub-plans
rather than the single best. Both the cost (a sum, or a max of the operands on
the critical path) and the peak (:mod:`chainorder.core.subplans`) grow with the
operands' values, so a sub-plan dominated in both can never be part of a
non-dominated plan, and pruning it loses nothing.

Every sub-chain of one length is filled at once, in rows (one step kind, cell
and split; :class:`chainorder.core.labels.Group`). The product rows are first
bounded all at once from their operands' end labels, before any is gathered
(:class:`chainorder.core.productrows.ProductRows`); then

1. each row's two corners (its operands' cheapest labels paired, and their
   least-peak ones) are generated; their front bounds the cell;
2. a row whose lower corner (the cheapest operands' cost, the least-peak
   operands' peak) that front or a known plan of the whole chain covers is
   dropped; a product row is then split by its later operand's labels and
   tested again;
3. the remaining rows are expanded a few labels at a time, cheapest first: after
   each round the cells' fronts grow, and a row whose remaining labels' lower
   corner they cover stops there (at 500 layers: 25% less time);
4. each cell keeps its non-dominated candidates (:func:`chainorder.core.labels.prune`).

Tangent and adjoint steps are built through one layer each (a step through
several costs the same and peaks no lower) and joined again in the plans returned
(:func:`chainorder.core.memorysteps.merged_propagations`). The rough runs that find the
known plans (``rough``) and the driver live in :mod:`chainorder.core.pareto`.

This module imports neither jax nor matplotlib.
"""

from __future__ import annotations

import numpy as np

from .chain import Chain
from .costs import CostModel
from .labels import Fronts, Group, concatenated, covered, front_of, prune
from .memory import MemoryModel
from .numbers import RangeMax
from .productrows import ProductRows
from .steps import Objective, Step, StepKind
from .subplans import sub_plan, sub_plan_cost
from .tree import post_order

__all__ = ["ParetoDP"]


#: labels per row expanded in the first round (:meth:`ParetoDP._expand_in_rounds`); each round doubles it
_FIRST_ROUND = 2


def _part(kind: StepKind, cell, cost, peak, split, entries: dict) -> tuple:
    """Candidates as ``(cell, columns)`` (see :class:`chainorder.core.labels.Fronts`): ``entries``
    holds each operand's label per candidate, or None (no such operand: -1)."""
    none = np.full(len(cell), -1, dtype=np.int64)
    columns = {
        "cost": cost,
        "peak": peak,
        "kind": np.full(len(cell), kind.code, dtype=np.int8),
        "split": none if split is None else np.asarray(split, dtype=np.int64),
    }
    for name in ("later", "earlier"):
        columns[name] = none if entries.get(name) is None else np.asarray(entries[name], dtype=np.int64)
    return cell, columns


class ParetoDP:
    """Fills the fronts a sub-chain length at a time, every cell of a length at once."""

    def __init__(
        self,
        chain: Chain,
        objective: Objective,
        matrix_free: bool,
        tape_limit,
        budget,
        chunked: bool = False,
        *,
        rough=None,
        known=None,
    ) -> None:
        self.rough = rough  # None (exact), "least_peak" or "corners": see _known_plans
        self.known = known
        self.q = len(chain)
        self.costs = CostModel.exact(chain)
        self.memory = MemoryModel(chain, self.costs, chunked=chunked)
        self.critical_path = objective is Objective.CRITICAL_PATH
        self.matrix_free = matrix_free
        self.tape_limit = tape_limit
        self.budget = budget
        self.fronts = Fronts(self.q)
        self.products = ProductRows(self.costs, self.memory, self.critical_path)
        if chunked:  # for _own_step
            widest_negated = RangeMax(-self.costs.out_dims)
            self._narrowest = lambda first, last: -widest_negated(first, last)

    def _candidates(self, kind: StepKind, cell, last, split, later=None, earlier=None) -> tuple:
        fronts = self.fronts
        operands = {}
        for name, entries in (("later", later), ("earlier", earlier)):
            if entries is not None:
                operands[name] = (fronts.cost[entries], fronts.peak[entries])
        cost, peak = sub_plan(
            kind, cell, last, split, costs=self.costs, memory=self.memory, critical_path=self.critical_path, **operands
        )
        dtype = self.costs.numbers.dtype
        size = len(cell)
        cost, peak = (np.broadcast_to(np.asarray(value, dtype=dtype), (size,)).copy() for value in (cost, peak))
        return _part(kind, cell, cost, peak, split, {"later": later, "earlier": earlier})

    def _single_layers(self) -> list[tuple]:
        layers = np.arange(self.q)
        parts = [self._candidates(StepKind.TANGENT_PREACCUMULATION, layers, layers, None)]
        fits = layers if self.tape_limit is None else layers[self.costs.edges(layers, layers) <= self.tape_limit]
        parts.append(self._candidates(StepKind.ADJOINT_PREACCUMULATION, fits, fits, None))
        return parts

    def _every_split(self, length: int) -> tuple:
        """Every (cell, split) of a length, flat, as ``(cell, last, split, later, earlier)``: each
        operand's front range ``(start, size)``."""
        cells, fronts = self.q - length + 1, self.fronts
        cell = np.repeat(np.arange(cells), length - 1)
        split = cell + np.tile(np.arange(length - 1), cells)
        last = cell + length - 1
        later = (fronts.start[split + 1, last], fronts.size[split + 1, last])
        return cell, last, split, later, (fronts.start[cell, split], fronts.size[cell, split])

    def _groups(self, length: int) -> list[Group]:
        """The candidates of a length, a row per (kind, cell, split): a product pairs every entry
        of ``J[last..k+1]`` with every one of ``J[k..first]``; a tangent step pushes an entry of
        ``J[last-1..first]`` through layer ``last``; an adjoint step pulls an entry of
        ``J[last..first+1]`` back through layer ``first`` (if its tape fits).

        Only single-layer tangent and adjoint steps: a step through layers ``k+1..last`` costs
        what the single-layer steps through them cost together (costs per layer add up, the
        seeds are the same), and peaks no lower (its workspace holds the seeds across the widest
        of those layers, and the tape of all of them), so the fronts are the same with a row per
        cell instead of one per split. :func:`~chainorder.core.memorysteps.merged_propagations` joins the steps again.
        Not so with chunks (``chunked``): a chunked step through several layers holds no Jacobian
        between them, so tangent and adjoint steps get a row per split too.

        The product rows are those :class:`~chainorder.core.productrows.ProductRows` lets through:
        in the least-peak run each cell's best, in the exact run the rows whose lower corner no
        bound covers; the corners run takes its products' corners from it directly
        (:meth:`_product_corners`)."""
        groups = []
        if self.rough is None:
            groups.append(self.products.worth_expanding(length, self.known, self.budget))
        elif self.rough == "least_peak":
            groups.append(self.products.least_peak(length))
        if self.matrix_free and self.memory.chunked:
            groups += self._chunked_propagations(*self._every_split(length))
        elif self.matrix_free:
            groups += self._single_layer_propagations(length)
        return [group.nonempty() for group in groups]

    def _chunked_propagations(self, cell, last, split, later, earlier) -> list[Group]:
        """Tangent steps through layers ``split+1..last`` and adjoint steps through ``cell..split``,
        where such a step may peak below the pairs it splits into (:meth:`_own_step`)."""
        pushed = np.where(self._own_step(split + 1, last), earlier[1], 0)
        pulled = np.where(self._own_step(cell, split), later[1], 0)
        if self.tape_limit is not None:
            pulled = np.where(self.costs.edges(cell, split) <= self.tape_limit, pulled, 0)
        return [
            Group(StepKind.TANGENT_STEP, cell, last, split, None, (earlier[0], pushed)),
            Group(StepKind.ADJOINT_STEP, cell, last, split, (later[0], pulled), None),
        ]

    def _single_layer_propagations(self, length: int) -> list[Group]:
        """A tangent step through layer ``last`` and an adjoint step through layer ``cell`` (if its
        tape fits), one row per cell."""
        fronts = self.fronts
        cell = np.arange(self.q - length + 1)
        last = cell + length - 1
        earlier = (fronts.start[cell, last - 1], fronts.size[cell, last - 1])
        pulled = fronts.size[cell + 1, last]
        if self.tape_limit is not None:
            pulled = np.where(self.costs.edges(cell, cell) <= self.tape_limit, pulled, 0)
        return [
            Group(StepKind.TANGENT_STEP, cell, last, last - 1, None, earlier),
            Group(StepKind.ADJOINT_STEP, cell, last, cell, (fronts.start[cell + 1, last], pulled), None),
        ]

    def _own_step(self, first, last) -> np.ndarray:
        """Whether a chunked tangent or adjoint step through layers ``first..last`` may peak below
        every pair of steps it splits into: no boundary inside is as narrow as both ends.

        Split at a boundary ``l`` no wider than both ends, the two steps cost what it costs (costs
        per layer add up, the seeds are the same), and each holds no more: its operand or result
        ``J`` at ``l`` is no larger than the one it replaces, its widest layer and tape no larger.
        So the pair's plans dominate or equal the step's, and the fronts are the same without
        it. On random chains this leaves O(q log q) of the O(q^2) spans per cell."""
        inside = self._narrowest(first, np.maximum(last - 1, first))  # d_{first+1..last}: out dims
        ends = np.minimum(self.costs.in_dims[first], self.costs.out_dims[last])
        return (first == last) | (inside > ends)

    def _bounds(self, group: Group) -> tuple[list[tuple], tuple[np.ndarray, np.ndarray]]:
        """Each row's two corner candidates, its operands' cheapest entries paired and their
        least-peak ones (each front is stored cheapest first, so peaks decrease), and its lower
        corner: the cost from the cheapest entries, the peak from the least-peak ones, a bound below
        every candidate of the row (both rules grow with their operands' values). One evaluation
        of the rule, the step's own terms computed once per row."""
        fronts = self.fronts
        cheapest, smallest = group.entries("first"), group.entries("last")
        operands = {
            name: (
                np.stack([fronts.cost[cheapest[name]], fronts.cost[smallest[name]], fronts.cost[cheapest[name]]], 1),
                np.stack([fronts.peak[cheapest[name]], fronts.peak[smallest[name]], fronts.peak[smallest[name]]], 1),
            )
            for name in cheapest
        }
        cost, peak = self._rule(group, operands)
        corners = [
            _part(group.kind, group.cell, cost[:, column].copy(), peak[:, column].copy(), group.split, entries)
            for column, entries in ((0, cheapest), (1, smallest))
        ]
        return corners, (cost[:, 2], peak[:, 2])

    def _lower_corner(self, group: Group) -> tuple[np.ndarray, np.ndarray]:
        """Each row's lower corner alone (see :meth:`_bounds`)."""
        fronts = self.fronts
        cheapest, smallest = group.entries("first"), group.entries("last")
        operands = {
            name: (fronts.cost[cheapest[name]][:, None], fronts.peak[smallest[name]][:, None]) for name in cheapest
        }
        cost, peak = self._rule(group, operands)
        return cost[:, 0], peak[:, 0]

    def _rule(self, group: Group, operands: dict) -> tuple[np.ndarray, np.ndarray]:
        """:func:`chainorder.core.subplans.sub_plan` over the group's rows (axis 0), the step's own
        terms computed once per row and broadcast over the operands' second axis."""
        first, last, split = (values[:, None] for values in (group.cell, group.last, group.split))
        return sub_plan(
            group.kind, first, last, split, costs=self.costs, memory=self.memory,
            critical_path=self.critical_path, **operands,
        )  # fmt: skip

    def _expand(self, group: Group) -> tuple:
        """Every candidate of the group's rows, whose operands have one label each but (at most) one
        operand per row: the step's own terms are computed once per row and broadcast over that
        operand's labels (a rows x labels array, padded to the widest row)."""
        wide = group.wide()
        start, size = getattr(group, wide)
        width = int(size.max()) if len(size) else 0
        offsets = np.arange(width)[None, :]
        valid = offsets < size[:, None]
        entries = start[:, None] + np.minimum(offsets, size[:, None] - 1)
        fronts = self.fronts
        operands = {wide: (fronts.cost[entries], fronts.peak[entries])}
        narrow = "later" if wide == "earlier" else "earlier"
        if getattr(group, narrow) is not None:
            single = getattr(group, narrow)[0][:, None]
            operands[narrow] = (fronts.cost[single], fronts.peak[single])
        cost, peak = self._rule(group, operands)
        rows, _ = np.nonzero(valid)
        operand = getattr(group, narrow)
        entries = {wide: entries[valid], narrow: None if operand is None else operand[0][rows]}
        cost, peak = (np.broadcast_to(value, valid.shape)[valid] for value in (cost, peak))
        return _part(group.kind, group.cell[rows], cost, peak, group.split[rows], entries)

    def _multi_layer(self, length: int) -> list[tuple]:
        """The candidates of a length worth generating. Each row's corners come first; a row whose
        lower corner its cell's corners already match or beat adds nothing to the front (every one
        of its candidates is dominated or equals a corner), so only the other rows are expanded,
        and of the corners only the front's go on."""
        groups = self._groups(length)
        if self.rough == "least_peak":  # one label per operand: each row has one candidate
            return [
                self._candidates(group.kind, group.cell, group.last, group.split, **group.entries("last"))
                for group in groups
            ]
        if self.known is not None:  # the product rows passed the same test in ProductRows
            groups = [
                group if group.kind is StepKind.PRODUCT else group.take(self._affordable(group, length))
                for group in groups
            ]
        bounds = [self._bounds(group) for group in groups]
        parts = [part for corners, _ in bounds for part in corners]
        if self.rough == "corners":
            return parts + self._product_corners(length)
        front, parts = front_of(parts, self.q - length + 1, self.budget)
        pending = []
        for group, (_, lower) in zip(groups, bounds):
            group = group.take(self._promising(group, length, front, lower))
            if group.later is not None and group.earlier is not None:
                group = group.by_later_entry()
                group = group.take(self._promising(group, length, front, self._lower_corner(group)))
            pending.append(group)
        return self._expand_in_rounds(pending, length, front, parts)

    def _expand_in_rounds(self, groups: list[Group], length: int, front: tuple, parts: list[tuple]) -> list[tuple]:
        """Expand the rows a few labels at a time, cheapest first: after each round the cell's
        front grows, and a row whose remaining labels' lower corner it covers stops there."""
        count = _FIRST_ROUND
        while groups:
            parts += [self._expand(group.window(0, count)) for group in groups]
            rest = [group.window(count) for group in groups]
            rest = [group for group in rest if len(group.cell)]
            if not rest:
                break
            front, parts = front_of(parts, self.q - length + 1, self.budget)
            groups = [group.take(self._promising(group, length, front, self._lower_corner(group))) for group in rest]
            groups = [group for group in groups if len(group.cell)]
            count *= 2
        return parts

    def _product_corners(self, length: int) -> list[tuple]:
        """The corners run's product candidates (:meth:`ProductRows.corners`), as parts."""
        return [
            _part(StepKind.PRODUCT, cell, cost, peak, split, {"later": later, "earlier": earlier})
            for cell, cost, peak, split, later, earlier in self.products.corners(length, self.known)
        ]

    def _affordable(self, group: Group, length: int) -> np.ndarray:
        """The rows whose cheapest candidate completes into plans no dearer than the least-peak known
        plan (every other plan peaks at least as high as that one: :meth:`Known.too_dear`)."""
        cheapest = {name: self.fronts.cost[entries] for name, entries in group.entries("first").items()}
        cost = sub_plan_cost(
            group.kind, group.cell, group.last, group.split, costs=self.costs, critical_path=self.critical_path,
            **cheapest,
        )  # fmt: skip
        return np.flatnonzero(~self.known.too_dear(group.cell, length, cost))

    def _promising(self, group: Group, length: int, front: tuple, lower: tuple) -> np.ndarray:
        """The rows whose lower corner neither the cell's corners' front nor a known plan covers."""
        cost, peak = lower
        hidden = covered(group.cell, cost, peak, front, self.budget)
        if self.known is not None:
            hidden |= self.known.dominates(group.cell, length, cost, peak)
        return np.flatnonzero(~hidden)

    def _fill(self, length: int) -> None:
        parts = self._single_layers() if length == 1 else self._multi_layer(length)
        cell, columns = concatenated(parts)
        cost, peak = columns["cost"], columns["peak"]
        keep = prune(cell, cost, peak, self.budget)
        if self.rough == "least_peak" and len(keep):  # each cell's last entry: its least peak, the cheapest of those
            keep = keep[np.r_[cell[keep][1:] != cell[keep][:-1], True]]
        if self.known is not None:
            keep = keep[~self.known.dominates(cell[keep], length, cost[keep], peak[keep])]
            if self.known.ceiling is not None:
                keep = keep[~self.known.too_dear(cell[keep], length, cost[keep])]
        kept = {name: values[keep] for name, values in columns.items()}
        self.fronts.add_length(length, cell[keep], kept, self.q - length + 1)
        self.products.add_length(length, self.fronts)

    def run(self) -> Fronts:
        for length in range(1, self.q + 1):
            self._fill(length)
        return self.fronts

    def steps(self, root: int) -> list[Step]:
        """The steps of front entry ``root`` (of the whole chain), children first."""
        fronts = self.fronts

        def children(node):
            _, _, _, split, later, earlier = fronts.entry(node[2])
            found = []
            if later >= 0:
                found.append((int(split) + 1, node[1], int(later)))
            if earlier >= 0:
                found.append((node[0], int(split), int(earlier)))
            return found

        steps = []
        for first, last, entry in post_order((0, self.q - 1, root), children):
            _, _, code, split, _, _ = fronts.entry(entry)
            kind = StepKind.from_code(code)
            split = None if kind.is_preaccumulation else int(split)
            steps.append(Step(kind, first, last, split, int(self.costs.cost(kind, first, last, split))))
        return steps
