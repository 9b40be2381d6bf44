"""Index maps of the primitives that move, broadcast, reduce or contract entries (numpy only).

For the jaxpr walkers of :mod:`.patterns`: for each output entry, the operand entry it
copies (an index array, -1 for none), or the operand entries it reads (a boolean
``scipy.sparse`` matrix, one row per output entry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sparse

__all__ = [
    "size", "broadcasts", "broadcast_index", "index_rule", "padded_index", "reduction_map", "cumulative_map",
    "dot_general_maps", "dot_general_reads", "split_indices", "INDEX_RULES",
]  # fmt: skip


def size(aval) -> int:
    return math.prod(aval.shape)


def reduction_map(shape: tuple[int, ...], axes: Sequence[int]):
    """``(out_size x in_size)``: which input entries each output entry of a reduction over ``axes`` reads."""
    kept = [axis for axis in range(len(shape)) if axis not in axes]
    grid = np.indices(shape).reshape(len(shape), -1)
    out_index = (
        np.ravel_multi_index(grid[kept], [shape[axis] for axis in kept]) if kept else np.zeros(grid.shape[1], int)
    )
    out_size = math.prod(shape[axis] for axis in kept)
    return sparse.csr_matrix(
        (np.ones(len(out_index), bool), (out_index, np.arange(len(out_index)))), (out_size, grid.shape[1])
    )


def cumulative_map(shape: tuple[int, ...], axis: int, reverse: bool):
    grid = np.indices(shape).reshape(len(shape), -1)
    rows, columns = [], []
    for position in range(shape[axis]):
        targets = np.flatnonzero(grid[axis] == position)
        sources = grid[:, targets].copy()
        reach = range(position, shape[axis]) if reverse else range(position + 1)
        for source in reach:
            sources[axis] = source
            rows.append(targets)
            columns.append(np.ravel_multi_index(sources, shape))
    rows, columns = np.concatenate(rows), np.concatenate(columns)
    size = math.prod(shape)
    return sparse.csr_matrix((np.ones(len(rows), bool), (rows, columns)), (size, size))


def dot_general_maps(left, right, out, dimension_numbers, factors=(None, None), wanted=(True, True)):
    """``(out_size x left_size)`` and ``(out_size x right_size)``: the entries each output entry reads
    (None for an operand not ``wanted``: one that depends on no input).

    ``factors``: each operand's value where it is a known constant (else None). An entry of one
    operand reaches an output entry only through its product with an entry of the other: where
    that one is a known zero, the pair is left out (a sparse matrix stored dense, ``L @ u``), and
    the map is built from the factor's nonzeros alone (never every output entry times the
    contracted length)."""
    maps = []
    for side, operand, other, factor in ((0, left, right, factors[1]), (1, right, left, factors[0])):
        if not wanted[side]:
            maps.append(None)
        elif factor is not None and np.ndim(factor):
            maps.append(_map_through_nonzeros(side, operand, other, np.asarray(factor), out, dimension_numbers))
        else:
            maps.append(_map_of_every_pair(side, operand, other, out, dimension_numbers))
    return maps


def dot_general_reads(left, right, out, dimension_numbers, factors=(None, None)) -> list[int]:
    """How many pairs the maps of :func:`dot_general_maps` hold, before building them: every output
    entry reads one entry per contracted index, except through a known factor's zeros (each
    nonzero of the other operand reaches every entry of this operand's free dimensions)."""
    reads = []
    for side, operand, factor in ((0, left, factors[1]), (1, right, factors[0])):
        own_contract, _, own_batch, _ = _sides(side, dimension_numbers)
        if factor is not None and np.ndim(factor):
            free = math.prod(operand.shape[d] for d in _free(operand, own_contract, own_batch))
            reads.append(int(np.count_nonzero(factor)) * free)
        else:
            reads.append(size(out) * math.prod(operand.shape[d] for d in own_contract))
    return reads


def _sides(side: int, dimension_numbers) -> tuple:
    """This operand's and the other's contracting and batch dimensions."""
    contracting, batch = dimension_numbers
    return contracting[side], contracting[1 - side], batch[side], batch[1 - side]


def _free(operand, contracting, batch) -> list[int]:
    return [d for d in range(operand.ndim) if d not in contracting and d not in batch]


def _output_coordinates(side: int, batch: list, own_free: list, other_free: list) -> list:
    """Output dimensions in ``dot_general``'s order: batch, the left operand's free, the right's."""
    return batch + (own_free + other_free if side == 0 else other_free + own_free)


def _grid(shape) -> np.ndarray:
    """Every index of ``shape``, one column each: ``(len(shape), prod(shape))`` (one empty column for ``()``)."""
    return np.indices(shape).reshape(len(shape), -1) if len(shape) else np.zeros((0, 1), np.int64)


def _pairs(rows, columns, out, operand):
    return sparse.csr_matrix((np.ones(len(rows), bool), (rows, columns)), (size(out), size(operand)))


def _ravel(coordinates: list, shape: tuple, count: int) -> np.ndarray:
    return np.ravel_multi_index(coordinates, shape) if shape else np.zeros(count, np.int64)


def _map_of_every_pair(side: int, operand, other, out, dimension_numbers):
    """Each output entry reads this operand's entries along every contracted index."""
    own_contract, other_contract, own_batch, other_batch = _sides(side, dimension_numbers)
    own_free = _free(operand, own_contract, own_batch)
    other_free = [None] * len(_free(other, other_contract, other_batch))  # not this operand's
    out_grid = _grid(out.shape)
    contract_grid = _grid([operand.shape[d] for d in own_contract])
    outs, contracted = out_grid.shape[1], contract_grid.shape[1]
    index = [None] * operand.ndim
    for position, d in enumerate(_output_coordinates(side, list(own_batch), own_free, other_free)):
        if d is not None:  # this operand's batch or free dimension d is output dimension `position`
            index[d] = np.repeat(out_grid[position], contracted)
    for k, d in enumerate(own_contract):
        index[d] = np.tile(contract_grid[k], outs)
    rows = np.repeat(np.arange(outs), contracted)
    return _pairs(rows, _ravel(index, operand.shape, outs * contracted), out, operand)


def _map_through_nonzeros(side: int, operand, other, factor: np.ndarray, out, dimension_numbers):
    """A pair for each nonzero of the other operand (``factor``) and each entry of this operand's
    free dimensions: the nonzero fixes the batch and contracted indices."""
    own_contract, other_contract, own_batch, other_batch = _sides(side, dimension_numbers)
    own_free = _free(operand, own_contract, own_batch)
    other_free = _free(other, other_contract, other_batch)
    nonzero = np.nonzero(factor)
    free_grid = _grid([operand.shape[d] for d in own_free])
    count, free = len(nonzero[0]), free_grid.shape[1]
    at = [np.repeat(coordinate, free) for coordinate in nonzero]  # per dimension of the factor
    free_at = [np.tile(coordinate, count) for coordinate in free_grid]
    index = [None] * operand.ndim
    for own, theirs in zip(own_batch + own_contract, other_batch + other_contract):
        index[own] = at[theirs]
    for k, d in enumerate(own_free):
        index[d] = free_at[k]
    coordinates = _output_coordinates(side, [at[d] for d in other_batch], free_at, [at[d] for d in other_free])
    pairs = count * free
    return _pairs(_ravel(coordinates, out.shape, pairs), _ravel(index, operand.shape, pairs), out, operand)


def broadcasts(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether an operand of ``shape`` broadcasts elementwise to ``out_shape`` (rank 0, or the same
    rank with each dimension 1 or equal)."""
    if not shape:
        return True
    return len(shape) == len(out_shape) and all(d in (1, o) for d, o in zip(shape, out_shape))


def broadcast_index(operand, out) -> np.ndarray:
    """For each output entry, the operand entry an elementwise op broadcasts to it."""
    if not operand.shape:
        return np.zeros(size(out), int)
    return np.broadcast_to(np.arange(size(operand)).reshape(operand.shape), out.shape).ravel()


#: The primitives :func:`index_rule` maps: each output entry copies one operand entry (or padding).
INDEX_RULES = frozenset(
    {"reshape", "squeeze", "expand_dims", "transpose", "slice", "rev", "broadcast_in_dim", "pad", "tile"}
)


def index_rule(name: str, params: dict, operand, out) -> np.ndarray | None:
    """For the rules that move entries: for each output entry, the operand entry it copies."""
    index = np.arange(size(operand)).reshape(operand.shape)
    if name in ("reshape", "squeeze", "expand_dims"):
        return index.ravel()
    if name == "transpose":
        return index.transpose(params["permutation"]).ravel()
    if name == "slice":
        strides = params["strides"] or (1,) * operand.ndim
        where = tuple(slice(s, e, t) for s, e, t in zip(params["start_indices"], params["limit_indices"], strides))
        return index[where].ravel()
    if name == "rev":
        return np.flip(index, axis=tuple(params["dimensions"])).ravel()
    if name == "broadcast_in_dim":
        grid = np.indices(out.shape)
        source = [
            np.zeros(out.shape, int) if operand.shape[k] == 1 else grid[d]
            for k, d in enumerate(params["broadcast_dimensions"])
        ]
        return index[tuple(source)].ravel() if operand.ndim else np.zeros(size(out), int)
    if name == "pad":
        return padded_index(index, params["padding_config"]).ravel()  # -1: a padding entry
    if name == "tile":
        return np.tile(index, params["reps"]).ravel()
    return None


def split_indices(params: dict, operand) -> list[np.ndarray]:
    """``lax.split``: for each output, for each of its entries, the operand entry it copies."""
    index = np.arange(size(operand)).reshape(operand.shape)
    bounds = np.cumsum([int(length) for length in params["sizes"]])[:-1]
    return [part.ravel() for part in np.split(index, bounds, axis=params["axis"])]


def padded_index(index: np.ndarray, config) -> np.ndarray:
    """``lax.pad`` of an index array with -1, in numpy (low, high and interior padding; negative
    low or high padding crops)."""
    for axis, (low, high, interior) in enumerate(config):
        low, high, interior = int(low), int(high), int(interior)
        length = index.shape[axis]
        grown = max(length + max(length - 1, 0) * interior, 0)
        shape = list(index.shape)
        shape[axis] = max(low, 0) + grown + max(high, 0)
        out = np.full(shape, -1, dtype=np.int64)
        where = [slice(None)] * index.ndim
        where[axis] = slice(max(low, 0), max(low, 0) + grown, interior + 1)
        out[tuple(where)] = index
        crop = [slice(None)] * index.ndim
        crop[axis] = slice(max(-low, 0), shape[axis] - max(-high, 0))
        index = out[tuple(crop)]
    return index
