"""From a JAX program to a chain: each stretch between cuts becomes a priced layer.

``prepare(f, vector, others)`` cuts the program (:mod:`chainorder.backend.cuts`), then turns
each stretch into a :class:`~chainorder.Layer` whose ``fn`` maps the flattened state before
to the flattened state after, with dims the state sizes and costs from
:func:`chainorder.backend.opcount.layer_costs` (segments of the same structure are priced
once). If the program cannot be cut (it has side effects, or no valid cut), or the analysis
fails, the whole function becomes one opaque segment: still correct, just not split, and the
report says why.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.chain import Chain, Layer
from ..core.coloring import LayerPattern
from .compressed import sparse_layer_pattern
from .cuts import Opaque, Program, build_program
from .opcount import layer_costs, price_out

__all__ = ["Segment", "Traced", "prepare"]

@dataclass
class Segment:
    """A stretch of the program that became one layer."""

    index: int
    in_dim: int
    out_dim: int
    primitives: list[str]
    source: str
    tangent_cost: int = 0
    adjoint_cost: int = 0
    edges: int = 0

    def describe(self) -> str:
        counts: dict[str, int] = {}
        for name in self.primitives:
            counts[name] = counts.get(name, 0) + 1
        ops = ", ".join(f"{name}" + (f" x{count}" if count > 1 else "") for name, count in counts.items())
        return ops or "(no active operations)"


def _source(op: Any) -> str:
    try:
        from jax._src import source_info_util

        return source_info_util.summarize(op.equation.source_info)
    except Exception:  # pragma: no cover - private API moved
        return ""


@dataclass
class Traced:
    """Everything ``trace``/``jacobian`` know about ``f`` at one input signature."""

    chain: Chain  # layers without functions; bind() gives the functions
    segments: list[Segment]
    program: Program | None
    flat_function: Callable[..., Any]  # (v, *others) -> flat output
    notes: list[str]

    def functions(self, others: Sequence[Any]) -> list[Callable[[Any], Any]]:
        if self.program is None:
            return [functools.partial(_call_with, self.flat_function, others)]
        env = self.program.constant_env(others)
        return [self.program.segment_function(k, env) for k in range(len(self.segments))]


def _call_with(function: Callable[..., Any], others: Sequence[Any], vector: Any) -> Any:
    return function(vector, *others)


def prepare(flat_function: Callable[..., Any], vector: Any, others: Sequence[Any]) -> Traced:
    avals = [jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in (vector, *others)]
    notes: list[str] = []
    closed = jax.make_jaxpr(flat_function)(*avals)
    try:
        program = build_program(closed)

        def layer_info(k: int) -> Segment:
            start, stop = program.cuts[k], program.cuts[k + 1]
            active_ops = [op for op in program.ops[start:stop] if op.active]
            sources = [s for s in dict.fromkeys(_source(op) for op in active_ops) if s]
            return Segment(
                index=k,
                in_dim=program.size(program.states[k]),
                out_dim=program.size(program.states[k + 1]),
                primitives=[op.equation.primitive.name for op in active_ops],
                source="; ".join(sources[:2]) + (" ..." if len(sources) > 2 else ""),
            )

        segments = [layer_info(k) for k in range(len(program.cuts) - 1)]
        costs = _segment_costs(program, others, segments)  # counted abstractly
        # one segment: its compression is the drop-in's whole-function strategy
        patterns = _segment_patterns(program, others, segments) if len(segments) > 1 else [None]
    except Opaque as reason:
        program = None
        notes.append(f"not split: {reason}; the whole function is one segment")
    except Exception as error:  # noqa: BLE001 - any failure of the analysis falls back, never errors
        program = None
        notes.append(f"not split: the analysis failed ({type(error).__name__}: {error}); one segment")
    if program is None:
        in_dim = int(math.prod(np.shape(vector)))
        out_dim = int(math.prod(jax.eval_shape(flat_function, *avals).shape))
        names = [eqn.primitive.name for eqn in closed.jaxpr.eqns]
        segments = [Segment(0, in_dim, out_dim, names, "the whole function")]
        costs = _whole_function_costs(flat_function, avals)
        patterns = [None]
    layers = []
    dims = [segment.in_dim for segment in segments], [segment.out_dim for segment in segments]
    costs, refused = price_out(*dims, costs)
    for direction, mode, instead in (("adjoint", "reverse", "push tangents"), ("tangent", "forward", "pull adjoints")):
        for index in refused[direction]:
            notes.append(f"segment {index} cannot run in {mode} mode (JAX refuses it); plans {instead} through it")
    for segment, (tangent, adjoint, edges), pattern in zip(segments, costs, patterns):
        segment.tangent_cost, segment.adjoint_cost, segment.edges = tangent, adjoint, edges
        layers.append(
            Layer(
                segment.in_dim,
                segment.out_dim,
                edges=edges,
                tangent_cost=tangent,
                adjoint_cost=adjoint,
                name=f"segment {segment.index}",
                pattern=pattern,
            )
        )
    return Traced(Chain(layers), segments, program, flat_function, notes)


def _per_segment(program: Program, others: Sequence[Any], segments: list[Segment], measure: Callable) -> list:
    """``measure(function, input)`` of every segment (its function and an abstract input), with the
    other arguments abstract; segments of the same structure share theirs."""
    found: list = []

    def probe(*values):
        env = program.constant_env(values)
        known: dict[Any, Any] = {}
        for k, segment in enumerate(segments):
            key = program.fingerprint(k)
            if key not in known:
                vector = jax.ShapeDtypeStruct((segment.in_dim,), _state_dtype(program, k))
                known[key] = measure(program.segment_function(k, env), vector)
            found.append(known[key])
        return 0

    jax.eval_shape(probe, *[jax.ShapeDtypeStruct(np.shape(a), jnp.result_type(a)) for a in others])
    return found


def _segment_costs(program: Program, others: Sequence[Any], segments: list[Segment]) -> list[tuple[int, int, int]]:
    return _per_segment(program, others, segments, layer_costs)


def _segment_patterns(program: Program, others: Sequence[Any], segments: list[Segment]) -> list[LayerPattern | None]:
    """Each segment's Jacobian pattern and colors where it is under half dense (None elsewhere, and
    wherever finding it fails: a segment is then priced dense)."""
    def pattern(function: Callable, vector: jax.ShapeDtypeStruct) -> LayerPattern | None:
        return sparse_layer_pattern(function, vector.shape[0], vector.dtype)

    return _per_segment(program, others, segments, pattern)


def _whole_function_costs(flat_function: Callable[..., Any], avals: list) -> list:
    """The costs of the whole function as one segment, the other arguments abstract."""
    found: list = []

    def probe(*others):
        found.append(layer_costs(lambda v: flat_function(v, *others), avals[0]))
        return 0

    jax.eval_shape(probe, *avals[1:])
    return found


def _state_dtype(program: Program, index: int) -> Any:
    dtypes = [program.avals[var].dtype for var in program.states[index]]
    return jnp.result_type(*dtypes)
