"""The families of JAX primitives that the jaxpr walkers (:mod:`.patterns`, :mod:`.batching`) share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ELEMENTWISE", "COMPARISONS", "REDUCTIONS", "CUMULATIVE", "CALLS", "inner_jaxpr", "bind_equation"]

#: Elementwise primitives (operands of one shape, or rank 0): output entry i reads entry i of each.
ELEMENTWISE = frozenset({
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "clamp", "convert_element_type",
    "copy", "copy_p", "cos", "cosh", "digamma", "div", "erf", "erf_inv", "erfc", "exp", "exp2", "expm1", "integer_pow",
    "lgamma", "log", "log1p", "logistic", "max", "min", "mul", "neg", "nextafter", "pow", "reduce_precision", "rem",
    "round", "rsqrt", "sign", "sin", "sinh", "sqrt", "square", "sub", "tan", "tanh", "floor", "ceil", "real", "imag",
    "conj", "stop_gradient", "select_n", "add_any", "complex", "bessel_i0e", "bessel_i1e", "igamma", "igammac",
    "igamma_grad_a", "polygamma", "zeta", "random_gamma_grad", "regularized_incomplete_beta",
})  # fmt: skip
#: Elementwise primitives with boolean results (no derivative; they steer ``select_n``).
COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "xor", "is_finite"})
#: Reductions over the ``axes`` parameter.
REDUCTIONS = frozenset(
    {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin", "reduce_and", "reduce_or"}
)
#: Scans along the ``axis`` parameter.
CUMULATIVE = frozenset({"cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp"})
#: Calls of a nested jaxpr, entered by the walkers (``jax.checkpoint`` binds "remat2").
CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "remat2", "checkpoint"})


def inner_jaxpr(params: dict):
    """A call's nested ``(jaxpr, consts)``, or None where its parameters hold none."""
    inner = params.get("jaxpr", params.get("call_jaxpr"))
    if inner is None:
        return None
    return (inner.jaxpr, list(inner.consts)) if hasattr(inner, "consts") else (inner, [])


def bind_equation(equation: Any, values: Sequence[Any]) -> list:
    """Evaluate one jaxpr equation on ``values`` (arrays or tracers); its results as a list."""
    params = equation.primitive.get_bind_params(equation.params)
    subfuns: Sequence[Any] = ()
    if isinstance(params, tuple):  # older JAX: (subfuns, params)
        subfuns, params = params
    with equation.ctx.manager:
        outputs = equation.primitive.bind(*subfuns, *values, **params)
    return list(outputs) if equation.primitive.multiple_results else [outputs]
