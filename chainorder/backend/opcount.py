"""What a JAX function costs: the FMAs of its JVP and VJP, and its tape (``edges``).

Cost of one JVP of a layer (its ``tangent_cost``): the FMAs in the jaxpr
of its linearized function (``jax.linearize``); of one VJP (``adjoint_cost``):
those in the jaxpr of its ``jax.vjp`` pullback. ``edges``, the tape an adjoint
records, is measured as JAX records it: the elements of the pullback's residuals,
less the function's own constants (weights captured by the function are not
recorded; they exist anyway). The counting rules, per equation of a jaxpr:

=============================================  =========================================
primitive                                      FMAs
=============================================  =========================================
``dot_general``                                output size x contracted size
``conv_general_dilated``                       output size x (input features / groups)
                                               x kernel window size
reductions (``reduce_sum``, ``reduce_max``,    input size
``argmax``, ``cumsum``, ...)
shape and data movement (reshape, broadcast,   0
transpose, slice, pad, concatenate, convert,
squeeze, copy, gather/scatter indices, ...)
calls (``pjit``/``jit``, ``closed_call``,      the called jaxpr's count
``custom_jvp_call``, ``custom_vjp_call``,
``remat``)
``scan``                                       length x body
``while``                                      body + condition (trip count unknown: once)
``cond``                                       the most expensive branch
anything else (elementwise arithmetic, ...)    output size (one per element)
=============================================  =========================================
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ..core.chain import Chain
from ..core.layer import Layer
from .compressed import sparse_layer_pattern
from .explicit import has_explicit_form

__all__ = ["count_fmas", "count_equations", "family_costs", "layer_costs", "price_out", "chain_from_functions"]

#: The convolution primitive
CONV = "conv_general_dilated"
#: Primitives whose FMAs are counted in the jaxprs they hold
_LOOPS = {"scan", "while", "cond"}

FREE_PRIMITIVES = {
    "reshape",
    "broadcast_in_dim",
    "transpose",
    "squeeze",
    "expand_dims",
    "convert_element_type",
    "slice",
    "dynamic_slice",
    "dynamic_update_slice",
    "concatenate",
    "stack",
    "pad",
    "copy",
    "copy_p",
    "rev",
    "gather",
    "select_and_gather_add",
    "iota",
    "stop_gradient",
    "zeros_like",
    "device_put",
    "pjit_inline",
    "symbolic_zeros",
}
_REDUCTIONS = {
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_and",
    "reduce_or",
    "argmax",
    "argmin",
    "cumsum",
    "cumprod",
    "cummax",
    "cummin",
    "cumlogsumexp",
    "reduce_precision",
}


def _size(aval: Any) -> int:
    shape = getattr(aval, "shape", ())
    return int(math.prod(shape))


def _sub_jaxprs(params: dict[str, Any]) -> list[Any]:
    found = []
    for value in params.values():
        candidates = value if isinstance(value, (tuple, list)) else (value,)
        for candidate in candidates:
            inner = getattr(candidate, "jaxpr", None)
            if inner is not None and hasattr(candidate, "consts"):  # ClosedJaxpr
                found.append(inner)
            elif hasattr(candidate, "eqns"):  # Jaxpr
                found.append(candidate)
    return found


def count_fmas(jaxpr: Any, only: str | Collection[str] | None = None) -> int:
    """FMAs of one evaluation of ``jaxpr`` (a Jaxpr or ClosedJaxpr), by the rules above; with ``only`` (a
    primitive's name, or several), those of its equations of those primitives alone (inside loops
    and calls too).

    >>> import jax, jax.numpy as jnp
    >>> W = jnp.ones((3, 4))
    >>> count_fmas(jax.make_jaxpr(lambda x: W @ x)(jnp.ones(4)))
    12
    >>> count_fmas(jax.make_jaxpr(lambda x: jnp.tanh(W @ x))(jnp.ones(4)), only=CONV)
    0
    """
    return count_equations(getattr(jaxpr, "jaxpr", jaxpr).eqns, only)


def count_equations(equations: Sequence[Any], only: str | Collection[str] | None = None) -> int:
    """:func:`count_fmas` of a sequence of jaxpr equations (a stretch of a program)."""
    names = {only} if isinstance(only, str) else only
    total = 0
    for equation in equations:
        name = equation.primitive.name
        params = equation.params
        outputs = sum(_size(var.aval) for var in equation.outvars)
        if names is not None and name not in names and not _sub_jaxprs(params) and name not in _LOOPS:
            continue
        if name == "dot_general":
            (contracting, _), _ = params["dimension_numbers"]
            left = equation.invars[0].aval.shape
            total += outputs * int(math.prod(left[d] for d in contracting))
        elif name == "conv_general_dilated":
            rhs = equation.invars[1].aval.shape
            spec = params["dimension_numbers"].rhs_spec  # (out feature, in feature, *spatial)
            window = int(math.prod(rhs[d] for d in spec[2:]))
            total += outputs * rhs[spec[1]] * window
        elif name in _REDUCTIONS:
            total += sum(_size(var.aval) for var in equation.invars)
        elif name in FREE_PRIMITIVES:
            continue
        elif name == "scan":
            total += params["length"] * count_fmas(params["jaxpr"], only)
        elif name == "while":
            total += count_fmas(params["body_jaxpr"], only) + count_fmas(params["cond_jaxpr"], only)
        elif name == "cond":
            total += max(count_fmas(branch, only) for branch in params["branches"])
        else:
            inner = _sub_jaxprs(params)
            if inner:
                total += sum(count_fmas(sub, only) for sub in inner)
            else:
                total += outputs
    return total


#: The primitives of each family of :data:`chainorder.core.layer.OP_FAMILIES`
FAMILY_PRIMITIVES = {"conv": frozenset({CONV}), "reduction": frozenset(_REDUCTIONS)}


def family_costs(equations: Sequence[Any]) -> dict[str, int]:
    """The FMAs of each family of operations (a layer's ``conv_cost``, ``reduction_cost``) in
    ``equations``, one evaluation.

    >>> import jax, jax.numpy as jnp
    >>> kernel = jnp.ones((2, 1, 3, 3))
    >>> f = lambda v: jax.lax.conv_general_dilated(v, kernel, (1, 1), "SAME").sum()
    >>> family_costs(jax.make_jaxpr(f)(jnp.ones((1, 1, 4, 4))).eqns)
    {'conv': 288, 'reduction': 32}
    """
    return {family: count_equations(equations, primitives) for family, primitives in FAMILY_PRIMITIVES.items()}


def layer_costs(function: Callable[[Any], Any], x: Any) -> tuple[int | None, int | None, int]:
    """``(tangent_cost, adjoint_cost, edges)`` of ``function`` at an input like ``x``.

    The FMAs of one JVP and of one VJP, counted on the linearized
    jaxprs, and the elements JAX records to pull cotangents back: the pullback's
    residuals that are not constants of the function itself (weights it closes
    over are not recorded; they exist anyway). Only ``x``'s shape and dtype
    matter: everything is traced abstractly, nothing is computed.

    ``tangent_cost`` is None when JAX cannot push tangents through the function
    (a ``custom_vjp``), ``adjoint_cost`` when it cannot pull cotangents back (a
    ``while_loop`` with a dynamic trip count, say); see :func:`price_out`.

    Parameters
    ----------
    function : callable
        From an array like ``x`` to an array.
    x : array or jax.ShapeDtypeStruct

    Returns
    -------
    tuple
        ``(tangent_cost, adjoint_cost, edges)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> W = jnp.ones((30, 20))
    >>> layer_costs(lambda v: W @ v, jnp.ones(20))
    (600, 600, 0)
    >>> layer_costs(jnp.sin, jnp.ones(20))  # one multiply per element; the tape holds cos(v)
    (20, 20, 20)
    """
    found: dict[str, int | None] = {"tangent": None, "adjoint": None, "edges": 0}

    def probe(value):
        try:
            # what a tangent step does, on one column: linearize and jvp alone can pass through a custom_vjp
            jax.vmap(lambda tangent: jax.jvp(function, (value,), (tangent,))[1])(value[None])
            _, linear = jax.linearize(function, value)
            found["tangent"] = count_fmas(jax.make_jaxpr(linear)(value))
        except Exception:  # noqa: BLE001 - JAX refuses forward mode through this function
            pass
        try:
            output, pullback = jax.vjp(function, value)
            found["adjoint"] = count_fmas(jax.make_jaxpr(pullback)(output))
        except Exception:  # noqa: BLE001 - JAX refuses reverse mode through this function
            return function(value)
        constants = jax.make_jaxpr(function)(value).consts
        found["edges"] = sum(
            _size(leaf)
            for leaf in jax.tree_util.tree_leaves(pullback)
            if hasattr(leaf, "shape") and not any(leaf is constant for constant in constants)
        )
        return output

    jax.eval_shape(probe, jax.ShapeDtypeStruct(tuple(x.shape), x.dtype))
    return found["tangent"], found["adjoint"], found["edges"]  # type: ignore[return-value]


def price_out(
    in_dims: Sequence[int], out_dims: Sequence[int], costs: Sequence[tuple[int | None, int | None, int]]
) -> tuple[list[tuple[int, int, int]], dict[str, list[int]]]:
    """Give each direction JAX cannot run through a layer a cost above that of a plan that
    avoids it (every layer preaccumulated in a direction it can run, then dense products),
    so that no optimal plan uses it.

    Parameters
    ----------
    in_dims, out_dims : sequence of int
    costs : sequence of (tangent_cost or None, adjoint_cost or None, edges)

    Returns
    -------
    (costs, refused)
        The costs with every None replaced, and the layers refused per direction
        (``{"tangent": [...], "adjoint": [...]}``).

    Raises
    ------
    TypeError
        When a layer can run in neither direction (jax's own error is raised by the caller).

    Examples
    --------
    >>> price_out([4, 3], [3, 2], [(12, None, 0), (6, 6, 6)])
    ([(12, 189, 0), (6, 6, 6)], {'tangent': [], 'adjoint': [0]})
    """
    refused: dict[str, list[int]] = {"tangent": [], "adjoint": []}
    avoiding = 0  # the cost of a plan that uses no refused direction
    for index, ((tangent, adjoint, _), n, m) in enumerate(zip(costs, in_dims, out_dims)):
        if tangent is None and adjoint is None:
            raise TypeError(f"layer {index}: JAX can differentiate it in neither forward nor reverse mode")
        directions = (None if tangent is None else n * tangent, None if adjoint is None else m * adjoint)
        avoiding += min(cost for cost in directions if cost is not None)
    biggest = max([*in_dims, *out_dims])
    priced_cost = avoiding + len(costs) * biggest**3 + 1
    priced = []
    for index, (tangent, adjoint, edges) in enumerate(costs):
        if tangent is None:
            refused["tangent"].append(index)
        if adjoint is None:
            refused["adjoint"].append(index)
        priced.append((priced_cost if tangent is None else tangent, priced_cost if adjoint is None else adjoint, edges))
    return priced, refused


def _check_functions(functions: Any, x0: Any) -> Any:
    if callable(functions) or not isinstance(functions, Sequence):
        raise TypeError("from_functions needs a list of functions, applied first to last")
    if len(functions) == 0:
        raise ValueError("a chain needs at least one layer; got an empty list of functions")
    x = x0 if hasattr(x0, "shape") and hasattr(x0, "dtype") else jnp.asarray(x0)
    if not jnp.issubdtype(x.dtype, jnp.inexact):  # bfloat16 too (numpy does not count it inexact)
        raise TypeError(f"x0 must have a float dtype to differentiate, got {x.dtype}")
    return x


def _layer_output(index: int, function: Any, x: Any) -> Any:
    if not callable(function):
        raise TypeError(f"layer {index}: expected a function, got {type(function).__name__}")
    try:
        output = function(x)
    except Exception as error:  # a user function failing on its input: say which layer
        raise ValueError(f"layer {index}: calling its function on shape {tuple(x.shape)} failed: {error}") from error
    if not hasattr(output, "shape") or not hasattr(output, "dtype"):
        raise TypeError(f"layer {index}: its function must return an array, got {type(output).__name__}")
    return output


def chain_from_functions(functions: Sequence[Callable[[Any], Any]], x0: Any) -> Chain:
    """A Chain of ``functions`` applied in order to the example input ``x0``
    (dims from the shapes, costs counted on the linearized jaxprs)."""
    x = _check_functions(functions, x0)
    costs: list[tuple[int, int | None, int]] = []
    shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    patterns, explicit, families = [], [], []
    for index, function in enumerate(functions):
        output = _layer_output(index, function, x)
        costs.append(layer_costs(function, x))
        families.append(family_costs(jax.make_jaxpr(function)(x).eqns))
        shapes.append((tuple(x.shape), tuple(output.shape)))
        flat = functools.partial(_flat_call, function, tuple(x.shape))
        patterns.append(sparse_layer_pattern(flat, math.prod(x.shape), x.dtype))
        explicit.append(has_explicit_form(flat, jax.ShapeDtypeStruct((math.prod(x.shape),), x.dtype)))
        x = output
    priced, _ = price_out([math.prod(shape[0]) for shape in shapes], [math.prod(shape[1]) for shape in shapes], costs)
    return Chain(
        Layer(
            math.prod(in_shape),
            math.prod(out_shape),
            edges=edges,
            tangent_cost=tangent,
            adjoint_cost=adjoint,
            fn=function,
            name=getattr(function, "__name__", None),
            in_shape=in_shape,
            out_shape=out_shape,
            pattern=pattern,
            explicit=form,
            **{f"{family}_cost": min(cost, tangent) for family, cost in family.items()},
        )
        for function, (tangent, adjoint, edges), (in_shape, out_shape), pattern, form, family in zip(
            functions, priced, shapes, patterns, explicit, families
        )
    )


def _flat_call(function: Callable[[Any], Any], shape: tuple[int, ...], vector: Any) -> Any:
    return jnp.ravel(function(jnp.reshape(vector, shape)))
