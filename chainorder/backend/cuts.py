"""Cutting a JAX program into the stretches that become a chain's layers.

``trace(f, x)`` walks the jaxpr of ``f`` (differentiated argument flattened to
one vector, everything else an input that is held constant, the output
flattened to one vector):

1. Calls to jitted functions (``jit``/``pjit``, ``closed_call``, ``core_call``)
   are inlined, recursively, so that a model wrapped in ``jax.jit`` splits too.
   Every other equation (``scan``, ``while``, ``cond``, ``custom_jvp_call``,
   ``custom_vjp_call``, ...) stays one unit: a loop body is never split.
2. An equation is *active* when it depends on the differentiated input; the
   others (weights, shapes, constants) are evaluated once per call, outside the
   chain.
3. Between two equations the *state* is the set of active values computed
   before and used after (or returned). A place is a valid cut when that state
   holds only floating-point arrays. Along the program the state's size runs
   in stretches of equal size (an MLP layer: matmul, bias, activation); a
   cut goes at the end of each stretch and before each matrix product or
   convolution that takes the whole state (so that layers of equal width stay
   apart), and a cut whose state holds several
   arrays and is larger than its neighbours' (inside a residual block, where
   the skip and the branch are both alive) is dropped.

This module inlines the jaxpr, marks the active equations and places the cuts;
:mod:`chainorder.backend.segments` turns the stretches into priced layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp

from .opcount import FREE_PRIMITIVES
from .primitives import bind_equation

__all__ = ["Opaque", "Program", "Stretch", "build_program", "compose"]

#: following stretches of a program run joined (:meth:`Stretch.joined`); False: each packs its output
#: into a vector for the next (read while tracing; ``benchmarks/bench_switches.py`` times both)
JOIN = True

_INLINED = {"pjit", "jit", "closed_call", "core_call"}
_LAYER_PRIMITIVES = {"dot_general", "conv_general_dilated"}


@dataclass
class _Op:
    equation: Any
    inputs: list  # variable ids, or ("literal", value)
    outputs: list[int]
    active: bool = False


@dataclass
class Program:
    """The flattened, inlined program with its cut into segments."""

    ops: list[_Op]
    avals: dict[int, Any]
    input_id: int
    other_input_ids: list[int]
    constants: dict[int, Any]  # closed-over values of the jaxprs
    output_id: int
    cuts: list[int]  # op positions; segment k is ops[cuts[k]:cuts[k+1]]
    states: list[list[int]]  # live active variable ids at each cut
    notes: list[str] = field(default_factory=list)

    def size(self, ids: Sequence[int]) -> int:
        return sum(int(math.prod(self.avals[i].shape)) for i in ids)

    def constant_env(self, others: Sequence[Any]) -> dict[int, Any]:
        """Values of every inactive variable: closed-over constants, the inputs
        held constant, and what inactive equations compute from them."""
        env = dict(self.constants)
        env.update(zip(self.other_input_ids, others))
        for op in self.ops:
            if not op.active:
                _evaluate(op, env)
        return env

    def fingerprint(self, index: int, env: dict[int, Any] | None = None) -> tuple:
        """The structure of segment ``index``: its active ops' primitives, parameters and operand
        shapes, variables numbered by first appearance. Equal fingerprints, equal costs (costs do
        not depend on the values of constants). With ``env`` (:meth:`constant_env`), constants count
        by identity too: equal fingerprints, equal patterns (which read the zeros of constants,
        :mod:`.knownvalues`)."""
        numbers: dict[int, int] = {var: n for n, var in enumerate(self.states[index])}
        parts: list = [tuple((self.avals[var].shape, str(self.avals[var].dtype)) for var in self.states[index])]
        for op in self.ops[self.cuts[index] : self.cuts[index + 1]]:
            if not op.active:
                continue
            operands = []
            for item in op.inputs:
                if isinstance(item, tuple):
                    operands.append(("literal", repr(item[1])))
                elif item in numbers:
                    operands.append(numbers[item])
                else:  # a constant of the segment: its shape (and with env, which value it is)
                    identity = () if env is None else (id(env[item]),)
                    operands.append(("constant", self.avals[item].shape, str(self.avals[item].dtype), *identity))
            for var in op.outputs:
                numbers.setdefault(var, len(numbers))
            parts.append((op.equation.primitive.name, repr(sorted(op.equation.params.items())), tuple(operands)))
        parts.append(tuple(numbers.get(var, -1) for var in self.states[index + 1]))
        return tuple(parts)

    def segment_function(self, index: int, env: dict[int, Any]) -> Stretch:
        return Stretch(self, env, index, index)


class Stretch:
    """Segments ``first..last`` of a program as one function of the flattened state before them.

    Stretches that follow each other join (:meth:`joined`) into one that runs their operations
    without packing the states between them into a vector: a step through several layers of a
    traced function runs as the program does. Packed, a layer norm's inner states (the activations
    with their mean, then with their variance) cost XLA concatenations and extra passes: a
    forward sweep through a traced layer-norm MLP took 1.6-1.7x the time of the same sweep joined
    (``benchmarks/bench_switches.py``).
    """

    def __init__(self, program: Program, env: dict[int, Any], first: int, last: int) -> None:
        self.program, self.env, self.first, self.last = program, env, first, last
        start, stop = program.cuts[first], program.cuts[last + 1]
        self._ops = [op for op in program.ops[start:stop] if op.active]

    def joined(self, following: Any) -> Stretch | None:
        """One stretch running this one, then ``following``; None where that is not the next
        stretch of the same program and constants."""
        if not JOIN or not isinstance(following, Stretch):
            return None
        if following.program is not self.program or following.env is not self.env:
            return None
        if following.first != self.last + 1:
            return None
        return Stretch(self.program, self.env, self.first, following.last)

    def __call__(self, vector: Any) -> Any:
        local = dict(self.env)
        offset = 0
        for var in self.program.states[self.first]:
            shape = self.program.avals[var].shape
            size = int(math.prod(shape))
            local[var] = jnp.reshape(vector[offset : offset + size], shape)
            offset += size
        for op in self._ops:
            _evaluate(op, local)
        pieces = [jnp.reshape(local[var], (-1,)) for var in self.program.states[self.last + 1]]
        return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces)


def _evaluate(op: _Op, env: dict[int, Any]) -> None:
    values = [item[1] if isinstance(item, tuple) else env[item] for item in op.inputs]
    for var, value in zip(op.outputs, bind_equation(op.equation, values)):
        env[var] = value


def _flatten(closed_jaxpr: Any) -> tuple[list[_Op], dict[int, Any], list[int], dict[int, Any], list[int]]:
    """Inline calls recursively; give every variable an integer id."""
    ops: list[_Op] = []
    avals: dict[int, Any] = {}
    constants: dict[int, Any] = {}
    counter = iter(range(1 << 62))

    def new_var(aval: Any) -> int:
        var = next(counter)
        avals[var] = aval
        return var

    def walk(jaxpr: Any, consts: Sequence[Any], inputs: list) -> list:
        names: dict[Any, Any] = {}
        for var, value in zip(jaxpr.constvars, consts):
            names[var] = new_var(var.aval)
            constants[names[var]] = value
        for var, item in zip(jaxpr.invars, inputs):
            names[var] = item

        def read(atom: Any) -> Any:
            if isinstance(atom, jax.extend.core.Literal):
                return ("literal", atom.val)
            return names[atom]

        for equation in jaxpr.eqns:
            inner = equation.params.get("jaxpr", equation.params.get("call_jaxpr"))
            if equation.primitive.name in _INLINED and inner is not None:
                inner_jaxpr = getattr(inner, "jaxpr", inner)
                inner_consts = getattr(inner, "consts", ())
                results = walk(inner_jaxpr, inner_consts, [read(atom) for atom in equation.invars])
                for var, item in zip(equation.outvars, results):
                    names[var] = item
                continue
            outputs = [new_var(var.aval) for var in equation.outvars]
            for var, out in zip(equation.outvars, outputs):
                names[var] = out
            ops.append(_Op(equation, [read(atom) for atom in equation.invars], outputs))
        return [read(atom) for atom in jaxpr.outvars]

    jaxpr = closed_jaxpr.jaxpr
    input_ids = [new_var(var.aval) for var in jaxpr.invars]
    outputs = walk(jaxpr, closed_jaxpr.consts, list(input_ids))
    return ops, avals, input_ids, constants, outputs


def _is_float(aval: Any) -> bool:
    return jnp.issubdtype(aval.dtype, jnp.inexact)  # bfloat16 too (numpy does not count it inexact)


def build_program(closed_jaxpr: Any) -> Program:
    ops, avals, input_ids, constants, outputs = _flatten(closed_jaxpr)
    if len(outputs) != 1 or isinstance(outputs[0], tuple):
        raise Opaque("the output does not depend on the differentiated input")
    input_id, output_id = input_ids[0], outputs[0]
    if closed_jaxpr.jaxpr.effects:
        raise Opaque(f"the program has side effects ({', '.join(map(str, closed_jaxpr.jaxpr.effects))})")
    active = _mark_active(ops, input_id)
    if output_id not in active:
        raise Opaque("the output does not depend on the differentiated input")
    if output_id == input_id:
        raise Opaque("the function returns its input")

    def size(ids: list[int]) -> int:
        return sum(int(math.prod(avals[i].shape)) for i in ids)

    candidates = _candidate_cuts(ops, avals, active, input_id, output_id)
    kept = _layer_cuts(ops, candidates, size, input_id, output_id)
    cuts = [0] + [position for position, _ in kept] + [len(ops)]
    states = [[input_id]] + [state for _, state in kept] + [[output_id]]
    _join_data_moves(ops, active, cuts, states)
    return Program(ops, avals, input_id, input_ids[1:], constants, output_id, cuts, states)


def _mark_active(ops: list[_Op], input_id: int) -> set[int]:
    """Mark the ops that depend on the differentiated input; return the active variables."""
    active = {input_id}
    for op in ops:
        op.active = any(not isinstance(item, tuple) and item in active for item in op.inputs)
        if op.active:
            active.update(op.outputs)
    return active


def _candidate_cuts(ops: list[_Op], avals, active: set[int], input_id: int, output_id: int) -> list:
    """Before op p (p = 1..len(ops)-1), where the live active state is all-float: (p, state)."""
    last_use: dict[int, int] = {output_id: len(ops)}  # the output counts as used at the end
    for position, op in enumerate(ops):
        for item in op.inputs:
            if not isinstance(item, tuple) and item in active:
                last_use[item] = max(last_use.get(item, -1), position)
    candidates: list[tuple[int, list[int]]] = []
    live: set[int] = {input_id}
    for position in range(1, len(ops)):
        previous = ops[position - 1]
        if previous.active:
            live.update(var for var in previous.outputs if last_use.get(var, -1) >= position)
        live = {var for var in live if last_use.get(var, -1) >= position}
        if not live or not all(_is_float(avals[var]) for var in live):
            continue
        if not any(op.active for op in ops[position:]) or not any(op.active for op in ops[:position]):
            continue
        candidates.append((position, sorted(live)))
    return candidates


def _layer_cuts(ops: list[_Op], candidates: list, size, input_id: int, output_id: int) -> list:
    """The end of each stretch of equal state size, and the start of each matrix product or
    convolution whose input is the whole state (a layer boundary between equal widths); less the
    multi-array states larger than both neighbours (inside residual blocks)."""
    kept: list[tuple[int, list[int]]] = []
    for index, (position, state) in enumerate(candidates):
        following = candidates[index + 1][1] if index + 1 < len(candidates) else [output_id]
        layer_starts = len(state) == 1 and ops[position].equation.primitive.name in _LAYER_PRIMITIVES
        if size(following) != size(state) or layer_starts:
            kept.append((position, state))
    sizes = [size([input_id])] + [size(state) for _, state in kept] + [size([output_id])]
    return [
        cut
        for index, cut in enumerate(kept)
        if len(cut[1]) == 1 or not (sizes[index + 1] > sizes[index] and sizes[index + 1] > sizes[index + 2])
    ]


def _join_data_moves(ops: list[_Op], active: set[int], cuts: list[int], states: list) -> None:
    """A segment that only moves data (reshape, slice, a bias add, ...) joins its neighbour (in place)."""
    index = 0
    while len(cuts) > 2 and index < len(cuts) - 1:
        if all(_moves_data(op, active) for op in ops[cuts[index] : cuts[index + 1]] if op.active):
            boundary = index + 1 if index + 1 < len(cuts) - 1 else index
            del cuts[boundary], states[boundary]
        else:
            index += 1


def _moves_data(op: _Op, active: set[int]) -> bool:
    """Whether the op's linearization does no arithmetic on the differentiated values."""
    name = op.equation.primitive.name
    if name in FREE_PRIMITIVES or name == "split":
        return True
    if name in ("add", "sub", "add_any"):
        return sum(not isinstance(item, tuple) and item in active for item in op.inputs) == 1
    return False


class Opaque(Exception):
    """The program is used as one segment, for the reason given."""


def compose(functions: Sequence[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """``functions`` applied in turn, following stretches joined (:meth:`Stretch.joined`)."""
    joined: list[Callable[[Any], Any]] = []
    for function in functions:
        both = joined[-1].joined(function) if joined and isinstance(joined[-1], Stretch) else None
        if both is None:
            joined.append(function)
        else:
            joined[-1] = both
    if len(joined) == 1:
        return joined[0]

    def composed(vector: Any) -> Any:
        for function in joined:
            vector = function(vector)
        return vector

    return composed
