"""Exact dependency maps of the primitives whose pattern depends on index values or windows.

A gather, ``dynamic_slice``, ``dynamic_update_slice`` or scatter moves entries to places
that its index operands say; when those are known while tracing (constants of the jaxpr,
and what is computed from them alone), the primitive itself is run on *codes* (each
entry's position plus one, 0 meaning "no entry") and the result says, for every output
entry, where it came from: JAX's own semantics, modes and out-of-bounds rules included.
A scatter's updates are followed through its transpose (a gather), so every update
lands in one place or is dropped. A convolution reads a window of its input: it is run
once per kernel offset, on one channel of codes, and each output position learns which
input position that offset reads (padding and dilation included); channels then connect
within their feature group.

Each function returns, per operand, an ``(out_size x operand_size)`` boolean
``scipy.sparse`` map (None for an operand that the output does not depend on), or None
where the rule does not apply (an index operand not known, a mode or count it does not
handle); the caller then takes its conservative rule.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import scipy.sparse as sparse
from jax import lax

__all__ = ["index_maps", "index_map", "MOVES", "TooManyDependencies"]

#: The primitives :func:`index_maps` knows.
MOVES = frozenset({
    "gather", "dynamic_slice", "dynamic_update_slice", "scatter", "scatter-add", "scatter-mul", "scatter-min",
    "scatter-max", "conv_general_dilated",
})  # fmt: skip

_EXACT_FLOAT = 1 << 24  # float32 codes stay exact below this
_INT32_CODES = (1 << 31) - 1  # int32 codes stay exact below this


class TooManyDependencies(Exception):
    """A map would hold more entries than the caller's limit (``count``, an upper bound)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count:,} dependencies")
        self.count = count


def _pairs_map(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]):
    """``shape``: output entry ``rows[k]`` reads operand entry ``columns[k]``."""
    return sparse.csr_matrix((np.ones(len(rows), bool), (rows, columns)), shape)


def index_map(index: np.ndarray, size: int):
    """``(len(index) x size)``: output entry ``o`` reads operand entry ``index[o]`` (none where -1)."""
    rows = np.flatnonzero(index >= 0)
    return _pairs_map(rows, index[rows], (len(index), size))


def _codes(shape, dtype=np.int32) -> np.ndarray:
    return (np.arange(math.prod(shape), dtype=dtype) + 1).reshape(shape)


def _bind(primitive, *operands, **params) -> np.ndarray:
    with jax.ensure_compile_time_eval():
        return np.asarray(primitive.bind(*operands, **params))


def _gather(params, avals, values):
    if values[1] is None or math.prod(avals[0].shape) >= _INT32_CODES:
        return None
    if "fill_value" in params:
        params = {**params, "fill_value": 0}
    out = _bind(lax.gather_p, _codes(avals[0].shape), np.asarray(values[1]), **params)
    return [index_map(out.ravel().astype(np.int64) - 1, math.prod(avals[0].shape)), None]


def _dynamic_slice(params, avals, values):
    if any(value is None for value in values[1:]) or math.prod(avals[0].shape) >= _INT32_CODES:
        return None
    starts = [np.asarray(value) for value in values[1:]]
    out = _bind(lax.dynamic_slice_p, _codes(avals[0].shape), *starts, **params)
    return [index_map(out.ravel().astype(np.int64) - 1, math.prod(avals[0].shape))] + [None] * len(starts)


def _dynamic_update_slice(params, avals, values):
    if any(value is None for value in values[2:]) or max(math.prod(a.shape) for a in avals[:2]) >= _INT32_CODES:
        return None
    starts = [np.asarray(value) for value in values[2:]]
    out = _bind(lax.dynamic_update_slice_p, _codes(avals[0].shape), -_codes(avals[1].shape), *starts, **params)
    out = out.ravel().astype(np.int64)
    sizes = [math.prod(aval.shape) for aval in avals[:2]]
    return [index_map(np.where(out > 0, out - 1, -1), sizes[0]), index_map(np.where(out < 0, -out - 1, -1), sizes[1])]


def _scatter(name, params, avals, values):
    """Every update lands where the transpose of the scatter (a gather) reads it from; the operand's
    entry stays, unless an overwriting scatter writes over it."""
    operand, updates = avals[0], avals[2]
    size = math.prod(operand.shape)
    if values[1] is None or size >= _EXACT_FLOAT:
        return None
    indices = np.asarray(values[1])
    zeros = np.zeros(operand.shape, np.float32)
    options = {key: params[key] for key in ("dimension_numbers", "indices_are_sorted", "unique_indices", "mode")}

    def scattered(update):
        return lax.scatter_add(zeros, indices, update, **options)

    with jax.ensure_compile_time_eval():
        template = jax.ShapeDtypeStruct(updates.shape, np.float32)
        (landed,) = jax.linear_transpose(scattered, template)(_codes(operand.shape, np.float32))
    landing = np.rint(np.asarray(landed)).ravel().astype(np.int64) - 1  # the output entry each update reaches
    hits = np.flatnonzero(landing >= 0)
    updates_map = _pairs_map(landing[hits], hits, (size, math.prod(updates.shape)))
    kept = np.arange(size)
    if name == "scatter":  # overwritten entries no longer read the operand
        kept = np.where(np.isin(kept, landing[hits]), -1, kept)
    return [index_map(kept, size), None, updates_map]


def _conv(params, avals, out_aval, values, limit):
    """Window maps of ``conv_general_dilated`` (batch_group_count 1); raises
    :class:`TooManyDependencies` before building more than ``limit`` entries. Where one operand is a
    known constant (``values``), the other's entries read through its zeros are left out (a
    5-point Laplacian written as a 3 x 3 kernel reads 5 neighbours, not 9)."""
    if params["batch_group_count"] != 1:
        return None
    lhs, rhs = avals
    numbers = params["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = numbers.lhs_spec, numbers.rhs_spec, numbers.out_spec
    spatial_in = [lhs.shape[d] for d in lhs_spec[2:]]
    window = [rhs.shape[d] for d in rhs_spec[2:]]
    if math.prod(spatial_in) >= _EXACT_FLOAT:
        return None
    sources = _window_sources(params, lhs_spec, rhs_spec, spatial_in, window)  # (positions out, offsets)
    groups = params["feature_group_count"]
    batch, features_in = lhs.shape[lhs_spec[0]], lhs.shape[lhs_spec[1]]
    features_out = rhs.shape[rhs_spec[0]]
    per_group_in, per_group_out = features_in // groups, features_out // groups
    out_positions, offsets = sources.shape
    count = batch * features_out * out_positions * per_group_in * offsets
    if count > limit:
        raise TooManyDependencies(count)
    # every (b, o, p, c, k): output (b, o, p) reads lhs (b, group(o) * per_group_in + c, source(p, k))
    # and rhs (o, c, k) where that source exists
    b, o, p, c, k = np.meshgrid(
        np.arange(batch), np.arange(features_out), np.arange(out_positions), np.arange(per_group_in),
        np.arange(offsets), indexing="ij", sparse=True,
    )  # fmt: skip
    source = sources[p, k]
    valid = np.broadcast_to(source >= 0, np.broadcast_shapes(b.shape, o.shape, p.shape, c.shape, k.shape))
    channel = (o // per_group_out) * per_group_in + c
    out_spatial = [out_aval.shape[d] for d in out_spec[2:]]
    out_index = _flat(out_aval.shape, out_spec, b, o, np.unravel_index(p, out_spatial))
    lhs_index = _flat(lhs.shape, lhs_spec, b, channel, np.unravel_index(np.maximum(source, 0), spatial_in))
    rhs_index = _flat(rhs.shape, rhs_spec, o, c, np.unravel_index(k, window))
    out_size = math.prod(out_aval.shape)
    maps = []
    for operand_index, aval, other_index, other in ((lhs_index, lhs, rhs_index, values[1]),
                                                     (rhs_index, rhs, lhs_index, values[0])):  # fmt: skip
        reads = valid if other is None else valid & (np.ravel(other)[other_index] != 0)
        rows, columns = (np.broadcast_to(index, reads.shape)[reads] for index in (out_index, operand_index))
        maps.append(_pairs_map(rows, columns, (out_size, math.prod(aval.shape))))
    return maps


def _flat(shape, spec, first, second, spatial) -> np.ndarray:
    """Flat indices into an array laid out by ``spec`` (its two leading logical axes, then spatial)."""
    index = [None] * len(shape)
    index[spec[0]], index[spec[1]] = first, second
    for axis, value in zip(spec[2:], spatial):
        index[axis] = value
    return np.ravel_multi_index(np.broadcast_arrays(*index), shape)


def _window_sources(params, lhs_spec, rhs_spec, spatial_in, window) -> np.ndarray:
    """``(output positions x kernel offsets)``: the input position each offset reads (-1: padding)."""
    lhs_shape = [1] * (2 + len(spatial_in))
    for axis, size in zip(lhs_spec[2:], spatial_in):
        lhs_shape[axis] = size
    codes = _codes(spatial_in, np.float32).reshape(lhs_shape)
    rhs_shape = [1] * (2 + len(window))
    for axis, size in zip(rhs_spec[2:], window):
        rhs_shape[axis] = size
    conv = {
        **params,
        "feature_group_count": 1,
        "precision": (lax.Precision.HIGHEST, lax.Precision.HIGHEST),
        "preferred_element_type": None,
    }
    columns = []
    for offset in range(math.prod(window)):
        kernel = np.zeros(math.prod(window), np.float32)
        kernel[offset] = 1
        out = _bind(lax.conv_general_dilated_p, codes, kernel.reshape(rhs_shape), **conv)
        columns.append(np.rint(out).ravel().astype(np.int64) - 1)
    return np.stack(columns, axis=1)


def index_maps(name: str, params: dict, avals: list, out_aval, values: list, limit: int):
    """The maps of primitive ``name`` (in :data:`MOVES`) given its operands' known ``values``
    (numpy arrays, or None where not known); None where they do not apply. A convolution whose
    maps would pass ``limit`` entries raises :class:`TooManyDependencies` instead."""
    if name == "gather":
        return _gather(params, avals, values)
    if name == "dynamic_slice":
        return _dynamic_slice(params, avals, values)
    if name == "dynamic_update_slice":
        return _dynamic_update_slice(params, avals, values)
    if name == "conv_general_dilated":
        return _conv(params, avals, out_aval, values, limit)
    if name.startswith("scatter"):
        return _scatter(name, params, avals, values)
    return None
