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
    "dot_general_maps", "split_indices", "INDEX_RULES",
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


def dot_general_maps(left, right, out, dimension_numbers, factors=(None, None)):
    """``(out_size x left_size)`` and ``(out_size x right_size)``: the entries each output entry reads.

    ``factors``: each operand's value where it is a known constant (else None). An entry of one
    operand reaches an output entry only through its product with an entry of the other: where
    that one is a known zero, the pair is left out (a sparse matrix stored dense, ``L @ u``)."""
    (left_contract, right_contract), (left_batch, right_batch) = dimension_numbers
    left_free = [d for d in range(left.ndim) if d not in left_contract and d not in left_batch]
    right_free = [d for d in range(right.ndim) if d not in right_contract and d not in right_batch]
    contract_shape = [left.shape[d] for d in left_contract]
    out_grid = np.indices(out.shape).reshape(out.ndim, -1)
    contract_grid = (
        np.indices(contract_shape).reshape(len(contract_shape), -1) if contract_shape else np.zeros((0, 1), int)
    )
    pairs = out_grid.shape[1] * contract_grid.shape[1]
    out_rows = np.repeat(np.arange(out_grid.shape[1]), contract_grid.shape[1])
    batch = len(left_batch)
    flats = []
    for operand, free, contract, batch_dims, offset in (
        (left, left_free, left_contract, left_batch, batch),
        (right, right_free, right_contract, right_batch, batch + len(left_free)),
    ):
        index = np.zeros((operand.ndim, pairs), dtype=np.int64)
        for k, d in enumerate(batch_dims):
            index[d] = np.repeat(out_grid[k], contract_grid.shape[1])
        for k, d in enumerate(free):
            index[d] = np.repeat(out_grid[offset + k], contract_grid.shape[1])
        for k, d in enumerate(contract):
            index[d] = np.tile(contract_grid[k], out_grid.shape[1])
        flats.append(np.ravel_multi_index(index, operand.shape) if operand.ndim else np.zeros(pairs, int))
    maps = []
    for operand, (flat, other), factor in ((left, flats, factors[1]), (right, flats[::-1], factors[0])):
        rows = out_rows
        if factor is not None:
            through = np.ravel(factor)[other] != 0
            rows, flat = rows[through], flat[through]
        maps.append(sparse.csr_matrix((np.ones(len(rows), bool), (rows, flat)), (out_grid.shape[1], size(operand))))
    return maps


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
