"""Forward mode with the seeds kept last: many JVPs at once, without transposes.

``jax.jacfwd`` pushes its seeds with ``vmap``, which keeps the batch axis first. An
elementwise op then broadcasts its unbatched operand (a layer's derivative) along that
first axis, while a product ``W @ t`` leaves the batch last, so XLA compiles a
transpose between them where it cannot fold the two layouts together: the unrolled RK4
of ``benchmarks/bench_dropin.py`` compiles with 121 transposes under ``jax.jacfwd`` and
runs 1.3x slower than ``jax.jacrev`` although it needs half the FMAs.

:func:`jvps_seeds_last` interprets the JVP's jaxpr itself with the seeds on a trailing
axis: what depends on the primal input alone is evaluated once, elementwise ops
broadcast their unbatched operands along the trailing axis, and the structural
primitives (:data:`STRUCTURAL`: products, reductions, reshapes, slices, gathers,
convolutions...) are ``vmap``-ed with ``in_axes=-1, out_axes=-1``. Nested ``jit`` calls
are interpreted in line. :func:`seeds_last_jaxpr` says whether a function qualifies
(every primitive touched by the seeds is one of those): control flow, custom rules left
in the JVP and unknown primitives run as ``vmap`` of ``jax.jvp`` instead (what
``jax.jacfwd`` runs), so nothing changes where this has not been checked.

See Also
--------
chainorder.backend.execute.library_mode : when a plan is pure forward mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jax_core

from .primitives import CALLS, COMPARISONS, CUMULATIVE, REDUCTIONS, bind_equation, inner_jaxpr
from .primitives import ELEMENTWISE as PRIMITIVE_ELEMENTWISE

__all__ = ["STRUCTURAL", "column_jvps", "jacfwd_seeds_last", "jvps_seeds_last", "seeds_last_jaxpr"]

#: primitives acting entry by entry on operands of one shape (or scalars): broadcast, not vmapped
ELEMENTWISE = PRIMITIVE_ELEMENTWISE | COMPARISONS

#: single-output primitives whose result depends on the seeds wherever an operand does: vmapped
STRUCTURAL = (
    frozenset(
        {
            "broadcast_in_dim", "concatenate", "conv_general_dilated", "dot_general", "dynamic_slice",
            "dynamic_update_slice", "expand_dims", "gather", "pad", "reduce_window_sum", "reshape", "rev",
            "scatter", "scatter-add", "scatter_add", "select_and_gather_add", "slice", "squeeze", "stack", "transpose",
        }
    )  # fmt: skip
    | REDUCTIONS
    | CUMULATIVE
)


def _inner(eqn) -> tuple[Any, list[Any]] | None:
    return inner_jaxpr(eqn.params) if eqn.primitive.name in CALLS else None


def _supported(jaxpr, batched: list[bool]) -> bool:
    """Whether every equation the seeds reach (``batched``: which inputs carry them) has a rule here."""
    flags: dict[Any, bool] = dict(zip(jaxpr.invars, batched))
    for eqn in jaxpr.eqns:
        reached = [not isinstance(var, jax_core.Literal) and flags.get(var, False) for var in eqn.invars]
        name = eqn.primitive.name
        if any(reached):
            inner = _inner(eqn)
            if inner is not None:
                if not _supported(inner[0], reached):
                    return False
            elif name not in ELEMENTWISE and (name not in STRUCTURAL or eqn.primitive.multiple_results):
                return False
        for var in eqn.outvars:
            flags[var] = any(reached)
    return True


def seeds_last_jaxpr(function: Callable[[Any], Any], x: Any) -> jax_core.ClosedJaxpr | None:
    """The jaxpr of ``(x, t) -> jax.jvp(function, (x,), (t,))`` for a flat real floating ``x``,
    or None where a primitive the tangent reaches has no seeds-last rule here (or ``x`` does not qualify)."""
    if np.ndim(x) != 1 or not jnp.issubdtype(x.dtype, jnp.floating):
        return None
    closed = jax.make_jaxpr(lambda primal, tangent: jax.jvp(function, (primal,), (tangent,)))(x, x)
    if len(closed.jaxpr.outvars) != 2 or not _supported(closed.jaxpr, [False, True]):
        return None
    return closed


def _broadcast(value: Any, shape: tuple[int, ...], count: int) -> Any:
    """An unbatched operand (of ``shape``, or a scalar) as a batched one: ``shape + (count,)``."""
    return lax.broadcast_in_dim(value, tuple(shape) + (count,), tuple(range(np.ndim(value))))


def _evaluate(jaxpr, consts: list[Any], values: list[tuple[Any, bool]], count: int) -> list[tuple[Any, bool]]:
    """Evaluate ``jaxpr`` on ``(value, batched)`` pairs, batched values carrying the seeds last."""
    env: dict[Any, tuple[Any, bool]] = {}

    def read(var) -> tuple[Any, bool]:
        if isinstance(var, jax_core.Literal):
            return np.asarray(var.val, dtype=var.aval.dtype), False
        return env[var]

    env.update((var, (value, False)) for var, value in zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, values))
    for eqn in jaxpr.eqns:
        operands = [read(var) for var in eqn.invars]
        batched = any(flag for _, flag in operands)
        outputs = _apply(eqn, operands, count) if batched else bind_equation(eqn, [value for value, _ in operands])
        for var, output in zip(eqn.outvars, outputs):
            if not isinstance(var, jax_core.DropVar):
                env[var] = output if batched else (output, False)
    return [read(var) for var in jaxpr.outvars]


def _same_shapes(eqn, operands: list[tuple[Any, bool]]) -> bool:
    """Whether the operands have the output's shape (batched ones with the seeds last) or are
    unbatched scalars: then the unbatched ones broadcast along the trailing axis."""
    shape = tuple(eqn.outvars[0].aval.shape)

    def fits(value, flag):
        found = tuple(np.shape(value))
        return found == shape + found[-1:] if flag else found == shape or not found

    return all(fits(value, flag) for value, flag in operands)


def _apply(eqn, operands: list[tuple[Any, bool]], count: int) -> list[tuple[Any, bool]]:
    """One equation some of whose operands carry the seeds (last)."""
    inner = _inner(eqn)
    if inner is not None:
        return _evaluate(*inner, operands, count)
    if eqn.primitive.name in ELEMENTWISE and _same_shapes(eqn, operands):
        shape = tuple(eqn.outvars[0].aval.shape)
        values = [value if flag else _broadcast(value, shape, count) for value, flag in operands]
        return [(output, True) for output in bind_equation(eqn, values)]

    def bound(*values):
        return bind_equation(eqn, list(values))[0]

    axes = [-1 if flag else None for _, flag in operands]
    return [(jax.vmap(bound, in_axes=axes, out_axes=-1)(*(value for value, _ in operands)), True)]


def jvps_seeds_last(closed: jax_core.ClosedJaxpr, x: Any, seeds: Any) -> Any:
    """The JVPs at ``x`` of every column of ``seeds`` (``(n, count)``), as the columns of an
    ``(m, count)`` array; ``closed`` from :func:`seeds_last_jaxpr`."""
    count = int(np.shape(seeds)[-1])
    (_, _), (tangent, batched) = _evaluate(closed.jaxpr, list(closed.consts), [(x, False), (seeds, True)], count)
    return tangent if batched else _broadcast(tangent, np.shape(tangent), count)


def column_jvps(function: Callable[[Any], Any], x: Any) -> Callable[[Any], Any]:
    """``seeds -> (m, count)``: the JVPs of ``function`` at a flat ``x`` of every column of
    ``seeds`` (``(n, count)``), with the seeds kept last where :func:`seeds_last_jaxpr` allows,
    ``vmap`` of ``jax.jvp`` over the columns otherwise."""
    closed = seeds_last_jaxpr(function, x)
    if closed is not None:
        return lambda seeds: jvps_seeds_last(closed, x, seeds)
    return jax.vmap(lambda tangent: jax.jvp(function, (x,), (tangent,))[1], in_axes=1, out_axes=1)


def jacfwd_seeds_last(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``jax.jacfwd(function)`` for a function of a flat real vector: :func:`column_jvps` of the identity.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> W = jnp.arange(6.0).reshape(2, 3)
    >>> jacfwd_seeds_last(lambda v: jnp.sin(W @ v))(jnp.zeros(3)).tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    return lambda x: column_jvps(function, x)(jnp.eye(x.shape[0], dtype=x.dtype))
