"""Values the jaxpr walk of :mod:`.patterns` knows while tracing, computed only when a rule reads one.

The walk knows the jaxpr's constants (weights and index arrays closed over by ``f``), its
literals, and every value computed from those alone (``jnp.arange(n) % 2 == 0``, ``W.T``). Such
a value is not computed as the walk passes it: it is :class:`Deferred`, and computed (with the
values it needs, once) when a rule asks for it with :func:`concrete`: the index operands of a
gather or scatter, the predicate of a ``select_n``, a constant factor of a product whose zeros
are zeros of the Jacobian. Most are never asked for.

A constant closed over from an outer trace (``f`` defined under ``jax.jit`` over a traced
value) is a tracer: not known, and nothing computed from it is.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from .primitives import bind_equation

__all__ = ["Deferred", "deferred", "concrete", "MAX_KNOWN"]

#: The most entries a value computed from constants may have for :func:`concrete` to compute it.
MAX_KNOWN = 1 << 22


class _Evaluation:
    """One equation whose operands are all known: its outputs, computed once when first read."""

    def __init__(self, equation: Any, values: list) -> None:
        self.equation, self.values = equation, values
        self.results: list | None = None
        self.done = False

    def pending(self) -> list[_Evaluation]:
        """The evaluations of the operands still to compute."""
        return [value.evaluation for value in self.values if isinstance(value, Deferred) and not value.evaluation.done]

    def evaluate(self) -> None:
        """Compute the outputs from the operands (already computed); None where one is not known,
        a tracer, too large or fails to compute."""
        self.done = True
        operands = [value.value() if isinstance(value, Deferred) else _numpy(value) for value in self.values]
        outs = self.equation.outvars
        if any(operand is None for operand in operands) or sum(math.prod(v.aval.shape) for v in outs) > MAX_KNOWN:
            return
        try:
            with jax.ensure_compile_time_eval():
                self.results = [np.asarray(result) for result in bind_equation(self.equation, operands)]
        except Exception:  # a primitive that cannot run eagerly here: its outputs stay unknown
            self.results = None


class Deferred:
    """Output ``index`` of an equation computed from known values alone, computed when read."""

    __slots__ = ("evaluation", "index")

    def __init__(self, evaluation: _Evaluation, index: int) -> None:
        self.evaluation, self.index = evaluation, index

    def value(self) -> np.ndarray | None:
        if not self.evaluation.done:
            _compute(self.evaluation)
        results = self.evaluation.results
        return None if results is None else results[self.index]


def _compute(root: _Evaluation) -> None:
    """Compute ``root`` and the evaluations it reads, operands first (a loop, not a recursion: a long
    chain of constant ops would pass Python's recursion limit)."""
    stack = [root]
    while stack:
        evaluation = stack[-1]
        if evaluation.done:
            stack.pop()
            continue
        pending = evaluation.pending()
        if pending:
            stack.extend(pending)
        else:
            evaluation.evaluate()
            stack.pop()


def deferred(equation: Any, values: list) -> list:
    """The outputs of an equation whose operands are all known (``values``: arrays, literals' values or
    :class:`Deferred`), each :class:`Deferred`; None each where an operand is not known or the equation
    has effects."""
    if any(value is None for value in values) or equation.effects:
        return [None] * len(equation.outvars)
    evaluation = _Evaluation(equation, values)
    return [Deferred(evaluation, index) for index in range(len(equation.outvars))]


def _numpy(value: Any) -> np.ndarray | None:
    if value is None or isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except Exception:  # an array that cannot be read here (a key, a deleted buffer)
        return None


def concrete(value: Any) -> np.ndarray | None:
    """A known value as a numpy array (a :class:`Deferred` one computed now), or None where it is not
    known: not a constant, a tracer, too large, or not computable eagerly."""
    return value.value() if isinstance(value, Deferred) else _numpy(value)
