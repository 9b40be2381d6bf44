"""Layers whose Jacobian is written directly: an affine map followed by an elementwise one.

A layer ``x -> s(W x + b)`` (``W`` a matrix or any ``dot_general`` with ``x``'s only
axis contracted, ``s`` elementwise, ``b`` and everything else not depending on ``x``)
has the Jacobian ``diag(s'(W x + b)) W``: one multiply per entry, ``m * n`` FMAs,
where preaccumulating it by JVPs costs ``n`` of them, ``n * (m * n + ...)``. Where the
elementwise part reads ``x`` too (a residual block ``x + s(W x + b)``, a gate
``x * s(W x)``), the Jacobian gains a diagonal: ``diag(d_u) W + diag(d_x)``.
:func:`has_explicit_form` finds the form on the layer's jaxpr (for
:attr:`chainorder.Layer.explicit`); :func:`explicit_jacobian` writes the Jacobian.

The derivative ``s'(W x + b)`` is the elementwise part's JVP of ones, as JAX evaluates
it (custom rules included). That is the Jacobian only where that JVP is itself
elementwise, which is checked on its jaxpr: a custom rule that mixes entries leaves the
layer to its JVPs. The executor keeps the Jacobian factored (:class:`ExplicitJacobian`):
a product with it scales its other operand instead, so the ``m x n`` array exists only
where a step needs it as seeds. Its factors depend on the primal values alone, and XLA
computes such cheap arrays during the primal pass where it can, holding every one until
its consumer: written out, a chain of products of explicit layers held them all at once,
over the memory model's peak.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp

from .primitives import CALLS, COMPARISONS, ELEMENTWISE, bind_equation, inner_jaxpr

__all__ = ["has_explicit_form", "explicit_jacobian", "ExplicitJacobian", "dense"]

#: Calls whose body is entered to check that it is elementwise (their own rules give the JVPs).
_ENTERED = CALLS | {"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"}


@dataclass(frozen=True)
class _Form:
    dot: int  # index of the dot_general equation that reads x
    side: int  # x's operand position in it (0: lhs, 1: rhs)
    contracted: int  # the axis of the other operand (the weight) contracted with x
    residual: bool = False  # whether elementwise operations read x too (x + s(Wx + b), x * s(Wx))


def _is_literal(atom: Any) -> bool:
    return isinstance(atom, jax.extend.core.Literal)


def _vector_dot(equation: Any, x: Any) -> _Form | None:
    """The form of a ``dot_general`` that contracts the vector ``x``'s only axis with one axis of an
    operand not depending on it, or None."""
    operands = list(equation.invars)
    if equation.primitive.name != "dot_general" or operands.count(x) != 1:
        return None
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = equation.params["dimension_numbers"]
    side = operands.index(x)
    mine, theirs = (lhs_contract, rhs_contract) if side == 0 else (rhs_contract, lhs_contract)
    if lhs_batch or rhs_batch or tuple(mine) != (0,) or len(theirs) != 1:
        return None
    return _Form(-1, side, int(theirs[0]))


def _diagonal(equation: Any, dependent: set) -> bool:
    """Whether an equation reading values that depend on ``x`` maps entry ``i`` to entry ``i``
    (flat order): an elementwise primitive on operands of its output's shape (or scalars), a
    reshape that keeps the order, or a call whose body is all such."""
    name = equation.primitive.name
    shape = equation.outvars[0].aval.shape if equation.outvars else None
    reads = [not _is_literal(atom) and atom in dependent for atom in equation.invars]
    if name in ELEMENTWISE or name in COMPARISONS:
        return all(
            getattr(atom.aval, "shape", ()) in ((), shape) and (not read or atom.aval.shape == shape)
            for atom, read in zip(equation.invars, reads)
        )
    if name == "reshape":
        return equation.params.get("dimensions") is None
    if name in _ENTERED:
        inner = inner_jaxpr(equation.params)
        return inner is not None and _elementwise_body(inner[0], reads)
    return False


def _elementwise_body(jaxpr: Any, reads: list[bool]) -> bool:
    dependent = {var for var, read in zip(jaxpr.invars, reads) if read}
    for equation in jaxpr.eqns:
        if any(not _is_literal(atom) and atom in dependent for atom in equation.invars):
            if not _diagonal(equation, dependent):
                return False
            dependent.update(equation.outvars)
    return True


def _form(jaxpr: Any) -> _Form | None:
    """Where the layer's one ``dot_general`` reads ``x``, if the jaxpr is ``s(dot(x, W), x)`` with ``s``
    elementwise (``x`` read elementwise, if at all, besides the dot); None otherwise."""
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1:
        return None
    x = jaxpr.invars[0]
    if len(x.aval.shape) != 1:
        return None
    dependent, found, residual = {x}, None, False
    for index, equation in enumerate(jaxpr.eqns):
        reads = [atom for atom in equation.invars if not _is_literal(atom) and atom in dependent]
        if not reads:
            continue
        form = _vector_dot(equation, x) if x in reads else None
        if form is not None:
            if found is not None or len(reads) != 1:  # one dot, and W must not depend on x
                return None
            found = _Form(index, form.side, form.contracted)
        elif _diagonal(equation, dependent):
            residual = residual or x in reads
        else:
            return None
        dependent.update(equation.outvars)
    output = jaxpr.outvars[0]
    if found is None or _is_literal(output) or output not in dependent or output is x:
        return None
    if residual and math.prod(output.aval.shape) != x.aval.shape[0]:  # its diagonal must be square
        return None
    return _Form(found.dot, found.side, found.contracted, residual)


def has_explicit_form(function: Callable[[Any], Any], vector: Any) -> bool:
    """Whether ``function`` (of a vector) is an affine map followed by an elementwise one, on its jaxpr
    at ``vector`` (an array or ``jax.ShapeDtypeStruct``): whether :func:`explicit_jacobian` applies.
    Never raises: False where tracing fails.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> W = jnp.ones((3, 4))
    >>> has_explicit_form(lambda x: jnp.tanh(W @ x + 1.0), jax.ShapeDtypeStruct((4,), jnp.float32))
    True
    >>> has_explicit_form(lambda x: x + jnp.tanh(W.T @ W @ x), jax.ShapeDtypeStruct((4,), jnp.float32))  # residual
    True
    >>> has_explicit_form(lambda x: x + jnp.tanh(W.T @ (W @ x)), jax.ShapeDtypeStruct((4,), jnp.float32))
    False
    """
    try:
        jax.eval_shape(functools.partial(explicit_jacobian, function), vector)
    except Exception:  # noqa: BLE001 - detection only: a layer it cannot read is priced by its JVPs
        return False
    return True


def _read(env: dict, atom: Any) -> Any:
    return atom.val if _is_literal(atom) else env[atom]


def _run(equation: Any, env: dict) -> None:
    for var, value in zip(equation.outvars, bind_equation(equation, [_read(env, atom) for atom in equation.invars])):
        env[var] = value


def _diagonal_jvp(elementwise: Callable[[Any, Any], Any], product: Any, vector: Any) -> bool:
    """Whether the JVP of the elementwise part ``s(u, x)``, as JAX evaluates it (custom rules
    included), maps tangent entry ``i`` (of ``u`` and of ``x``) to entry ``i``: then its Jacobians
    are the diagonals its JVPs of ones give."""
    shapes = [jax.ShapeDtypeStruct(value.shape, value.dtype) for value in (product, vector)]

    def tangent_map(value, point, tangent, point_tangent):
        return jax.jvp(elementwise, (value, point), (tangent, point_tangent))[1]

    closed = jax.make_jaxpr(tangent_map)(*shapes, *shapes)
    return _elementwise_body(closed.jaxpr, [False, False, True, True])


#: ``J @ B`` scales ``J``'s matrix before the product where its ``k`` columns are fewer than ``B``'s
#: ``n`` (``m k`` entries written, not ``m n``); False: always the product after it, a pass of its own
#: over the ``m x n`` result (read while tracing; ``benchmarks/bench_switches.py`` times both)
SCALE_FIRST = True


@jax.tree_util.register_pytree_node_class
class ExplicitJacobian:
    """The Jacobian ``diag(derivative) @ matrix (+ diag(diagonal))``, not written out: ``@`` with it
    scales the other operand (``A @ J = (A * derivative) @ matrix + A * diagonal``) or, for ``J @ B``,
    the smaller of its matrix and the product (``(derivative * matrix) @ B`` or
    ``derivative * (matrix @ B)``, :data:`SCALE_FIRST`; ``+ diagonal * B``), and :meth:`dense`
    writes it. The diagonal is a residual layer's (``x + s(Wx + b)``), None elsewhere. A pytree
    (jit, device_put)."""

    def __init__(self, derivative: Any, matrix: Any, diagonal: Any = None) -> None:
        self.derivative, self.matrix, self.diagonal = derivative, matrix, diagonal

    def tree_flatten(self):
        return (self.derivative, self.matrix, self.diagonal), None

    @classmethod
    def tree_unflatten(cls, _, children):
        return cls(*children)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.derivative.shape[0], self.matrix.shape[1])

    def dense(self) -> Any:
        written = jnp.reshape(self.derivative, (-1, 1)) * self.matrix
        if self.diagonal is None:
            return written
        entries = jnp.arange(self.diagonal.shape[0])
        return written.at[entries, entries].add(self.diagonal)

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, ExplicitJacobian):
            if self.diagonal is None and other.diagonal is None:  # the left factor stays outside
                return ExplicitJacobian(self.derivative, (self.matrix * other.derivative) @ other.matrix)
            other = other.dense()
        if SCALE_FIRST and other.shape[1] > self.matrix.shape[1]:
            product = (jnp.reshape(self.derivative, (-1, 1)) * self.matrix) @ other
        else:
            product = jnp.reshape(self.derivative, (-1, 1)) * (self.matrix @ other)
        return product if self.diagonal is None else product + jnp.reshape(self.diagonal, (-1, 1)) * other

    def __rmatmul__(self, other: Any) -> Any:
        product = (other * self.derivative) @ self.matrix
        return product if self.diagonal is None else product + other * self.diagonal


def dense(jacobian: Any) -> Any:
    """An array: ``jacobian`` itself, or an :class:`ExplicitJacobian` written out."""
    return jacobian.dense() if isinstance(jacobian, ExplicitJacobian) else jacobian


def explicit_jacobian(function: Callable[[Any], Any], vector: Any) -> ExplicitJacobian:
    """The ``(m, n)`` Jacobian of ``function`` (an affine map followed by an elementwise one) at the
    vector ``vector``, ``diag(s'(W x + b)) W``, factored (:class:`ExplicitJacobian`; ``.dense()``
    writes it): the derivative is the elementwise part's JVP of ones. Composes with ``jit`` and
    ``vmap``.

    Raises
    ------
    ValueError
        Where ``function`` does not have that form, or the elementwise part's JVP (a custom rule)
        is not elementwise.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> W = jnp.arange(6.0).reshape(3, 2)
    >>> explicit_jacobian(lambda x: 2.0 * (W @ x), jnp.ones(2)).dense().tolist()
    [[0.0, 2.0], [4.0, 6.0], [8.0, 10.0]]
    """
    closed = jax.make_jaxpr(function)(vector)
    jaxpr = closed.jaxpr
    form = _form(jaxpr)
    if form is None:
        raise ValueError("its function is not an affine map followed by an elementwise one")
    dot = jaxpr.eqns[form.dot]
    env = dict(zip(jaxpr.constvars, closed.consts))
    env[jaxpr.invars[0]] = vector
    for equation in jaxpr.eqns[: form.dot + 1]:
        _run(equation, env)
    weight, product = _read(env, dot.invars[1 - form.side]), env[dot.outvars[0]]

    def elementwise(value, point):  # the layer with the dot's result replaced by value, x by point
        local = dict(zip(jaxpr.constvars, closed.consts))
        local[jaxpr.invars[0]] = point
        for index, equation in enumerate(jaxpr.eqns):
            if index == form.dot:
                local[dot.outvars[0]] = value
            else:
                _run(equation, local)
        return jnp.reshape(_read(local, jaxpr.outvars[0]), (-1,))

    if not _diagonal_jvp(elementwise, product, vector):
        raise ValueError("the JVP of its elementwise part (a custom rule) is not elementwise")
    ones, zeros = (jnp.ones_like, jnp.zeros_like)
    _, derivative = jax.jvp(elementwise, (product, vector), (ones(product), zeros(vector)))
    diagonal = jax.jvp(elementwise, (product, vector), (zeros(product), ones(vector)))[1] if form.residual else None
    matrix = jnp.reshape(jnp.moveaxis(weight, form.contracted, -1), (-1, vector.shape[0]))
    return ExplicitJacobian(derivative, matrix.astype(derivative.dtype), diagonal)
