"""What a custom differentiation rule computes, as a jaxpr: the JVP of a ``custom_jvp`` function and
the pullback of a ``custom_vjp`` one, traced abstractly from one equation of a jaxpr.

:mod:`.patterns` walks these instead of the primal computation: the rule decides what the
derivative reads (a straight-through rule reads what the primal drops).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .primitives import bind_equation

__all__ = ["inexact", "jvp_jaxpr", "pullback_jaxpr"]


def inexact(aval: Any) -> bool:
    """Whether values shaped like ``aval`` have derivatives (floating or complex)."""
    return bool(jnp.issubdtype(aval.dtype, jnp.inexact))


def jvp_jaxpr(equation: Any, moving: list[int]) -> Any:
    """The closed jaxpr of the equation's output tangents, taking its operands' primal values, then
    the tangents of the operands at ``moving`` (the others' tangents are zero)."""
    avals = [var.aval for var in equation.invars]

    def tangents_out(primals, tangents):
        full = [_zero_tangent(aval) for aval in avals]
        for i, tangent in zip(moving, tangents):
            full[i] = tangent
        return jax.jvp(lambda *args: bind_equation(equation, args), list(primals), full)[1]

    structs = _structs(avals)
    return jax.make_jaxpr(tangents_out)(structs, [structs[i] for i in moving])


def pullback_jaxpr(equation: Any, moving: list[int], pulled: list[int]) -> Any:
    """The closed jaxpr of the cotangents of the operands at ``moving``, taking the operands' primal
    values, then the cotangents of the outputs at ``pulled`` (the others' are zero)."""
    ins, outs = [var.aval for var in equation.invars], [var.aval for var in equation.outvars]

    def cotangents_in(primals, cotangents):
        def of_moving(*moved):
            given = list(primals)
            for i, value in zip(moving, moved):
                given[i] = value
            return bind_equation(equation, given)

        full = [_zero_tangent(aval) for aval in outs]
        for k, cotangent in zip(pulled, cotangents):
            full[k] = cotangent
        return jax.vjp(of_moving, *[primals[i] for i in moving])[1](full)

    out_structs = _structs(outs)
    return jax.make_jaxpr(cotangents_in)(_structs(ins), [out_structs[k] for k in pulled])


def _structs(avals: list) -> list:
    return [jax.ShapeDtypeStruct(aval.shape, aval.dtype) for aval in avals]


def _zero_tangent(aval: Any) -> Any:
    """The zero tangent of a value shaped like ``aval``: float0 for integers and booleans."""
    return jnp.zeros(aval.shape, aval.dtype) if inexact(aval) else np.zeros(aval.shape, jax.dtypes.float0)
