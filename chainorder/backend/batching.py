"""Batch-separable functions: the same computation per example along an axis, nothing mixing examples.

A function ``f`` of one array ``x`` of shape ``(B, ...)`` is *batch-separable* when its output
has an axis of size ``B`` whose slice ``b`` depends on ``x[b]`` alone, computed the same way
for every ``b`` up to constants indexed by ``b``. Its Jacobian is then block diagonal, and the
blocks are ``jax.vmap`` of one example's Jacobian, computed with that example's own optimal
plan (mixed where it pays): B times the per-example cost instead of the whole batch's.

:func:`separate` finds out by running ``f``'s jaxpr one example at a time: every value that
carries the batch keeps its axis with size 1, every value that does not (weights, constants)
keeps its full shape, and each primitive gets a rule saying where the batch axis goes.
A constant meeting an example along the batch axis (a target ``y`` of shape ``(B, k)``, an
``arange(B)``) is cut at the example's index, so per-example constants stay exact. A primitive
that would mix examples (a reduction or contraction over the batch axis, a slice or a shift
along it) or that has no rule (gathers, scatters, control flow, custom derivative rules) makes
the function not separable, and the caller keeps its other strategies: never a wrong block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax import lax

from .primitives import CALLS, COMPARISONS, CUMULATIVE, ELEMENTWISE, REDUCTIONS, inner_jaxpr

__all__ = ["Separable", "separate"]


class _NotSeparable(Exception):
    """A primitive mixes examples, or has no per-example rule."""


@dataclass(frozen=True)
class Separable:
    """How a batch-separable function splits into examples.

    Attributes
    ----------
    batch : int
        ``B``, the size of the input's axis 0.
    out_axis : int
        The output's batch axis.
    in_shape, out_shape : tuple of int
        The whole input's and output's shapes.
    per_example : callable
        ``per_example(x_b, b, *rest)``: example ``b``'s output (the batch axis removed) from
        its input ``x_b = x[b]`` and the function's other arguments.
    """

    batch: int
    out_axis: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    per_example: Callable[[Any, Any], Any]

    def blocks(self, jacobian_of_example: Callable, x: Any, *rest: Any) -> Any:
        """The ``B`` per-example Jacobians, ``(B, *out_shape without the batch axis, *in_shape[1:])``:
        ``jacobian_of_example`` is ``chainorder.jacobian(per_example)`` (one plan for all)."""
        in_axes = (0, 0) + (None,) * len(rest)
        return jax.vmap(jacobian_of_example, in_axes=in_axes)(x, jnp.arange(self.batch), *rest)


def separate(fun: Callable[..., Any], x: Any, *rest: Any) -> Separable | None:
    """``fun``'s split into examples along ``x``'s axis 0, or None where it is not batch-separable.

    Parameters
    ----------
    fun : callable
        ``fun(x, *rest)``: arrays in, one array out; only ``x`` carries the batch.
    x : array or jax.ShapeDtypeStruct
        Where to look (shapes and dtypes only); axis 0 is the batch, of size 2 or more.
    *rest : arrays or jax.ShapeDtypeStruct
        The other arguments, shared by every example.

    Examples
    --------
    >>> W = jnp.ones((3, 5))
    >>> found = separate(lambda X: jnp.tanh(X @ W.T), jnp.ones((4, 5)))
    >>> found.batch, found.out_axis, found.per_example(jnp.ones(5), 0).shape
    (4, 0, (3,))
    >>> separate(lambda X: X - X.mean(axis=0), jnp.ones((4, 5))) is None
    True
    """
    shape = jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))
    if len(shape.shape) == 0 or shape.shape[0] < 2:
        return None
    rest = [_shaped(value) for value in rest]
    try:
        closed = jax.make_jaxpr(fun)(shape, *rest)
    except Exception:  # noqa: BLE001 - the caller's other strategies report the function's own errors
        return None
    if len(closed.jaxpr.outvars) != 1 or len(closed.jaxpr.invars) != 1 + len(rest):
        return None
    batch, out_shape = shape.shape[0], tuple(closed.out_avals[0].shape)
    out_axes: list[int | None] = []  # where the output's batch axis sits, found while tracing

    def one_example(x_b, index, *others):
        inputs = [(jnp.expand_dims(x_b, 0), 0)] + [(value, None) for value in others]
        value, axis = _run(closed.jaxpr, closed.consts, inputs, index, batch)[0]
        if axis is None:
            raise _NotSeparable("the output does not carry the batch")
        out_axes.append(axis)
        return jnp.squeeze(value, axis)

    def tangent(x_b, index, *others):  # custom JVP rules run one example at a time only under differentiation
        return jax.jvp(lambda v: one_example(v, index, *others), (x_b,), (x_b,))

    example = jax.ShapeDtypeStruct(shape.shape[1:], shape.dtype)
    try:
        check = tangent if jnp.issubdtype(shape.dtype, jnp.inexact) else one_example
        jax.eval_shape(check, example, jnp.int32(0), *rest)
    except Exception:  # noqa: BLE001 - _NotSeparable, or a rule this interpreter cannot run: not separable
        return None
    return Separable(batch, out_axes[0], tuple(shape.shape), out_shape, one_example)


# --- the per-example interpreter ---------------------------------------------------------------

def _run(jaxpr: Any, consts: list, inputs: list, index: Any, batch: int) -> list:
    """Evaluate ``jaxpr`` on ``(value, axis)`` pairs: ``axis`` None for a value without the batch
    (full shape), else the value's batch axis (of size 1)."""
    env: dict[Any, tuple[Any, int | None]] = {}

    def read(var):
        if isinstance(var, jax.extend.core.Literal):
            return var.val, None
        return env[var]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = (value, None)
    for var, pair in zip(jaxpr.invars, inputs):
        env[var] = pair
    for equation in jaxpr.eqns:
        operands = [read(var) for var in equation.invars]
        outputs = _equation(equation, operands, index, batch)
        for var, pair in zip(equation.outvars, outputs):
            env[var] = pair
    return [read(var) for var in jaxpr.outvars]


def _equation(equation: Any, operands: list, index: Any, batch: int) -> list:
    if all(axis is None for _, axis in operands):  # no example in it: as the function does it
        outputs = equation.primitive.bind(*[value for value, _ in operands], **equation.params)
        return [(value, None) for value in (outputs if equation.primitive.multiple_results else [outputs])]
    name = equation.primitive.name
    if name in CALLS and inner_jaxpr(equation.params) is not None:
        return _run(*inner_jaxpr(equation.params), operands, index, batch)
    if name == "custom_jvp_call":
        return _custom_jvp(equation, operands, index, batch)
    rule = _RULES.get(name)
    if rule is None and (name in ELEMENTWISE or name in COMPARISONS):
        rule = _elementwise
    if rule is None:
        raise _NotSeparable(f"no per-example rule for {name}")
    value, axis = rule(equation, operands, index, batch)
    return [(value, axis)]


def _custom_jvp(equation, operands, index, batch):
    """A ``jax.custom_jvp`` call, one example at a time: its primal and its own JVP rule both run
    through this interpreter, so the derivative stays the rule's (``jax.nn.relu``'s at 0, ...)."""
    params = equation.params
    closed, constants = params["call_jaxpr"], params["num_consts"]
    axes = [axis for _, axis in operands]
    out_axes: list = []

    def primal(index, *values):
        outputs = _run(closed.jaxpr, closed.consts, list(zip(values, axes)), index, batch)
        out_axes[:] = [axis for _, axis in outputs]
        return [value for value, _ in outputs]

    jax.eval_shape(primal, jax.ShapeDtypeStruct((), jnp.int32), *[_shaped(value) for value, _ in operands])
    function = jax.custom_jvp(primal)

    @function.defjvp
    def rule(primals, tangents):
        index, values = primals[0], primals[1 + constants :]
        own = axes[constants:]
        jvp_jaxpr, jvp_consts, out_zeros = params["jvp_jaxpr_fun"].call_wrapped(*[False] * len(values))
        pairs = list(zip(values, own)) + list(zip(tangents[1 + constants :], own))
        outputs = _run(jvp_jaxpr, jvp_consts, pairs, index, batch)
        out_primals, nonzero = outputs[: len(out_zeros)], iter(outputs[len(out_zeros) :])
        out_tangents = [jnp.zeros_like(value) if zero else next(nonzero)[0] for (value, _), zero in
                        zip(out_primals, out_zeros)]  # fmt: skip
        moved = [axis for _, axis in out_primals]
        if moved != out_axes:
            raise _NotSeparable("a custom JVP rule moving the batch axis")
        return [value for value, _ in out_primals], out_tangents

    values = function(index, *[value for value, _ in operands])
    return list(zip(values, out_axes))


def _shaped(value: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(value), jnp.result_type(value))


def _cut(value: Any, axis: int, index: Any, batch: int) -> Any:
    """A value without the batch, met by examples along ``axis``: example ``index``'s slice."""
    if np.ndim(value) == 0 or np.shape(value)[axis] == 1:
        return value
    if np.shape(value)[axis] != batch:
        raise _NotSeparable("an operand's size along the batch axis is neither 1 nor the batch")
    return lax.dynamic_slice_in_dim(value, index, 1, axis)


def _bind(equation: Any, values: list, **changed: Any) -> Any:
    return equation.primitive.bind(*values, **{**equation.params, **changed})


def _aligned(operands: list, index: Any, batch: int, problem: str) -> tuple[list, int]:
    """The operands, those without the batch cut to this example, and the one batch axis the others
    share (not separable, ``problem``, where they carry it on different axes)."""
    axes = {axis for _, axis in operands if axis is not None}
    if len(axes) != 1:
        raise _NotSeparable(problem)
    (axis,) = axes
    return [value if own is not None else _cut(value, axis, index, batch) for value, own in operands], axis


def _elementwise(equation, operands, index, batch):
    values, axis = _aligned(operands, index, batch, "operands carry the batch on different axes")
    return _bind(equation, values), axis


def _broadcast_in_dim(equation, operands, index, batch):
    (value, axis), *rest = operands
    if axis is None or any(own is not None for _, own in rest):
        raise _NotSeparable("a broadcast shaped by the batch")
    out_axis = equation.params["broadcast_dimensions"][axis]
    shape = list(equation.params["shape"])
    shape[out_axis] = 1
    return _bind(equation, [value] + [v for v, _ in rest], shape=tuple(shape)), out_axis


def _reshape(equation, operands, index, batch):
    (value, axis), *rest = operands
    old, new = equation.invars[0].aval.shape, tuple(equation.params["new_sizes"])
    if rest or equation.params.get("dimensions") is not None:
        raise _NotSeparable("a reshape with dimensions")
    before = math.prod(old[:axis])
    for out_axis in range(len(new)):
        if new[out_axis] == batch and math.prod(new[:out_axis]) == before:
            sizes = list(new)
            sizes[out_axis] = 1
            return _bind(equation, [value], new_sizes=tuple(sizes)), out_axis
    raise _NotSeparable("a reshape merging the batch axis with others")


def _squeeze(equation, operands, index, batch):
    (value, axis), = operands
    dimensions = equation.params["dimensions"]
    return _bind(equation, [value]), axis - sum(1 for d in dimensions if d < axis)


def _transpose(equation, operands, index, batch):
    (value, axis), = operands
    return _bind(equation, [value]), list(equation.params["permutation"]).index(axis)


def _dot_general(equation, operands, index, batch):
    (left, left_axis), (right, right_axis) = operands
    (left_contract, right_contract), (left_batch, right_batch) = equation.params["dimension_numbers"]
    left_rank = np.ndim(left)
    left_free = [d for d in range(left_rank) if d not in left_contract and d not in left_batch]
    right_free = [d for d in range(np.ndim(right)) if d not in right_contract and d not in right_batch]
    if left_axis is not None and right_axis is not None:
        pairs = list(zip(left_batch, right_batch))
        if (left_axis, right_axis) not in pairs:
            raise _NotSeparable("a product pairing different examples")
        return _bind(equation, [left, right]), pairs.index((left_axis, right_axis))
    if left_axis is not None:
        if left_axis in left_contract:
            raise _NotSeparable("a contraction over the batch")
        if left_axis in left_batch:
            position = list(left_batch).index(left_axis)
            return _bind(equation, [left, _cut(right, right_batch[position], index, batch)]), position
        return _bind(equation, [left, right]), len(left_batch) + left_free.index(left_axis)
    if right_axis in right_contract:
        raise _NotSeparable("a contraction over the batch")
    if right_axis in right_batch:
        position = list(right_batch).index(right_axis)
        return _bind(equation, [_cut(left, left_batch[position], index, batch), right]), position
    return _bind(equation, [left, right]), len(left_batch) + len(left_free) + right_free.index(right_axis)


def _reduction(equation, operands, index, batch):
    (value, axis), = operands
    axes = equation.params["axes"]
    if axis in axes:
        raise _NotSeparable("a reduction over the batch")
    return _bind(equation, [value]), axis - sum(1 for a in axes if a < axis)


def _cumulative(equation, operands, index, batch):
    (value, axis), = operands
    if equation.params["axis"] == axis:
        raise _NotSeparable("a cumulative op along the batch")
    return _bind(equation, [value]), axis


def _concatenate(equation, operands, index, batch):
    values, axis = _aligned(operands, index, batch, "a concatenation of operands with different batch axes")
    if equation.params["dimension"] == axis:
        raise _NotSeparable("a concatenation along the batch")
    return _bind(equation, values), axis


def _stack(equation, operands, index, batch):
    values, axis = _aligned(operands, index, batch, "a stack of operands with different batch axes")
    return _bind(equation, values), axis + (axis >= equation.params["axis"])


def _slice(equation, operands, index, batch):
    (value, axis), = operands
    start, limit = equation.params["start_indices"], list(equation.params["limit_indices"])
    strides = equation.params.get("strides")
    if start[axis] != 0 or limit[axis] != batch or (strides is not None and strides[axis] != 1):
        raise _NotSeparable("a slice along the batch")
    limit[axis] = 1
    return _bind(equation, [value], limit_indices=tuple(limit)), axis


def _pad(equation, operands, index, batch):
    (value, axis), (padding, padding_axis) = operands
    if padding_axis is not None or tuple(equation.params["padding_config"][axis]) != (0, 0, 0):
        raise _NotSeparable("padding along the batch")
    return _bind(equation, [value, padding]), axis


def _rev(equation, operands, index, batch):
    (value, axis), = operands
    if axis in equation.params["dimensions"]:
        raise _NotSeparable("reversing the batch")
    return _bind(equation, [value]), axis


_RULES = {
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "squeeze": _squeeze,
    "transpose": _transpose,
    "dot_general": _dot_general,
    "concatenate": _concatenate,
    "stack": _stack,
    "slice": _slice,
    "pad": _pad,
    "rev": _rev,
    **dict.fromkeys(REDUCTIONS, _reduction),
    **dict.fromkeys(CUMULATIVE, _cumulative),
}
